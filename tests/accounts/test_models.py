import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts import services
from accounts.models import Membership, Tenant, User


def test_tenant_slug_is_unique(tenant):
    with pytest.raises(IntegrityError), transaction.atomic():
        Tenant.objects.create(slug="acme", name="Another Acme")


def test_tenant_create_reports_a_taken_slug_and_creates_nothing(tenant):
    with pytest.raises(ValidationError) as caught:
        services.tenant_create(slug="acme", name="Copycat", owner_email="new@copy.test")
    assert "slug" in caught.value.message_dict
    assert not User.objects.filter(email="new@copy.test").exists()


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/St_Johns", "Europe/Berlin"])
def test_iana_time_zones_are_accepted(db, zone):
    tenant = services.tenant_create(slug="t", name="T", timezone_name=zone)
    assert tenant.tz.key == zone


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "+05:30", "utc "])
def test_other_time_zones_are_refused(db, zone):
    with pytest.raises(ValidationError) as caught:
        services.tenant_create(slug="t", name="T", timezone_name=zone)
    assert "timezone" in caught.value.message_dict
    assert not Tenant.objects.exists()


def test_membership_is_unique_per_user_and_tenant(owner, tenant):
    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(user=owner, tenant=tenant, role=Membership.Role.VIEWER)


def test_membership_set_changes_the_role_in_place(owner, tenant):
    _membership, previous = services.membership_set(tenant=tenant, user=owner, role=Membership.Role.VIEWER)
    assert previous == Membership.Role.OWNER
    assert Membership.objects.get(user=owner, tenant=tenant).role == Membership.Role.VIEWER
    assert Membership.objects.filter(user=owner).count() == 1


def test_membership_set_refuses_an_unknown_role(owner, tenant):
    with pytest.raises(ValidationError):
        services.membership_set(tenant=tenant, user=owner, role="superhero")


@pytest.mark.parametrize(("role", "can_manage"), [("owner", True), ("admin", True), ("viewer", False)])
def test_only_owners_and_admins_manage(tenant, role, can_manage):
    user = User.objects.create_user("m@acme.test")
    membership, _ = services.membership_set(tenant=tenant, user=user, role=role)
    assert membership.can_manage is can_manage


def test_emails_are_one_account_whatever_their_case(db):
    user, created = services.user_get_or_create(email="Ada@Example.COM")
    again, created_again = services.user_get_or_create(email="ada@example.com")
    assert (created, created_again) == (True, False)
    assert again == user and user.email == "ada@example.com"


def test_tenant_owner_who_already_exists_is_reused(db):
    existing = User.objects.create_user("boss@acme.test", "pw-for-tests-123")
    tenant = services.tenant_create(slug="acme", name="Acme", owner_email="BOSS@acme.test")
    assert list(tenant.memberships.values_list("user", "role")) == [(existing.pk, "owner")]


def test_new_owner_without_password_cannot_log_in_yet(db):
    services.tenant_create(slug="acme", name="Acme", owner_email="boss@acme.test")
    assert not User.objects.get(email="boss@acme.test").has_usable_password()


def test_an_invalid_owner_email_is_refused(db):
    with pytest.raises(ValidationError):
        services.tenant_create(slug="acme", name="Acme", owner_email="not an email")
    assert not Tenant.objects.exists()

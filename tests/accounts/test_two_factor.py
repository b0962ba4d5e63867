"""TOTP two-factor sign-in: enrolment, the code after the password, recovery codes, lockout, the owner's rule."""

import time

import pyotp
import pytest
from django.test import Client
from django.urls import reverse

from accounts import twofactor
from accounts.models import RecoveryCode, User

PASSWORD = "pw-for-tests-123"


def _enrol(user):
    """Enrol through the page, as a person would; the secret and the recovery codes."""
    client = Client()
    client.force_login(user)
    page = client.get(reverse("two_factor_setup"))
    secret = page.context["secret"]
    response = client.post(reverse("two_factor_setup"), {"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 201
    return secret, response.context["codes"]


def _password(client, user, url=None, **data):
    return client.post(url or reverse("login"), {"username": user.email, "password": PASSWORD, **data})


def _fresh_code(secret, user):
    """A code of a time step not used yet (the enrolment spent the current one)."""
    device = twofactor.device_for(user)
    step = max(pyotp.TOTP(secret).timecode(time.time()), (device.last_used_step or 0) + 1)
    return pyotp.TOTP(secret).generate_otp(step)


def test_the_setup_page_shows_the_secret_as_qr_code_and_uri(owner_client, owner):
    page = owner_client.get(reverse("two_factor_setup"))
    body = page.content.decode()
    secret = twofactor.device_for(owner).secret
    assert page.status_code == 200 and secret in body
    assert f"otpauth://totp/Usage%20Statistics:{owner.email.replace('@', '%40')}?secret={secret}" in body
    assert "<svg" in body and "<img" not in body
    assert not twofactor.is_enrolled(owner)


def test_a_wrong_code_does_not_turn_it_on(owner_client, owner):
    owner_client.get(reverse("two_factor_setup"))
    response = owner_client.post(reverse("two_factor_setup"), {"code": "000000"})
    assert response.status_code == 400 and "That code is not right" in response.content.decode()
    assert not twofactor.is_enrolled(owner)


def test_enrolment_shows_ten_recovery_codes_once_and_stores_only_hashes(owner):
    _secret, codes = _enrol(owner)
    assert twofactor.is_enrolled(owner) and len(set(codes)) == 10
    stored = list(RecoveryCode.objects.filter(user=owner).values_list("code_hash", flat=True))
    assert len(stored) == 10
    assert not any(code.replace("-", "") in h for code in codes for h in stored)
    client = Client()
    client.force_login(owner)
    again = client.get(reverse("two_factor_setup")).content.decode()
    assert "Two-factor sign-in is on" in again and codes[0] not in again


def test_the_password_alone_does_not_log_an_enrolled_user_in(owner):
    _enrol(owner)
    client = Client()
    response = _password(client, owner)
    assert response.status_code == 302 and response.url == reverse("two_factor_verify")
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("usage:dashboard", kwargs={"slug": "acme"})).status_code == 302


def test_the_code_after_the_password_logs_in_and_goes_on_to_next(owner):
    secret, _codes = _enrol(owner)
    client = Client()
    target = reverse("api_keys", kwargs={"slug": "acme"})
    _password(client, owner, next=target)
    response = client.post(reverse("two_factor_verify"), {"code": _fresh_code(secret, owner)})
    assert response.status_code == 302 and response.url == target
    assert client.session["_auth_user_id"] == str(owner.pk)


def test_a_code_is_accepted_only_once(owner):
    secret, _codes = _enrol(owner)
    code = _fresh_code(secret, owner)
    first, second = Client(), Client()
    _password(first, owner)
    assert first.post(reverse("two_factor_verify"), {"code": code}).status_code == 302
    _password(second, owner)
    response = second.post(reverse("two_factor_verify"), {"code": code})
    assert response.status_code == 400 and "_auth_user_id" not in second.session


def test_a_recovery_code_logs_in_once(owner):
    _secret, codes = _enrol(owner)
    first, second = Client(), Client()
    _password(first, owner)
    assert first.post(reverse("two_factor_verify"), {"code": codes[3].upper()}).status_code == 302
    _password(second, owner)
    assert second.post(reverse("two_factor_verify"), {"code": codes[3]}).status_code == 400
    assert RecoveryCode.objects.filter(user=owner, used_at__isnull=False).count() == 1


def test_wrong_codes_lock_the_account_out_like_wrong_passwords(owner, settings):
    _secret, _codes = _enrol(owner)
    client = Client(REMOTE_ADDR="203.0.113.9")
    _password(client, owner)
    statuses = [client.post(reverse("two_factor_verify"), {"code": "123456"}).status_code for _ in range(12)]
    limit = settings.AXES_FAILURE_LIMIT
    assert statuses[: limit - 1] == [400] * (limit - 1) and statuses[limit - 1] == 429
    # Locked: neither the right code nor a new password login gets through.
    assert _password(Client(REMOTE_ADDR="203.0.113.9"), owner).status_code == 429
    assert "_auth_user_id" not in client.session


def test_the_code_page_expires(owner, settings):
    secret, _codes = _enrol(owner)
    settings.TWO_FACTOR_LOGIN_SECONDS = 0
    client = Client()
    _password(client, owner)
    response = client.post(reverse("two_factor_verify"), {"code": _fresh_code(secret, owner)})
    assert response.status_code == 302 and response.url == reverse("login")
    assert "_auth_user_id" not in client.session


def test_the_admin_login_asks_for_the_code_too(db):
    staff = User.objects.create_user("staff@ops.test", PASSWORD, is_staff=True, is_superuser=True)
    secret, _codes = _enrol(staff)
    client = Client()
    response = _password(client, staff, url=reverse("admin:login"))
    assert response.status_code == 302 and response.url == reverse("two_factor_verify")
    assert client.get(reverse("admin:index")).status_code == 302
    response = client.post(reverse("two_factor_verify"), {"code": _fresh_code(secret, staff)})
    assert response.url == reverse("admin:index")
    assert client.get(reverse("admin:index")).status_code == 200


def test_the_admin_login_refuses_a_non_staff_user(owner):
    response = _password(Client(), owner, url=reverse("admin:login"))
    assert response.status_code == 200 and "_auth_user_id" not in response.client.session


def test_new_recovery_codes_replace_the_old_ones(owner):
    secret, old = _enrol(owner)
    client = Client()
    client.force_login(owner)
    response = client.post(reverse("recovery_codes_renew"), {"code": _fresh_code(secret, owner)})
    new = response.context["codes"]
    assert response.status_code == 201 and not set(new) & set(old)
    assert not twofactor.recovery_code_use(owner, old[0])
    assert twofactor.recovery_code_use(owner, new[0])


class TestTheOwnersRule:
    def _require(self, owner_client):
        _enrol(User.objects.get(email="owner@acme.test"))
        url = reverse("tenant_sign_in", kwargs={"slug": "acme"})
        data = {"require_two_factor": "on", "sso_email_domain": "", "sso_default_role": "viewer"}
        assert owner_client.post(url, data).status_code == 302

    def test_a_member_without_two_factor_is_sent_to_enrolment(self, owner_client, viewer_client, owner, viewer):
        self._require(owner_client)
        dashboard = reverse("usage:dashboard", kwargs={"slug": "acme"})
        response = viewer_client.get(dashboard)
        assert response.status_code == 302 and response.url.startswith(reverse("two_factor_setup") + "?next=")
        api = viewer_client.get("/api/v1/usage/summary/?tenant=acme")
        assert api.status_code == 403 and api["Content-Type"] == "application/problem+json"
        _enrol(viewer)
        assert viewer_client.get(dashboard).status_code == 200

    def test_members_of_other_tenants_are_not_affected(self, owner_client, outsider_client):
        self._require(owner_client)
        page = outsider_client.get(reverse("usage:dashboard", kwargs={"slug": "globex"}))
        assert page.status_code == 200

    @pytest.mark.parametrize(("who", "status"), [("viewer", 403), ("admin_member", 403), ("outsider", 404)])
    def test_only_an_owner_changes_the_rule(self, who, status, request, tenant):
        client = Client()
        client.force_login(request.getfixturevalue(who))
        url = reverse("tenant_sign_in", kwargs={"slug": "acme"})
        assert client.post(url, {"require_two_factor": "on", "sso_default_role": "viewer"}).status_code == status
        tenant.refresh_from_db()
        assert tenant.require_two_factor is False


def test_an_owner_without_two_factor_cannot_require_it_yet(owner_client, tenant):
    url = reverse("tenant_sign_in", kwargs={"slug": "acme"})
    response = owner_client.post(url, {"require_two_factor": "on", "sso_default_role": "viewer"})
    assert response.status_code == 400 and "Set up two-factor sign-in for yourself first" in response.content.decode()
    tenant.refresh_from_db()
    assert tenant.require_two_factor is False


def test_the_owner_sets_the_single_sign_on_domain_and_role(owner_client, tenant, other_tenant):
    url = reverse("tenant_sign_in", kwargs={"slug": "acme"})
    data = {"sso_email_domain": "@ACME.test ", "sso_default_role": "admin"}
    assert owner_client.post(url, data).status_code == 302
    tenant.refresh_from_db()
    assert (tenant.sso_email_domain, tenant.sso_default_role) == ("acme.test", "admin")
    # One tenant per domain; and never "owner" for people the owner has not seen.
    other_tenant.sso_email_domain = "globex.test"
    other_tenant.save()
    taken = owner_client.post(url, {"sso_email_domain": "globex.test", "sso_default_role": "viewer"})
    assert taken.status_code == 400 and "Another tenant already uses this domain" in taken.content.decode()
    owner_role = owner_client.post(url, {"sso_email_domain": "acme.test", "sso_default_role": "owner"})
    assert owner_role.status_code == 400
    tenant.refresh_from_db()
    assert (tenant.sso_email_domain, tenant.sso_default_role) == ("acme.test", "admin")


def test_the_totp_secret_is_stored_encrypted(owner_client, owner):
    from accounts.models import TwoFactorDevice

    owner_client.get(reverse("two_factor_setup"))
    stored = TwoFactorDevice.objects.filter(user=owner).values_list("secret_sealed", flat=True).get()
    secret = twofactor.device_for(owner).secret
    assert len(secret) == 32 and secret not in stored
    assert pyotp.TOTP(secret).now()  # a usable base32 seed once unsealed

"""Operator commands: human lines by default, exactly one JSON object with --json."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from accounts.models import ApiKey, Membership, Tenant, User


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def run_json(*args):
    out, _err = run(*args, "--json")
    assert len(out.strip().splitlines()) == 1
    return json.loads(out)


def test_create_tenant_json_with_a_new_owner_prints_a_working_password(db):
    result = run_json(
        "create_tenant", "acme", "--name", "Acme", "--timezone", "Asia/Kolkata", "--owner", "Boss@Acme.test"
    )
    assert {k: result[k] for k in ("slug", "name", "timezone", "owner")} == {
        "slug": "acme",
        "name": "Acme",
        "timezone": "Asia/Kolkata",
        "owner": "boss@acme.test",
    }
    owner = User.objects.get(email="boss@acme.test")
    assert owner.check_password(result["password"])
    assert Membership.objects.get(user=owner).role == "owner"


def test_create_tenant_with_a_given_password_does_not_print_it(db):
    result = run_json(
        "create_tenant", "acme", "--name", "Acme", "--owner", "boss@acme.test", "--password", "Tr1cky-pass"
    )
    assert "password" not in result
    assert User.objects.get(email="boss@acme.test").check_password("Tr1cky-pass")


def test_create_tenant_keeps_an_existing_owners_password(owner):
    out, err = run("create_tenant", "side", "--name", "Side", "--owner", owner.email, "--password", "Other-pass-1")
    assert "password" not in out.lower()
    assert "--password ignored" in err
    owner.refresh_from_db()
    assert owner.check_password("pw-for-tests-123")


def test_create_tenant_without_owner(db):
    result = run_json("create_tenant", "acme", "--name", "Acme")
    assert result == {"id": Tenant.objects.get().pk, "slug": "acme", "name": "Acme", "timezone": "UTC"}


def test_create_tenant_human_output(db):
    out, _ = run("create_tenant", "acme", "--name", "Acme", "--owner", "boss@acme.test")
    assert "Created tenant “Acme” (slug acme, time zone UTC)." in out
    assert "shown once" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timezone", "Mars/Olympus"], "timezone: 'Mars/Olympus' is not an IANA time zone"),
        (["--owner", "not-an-email"], "'not-an-email' is not an email address"),
        (["--owner", "new@acme.test", "--password", "123"], "Password for new@acme.test refused"),
    ],
)
def test_create_tenant_errors_change_nothing(db, args, message):
    with pytest.raises(CommandError, match=message):
        run("create_tenant", "acme", "--name", "Acme", *args)
    assert not Tenant.objects.exists()
    assert not User.objects.exists()


def test_create_tenant_refuses_a_taken_slug(tenant):
    with pytest.raises(CommandError, match="slug: Tenant with this Slug already exists"):
        run("create_tenant", "acme", "--name", "Acme again", "--json")
    assert Tenant.objects.count() == 1


def test_create_api_key_json_prints_a_secret_that_verifies(tenant):
    result = run_json("create_api_key", "--tenant", "acme", "billing")
    key = ApiKey.objects.get(tenant=tenant, name="billing")
    assert result == {"tenant": "acme", "name": "billing", "public_id": key.public_id, "secret": result["secret"]}
    assert ApiKey.find_by_secret(result["secret"]) == key


def test_create_api_key_human_output_shows_secret_and_public_id(tenant):
    out, _ = run("create_api_key", "--tenant", "acme", "billing")
    key = ApiKey.objects.get()
    assert key.public_id in out
    assert f"sk_{key.public_id}_" in out


def test_create_api_key_for_an_unknown_tenant(db):
    with pytest.raises(CommandError, match="No tenant with slug 'nope'"):
        run("create_api_key", "--tenant", "nope", "billing", "--json")


def test_create_api_key_refuses_a_taken_name(api_key):
    with pytest.raises(CommandError, match="already has an API key named 'PRODUCTION'"):
        run("create_api_key", "--tenant", "acme", "PRODUCTION")
    assert ApiKey.objects.count() == 1


def test_add_member_creates_a_viewer_with_a_password(tenant):
    result = run_json("add_member", "--tenant", "acme", "new@acme.test")
    assert result["role"] == "viewer" and result["previous_role"] is None
    assert User.objects.get(email="new@acme.test").check_password(result["password"])


def test_add_member_changes_a_role(viewer):
    result = run_json("add_member", "--tenant", "acme", viewer.email, "--role", "admin")
    assert (result["previous_role"], result["role"]) == ("viewer", "admin")
    assert "password" not in result
    assert Membership.objects.get(user=viewer).role == "admin"


def test_add_member_refuses_an_unknown_role(tenant):
    with pytest.raises(CommandError):
        run("add_member", "--tenant", "acme", "x@acme.test", "--role", "god")
    assert not User.objects.filter(email="x@acme.test").exists()

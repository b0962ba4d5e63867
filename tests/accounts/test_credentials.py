"""Keys and tokens: shown once, stored as keyed hashes, found by public id, revoked for good."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from accounts import services
from accounts.models import AccessToken, ApiKey, ServiceToken

CREATORS = {
    "api_key": (ApiKey, "sk", lambda tenant: services.api_key_create(tenant=tenant, name="k")),
    "access_token": (AccessToken, "uat", lambda tenant: services.access_token_create(tenant=tenant, name="t")),
    "service_token": (ServiceToken, "svc", lambda tenant: services.service_token_create(name="gateway")),
}


def _stored_text():
    """Every value of every table, as text: where a leaked secret would be found."""
    values = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            values.extend(str(value) for row in cursor.fetchall() for value in row)
    return values


@pytest.mark.parametrize("kind", CREATORS)
def test_secret_is_stored_nowhere_in_the_database(tenant, kind):
    model, prefix, create = CREATORS[kind]
    credential, secret = create(tenant)
    random_part = secret.split("_", 2)[2]
    assert secret.startswith(f"{prefix}_{credential.public_id}_")
    assert not any(random_part in value for value in _stored_text())
    assert model.find_by_secret(secret) == credential


@pytest.mark.parametrize("kind", CREATORS)
def test_a_secret_of_another_kind_is_not_accepted(tenant, kind):
    model, _prefix, _create = CREATORS[kind]
    others = [create for name, (_m, _p, create) in CREATORS.items() if name != kind]
    for create in others:
        _credential, secret = create(tenant)
        assert model.find_by_secret(secret) is None


def test_secret_with_another_keys_public_id_is_refused(tenant):
    first, first_secret = services.api_key_create(tenant=tenant, name="one")
    second, _ = services.api_key_create(tenant=tenant, name="two")
    forged = first_secret.replace(first.public_id, second.public_id)
    assert ApiKey.find_by_secret(forged) is None


@pytest.mark.parametrize("value", [None, "", "sk_", "sk__x", "sk_short_x", "x" * 500, 42])
def test_malformed_secrets_find_nothing(tenant, value):
    services.api_key_create(tenant=tenant, name="one")
    assert ApiKey.find_by_secret(value) is None


def test_rotating_the_hash_key_invalidates_secrets(tenant, settings):
    _key, secret = services.api_key_create(tenant=tenant, name="one")
    settings.SECRET_HASH_KEY = "another-hash-key"
    assert ApiKey.find_by_secret(secret) is None


def test_expired_key_reports_expired_and_is_not_active(tenant):
    past = timezone.now() - dt.timedelta(minutes=1)
    key, _ = services.api_key_create(tenant=tenant, name="old")
    ApiKey.objects.filter(pk=key.pk).update(expires_at=past)
    key.refresh_from_db()
    assert key.status == "expired"
    assert not ApiKey.objects.active().filter(pk=key.pk).exists()


def test_key_expiring_later_is_active_now_and_expired_then(tenant):
    later = timezone.now() + dt.timedelta(days=1)
    key, _ = services.api_key_create(tenant=tenant, name="soon", expires_at=later)
    assert key.status == "active"
    assert key.status_at(later) == "expired"
    assert ApiKey.objects.active().filter(pk=key.pk).exists()


def test_revoking_twice_keeps_the_first_revocation_time(tenant):
    key, _ = services.api_key_create(tenant=tenant, name="ci")
    first = services.credential_revoke(key).revoked_at
    again = services.credential_revoke(ApiKey.objects.get(pk=key.pk)).revoked_at
    assert first == again
    assert not ApiKey.objects.active().filter(pk=key.pk).exists()


def test_a_key_needs_a_name(tenant):
    with pytest.raises(ValidationError):
        services.api_key_create(tenant=tenant, name="   ")
    assert not ApiKey.objects.exists()

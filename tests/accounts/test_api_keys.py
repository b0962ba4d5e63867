from django.db import connection

from accounts import services
from accounts.models import ApiKey


def test_secret_is_shown_once_and_stored_nowhere(tenant):
    key, secret = services.api_key_create(tenant=tenant, name="ci")
    assert secret.startswith(f"sk_{key.public_id}_")
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_apikey")
        stored = [str(value) for row in cursor.fetchall() for value in row]
    assert not any(secret in value or secret.split("_", 2)[2] in value for value in stored)


def test_find_by_secret_round_trips_and_rejects_tampering(tenant):
    key, secret = services.api_key_create(tenant=tenant, name="ci")
    assert ApiKey.find_by_secret(secret) == key
    assert ApiKey.find_by_secret(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert ApiKey.find_by_secret("not-a-key") is None


def test_revoked_key_reports_revoked(tenant):
    key, _ = services.api_key_create(tenant=tenant, name="ci")
    services.credential_revoke(key)
    assert ApiKey.objects.get(pk=key.pk).status == "revoked"

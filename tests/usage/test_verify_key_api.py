"""POST /api/v1/keys/verify: the gateway authenticates its callers against this product."""

import datetime as dt
import json

import pytest
from django.test import Client
from django.utils import timezone

from accounts import services
from accounts.selectors import api_key_by_secret

URL = "/api/v1/keys/verify"


@pytest.fixture
def gateway(db):
    _token, secret = services.service_token_create(name="gateway")
    return Client(headers={"Authorization": f"Bearer {secret}"})


@pytest.fixture
def key_and_secret(tenant):
    return services.api_key_create(tenant=tenant, name="caller")


def verify(client, secret):
    return client.post(URL, data=json.dumps({"key": secret}), content_type="application/json")


def test_active_key_gives_public_id_tenant_and_status(gateway, key_and_secret):
    key, secret = key_and_secret
    response = verify(gateway, secret)
    assert response.status_code == 200
    assert response.json() == {"public_id": key.public_id, "tenant": "acme", "status": "active"}


def test_revoked_key_says_revoked(gateway, key_and_secret):
    key, secret = key_and_secret
    services.credential_revoke(key)
    assert verify(gateway, secret).json()["status"] == "revoked"


def test_expired_key_says_expired(gateway, tenant):
    _key, secret = services.api_key_create(
        tenant=tenant, name="short", expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    assert verify(gateway, secret).json()["status"] == "expired"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda secret: secret[:-1] + ("A" if secret[-1] != "A" else "B"),
        lambda secret: "not-a-key",
        lambda secret: "",
        lambda secret: "svc" + secret[2:],
        lambda secret: secret + "x" * 300,
    ],
    ids=["tampered", "garbage", "empty", "other-prefix", "too-long"],
)
def test_anything_else_is_unknown_and_names_nothing(gateway, key_and_secret, mangle):
    _key, secret = key_and_secret
    assert verify(gateway, mangle(secret)).json() == {"public_id": None, "tenant": None, "status": "unknown"}


@pytest.mark.parametrize("body", [b"{}", b'{"key": 5}', b"[]", b"{"])
def test_body_without_a_string_key_is_400(gateway, body):
    response = gateway.post(URL, data=body, content_type="application/json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"


def test_needs_a_service_token(db, key_and_secret):
    _key, secret = key_and_secret
    response = verify(Client(headers={"Authorization": f"Bearer {secret}"}), secret)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"


def test_lookup_is_one_query(key_and_secret, django_assert_num_queries):
    key, secret = key_and_secret
    with django_assert_num_queries(1):
        found = api_key_by_secret(secret)
        assert found.tenant.slug == "acme"
    assert found == key

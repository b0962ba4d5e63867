"""Service tokens: the gateway's platform-level secrets."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

from accounts import services
from accounts.models import ServiceToken


def create(*args):
    out = StringIO()
    call_command("create_service_token", *args, stdout=out)
    return out.getvalue()


def ingest_status(secret):
    client = Client(headers={"Authorization": f"Bearer {secret}"})
    return client.post("/api/v1/ingest/calls", data={"calls": []}, content_type="application/json").status_code


def test_command_prints_the_secret_once_and_stores_its_hash(db):
    output = create("gateway-eu-1")
    token = ServiceToken.objects.get(name="gateway-eu-1")
    [secret] = [word for word in output.split() if word.startswith("svc_")]
    assert secret.startswith(f"svc_{token.public_id}_")
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_servicetoken")
        stored = " ".join(str(value) for row in cursor.fetchall() for value in row)
    assert secret.split("_", 2)[2] not in stored
    assert ServiceToken.find_by_secret(secret) == token


def test_command_json_output(db):
    result = json.loads(create("gateway", "--json"))
    assert set(result) == {"name", "public_id", "secret"}
    assert ingest_status(result["secret"]) == 200


def test_command_refuses_a_name_in_use(db):
    create("gateway")
    with pytest.raises(CommandError, match="already exists"):
        create("Gateway")


def test_revoked_token_no_longer_authenticates(db):
    token, secret = services.service_token_create(name="gateway")
    assert ingest_status(secret) == 200
    services.credential_revoke(token)
    assert ingest_status(secret) == 401

"""Access tokens for the REST API: the Access Tokens page and ``manage.py create_access_token``."""

import io
import json
import re

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import AccessToken


def _create(*args):
    out = io.StringIO()
    call_command("create_access_token", *args, stdout=out)
    return out.getvalue()


def test_command_prints_the_secret_once_as_json_and_it_reads_the_api(tenant):
    result = json.loads(_create("--tenant", "acme", "finance", "--json"))
    assert set(result) == {"secret", "public_id", "tenant", "name"}
    assert (result["tenant"], result["name"]) == ("acme", "finance")
    token = AccessToken.objects.get(public_id=result["public_id"])
    assert token.tenant == tenant and result["secret"] not in token.secret_hash
    client = Client(headers={"Authorization": f"Bearer {result['secret']}"})
    assert client.get("/api/v1/usage/summary").status_code == 200


def test_command_human_output_and_errors(tenant):
    assert "Secret (shown once" in _create("--tenant", "acme", "bi")
    with pytest.raises(CommandError, match="already has an access token"):
        _create("--tenant", "acme", "BI")
    with pytest.raises(CommandError, match="No tenant"):
        _create("--tenant", "nope", "bi")


def test_owner_creates_a_token_on_the_page_and_it_reads_the_api(owner_client, tenant):
    assert owner_client.get("/t/acme/tokens/").status_code == 200
    response = owner_client.post("/t/acme/tokens/", {"name": "looker"})
    assert response.status_code == 201
    secret = re.search(r"uat_[a-z0-9]{12}_[A-Za-z0-9_-]+", response.content.decode()).group(0)
    client = Client(headers={"Authorization": f"Bearer {secret}"})
    assert client.get("/api/v1/usage/summary").json()["timezone"] == "UTC"


def test_revoked_on_the_page_the_token_is_refused(owner_client, tenant):
    token_json = json.loads(_create("--tenant", "acme", "old", "--json"))
    response = owner_client.post(f"/t/acme/tokens/{token_json['public_id']}/revoke/")
    assert response.status_code == 302
    client = Client(headers={"Authorization": f"Bearer {token_json['secret']}"})
    assert client.get("/api/v1/usage/summary").status_code == 401


def test_viewer_cannot_create_and_outsider_sees_nothing(viewer_client, outsider_client, tenant):
    assert viewer_client.post("/t/acme/tokens/", {"name": "x"}).status_code == 403
    assert outsider_client.get("/t/acme/tokens/").status_code == 404
    assert not AccessToken.objects.exists()

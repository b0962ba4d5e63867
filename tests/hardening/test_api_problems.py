"""Issue 12 item 4: nothing a client sends is a 500, and every error under /api/ is problem+json."""

import json

import pytest
from django.test import Client

from accounts import services
from tests.usage.api_helpers import token_client

PROBLEM = "application/problem+json"


@pytest.fixture
def gateway(db):
    _token, secret = services.service_token_create(name="gateway")
    return Client(headers={"Authorization": f"Bearer {secret}"})


def _problem(response, status):
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["title"]
    return body


@pytest.mark.parametrize(
    "key",
    [
        "sk_\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00_abc",
        "sk_abc\x00defghijk_abc",
        "sk_\ud800bcdefghijkl_abc",
        "sk_abcdefghijkl_\udfff",
        "sk_abcdefghijkl_tail\x00",
        "sk_ABCDEFGHIJKL_abc",
        "sk_abcdéfghijk_abc",
        "\x00",
        "\ud83d",
    ],
)
def test_verify_with_nul_or_lone_surrogate_is_the_unknown_answer(gateway, tenant, key):
    # The body as a client would send it: \u escapes, since a lone surrogate is not UTF-8.
    response = gateway.post("/api/v1/keys/verify", data=json.dumps({"key": key}), content_type="application/json")
    assert response.status_code == 200
    assert response.json() == {"public_id": None, "tenant": None, "status": "unknown"}


def test_verify_with_a_real_public_id_and_a_surrogate_tail_is_unknown(gateway, tenant):
    key, secret = services.api_key_create(tenant=tenant, name="caller")
    forged = f"sk_{key.public_id}_\udfff"
    response = gateway.post("/api/v1/keys/verify", data=json.dumps({"key": forged}), content_type="application/json")
    assert response.json()["status"] == "unknown"
    response = gateway.post("/api/v1/keys/verify", data=json.dumps({"key": secret}), content_type="application/json")
    assert response.json()["status"] == "active"


def test_unknown_api_url_is_a_problem_404(tenant):
    _problem(token_client(tenant).get("/api/v1/nothing-here"), 404)
    _problem(Client().get("/api/nothing"), 404)


def test_unknown_page_outside_api_stays_html(db):
    response = Client().get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_wrong_method_on_read_api_is_a_problem_405(tenant, method):
    _problem(getattr(token_client(tenant), method)("/api/v1/usage/summary"), 405)


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_wrong_method_on_gateway_api_is_a_problem_405(gateway, method):
    body = _problem(getattr(gateway, method)("/api/v1/ingest/calls"), 405)
    assert body["detail"]


def test_body_too_large_is_a_problem_413(gateway, settings):
    settings.INGEST_MAX_BODY_BYTES = 100
    _problem(gateway.post("/api/v1/ingest/calls", data="[" + " " * 200 + "]", content_type="application/json"), 413)


def test_body_django_refuses_is_a_problem_413(rf):
    """No /api/ view reads a body through Django today; handler400 is ready if one does."""
    from django.core.exceptions import RequestDataTooBig

    from usageproject.problems import bad_request

    response = bad_request(rf.post("/api/v1/anything"), RequestDataTooBig("too big"))
    assert response.status_code == 413 and response["Content-Type"] == PROBLEM
    assert json.loads(response.content)["title"] == "Content too large"
    assert bad_request(rf.post("/accounts/login/"), RequestDataTooBig("too big"))["Content-Type"].startswith(
        "text/html"
    )


def test_too_many_query_fields_is_a_problem_400(tenant, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    _problem(token_client(tenant).get("/api/v1/usage/summary?" + "&".join(f"f{i}=1" for i in range(10))), 400)


def test_url_too_long_is_a_problem_414(tenant, settings):
    _problem(token_client(tenant).get("/api/v1/calls", {"cursor": "A" * 5000}), 414)
    response = Client().get("/accounts/login/", {"next": "x" * 5000})
    assert response.status_code == 414 and response["Content-Type"].startswith("text/plain")


def test_throttled_is_a_problem_429(tenant, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"access_token": "2/min"}}
    client = token_client(tenant)
    for _ in range(2):
        assert client.get("/api/v1/models").status_code == 200
    body = _problem(client.get("/api/v1/models"), 429)
    assert body["detail"]


def _raise(*args, **kwargs):
    raise RuntimeError("boom for the test")


def test_uncaught_error_in_read_api_is_a_problem_500(tenant, monkeypatch):
    from usage.api import views

    monkeypatch.setattr(views.ModelListView, "get", _raise)
    client = token_client(tenant)
    client.raise_request_exception = False
    body = _problem(client.get("/api/v1/models"), 500)
    assert "boom" not in json.dumps(body)


def test_uncaught_error_in_ingestion_is_a_problem_500(gateway, monkeypatch):
    from usage.ingestion import services as usage_services

    monkeypatch.setattr(usage_services, "call_records_ingest", _raise)
    gateway.raise_request_exception = False
    response = gateway.post("/api/v1/ingest/calls", data='{"calls": []}', content_type="application/json")
    _problem(response, 500)


def test_uncaught_error_outside_api_stays_html(db, monkeypatch):
    from accounts import views
    from accounts.models import User

    monkeypatch.setattr(views, "render", _raise)
    client = Client(raise_request_exception=False)
    client.force_login(User.objects.create_user("lonely@example.test", "pw-for-tests-123"))
    response = client.get("/")
    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")

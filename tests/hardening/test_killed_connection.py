"""Issue 25, item 3: a database connection killed mid-request (pg_terminate_backend from another
connection, as a failover or an operator would) answers 503 with Retry-After, never 500; the batch
is rolled back whole and its retry stores each call exactly once."""

import json
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import services as account_services
from tests.services import require_postgresql
from tests.usage.api_helpers import token_client
from usage.ingestion import services as ingestion
from usage.models import CallRecord, CallRequest, UsageDaily, UsageHourly

pytestmark = pytest.mark.django_db(transaction=True)  # the test's own connection is the one killed

URL = "/api/v1/ingest/calls"


@pytest.fixture(autouse=True)
def _postgresql():
    require_postgresql(connection.vendor, "pg_terminate_backend kills a server backend")


def _terminate_own_backend() -> None:
    """Kill this process's database session from another session, and wait until it is gone."""
    pid = connection.connection.info.backend_pid
    settings = connection.get_connection_params()
    with psycopg.connect(**{**settings, "autocommit": True}) as other:
        assert other.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone() == (True,)


@contextmanager
def _killed_at_first_query_of(table: str) -> Iterator[list[str]]:
    """While inside, the first query that reads ``table`` finds its connection killed."""
    killed: list[str] = []

    def wrapper(execute, sql, params, many, context):
        if not killed and table in sql:
            killed.append(sql)
            _terminate_own_backend()
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield killed
    connection.close()  # as Django does when a request that broke its connection ends


def _assert_503(response) -> None:
    assert response.status_code == 503
    assert response["Retry-After"] == "2"


def _batch(key) -> list[dict]:
    at = timezone.now().replace(microsecond=0).isoformat()
    return [
        {"request_id": f"k-{i}", "api_key": key.public_id, "model": "public/kill", "occurred_at": at}
        | {"input_tokens": 10 + i, "output_tokens": 1}
        for i in range(50)
    ]


def test_a_batch_killed_mid_transaction_is_503_rolled_back_and_retried_once(tenant, monkeypatch):
    key, _ = account_services.api_key_create(tenant=tenant, name="k")
    _token, secret = account_services.service_token_create(name="gateway")
    gateway = Client(headers={"Authorization": f"Bearer {secret}"})
    body = json.dumps({"calls": _batch(key)})
    original_apply = ingestion.increments.apply
    kills = []

    def apply_after_a_kill(buckets):
        # The ledger rows and claims of the batch are inserted by now; the rollups come next.
        if not kills:
            kills.append(CallRecord.objects.count())
            _terminate_own_backend()
        return original_apply(buckets)

    monkeypatch.setattr(ingestion.increments, "apply", apply_after_a_kill)
    response = gateway.post(URL, data=body, content_type="application/json")
    connection.close()  # as Django does when a request that broke its connection ends
    _assert_503(response)
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 503
    assert kills == [50]  # killed with the 50 rows inserted in the open transaction
    assert (CallRecord.objects.count(), CallRequest.objects.count(), UsageHourly.objects.count()) == (0, 0, 0)

    retried = gateway.post(URL, data=body, content_type="application/json").json()
    assert (retried["accepted"], retried["duplicates"]) == (50, 0)
    again = gateway.post(URL, data=body, content_type="application/json").json()
    assert (again["accepted"], again["duplicates"]) == (0, 50)
    assert CallRecord.objects.count() == 50
    [daily] = UsageDaily.objects.values_list("calls", "input_tokens")
    assert daily == (50, sum(10 + i for i in range(50)))


def test_reads_killed_mid_request_are_503(tenant, owner_client):
    api = token_client(tenant)
    reads = [
        (api, reverse("api_usage_summary"), "application/problem+json"),
        (api, reverse("openai_usage_completions"), "application/problem+json"),
        (owner_client, reverse("usage:dashboard", args=[tenant.slug]), "text/html; charset=utf-8"),
        (owner_client, reverse("usage:data", args=[tenant.slug]), "text/html; charset=utf-8"),
    ]
    params = {"start_time": 1795132800}
    for client, url, content_type in reads:
        with _killed_at_first_query_of("usage_") as killed:
            response = client.get(url, params if "openai" in url else {})
        assert killed, url
        _assert_503(response)
        assert response["Content-Type"] == content_type, url
        assert client.get(url, params if "openai" in url else {}).status_code == 200, url  # a new connection

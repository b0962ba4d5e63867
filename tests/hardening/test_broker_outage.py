"""Issue 25, item 2: with the broker unreachable (a closed local port; no worker anywhere), a batch
of a tenant with a budget answers at once, nothing is lost (beat's sweep catches up), and with the
broker back the evaluation is published again."""

import base64
import json
import statistics
import time
import uuid

import pytest
import redis
from django.test import Client, override_settings
from django.utils import timezone

from accounts import services as account_services
from tests.budgets.helpers import budget
from tests.services import PrivateRedis, private_redis
from usage import outages
from usage.budgets import services as budget_services
from usage.models import AlertDelivery, Budget, CallRecord
from usageproject.celery import app

URL = "/api/v1/ingest/calls"


def _batch(key, start, count=100):
    now = timezone.now().replace(microsecond=0)
    return [
        {
            "request_id": f"r-{start + i}",
            "api_key": key.public_id,
            "model": "public/budget-llm",
            "occurred_at": now.isoformat().replace("+00:00", "Z"),
            "input_tokens": 10,
            "output_tokens": 1,
        }
        for i in range(count)
    ]


@pytest.fixture
def broker(monkeypatch):
    """Celery publishing to a private Redis of this test, not started yet: its port is closed."""
    with private_redis() as running:
        running.stop()
        server = PrivateRedis(running.port)
        monkeypatch.setattr(app.conf, "task_always_eager", False)
        monkeypatch.setattr(app.conf, "broker_url", server.url())
        monkeypatch.setattr(app.conf, "broker_write_url", server.url())
        monkeypatch.setattr(outages, "_publish_pools", {}, raising=False)
        monkeypatch.setattr(outages, "_broker_down_until", [0.0], raising=False)
        try:
            yield server
        finally:
            if server.process and server.process.poll() is None:
                server.process.kill()
                server.process.wait(timeout=10)


def _post(client, calls, capture):
    with capture(execute=True):  # the batch's on-commit publishes run, as after a real commit
        started = time.monotonic()
        response = client.post(URL, data=json.dumps({"calls": calls}), content_type="application/json")
    return response, time.monotonic() - started


@override_settings(BROKER_OUTAGE_RETRY_SECONDS=0)  # every batch tries the broker again
def test_budget_tenant_ingests_at_once_while_the_broker_is_down(
    broker, tenant, other_tenant, django_capture_on_commit_callbacks
):
    key, _ = account_services.api_key_create(tenant=tenant, name="k")
    other_key, _ = account_services.api_key_create(tenant=other_tenant, name="k2")
    watched = budget(tenant, amount=100_000)
    budget(other_tenant, amount=100_000)
    _token, secret = account_services.service_token_create(name="gateway")
    gateway = Client(headers={"Authorization": f"Bearer {secret}"})

    # Untimed: the process's first publish imports the broker's transport.
    assert _post(gateway, _batch(key, 900), django_capture_on_commit_callbacks)[0].json()["accepted"] == 100
    seconds = []
    for start in (0, 100, 200):
        response, elapsed = _post(gateway, _batch(key, start), django_capture_on_commit_callbacks)
        assert response.status_code == 200 and response.json()["accepted"] == 100
        seconds.append(elapsed)
    response, elapsed = _post(gateway, _batch(other_key, 1000), django_capture_on_commit_callbacks)
    assert response.json()["accepted"] == 100
    seconds.append(elapsed)
    # Before: each batch waited ~6 s for kombu's connection retries to the dead broker.
    assert max(seconds) < 1 and statistics.median(seconds) < 0.5, seconds
    assert CallRecord.objects.filter(tenant=tenant).count() == 400

    # Nothing lost: beat's sweep (run here, as beat would) evaluates what was not published.
    budget_services.budgets_evaluate_all()
    watched = Budget.objects.get(pk=watched.pk)
    assert (watched.state, watched.state_spent) == (Budget.State.WITHIN, 4400)

    # The broker is back: the next batch's evaluation is published, for the worker to run.
    broker.start()
    response, _ = _post(gateway, _batch(key, 300), django_capture_on_commit_callbacks)
    assert response.json()["accepted"] == 100
    queued = [json.loads(m) for m in redis.Redis.from_url(broker.url()).lrange("celery", 0, -1)]
    assert [(m["headers"]["task"], m["headers"]["argsrepr"]) for m in queued] == [
        ("usage.budgets.tasks.evaluate_tenant_budgets", f"({tenant.pk},)")
    ]
    task = app.tasks[queued[0]["headers"]["task"]]
    args, kwargs, _embed = json.loads(base64.b64decode(queued[0]["body"]))
    task.apply(args, kwargs)  # what the worker does with it
    watched = Budget.objects.get(pk=watched.pk)
    assert watched.state_spent == 5500


def test_admin_rebuild_and_an_alert_delivery_never_wait_on_a_dead_broker(broker, tenant, admin_client):
    started = time.monotonic()
    response = admin_client.post(
        "/admin/accounts/tenant/", {"action": "rebuild_rollups", "_selected_action": [tenant.pk]}, follow=True
    )
    assert response.status_code == 200  # was a 500 after ~6 s of kombu's connection retries
    assert "The task queue is unreachable: 1 rebuild(s) not started." in response.content.decode()
    delivery = AlertDelivery.objects.create(
        budget=budget(tenant, emails="ops@acme.test"), channel="email", delivery_id=uuid.uuid4()
    )
    budget_services._enqueue_deliveries([(delivery.pk, "dispatch")])  # what a dispatch's commit runs
    assert time.monotonic() - started < 2
    delivery.refresh_from_db()
    assert delivery.status == AlertDelivery.Status.PENDING  # its lease runs out, then the sweep hands it out

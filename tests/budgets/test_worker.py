"""Budgets through real Celery workers on the configured broker (Redis in CI).

8 ingesting clients cross 80% and 100% at the same moment while two workers evaluate: one
alert each. A worker killed while it delivers: the message is delivered again with the same
delivery id (receivers dedupe by it), retried with back-off until the receiver acknowledges.
A whole worker killed mid-request (no process left to give the message back): its lease runs
out and beat's sweep hands the delivery to another worker within the documented bound.
"""

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
from django.db import connections

from accounts import services as accounts
from usage.budgets import services, tasks
from usage.budgets.delivery import ATTEMPT_MARGIN_SECONDS, webhook_secret
from usage.ingestion import services as usage_services
from usage.models import AlertDelivery, BudgetAlert, Model
from usageproject.celery import app

from ..usage.conftest import ROOT, broker_url, database_url, wait_for  # noqa: F401
from ..usage.factories import price
from ..usage.test_celery_worker import pool_children
from .helpers import budget, start_of_today
from .receivers import WebhookReceiver, verify_signature

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


# The lease of an attempt is the deadline plus delivery.ATTEMPT_MARGIN_SECONDS (10 s); the sweep
# runs every second here: a delivery cut by a dead worker is handed out again within 8 + 10 + 1 s.
TIMEOUT_SECONDS, SWEEP_SECONDS = 8, 1


@pytest.fixture
def workers(broker_url, tmp_path):  # noqa: F811 (the fixture imported above)
    """Start worker processes with quick back-off; yields a function that starts one more
    (``beat=True``: with an embedded beat, which runs the delivery sweep every second)."""
    processes = []
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": broker_url,
        "BUDGET_DELIVERY_BACKOFF_SECONDS": "1",
        "BUDGET_WEBHOOK_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
        "BUDGET_DELIVERY_SWEEP_SECONDS": str(SWEEP_SECONDS),
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
    }

    def start(beat=False):
        command = [sys.executable, "-m", "celery", "-A", "usageproject", "worker", "--concurrency=1"]
        command += ["--loglevel=warning", "--without-heartbeat", "--without-gossip", "--without-mingle"]
        if beat:
            command += ["--beat", f"--schedule={tmp_path / f'beat-{len(processes)}'}"]
        process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
        processes.append(process)
        return process

    app.control.purge()
    yield start
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture
def receiver(loopback_allowed):
    server = WebhookReceiver()
    yield server
    server.close()


@pytest.fixture
def cast(db):
    tenant = accounts.tenant_create(slug="wb", name="WB", timezone_name="America/New_York")
    key = accounts.api_key_create(tenant=tenant, name="k")[0]
    model = Model.objects.create(name="m/wb")
    # Priced: these tests count budget alerts only (an unpriced model is also told of, once: test_unpriced_alert).
    price(model, dt.date(2020, 1, 1), "0.001")
    return tenant, key, model


def _ingest_concurrently(tenant, key, model, clients=8, tokens=100):
    barrier, errors, at = threading.Barrier(clients), [], start_of_today(tenant).isoformat()

    def run(index):
        try:
            item = {"request_id": f"w-{index}", "api_key": key.public_id, "model": model.name, "occurred_at": at}
            barrier.wait(timeout=30)
            result = usage_services.call_records_ingest(items=[{**item, "input_tokens": tokens, "output_tokens": 0}])
            assert result.accepted == 1
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors


def test_eight_clients_crossing_80_and_100_with_real_workers_fire_one_alert_each(workers, receiver, cast, monkeypatch):
    monkeypatch.setattr(app.conf, "task_always_eager", False)
    tenant, key, model = cast
    b = budget(tenant, amount=800, thresholds=[80, 100], webhook_url=receiver.url)
    workers(beat=True), workers()
    _ingest_concurrently(tenant, key, model)
    wait_for(lambda: len(receiver.requests) >= 2, timeout=60, what="two webhook deliveries")
    wait_for(lambda: AlertDelivery.objects.filter(status="delivered").count() == 2, what="both recorded delivered")
    services.budgets_evaluate_all()  # the beat's run afterwards adds nothing
    assert sorted(BudgetAlert.objects.filter(budget=b).values_list("threshold", flat=True)) == [80, 100]
    assert len(receiver.requests) == 2 and len(set(receiver.delivery_ids())) == 2
    assert all(verify_signature(webhook_secret(b), request) for request in receiver.requests)


def test_a_worker_killed_during_delivery_delivers_once_with_the_same_id(workers, receiver, cast, monkeypatch):
    monkeypatch.setattr(app.conf, "task_always_eager", False)
    tenant, key, model = cast
    b = budget(tenant, amount=100, thresholds=[100], webhook_url=receiver.url)
    receiver.hold = threading.Event()  # the first request gets no answer: the worker waits in it
    receiver.statuses = [200, 503, 200]  # the killed request's answer is never read; then a failure, then OK
    main = workers()
    _ingest_concurrently(tenant, key, model, clients=1, tokens=100)
    wait_for(lambda: len(receiver.requests) == 1, timeout=60, what="the worker to start delivering")
    for child in pool_children(main.pid):
        os.kill(child, signal.SIGKILL)
    hold, receiver.hold = receiver.hold, None
    hold.set()
    workers(beat=True)  # the retry after the 503 is handed out by beat's sweep
    wait_for(
        lambda: AlertDelivery.objects.filter(status="delivered").exists(), timeout=60, what="delivery after the kill"
    )
    delivery = AlertDelivery.objects.get(budget=b)
    assert len(set(receiver.delivery_ids())) == 1 == BudgetAlert.objects.count()
    assert receiver.delivery_ids()[0] == str(delivery.delivery_id)
    assert [entry["result"] for entry in delivery.log] == ["sending", "failed", "delivered"]
    assert delivery.attempts == 3 and len(receiver.requests) == 3


def test_a_whole_worker_killed_mid_request_is_redelivered_within_the_bound(workers, receiver, cast, monkeypatch):
    monkeypatch.setattr(app.conf, "task_always_eager", False)
    tenant, key, model = cast
    b = budget(tenant, amount=100, thresholds=[100], webhook_url=receiver.url)
    receiver.hold = threading.Event()
    first = workers()
    _ingest_concurrently(tenant, key, model, clients=1, tokens=100)
    wait_for(lambda: len(receiver.requests) == 1, timeout=60, what="the worker to start delivering")
    os.killpg(first.pid, signal.SIGKILL)  # the main process too: nothing is left to requeue the message
    first.wait(timeout=10)
    killed_at = time.monotonic()
    hold, receiver.hold = receiver.hold, None
    hold.set()
    workers(beat=True)
    bound = TIMEOUT_SECONDS + ATTEMPT_MARGIN_SECONDS + SWEEP_SECONDS
    wait_for(lambda: len(receiver.requests) == 2, timeout=bound + 20, what="the delivery handed out again")
    assert time.monotonic() - killed_at <= bound + 20  # worker start-up included; the sweep alone ~15 min before
    wait_for(lambda: AlertDelivery.objects.filter(status="delivered").exists(), what="recorded delivered")
    delivery = AlertDelivery.objects.get(budget=b)
    assert receiver.delivery_ids() == [str(delivery.delivery_id)] * 2
    assert [entry["result"] for entry in delivery.log] == ["sending", "delivered"] and delivery.attempts == 2


def test_a_dripping_receiver_holds_a_worker_only_until_the_deadline(workers, cast, loopback_allowed, monkeypatch):
    monkeypatch.setattr(app.conf, "task_always_eager", False)
    tenant, _key, _model = cast
    other = accounts.tenant_create(slug="wb2", name="WB2", timezone_name="UTC")
    slow, fast = WebhookReceiver(drip=1, drip_lines=60), WebhookReceiver()  # slow: 60 s, a header a second
    try:
        deliveries = [
            AlertDelivery.objects.create(
                budget=budget(owner, webhook_url=server.url), channel="webhook", delivery_id=uuid.uuid4()
            )
            for owner, server in ((tenant, slow), (other, fast))
        ]
        workers()  # one worker process, shared by both tenants
        tasks.deliver_alert.delay(deliveries[0].pk)
        wait_for(lambda: len(slow.requests) == 1, timeout=60, what="the slow receiver's request")
        started = time.monotonic()
        tasks.deliver_alert.delay(deliveries[1].pk)  # another tenant's alert, behind it in the queue
        wait_for(lambda: len(fast.requests) == 1, timeout=TIMEOUT_SECONDS + 10, what="the other tenant's alert")
        assert time.monotonic() - started <= TIMEOUT_SECONDS + 5
        wait_for(lambda: AlertDelivery.objects.filter(status="delivered").count() == 1, what="recorded")
        assert AlertDelivery.objects.get(pk=deliveries[0].pk).log[-1]["error"] == "timed out"
    finally:
        slow.close()
        fast.close()

"""Rollups through a real Celery worker on the configured broker (Redis in CI).

The worker is a separate process on the test database, so the test commits its data
(transactional_db). To catch the worker mid-rollup, the test holds the tenant's advisory
lock: the task blocks inside its transaction, and the test SIGKILLs the pool process.
"""

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, connections, transaction

from accounts import services
from usage.models import CallRecord, DirtyDay, Model, UsageDaily
from usageproject.celery import app

from ..conftest import required
from .factories import make_calls, utc

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
ROOT = Path(settings.BASE_DIR)


@pytest.fixture
def broker_url():
    url = os.environ.get("CELERY_BROKER_URL", "")
    if not url:
        if required("REQUIRE_SERVICES"):
            pytest.fail("REQUIRE_SERVICES is set but CELERY_BROKER_URL is not")
        pytest.skip("No CELERY_BROKER_URL: the real-worker test needs a broker")
    if connection.vendor != "postgresql":
        pytest.skip("The worker test needs PostgreSQL (advisory locks hold the worker mid-rollup)")
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=2)  # unreachable broker: the test fails here
    return url


def database_url():
    db = connection.settings_dict
    return f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker(broker_url):
    """Start/stop a worker process; yields a function that (re)starts it."""
    processes = []
    env = {**os.environ, "DATABASE_URL": database_url(), "CELERY_BROKER_URL": broker_url}

    def start():
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "usageproject",
            "worker",
            "--concurrency=1",
            "--loglevel=warning",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ]
        process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
        processes.append(process)
        return process

    app.control.purge()
    yield start
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"Timed out after {timeout}s waiting for {what}")


def pool_children(pid):
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def blocked_on_advisory_lock():
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory'")
        return cursor.fetchone()[0] > 0


def daily_inputs(tenant):
    return sum(UsageDaily.objects.filter(tenant=tenant).values_list("input_tokens", flat=True))


def test_worker_rolls_up_and_survives_a_kill_mid_rollup(worker, monkeypatch):
    monkeypatch.setattr(app.conf, "task_always_eager", False)
    tenant = services.tenant_create(slug="w", name="W", timezone_name="Asia/Kolkata")
    key = services.api_key_create(tenant=tenant, name="k")[0]
    model = Model.objects.create(name="m/w")
    main = worker()
    with transaction.atomic():
        make_calls(tenant, [{"api_key": key, "model": model, "occurred_at": utc(2026, 3, 1, 9), "input_tokens": 11}])
    wait_for(lambda: daily_inputs(tenant) == 11 and not DirtyDay.objects.exists(), what="first rollup")

    # Hold the tenant's lock so the next rollup blocks mid-transaction, then kill its process.
    locker = connections.create_connection("default")
    with locker.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [0x5553, tenant.pk])
    with transaction.atomic():
        make_calls(tenant, [{"api_key": key, "model": model, "occurred_at": utc(2026, 3, 1, 10), "input_tokens": 5}])
    wait_for(blocked_on_advisory_lock, what="the worker to block inside the rollup")
    for child in pool_children(main.pid):
        os.kill(child, signal.SIGKILL)
    assert DirtyDay.objects.filter(tenant=tenant).exists()
    assert daily_inputs(tenant) == 11
    locker.close()  # releases the lock; the requeued task (reject_on_worker_lost) runs again

    wait_for(lambda: daily_inputs(tenant) == 16 and not DirtyDay.objects.exists(), what="rollup after the kill")
    assert sum(CallRecord.objects.filter(tenant=tenant).values_list("input_tokens", flat=True)) == 16
    assert UsageDaily.objects.get(tenant=tenant).day == dt.date(2026, 3, 1)


def test_sweep_picks_up_a_day_left_dirty_while_no_worker_ran(worker, monkeypatch):
    monkeypatch.setattr(app.conf, "task_always_eager", False)
    tenant = services.tenant_create(slug="s", name="S", timezone_name="UTC")
    key = services.api_key_create(tenant=tenant, name="k")[0]
    model = Model.objects.create(name="m/s")
    with transaction.atomic():
        make_calls(tenant, [{"api_key": key, "model": model, "occurred_at": utc(2026, 3, 1, 9), "input_tokens": 4}])
    app.control.purge()  # the enqueued task is lost: only the sweep can bring the day back
    from usage.tasks import sweep_dirty_rollups

    worker()
    sweep_dirty_rollups.delay()
    wait_for(lambda: daily_inputs(tenant) == 4 and not DirtyDay.objects.exists(), what="the sweep's rollup")

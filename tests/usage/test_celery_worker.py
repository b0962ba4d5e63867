"""Rollups through a real Celery worker on the configured broker (Redis in CI).

The worker is a separate process on the test database, so the test commits its data
(transactional_db). To catch the worker mid-rollup, the test holds the tenant's advisory
lock: the task blocks inside its transaction, and the test SIGKILLs the pool process.
"""

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections, transaction

from accounts import services
from usage.models import CallRecord, DirtyDay, Model, UsageDaily
from usageproject.celery import app

from .conftest import ROOT, blocked_on_advisory_lock, database_url, wait_for
from .factories import make_calls, utc

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


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


def pool_children(pid):
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def daily_inputs(tenant):
    return sum(UsageDaily.objects.filter(tenant=tenant).values_list("input_tokens", flat=True))


def test_worker_rolls_up_and_survives_a_kill_mid_rollup(worker, monkeypatch):
    monkeypatch.setattr(app.conf, "task_always_eager", False)
    tenant = services.tenant_create(slug="w", name="W", timezone_name="Asia/Kolkata")
    key = services.api_key_create(tenant=tenant, name="k")[0]
    model = Model.objects.create(name="m/w")
    main = worker()
    with transaction.atomic():
        make_calls(
            tenant,
            [{"api_key": key, "model": model, "occurred_at": utc(2026, 3, 1, 9), "input_tokens": 11}],
            dirty=True,
        )
    wait_for(lambda: daily_inputs(tenant) == 11 and not DirtyDay.objects.exists(), what="first rollup")

    # Hold the tenant's lock so the next rollup blocks mid-transaction, then kill its process.
    locker = connections.create_connection("default")
    with locker.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [0x5553, tenant.pk])
    with transaction.atomic():
        make_calls(
            tenant,
            [{"api_key": key, "model": model, "occurred_at": utc(2026, 3, 1, 10), "input_tokens": 5}],
            dirty=True,
        )
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
        make_calls(
            tenant, [{"api_key": key, "model": model, "occurred_at": utc(2026, 3, 1, 9), "input_tokens": 4}], dirty=True
        )
    app.control.purge()  # the enqueued task is lost: only the sweep can bring the day back
    from usage.tasks import sweep_dirty_rollups

    worker()
    sweep_dirty_rollups.delay()
    wait_for(lambda: daily_inputs(tenant) == 4 and not DirtyDay.objects.exists(), what="the sweep's rollup")


def _ingest(tenant_key, model, request_id, when, tokens):
    from usage.ingestion.services import call_records_ingest

    item = {
        "request_id": request_id,
        "api_key": tenant_key.public_id,
        "model": model.name,
        "occurred_at": when.isoformat(),
        "input_tokens": tokens,
        "output_tokens": 1,
    }
    return call_records_ingest(items=[item], now=when + dt.timedelta(minutes=1))


def test_zone_change_recompute_killed_mid_way_while_calls_arrive_ends_exact(worker, monkeypatch):
    """The recompute a zone change needs runs in the worker; SIGKILLed inside its transaction and
    redelivered while ingestion goes on, the rollups end equal to the ledger and to a rebuild."""
    import threading

    from .test_live_rollups import stored, truth

    monkeypatch.setattr(app.conf, "task_always_eager", False)
    tenant = services.tenant_create(slug="z", name="Z", timezone_name="UTC")
    other = services.tenant_create(slug="y", name="Y", timezone_name="UTC")  # same days, never touched
    key, other_key = (services.api_key_create(tenant=t, name="k")[0] for t in (tenant, other))
    model = Model.objects.create(name="m/z")
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=3)
    for n in range(40):
        _ingest(key, model, f"a{n}", start + dt.timedelta(hours=n), 10 + n)
        _ingest(other_key, model, f"a{n}", start + dt.timedelta(hours=n), 1000 + n)
    other_before = stored(other, lambda day: True)

    tenant.timezone = "Asia/Kolkata"
    tenant.save()  # marks every day dirty and enqueues the recompute; no worker runs yet
    assert DirtyDay.objects.filter(tenant=tenant).exists()
    locker = connections.create_connection("default")
    with locker.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [0x5553, tenant.pk])
    main = worker()
    wait_for(blocked_on_advisory_lock, what="the worker to block inside the recompute")
    for child in pool_children(main.pid):
        os.kill(child, signal.SIGKILL)

    def keep_ingesting():
        for n in range(40, 80):
            _ingest(key, model, f"a{n}", start + dt.timedelta(hours=n - 38, minutes=7), 10 + n)
        connections.close_all()

    sender = threading.Thread(target=keep_ingesting)
    sender.start()
    time.sleep(0.3)
    locker.close()  # the requeued task and the waiting batches now interleave
    sender.join(timeout=60)
    tenant.refresh_from_db()
    wait_for(lambda: not DirtyDay.objects.filter(tenant=tenant).exists(), what="the recompute after the kill")
    expected = truth(tenant)
    assert stored(tenant, lambda day: True) == expected
    assert sum(v[1] for v in expected["daily"].values()) == sum(10 + n for n in range(80))
    assert stored(other, lambda day: True) == other_before


def test_broker_down_ingestion_and_zone_change_answer_normally_then_the_sweep_catches_up(worker, monkeypatch):
    """With the broker unreachable: the import and a zone change succeed at once (logged, not
    raised); when the broker is back, the beat sweep recomputes what the zone change marked."""
    monkeypatch.setattr(app.conf, "task_always_eager", False)
    tenant = services.tenant_create(slug="b", name="B", timezone_name="UTC")
    key = services.api_key_create(tenant=tenant, name="k")[0]
    Model.objects.create(name="m/b")
    when = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).replace(microsecond=0)
    lines = "".join(
        json.dumps(
            {
                "request_id": f"f{n}",
                "api_key": key.public_id,
                "model": "m/b",
                "occurred_at": (when + dt.timedelta(minutes=n)).isoformat(),
                "input_tokens": n,
                "output_tokens": 0,
            }
        )
        + "\n"
        for n in range(500)
    )
    path = Path(settings.BASE_DIR) / "artifacts" / "broker-down.jsonl"
    path.parent.mkdir(exist_ok=True)
    path.write_text(lines)
    env = {**os.environ, "DATABASE_URL": database_url(), "CELERY_BROKER_URL": "redis://127.0.0.1:1/0"}
    script = (
        "from accounts.models import Tenant; from django.core.management import call_command;"
        f"call_command('import_calls', {str(path)!r}, '--no-progress');"
        "t = Tenant.objects.get(slug='b'); t.timezone = 'Asia/Kolkata'; t.save(); print('saved')"
    )
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    elapsed = time.monotonic() - began
    assert done.returncode == 0, done.stderr
    assert "accepted 500" in done.stdout and "saved" in done.stdout
    assert "Could not enqueue the rollup" in done.stderr  # logged once, not raised
    assert done.stderr.count("Could not enqueue") == 1
    assert elapsed < 15, elapsed  # process start and migrations check included; no connect waits
    assert CallRecord.objects.filter(tenant=tenant).count() == 500
    assert DirtyDay.objects.filter(tenant=tenant).exists()  # the zone change's marks wait for a worker

    from usage.tasks import sweep_dirty_rollups

    worker()
    sweep_dirty_rollups.delay()
    wait_for(lambda: not DirtyDay.objects.filter(tenant=tenant).exists(), what="the sweep after the outage")
    assert daily_inputs(tenant) == sum(range(500))


def _purge_in_a_process(broker):
    env = {**os.environ, "DATABASE_URL": database_url(), "CELERY_BROKER_URL": broker}
    return subprocess.run(
        [sys.executable, "manage.py", "purge_calls", "--older-than", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_purge_leaves_the_claims_to_the_worker_and_deletes_them_itself_when_the_broker_is_down(worker, broker_url):
    """purge_calls drops the months and returns; the worker deletes their request-id claims. With
    the broker unreachable the command deletes them itself (and still succeeds)."""
    from usage.ledger.partitions import add_months, month_start
    from usage.models import CallRequest

    tenant = services.tenant_create(slug="p", name="P", timezone_name="UTC")
    key = services.api_key_create(tenant=tenant, name="k")[0]
    model = Model.objects.create(name="m/p")
    old = add_months(month_start(dt.datetime.now(dt.UTC)), -4) + dt.timedelta(days=3)
    recent = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    specs = [{"api_key": key, "model": model, "occurred_at": at, "input_tokens": 7} for at in [old] * 30 + [recent]]
    records = make_calls(tenant, specs)  # with their claims

    done = _purge_in_a_process(broker_url)  # no worker running yet: the claims wait for it
    assert done.returncode == 0, done.stderr
    # "about": once autovacuum has analysed the month, its row estimate (exact for these 30 rows).
    assert re.search(r"Purged (about )?30 calls", done.stdout) and "being deleted by the worker" in done.stdout
    assert CallRecord.objects.filter(tenant=tenant).count() == 1
    assert CallRequest.objects.filter(tenant=tenant).count() == 31
    worker()
    wait_for(lambda: CallRequest.objects.filter(tenant=tenant).count() == 1, what="the worker's claims purge")
    assert CallRequest.objects.get(tenant=tenant).occurred_at == records[-1].occurred_at

    # Claims left before the horizon (a task that never ran), and the broker down: deleted here.
    CallRequest.objects.bulk_create(
        CallRequest(tenant=tenant, request_id=f"left-{n}", occurred_at=old) for n in range(5)
    )
    done = _purge_in_a_process("redis://127.0.0.1:1/0")
    assert done.returncode == 0, done.stderr
    assert "5 request-id claims deleted" in done.stdout
    assert "Broker unreachable" in done.stderr
    assert CallRequest.objects.filter(tenant=tenant).count() == 1

"""The production topology on one machine: 2 gunicorn processes, 2 Celery workers and one beat
against one PostgreSQL database and one Redis (the broker, and on another of its databases the
``CACHE_URL`` both web processes share).

Calls go in through both web processes in turn, duplicates included; a zone change in the middle
hands every day to the workers, one of which is SIGKILLed inside the recompute. Both web processes
must then answer the exact totals per model and local day, computed here from what was sent, on
the REST API's summary and on the page's JSON, before and after the surviving worker (fed by the
beat's sweep) has recomputed the days.
"""

import datetime as dt
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from urllib.parse import urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import pytest
from django.db import connections
from django.test import Client

from accounts import services
from accounts.models import Membership
from usage.models import DirtyDay, Model
from usage.rollups.increments import LOCK_NAMESPACE
from usageproject.celery import app

from .conftest import ROOT, blocked_on_advisory_lock, database_url, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
MODELS = ["topo/alpha", "topo/beta", "topo/gamma"]
BATCHES, BATCH = 16, 60


def cache_url_for(broker):
    """Another database of the broker's Redis, derived from the broker's: the test owns both."""
    import redis

    parts = urlsplit(broker)
    number = int(parts.path.lstrip("/") or 0)
    try:
        count = int(redis.Redis.from_url(broker).config_get("databases")["databases"])
    except redis.RedisError:
        count = 16
    return urlunsplit(parts._replace(path=f"/{(number + 8) % count}"))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Topology:
    """The processes; each in its own session, so a kill takes a worker's pool with it."""

    def __init__(self, broker, workdir):
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": broker,
            "CACHE_URL": cache_url_for(broker),
            "ROLLUP_SWEEP_SECONDS": "1",
            "DEBUG": "0",
            "LOG_LEVEL": "ERROR",
        }
        self.workdir = workdir
        self.processes = {}
        self.ports = [free_port(), free_port()]

    def spawn(self, name, *args):
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", *args], cwd=ROOT, env=self.env, start_new_session=True, stdout=subprocess.DEVNULL
        )

    def start(self):
        for index, port in enumerate(self.ports):
            self.spawn(f"web{index}", "gunicorn", "usageproject.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                       "--log-level", "warning")  # fmt: skip
        for name in ("w1", "w2"):
            self.spawn(name, "celery", "-A", "usageproject", "worker", "-n", f"{name}@%h", "--concurrency=1",
                       "--loglevel=error", "--without-heartbeat", "--without-gossip", "--without-mingle")  # fmt: skip
        schedule = os.path.join(self.workdir, "beat-schedule")
        self.spawn("beat", "celery", "-A", "usageproject", "beat", "--loglevel=error", "--schedule", schedule)

    def kill(self, name):
        process = self.processes[name]
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self):
        for name in list(self.processes):
            self.kill(name)

    def alive(self):
        return {name for name, process in self.processes.items() if process.poll() is None}


def request(port, method, path, headers, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def answers(port, headers):
    try:
        return request(port, "GET", "/api/v1/models", headers)[0] == 200
    except OSError:
        return False


def batches(keys, now):
    """BATCHES batches over the last four days; each resends ten calls of the one before, and the
    ninth is the eighth again, whole: duplicates the ledger must store once."""
    sent = []
    for number in range(BATCHES):
        if number == 8:
            sent.append(list(sent[7]))
            continue
        calls = [
            {
                "request_id": f"topo-{number}-{n}",
                "api_key": keys[n % len(keys)],
                "model": MODELS[(number + n) % len(MODELS)],
                "occurred_at": (now - dt.timedelta(minutes=5 + (number * BATCH + n) * 5)).isoformat(),
                "input_tokens": 100 + number * 7 + n,
                "output_tokens": 3 + n % 11,
            }
            for n in range(BATCH)
        ]
        sent.append(calls + (sent[-1][:10] if sent else []))
    return sent


def expected(sent, zone):
    """{(model, local day): [calls, input, output]} of the distinct calls sent."""
    unique = {call["request_id"]: call for batch in sent for call in batch}
    totals = defaultdict(lambda: [0, 0, 0])
    for call in unique.values():
        day = dt.datetime.fromisoformat(call["occurred_at"]).astimezone(ZoneInfo(zone)).date()
        cell = totals[(call["model"], day)]
        cell[0] += 1
        cell[1] += call["input_tokens"]
        cell[2] += call["output_tokens"]
    return dict(totals)


def read_api(port, token, truth):
    days = sorted({day for _model, day in truth})
    seen = {}
    for model in MODELS:
        for day in days:
            query = urlencode({"start": day.isoformat(), "end": day.isoformat(), "model": model})
            status, body = request(port, "GET", f"/api/v1/usage/summary?{query}", {"Authorization": f"Bearer {token}"})
            assert status == 200, body
            summary = json.loads(body)
            if summary["calls"]:
                seen[(model, day)] = [summary["calls"], summary["input_tokens"], summary["output_tokens"]]
    return seen


def read_page(port, cookie, slug, truth):
    """Per model and day input and output (the trend), per model calls (the distribution), cards."""
    last = max(day for _model, day in truth)
    first = last - dt.timedelta(days=6)  # a week: the trend is by day (two days or less: by hour)
    query = urlencode({"start": first.isoformat(), "end": last.isoformat()})
    status, body = request(port, "GET", f"/t/{slug}/usage/data/?{query}", {"Cookie": f"sessionid={cookie}"})
    assert status == 200, body[:300]
    data = json.loads(body)
    tokens = {}
    for dataset in data["trend"]["datasets"]:
        for index, (inp, out) in enumerate(zip(dataset["input"], dataset["output"], strict=True)):
            if inp or out:
                tokens[(dataset["label"], first + dt.timedelta(days=index))] = [inp, out]
    calls = {row["model"]: row["calls"] for row in data["distribution"]}
    cards = {card["key"]: card["value"] for card in data["cards"]}
    return tokens, calls, cards


def assert_exact(topology, fixtures, truth):
    by_model = defaultdict(int)
    for (model, _day), cell in truth.items():
        by_model[model] += cell[0]
    for port in topology.ports:
        assert read_api(port, fixtures["access"], truth) == truth, f"API summary on port {port}"
        tokens, calls, cards = read_page(port, fixtures["session"], fixtures["slug"], truth)
        assert tokens == {cell: values[1:] for cell, values in truth.items()}, f"page trend on port {port}"
        assert calls == dict(by_model), f"page distribution on port {port}"
        assert cards["calls"] == sum(cell[0] for cell in truth.values())
        assert cards["input_tokens"] == sum(cell[1] for cell in truth.values())
        assert cards["output_tokens"] == sum(cell[2] for cell in truth.values())


def make_fixtures():
    tenant = services.tenant_create(slug="topo", name="Topology", timezone_name="UTC")
    keys = [services.api_key_create(tenant=tenant, name=f"k{n}")[0].public_id for n in range(2)]
    for name in MODELS:
        Model.objects.create(name=name)
    user, _ = services.user_get_or_create(email="viewer@topo.test", password="pw-for-tests-123")
    services.membership_set(tenant=tenant, user=user, role=Membership.Role.VIEWER)
    browser = Client()
    browser.force_login(user)  # a database session: every web process reads it
    return tenant, {
        "slug": tenant.slug,
        "keys": keys,
        "service": services.service_token_create(name="gateway")[1],
        "access": services.access_token_create(tenant=tenant, name="finance")[1],
        "session": browser.cookies["sessionid"].value,
    }


def ingest(topology, fixtures, sent, numbers):
    headers = {"Authorization": f"Bearer {fixtures['service']}", "Content-Type": "application/json"}
    for number in numbers:
        port = topology.ports[number % 2]  # the two web processes in turn
        status, body = request(port, "POST", "/api/v1/ingest/calls", headers, json.dumps({"calls": sent[number]}))
        assert status == 200, body[:300]
        result = json.loads(body)
        assert result["rejected"] == 0, result
        assert result["duplicates"] == (len(sent[number]) if number == 8 else 10 if number else 0), (number, result)


def kill_a_worker_inside_the_recompute(topology, tenant, locker):
    """Hold the tenant's rollup lock so the recompute blocks in its transaction; SIGKILL the worker
    (main and pool process) that runs it; let go. ``locker`` is connected already, so the lock is
    taken within a millisecond of the zone change's commit, before a worker can start."""
    try:
        with locker.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", [LOCK_NAMESPACE, tenant.pk])
        wait_for(blocked_on_advisory_lock, timeout=20, what="a worker to block inside the recompute")
        busy = []
        wait_for(lambda: busy.extend(busy_workers()) or busy, timeout=10, what="the busy worker's name")
        topology.kill(busy[0])
        assert DirtyDay.objects.filter(tenant=tenant).exists()
    finally:
        locker.close()
    return busy[0]


def busy_workers():
    active = app.control.inspect(timeout=1).active() or {}
    return [hostname.split("@")[0] for hostname, tasks in active.items() if tasks]


@pytest.fixture
def topology(broker_url):
    import redis

    with tempfile.TemporaryDirectory(prefix="topology-") as workdir:
        topo = Topology(broker_url, workdir)
        redis.Redis.from_url(topo.env["CACHE_URL"]).flushdb()
        app.control.purge()
        topo.start()
        try:
            yield topo
        finally:
            topo.stop()
            app.control.purge()
            # The killed worker's unacknowledged task would come back in an hour, to whatever runs then.
            with app.connection_for_write() as conn:
                conn.default_channel.client.delete("unacked", "unacked_index")
        assert not topo.alive()


def test_two_web_processes_two_workers_and_beat_agree_exactly_after_a_worker_is_killed(topology, monkeypatch):
    began = time.monotonic()
    monkeypatch.setattr(app.conf, "task_always_eager", False)
    tenant, fixtures = make_fixtures()
    sent = batches(fixtures["keys"], dt.datetime.now(dt.UTC).replace(microsecond=0))
    headers = {"Authorization": f"Bearer {fixtures['access']}"}
    wait_for(lambda: all(answers(port, headers) for port in topology.ports), timeout=40, what="both web processes")
    wait_for(lambda: len(app.control.ping(timeout=0.5)) == 2, timeout=30, what="both workers")

    ingest(topology, fixtures, sent, range(BATCHES // 2))
    assert_exact(topology, fixtures, expected(sent[: BATCHES // 2], "UTC"))  # fills the shared cache

    locker = connections.create_connection("default")
    locker.ensure_connection()
    tenant.timezone = "Asia/Kolkata"
    tenant.save()  # every day dirty; the recompute goes to a worker
    killed = kill_a_worker_inside_the_recompute(topology, tenant, locker)
    assert topology.alive() == {"web0", "web1", "beat", *({"w1", "w2"} - {killed})}

    ingest(topology, fixtures, sent, range(BATCHES // 2, BATCHES))
    truth = expected(sent, "Asia/Kolkata")
    assert sum(cell[0] for cell in truth.values()) == BATCHES * BATCH - BATCH  # batch 8 was batch 7
    assert_exact(topology, fixtures, truth)  # dirty days or not: reads are exact at every commit

    wait_for(lambda: not DirtyDay.objects.filter(tenant=tenant).exists(), timeout=20, what="the surviving worker")
    assert_exact(topology, fixtures, truth)  # now from the recomputed rollups
    assert time.monotonic() - began < 60

"""Issue 28 item 1: /healthz and /readyz, with the database, the cache and the broker really stopped.

The product runs under gunicorn against its own PostgreSQL cluster and two Redis servers of its
own (cache, broker), all started here on free ports; each test stops one of them, reads
/readyz, and starts it again.
"""

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.monitoring import servers
from usageproject import monitoring


def _get(port, path):
    """(status, JSON body, seconds) of a GET."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=20) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    return status, json.loads(body), time.monotonic() - started


def test_healthz_answers_without_login(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_answers_without_login_when_everything_is_reached(client, db):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "down": [],
        "checks": {"database": "ok", "cache": "ok", "broker": "ok"},
    }
    assert response["Cache-Control"].startswith("max-age=0")


def test_a_hung_check_is_not_started_again_while_it_hangs(client, db, monkeypatch, settings):
    """Probes every few seconds against a hung service must not pile up a thread each."""
    settings.READYZ_TIMEOUT_SECONDS = 0.3
    release, started = threading.Event(), []

    def hung():
        started.append(time.monotonic())
        release.wait(20)

    monkeypatch.setitem(monitoring.CHECKS, "cache", hung)
    try:
        answers = [client.get("/readyz") for _ in range(3)]
    finally:
        release.set()
    assert [(a.status_code, a.json()["down"]) for a in answers] == [(503, ["cache"])] * 3
    assert len(started) == 1


@pytest.fixture(scope="module")
def stack():
    """gunicorn on a private PostgreSQL, a private cache Redis and a private broker Redis."""
    postgres = servers.PrivatePostgres()
    postgres.start()
    cache_port, broker_port = servers.free_port(), servers.free_port()
    redises = {"cache": servers.redis_server(cache_port), "broker": servers.redis_server(broker_port)}
    env = {
        "DATABASE_URL": postgres.url,
        "CACHE_URL": f"redis://127.0.0.1:{cache_port}/0",
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{broker_port}/0",
        "READYZ_TIMEOUT_SECONDS": "1",
    }
    process, port = servers.gunicorn(env)
    stack = {
        "port": port,
        "postgres": postgres,
        "redises": redises,
        "ports": {"cache": cache_port, "broker": broker_port},
    }
    yield stack
    servers.stop(process)
    for redis_process in stack["redises"].values():
        servers.stop(redis_process)
    postgres.stop()
    postgres.remove()


def _ready_again(port):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status, body, _ = _get(port, "/readyz")
        if status == 200:
            return body
        time.sleep(0.2)
    pytest.fail(f"/readyz did not recover: {body}")


def test_readyz_is_200_when_its_own_services_run(stack):
    status, body, _ = _get(stack["port"], "/readyz")
    assert (status, body["down"]) == (200, [])


def test_readyz_names_the_database_when_it_is_stopped(stack):
    stack["postgres"].stop()
    try:
        status, body, seconds = _get(stack["port"], "/readyz")
    finally:
        stack["postgres"].start()
    assert status == 503
    assert body == {
        "status": "unavailable",
        "down": ["database"],
        "checks": {"database": "down", "cache": "ok", "broker": "ok"},
    }
    assert seconds < 2
    _ready_again(stack["port"])


@pytest.mark.parametrize("service", ["cache", "broker"])
def test_readyz_names_a_stopped_redis(stack, service):
    servers.stop(stack["redises"][service])
    try:
        status, body, seconds = _get(stack["port"], "/readyz")
    finally:
        stack["redises"][service] = servers.redis_server(stack["ports"][service])
    assert status == 503
    assert body["down"] == [service]
    assert body["checks"] == {name: "down" if name == service else "ok" for name in ("database", "cache", "broker")}
    assert seconds < 2
    _ready_again(stack["port"])


def test_readyz_answers_in_time_when_the_cache_hangs(stack):
    """A frozen server accepts connections and never answers: the deadline, not the socket, decides."""
    pid = stack["redises"]["cache"].pid
    os.kill(pid, signal.SIGSTOP)
    try:
        status, body, seconds = _get(stack["port"], "/readyz")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert (status, body["down"]) == (503, ["cache"])
    assert seconds < 2
    _ready_again(stack["port"])


def test_readyz_tells_nothing_secret(stack):
    servers.stop(stack["redises"]["broker"])
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{stack['port']}/readyz", timeout=20) as response:
            raw = response.read()
    except urllib.error.HTTPError as error:
        raw = error.read()
    finally:
        stack["redises"]["broker"] = servers.redis_server(stack["ports"]["broker"])
    text = raw.decode()
    for secret in ("127.0.0.1", str(stack["ports"]["broker"]), str(stack["postgres"].port), "redis://", "Error"):
        assert secret not in text
    _ready_again(stack["port"])

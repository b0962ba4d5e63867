"""Issue 12 item 5: a chunked ingestion body through a real gunicorn is read, within the size limit.

The test starts gunicorn (the production server, with the repository's gunicorn.conf.py) on a
free local port against the test database, and sends raw HTTP/1.1 over a socket so that the
body really goes out as ``Transfer-Encoding: chunked`` with no Content-Length.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from accounts import services as account_services
from usage.models import CallRecord

ROOT = Path(settings.BASE_DIR)


def _database_url():
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(transactional_db):
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "DEBUG": "0",
        "INGEST_MAX_BODY_BYTES": "20000",
        "INGEST_WINDOW_PAST_DAYS": "36500",
    }
    env.pop("CELERY_BROKER_URL", None)  # rollups in-process: this test is about the body
    gunicorn = Path(sys.executable).parent / "gunicorn"
    process = subprocess.Popen(
        [str(gunicorn), "usageproject.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"gunicorn exited: {process.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("gunicorn did not start within 30 s")
    yield port
    process.terminate()
    process.wait(timeout=10)


def _send(port, head, body_chunks):
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head.encode("ascii"))
        for chunk in body_chunks:
            sock.sendall(chunk)
        data = b""
        while True:
            part = sock.recv(65536)
            if not part:
                break
            data += part
    status_line, _, rest = data.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), headers.decode("latin-1").lower(), body


def _chunked(payload, size=100):
    for start in range(0, len(payload), size):
        part = payload[start : start + size]
        yield f"{len(part):x}\r\n".encode() + part + b"\r\n"
    yield b"0\r\n\r\n"


def _head(port, secret, extra=""):
    return (
        "POST /api/v1/ingest/calls HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {secret}\r\n"
        "Content-Type: application/json\r\n"
        f"{extra}Connection: close\r\n\r\n"
    )


def _batch(key, n):
    return json.dumps(
        {
            "calls": [
                {
                    "request_id": f"chunked-{i}",
                    "api_key": key.public_id,
                    "model": "public/deepseek-r1",
                    "occurred_at": "2025-03-10T11:00:00Z",
                    "input_tokens": 10 + i,
                    "output_tokens": 1,
                }
                for i in range(n)
            ]
        }
    ).encode()


def test_chunked_batch_through_gunicorn_is_stored(server, tenant):
    key, _ = account_services.api_key_create(tenant=tenant, name="production")
    _token, secret = account_services.service_token_create(name="gateway")
    payload = _batch(key, 5)
    status, _headers, body = _send(server, _head(server, secret, "Transfer-Encoding: chunked\r\n"), _chunked(payload))
    assert status == 200, body
    assert json.loads(body)["accepted"] == 5
    assert CallRecord.objects.filter(tenant=tenant).count() == 5


def test_chunked_body_over_the_limit_is_413_through_gunicorn(server, tenant):
    key, _ = account_services.api_key_create(tenant=tenant, name="production")
    _token, secret = account_services.service_token_create(name="gateway")
    payload = _batch(key, 200)
    assert len(payload) > 20000
    status, headers, _body = _send(server, _head(server, secret, "Transfer-Encoding: chunked\r\n"), _chunked(payload))
    assert status == 413
    assert "application/problem+json" in headers
    assert CallRecord.objects.count() == 0


def test_content_length_batch_through_gunicorn_still_works(server, tenant):
    key, _ = account_services.api_key_create(tenant=tenant, name="production")
    _token, secret = account_services.service_token_create(name="gateway")
    payload = _batch(key, 3)
    status, _headers, body = _send(server, _head(server, secret, f"Content-Length: {len(payload)}\r\n"), [payload])
    assert status == 200 and json.loads(body)["accepted"] == 3


def test_chunked_without_a_server_that_decodes_it_is_411(db, client):
    """The Django test client (like runserver) does not set wsgi.input_terminated."""
    _token, secret = account_services.service_token_create(name="gateway")
    response = client.generic(
        "POST",
        "/api/v1/ingest/calls",
        b"",
        "application/json",
        headers={"Authorization": f"Bearer {secret}", "Transfer-Encoding": "chunked"},
        CONTENT_TYPE="application/json",  # the test client sets it only with a non-empty body
    )
    assert response.status_code == 411
    assert response["Content-Type"] == "application/problem+json"

"""Private servers for the monitoring tests: gunicorn, Redis, a PostgreSQL cluster, Prometheus.

Each runs on a free port of 127.0.0.1 and is stopped by the test that started it; the shared
PostgreSQL and Redis are never touched. A missing program fails the test under
REQUIRE_SERVICES=1 and skips it otherwise.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.conftest import required

ROOT = Path(settings.BASE_DIR)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def program(name: str, *candidates: str) -> str:
    """The path of ``name``; fails under REQUIRE_SERVICES, skips otherwise, when it is missing."""
    for path in (shutil.which(name), *candidates):
        if path and os.access(path, os.X_OK):
            return path
    if required("REQUIRE_SERVICES"):
        pytest.fail(f"REQUIRE_SERVICES is set but {name} is not installed")
    pytest.skip(f"{name} is not installed")


def wait_for_port(port: int, process: subprocess.Popen, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if process.poll() is not None:
                err = process.stderr.read().decode(errors="replace")[-2000:] if process.stderr else ""
                pytest.fail(f"{what} exited: {err}")
            time.sleep(0.1)
    process.kill()
    pytest.fail(f"{what} did not listen on port {port} within {seconds} s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


test_database_url.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def gunicorn(env: dict[str, str], *, workers: int = 1) -> tuple[subprocess.Popen, int]:
    """gunicorn with the repository's gunicorn.conf.py (its hooks included) on a free port."""
    port = free_port()
    binary = str(Path(sys.executable).parent / "gunicorn")
    command = [binary, "usageproject.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, "DEBUG": "0", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    wait_for_port(port, process, "gunicorn")
    return process, port


def redis_server(port: int) -> subprocess.Popen:
    binary = program("redis-server")
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_port(port, process, "redis-server")
    return process


class PrivatePostgres:
    """A throwaway PostgreSQL cluster in a temporary directory (initdb, pg_ctl)."""

    def __init__(self) -> None:
        self.initdb = program("initdb", *sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")))
        self.pg_ctl = str(Path(self.initdb).with_name("pg_ctl"))
        # Not under pytest's tmp_path: its parents are private to root, and the server runs as postgres.
        self.directory, self.port = Path(tempfile.mkdtemp(prefix="usage-test-pg-")), free_port()
        self.data = self.directory / "data"
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            shutil.chown(self.directory, "postgres")
        self._run(self.initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*prefix, *command], capture_output=True, timeout=60)
        if done.returncode != 0:
            pytest.fail(f"{command[0]} failed: {done.stderr.decode(errors='replace')[-2000:]}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(self.pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.directory / "log"), "-w", "start")

    def stop(self) -> None:
        self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

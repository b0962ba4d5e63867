"""Private service processes for outage tests: the shared Redis on 6379 is never stopped."""

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.conftest import required


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class PrivateRedis:
    """A redis-server of this test alone, on its own port, which the test may stop and start."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not _answers(self.port):
            if time.monotonic() > deadline or self.process.poll() is not None:
                pytest.fail(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        assert not _answers(self.port), "the private Redis still answers"


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    if not shutil.which("redis-server"):
        if required("REQUIRE_SERVICES"):
            pytest.fail("REQUIRE_SERVICES is set but redis-server is not installed")
        pytest.skip("redis-server is not installed")
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        if server.process and server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=10)


def require_postgresql(vendor: str, why: str) -> None:
    """PostgreSQL-only tests skip on the embedded default, but FAIL when CI demands services."""
    if vendor == "postgresql":
        return
    if required("REQUIRE_SERVICES"):
        pytest.fail(f"REQUIRE_SERVICES is set but the database is {vendor}: {why}")
    pytest.skip(f"PostgreSQL only: {why}")

import ipaddress
import socket

import pytest

from .receivers import WebhookReceiver


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run a function and then the on-commit callbacks it registered, as a real commit would."""

    def run(function, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return function(*args, **kwargs)

    return run


@pytest.fixture
def loopback_allowed(settings):
    """The suite's receivers listen on 127.0.0.1: allowed as an operator allows a self-hosted receiver."""
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]


@pytest.fixture
def receiver(loopback_allowed):
    server = WebhookReceiver()
    yield server
    server.close()


@pytest.fixture
def no_connection(monkeypatch):
    """Fail the test if anything opens a connection (the refusal tests must refuse before connecting)."""

    def forbidden(*args, **kwargs):
        pytest.fail(f"a connection was attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", forbidden)
    monkeypatch.setattr(socket.socket, "connect_ex", forbidden)
    monkeypatch.setattr(socket, "create_connection", forbidden)


@pytest.fixture
def dns(monkeypatch):
    """A resolver for test names: ``dns["hooks.example.test"] = "10.0.0.7"``; records every lookup.

    Names not in it fail to resolve, so no test ever asks the real DNS."""
    records: dict[str, list[str]] = {}
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        lookups.append(host)
        try:
            ipaddress.ip_address(host)
            addresses = [host]
        except ValueError:
            if host not in records:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
            addresses = records[host]
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses
        ]

    class Resolver(dict):
        def __setitem__(self, name, value):
            records[name] = [value] if isinstance(value, str) else list(value)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    resolver = Resolver()
    resolver.lookups = lookups
    return resolver

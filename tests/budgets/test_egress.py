"""Webhooks cannot be turned against the platform: addresses refused at save and at delivery,
one resolution, no redirects, one total deadline, and a category of failure for the tenant.

Only 127.0.0.1 is ever connected to: the refusals of every other range are checked with
``no_connection`` (any connect fails the test) and names resolved by the ``dns`` fixture.
"""

import json
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from usage.budgets.delivery import delivery_attempt
from usage.models import AlertDelivery, Budget

from .helpers import budget
from .receivers import WebhookReceiver
from .test_pages import GOOD, url

INTERNAL = [
    "127.0.0.1",
    "127.8.9.10",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "[::1]",
    "[::]",
    "[fe80::1]",
    "[fd00:ec2::254]",
    "[fc00::1]",
    "[ff02::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:169.254.169.254]",
    "[::ffff:10.0.0.1]",
    "[2002:7f00:1::1]",
    "[64:ff9b::a9fe:a9fe]",
]


@pytest.mark.parametrize("host", INTERNAL)
def test_the_form_refuses_an_internal_address_without_connecting(owner_client, tenant, host, no_connection):
    response = owner_client.post(url(tenant), {**GOOD, "webhook_url": f"http://{host}:8080/hook"})
    assert response.status_code == 400
    assert "private, loopback, link-local or otherwise internal address" in response.content.decode()
    assert not Budget.objects.exists()


def test_the_form_refuses_a_name_that_resolves_to_an_internal_address(owner_client, tenant, dns, no_connection):
    dns["hooks.example.test"] = ["93.184.215.14", "10.0.0.7"]  # one public, one internal: refused
    response = owner_client.post(url(tenant), {**GOOD, "webhook_url": "https://hooks.example.test/budget"})
    assert response.status_code == 400 and "internal address" in response.content.decode()
    assert not Budget.objects.exists()


def test_the_form_accepts_a_public_name_and_an_allowed_network(owner_client, tenant, dns, settings, no_connection):
    dns["hooks.example.test"] = "93.184.215.14"
    response = owner_client.post(url(tenant), {**GOOD, "webhook_url": "https://hooks.example.test/budget"})
    assert response.status_code == 201
    settings.WEBHOOK_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    response = owner_client.post(url(tenant), {**GOOD, "name": "self-hosted", "webhook_url": "http://10.20.1.2/h"})
    assert response.status_code == 201
    assert owner_client.post(url(tenant), {**GOOD, "webhook_url": "http://10.21.1.2/h"}).status_code == 400


def test_the_command_refuses_an_internal_address(tenant, no_connection):
    with pytest.raises(CommandError, match="internal address"):
        call_command("create_budget", "--tenant=acme", "--amount=10", "--webhook=http://169.254.169.254/latest")
    assert not Budget.objects.exists()


def _pending(tenant, webhook_url):
    b = budget(tenant, webhook_url=webhook_url)  # saved without the form: as if the address changed since
    return AlertDelivery.objects.create(budget=b, channel="webhook", delivery_id=uuid.uuid4())


@pytest.mark.parametrize(
    # The last two are loopback in the resolver's numeric forms (no DNS query: the system parses them).
    "host",
    ["169.254.169.254", "[fd00:ec2::254]", "[::ffff:127.0.0.1]", "10.0.0.1", "2130706433", "0x7f.1"],
)
def test_delivery_refuses_an_internal_address_without_connecting(tenant, host, no_connection):
    delivery = _pending(tenant, f"http://{host}/latest/meta-data/")
    delivery_attempt(delivery_pk=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.log[-1]["result"] == "failed" and delivery.log[-1]["error"] == "refused: private address"


def test_delivery_refuses_a_name_rebound_to_an_internal_address(tenant, dns, no_connection):
    dns["hooks.example.test"] = "93.184.215.14"
    delivery = _pending(tenant, "https://hooks.example.test/budget")
    dns["hooks.example.test"] = "169.254.169.254"  # the DNS answer changed after the save
    delivery_attempt(delivery_pk=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.log[-1]["error"] == "refused: private address"


def test_delivery_resolves_once_and_keeps_the_host_name(tenant, receiver, dns):
    dns["hooks.example.test"] = "127.0.0.1"
    port = receiver.server.server_port
    delivery = _pending(tenant, f"http://hooks.example.test:{port}/hooks/budget")
    dns.lookups.clear()
    delivery_attempt(delivery_pk=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert dns.lookups == ["hooks.example.test", "127.0.0.1"]  # the connection: to the checked address
    assert receiver.requests[0]["headers"]["Host"] == f"hooks.example.test:{port}"


def test_a_redirect_is_not_followed(tenant, loopback_allowed):
    target = WebhookReceiver()
    redirecting = WebhookReceiver(statuses=[302], location=target.url)
    try:
        delivery = _pending(tenant, redirecting.url)
        delivery_attempt(delivery_pk=delivery.pk)
    finally:
        redirecting.close()
        target.close()
    delivery.refresh_from_db()
    assert len(redirecting.requests) == 1 and target.requests == []
    assert delivery.log[-1]["error"] == "HTTP 302 (redirects are not followed)" and delivery.status == "pending"


def test_a_receiver_dripping_headers_is_cut_at_the_total_deadline(tenant, loopback_allowed, settings):
    settings.BUDGET_WEBHOOK_TIMEOUT_SECONDS = 2
    slow = WebhookReceiver(drip=0.5, drip_lines=40)  # every read answers within 0.5 s; the whole takes 20 s
    try:
        delivery = _pending(tenant, slow.url)
        started = time.monotonic()
        delivery_attempt(delivery_pk=delivery.pk)
        elapsed = time.monotonic() - started
    finally:
        slow.close()
    delivery.refresh_from_db()
    assert delivery.log[-1]["error"] == "timed out"
    assert 1.9 < elapsed < 3.5


def test_the_tenant_sees_a_category_and_the_operator_the_detail(tenant, loopback_allowed, caplog):
    from .receivers import free_port

    delivery = _pending(tenant, f"http://127.0.0.1:{free_port()}/closed")
    delivery_attempt(delivery_pk=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.log[-1]["error"] == "connection failed" and "status_code" in delivery.log[-1]
    assert "Connection refused" in caplog.text  # the detail goes to the log only


# --- TLS: the connection goes to the checked address, SNI and the certificate to the host name -----


@pytest.fixture
def tls_receiver(tmp_path, loopback_allowed, monkeypatch):
    """An HTTPS receiver on 127.0.0.1 with a certificate for hooks.example.test, trusted by the sender."""
    import ssl

    from usage.budgets import egress

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=hooks.example.test",
            "-addext",
            "subjectAltName=DNS:hooks.example.test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    seen = {"sni": [], "requests": []}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            seen["requests"].append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: seen["sni"].append(name)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    trusting = ssl.create_default_context(cafile=str(cert))
    monkeypatch.setattr(egress.ssl, "create_default_context", lambda: trusting)
    yield server.server_port, seen
    server.shutdown()
    server.server_close()


def test_https_to_a_pinned_address_checks_the_certificate_of_the_host_name(tenant, dns, tls_receiver):
    port, seen = tls_receiver
    dns["hooks.example.test"] = "127.0.0.1"
    dns["other.example.test"] = "127.0.0.1"
    good = _pending(tenant, f"https://hooks.example.test:{port}/h")
    delivery_attempt(delivery_pk=good.pk)
    good.refresh_from_db()
    assert good.status == "delivered" and seen["sni"] == ["hooks.example.test"]
    assert json.loads(seen["requests"][0])["type"] == "budget.test"
    wrong = _pending(tenant, f"https://other.example.test:{port}/h")  # the certificate is not for this name
    delivery_attempt(delivery_pk=wrong.pk)
    wrong.refresh_from_db()
    assert wrong.log[-1]["error"] == "TLS error" and len(seen["requests"]) == 1


def test_the_page_shows_no_socket_errors(owner_client, tenant, no_connection):
    delivery = _pending(tenant, "http://169.254.169.254/")
    delivery_attempt(delivery_pk=delivery.pk)
    html = owner_client.get(reverse("budgets:list", kwargs={"slug": tenant.slug})).content.decode()
    assert "refused: private address; will retry" in html

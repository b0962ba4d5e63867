"""Review of issue 25 item 7: IPv6 site-local addresses (fec0::/10, deprecated by RFC 3879 but still
routed where configured) are internal, not globally reachable; Python's ``is_global`` says True."""

import uuid

import pytest

from usage.budgets.delivery import delivery_attempt
from usage.models import AlertDelivery, Budget

from .test_egress import _pending
from .test_pages import GOOD, url

SITE_LOCAL = ["[fec0::1]", "[fed0:1::5]", "[feff:ffff::1]"]


@pytest.mark.parametrize("host", SITE_LOCAL)
def test_the_form_refuses_a_site_local_address_without_connecting(owner_client, tenant, host, no_connection):
    response = owner_client.post(url(tenant), {**GOOD, "webhook_url": f"http://{host}:8080/hook"})
    assert response.status_code == 400
    assert "private, loopback, link-local or otherwise internal address" in response.content.decode()


@pytest.mark.parametrize("host", SITE_LOCAL)
def test_delivery_refuses_a_site_local_address_without_connecting(tenant, host, no_connection):
    delivery = _pending(tenant, f"http://{host}/hook")
    delivery_attempt(delivery_pk=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.log[-1]["result"] == "failed" and delivery.log[-1]["error"] == "refused: private address"


def test_port_0_is_an_invalid_url_not_port_80(owner_client, tenant, no_connection):
    """``urlsplit`` reads ``:0`` as port 0, which ``parts.port or 80`` turned into port 80: the
    receiver the owner did not name. Port 0 cannot be connected to: an invalid URL."""
    response = owner_client.post(url(tenant), {**GOOD, "webhook_url": "http://93.184.216.34:0/hook"})
    assert response.status_code == 400
    assert "Enter a valid webhook URL." in response.content.decode()


def test_a_url_with_a_non_ascii_path_is_delivered_percent_encoded(owner_client, tenant, receiver):
    """The form accepts an IRI path (``/hooks/bücher``); http.client sends ASCII only, so every
    attempt failed as "invalid response" while the receiver was fine."""
    hook = receiver.url.replace("/hooks/budget", "/hooks/bücher?team=ü")
    response = owner_client.post(url(tenant), {**GOOD, "webhook_url": hook})
    assert response.status_code == 201
    budget = Budget.objects.get()
    delivery = AlertDelivery.objects.create(budget=budget, channel="webhook", delivery_id=uuid.uuid4())
    delivery_attempt(delivery_pk=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == "delivered", delivery.log
    assert receiver.requests[0]["path"] == "/hooks/b%C3%BCcher?team=%C3%BC"

"""Delivery of alerts: signed webhooks to a real local HTTP receiver, e-mail through SMTP or locmem."""

import json
import uuid

import pytest
from django.core import mail
from django.urls import reverse
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from usage.budgets import services
from usage.budgets.delivery import (
    backoff_seconds,
    delivery_attempt,
    signature,
    standard_webhook_secret,
    webhook_secret,
)
from usage.models import AlertDelivery

from ..conftest import required
from .helpers import budget, spend
from .receivers import WebhookReceiver, free_port, verify_signature


def test_an_alert_reaches_the_webhook_signed_with_the_budgets_secret(tenant, api_key, llm, receiver, committed):
    b = budget(tenant, amount=100, thresholds=[100], webhook_url=receiver.url)
    spend(tenant, api_key, llm, 100)
    committed(services.budget_evaluate, budget=b)
    [request] = receiver.requests
    assert verify_signature(webhook_secret(b), request)
    assert not verify_signature("another secret", request)
    body = json.loads(request["body"])
    delivery = AlertDelivery.objects.get()
    assert body["type"] == "budget.alert" and body["alert"]["threshold"] == 100 and body["tenant"] == "acme"
    assert request["headers"]["X-Usage-Delivery-Id"] == body["delivery_id"] == str(delivery.delivery_id)
    assert delivery.status == "delivered" and delivery.attempts == 1 and delivery.log[0]["status_code"] == 200


def test_a_tampered_body_fails_verification(tenant, receiver):
    b = budget(tenant, webhook_url=receiver.url)
    secret = webhook_secret(b)
    assert signature(secret, "1700000000", b'{"a":1}') != signature(secret, "1700000000", b'{"a":2}')
    assert signature(secret, "1700000000", b"x") != signature(secret, "1700000001", b"x")


def test_a_delivered_request_verifies_with_the_standard_webhooks_library(tenant, api_key, llm, receiver, committed):
    b = budget(tenant, amount=100, thresholds=[100], webhook_url=receiver.url)
    spend(tenant, api_key, llm, 100)
    committed(services.budget_evaluate, budget=b)
    [request] = receiver.requests
    secret = standard_webhook_secret(b)
    assert secret.startswith("whsec_")
    body = Webhook(secret).verify(request["body"], request["headers"])
    assert body["alert"]["threshold"] == 100
    delivery = AlertDelivery.objects.get()
    assert request["headers"]["webhook-id"] == str(delivery.delivery_id)
    assert request["headers"]["webhook-signature"].startswith("v1,")
    assert request["headers"]["webhook-timestamp"] == request["headers"]["X-Usage-Timestamp"]
    with pytest.raises(WebhookVerificationError):
        Webhook(standard_webhook_secret(budget(tenant, name="another", webhook_url=receiver.url))).verify(
            request["body"], request["headers"]
        )
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request["body"].replace(b"100", b"101"), request["headers"])
    assert verify_signature(webhook_secret(b), request)  # the legacy headers are still there


def test_amounts_in_the_payload_are_plain_decimals(tenant, api_key, llm, receiver, committed):
    b = budget(tenant, amount=1000, thresholds=[100], webhook_url=receiver.url)
    spend(tenant, api_key, llm, 1000)
    committed(services.budget_evaluate, budget=b)
    body = json.loads(receiver.requests[0]["body"])
    assert body["budget"]["amount"] == "1000"
    assert (body["alert"]["spent"], body["alert"]["limit"]) == ("1000", "1000")


def test_a_failed_attempt_is_recorded_and_retried_with_the_same_delivery_id(
    tenant, api_key, llm, loopback_allowed, committed
):
    server = WebhookReceiver(statuses=[500, 503, 200])
    try:
        b = budget(tenant, amount=100, thresholds=[100], webhook_url=server.url)
        spend(tenant, api_key, llm, 100)
        committed(services.budget_evaluate, budget=b)  # eager: one attempt, left pending
        delivery = AlertDelivery.objects.get()
        assert delivery.status == "pending"
        delivery_attempt(delivery_pk=delivery.pk)
        delivery_attempt(delivery_pk=delivery.pk)
        delivery_attempt(delivery_pk=delivery.pk)  # delivered already: nothing sent
    finally:
        server.close()
    delivery.refresh_from_db()
    assert [entry["result"] for entry in delivery.log] == ["failed", "failed", "delivered"]
    assert [entry["status_code"] for entry in delivery.log] == [500, 503, 200]
    assert len(set(server.delivery_ids())) == 1 and len(server.requests) == 3
    assert delivery.status == "delivered" and delivery.attempts == 3


def test_a_delivery_fails_after_the_last_attempt(tenant, settings, loopback_allowed):
    settings.BUDGET_DELIVERY_MAX_ATTEMPTS = 2
    b = budget(tenant, webhook_url=f"http://127.0.0.1:{free_port()}/closed")
    delivery = AlertDelivery.objects.create(budget=b, channel="webhook", delivery_id=uuid.uuid4())
    assert delivery_attempt(delivery_pk=delivery.pk).retry
    outcome = delivery_attempt(delivery_pk=delivery.pk)
    delivery.refresh_from_db()
    assert not outcome.retry and delivery.status == "failed" and delivery.attempts == 2
    assert delivery.log[-1]["error"] == "connection failed"


def test_back_off_doubles_up_to_the_cap(settings):
    settings.BUDGET_DELIVERY_BACKOFF_SECONDS, settings.BUDGET_DELIVERY_BACKOFF_MAX_SECONDS = 5, 30
    assert [backoff_seconds(n) for n in range(1, 6)] == [5, 10, 20, 30, 30]


def test_the_test_button_sends_a_signed_test_message(
    owner_client, tenant, receiver, django_capture_on_commit_callbacks
):
    b = budget(tenant, webhook_url=receiver.url, emails="ops@acme.test")
    with django_capture_on_commit_callbacks(execute=True):  # eager Celery: the "worker" runs in-process
        response = owner_client.post(reverse("budgets:test", kwargs={"slug": tenant.slug, "pk": b.pk}), follow=True)
    text = response.content.decode()
    assert "Test webhook queued" in text and "Test email queued" in text
    [request] = receiver.requests
    assert verify_signature(webhook_secret(b), request) and json.loads(request["body"])["type"] == "budget.test"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ops@acme.test"]
    assert AlertDelivery.objects.filter(alert__isnull=True, status="delivered").count() == 2


def test_the_page_shows_a_failed_test_as_a_category(owner_client, tenant, loopback_allowed, committed):
    b = budget(tenant, webhook_url=f"http://127.0.0.1:{free_port()}/closed")
    committed(owner_client.post, reverse("budgets:test", kwargs={"slug": tenant.slug, "pk": b.pk}))
    html = owner_client.get(reverse("budgets:list", kwargs={"slug": tenant.slug})).content.decode()
    assert '<td class="delivery-result">connection failed; will retry</td>' in html
    assert "Errno" not in html and "Connection refused" not in html


def test_viewer_cannot_press_the_test_button(viewer_client, tenant, receiver):
    b = budget(tenant, webhook_url=receiver.url)
    response = viewer_client.post(reverse("budgets:test", kwargs={"slug": tenant.slug, "pk": b.pk}))
    assert response.status_code == 403 and receiver.requests == []


# --- E-mail -------------------------------------------------------------------------------------


def test_an_alert_email_goes_through_the_locmem_backend(tenant, api_key, llm, committed):
    b = budget(tenant, amount=100, thresholds=[80], emails="ops@acme.test, cfo@acme.test")
    spend(tenant, api_key, llm, 90)
    committed(services.budget_evaluate, budget=b)
    [message] = mail.outbox
    assert message.to == ["ops@acme.test", "cfo@acme.test"] and "reached 80%" in message.subject


@pytest.fixture
def smtp_server():
    """A real SMTP server (aiosmtpd) on a local port; required in CI (REQUIRE_SERVICES)."""
    try:
        from aiosmtpd.controller import Controller
        from aiosmtpd.handlers import Message
    except ImportError:
        if required("REQUIRE_SERVICES"):
            pytest.fail("REQUIRE_SERVICES is set but aiosmtpd is not installed (requirements-dev.txt)")
        pytest.skip("aiosmtpd is not installed")
    received = []

    class Collect(Message):
        def handle_message(self, message):
            received.append(message)

    controller = Controller(Collect(), hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, received
    controller.stop()


def test_an_alert_email_goes_through_a_real_smtp_server(tenant, api_key, llm, settings, smtp_server, committed):
    controller, received = smtp_server
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = controller.hostname, controller.port
    b = budget(tenant, amount=100, thresholds=[100], emails="ops@acme.test")
    spend(tenant, api_key, llm, 100)
    committed(services.budget_evaluate, budget=b)
    [message] = received
    assert message["To"] == "ops@acme.test" and "reached 100%" in message["Subject"]
    delivery = AlertDelivery.objects.get()
    assert delivery.status == "delivered" and str(delivery.delivery_id) in message.get_payload()

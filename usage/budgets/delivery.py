"""Sending an alert: e-mail through Django's backend, or a signed webhook.

Webhook signature. Each budget with a webhook has its own secret,
``HMAC-SHA256(SECRET_HASH_KEY, "budget-webhook:" + salt)`` in hex, shown once when the URL is set
(only the random salt is stored). Every request carries

    X-Usage-Delivery-Id: <uuid, the same on every retry of one delivery: dedupe by it>
    X-Usage-Timestamp:   <unix seconds of this attempt>
    X-Usage-Signature:   v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>

A receiver recomputes the signature over the raw body, compares in constant time, and refuses
timestamps more than a few minutes old. Any 2xx answer acknowledges the delivery.
"""

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from usage.models import AlertDelivery

SIGNATURE_VERSION = "v1"


def webhook_secret(budget):
    message = f"budget-webhook:{budget.webhook_salt}".encode()
    return hmac.new(settings.SECRET_HASH_KEY.encode(), message, hashlib.sha256).hexdigest()


def signature(secret, timestamp, body):
    """The X-Usage-Signature value of ``body`` (bytes) sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def payload(delivery):
    budget, alert = delivery.budget, delivery.alert
    data = {
        "type": "budget.alert" if alert else "budget.test",
        "delivery_id": str(delivery.delivery_id),
        "tenant": budget.tenant.slug,
        "budget": {
            "id": budget.pk,
            "name": budget.name,
            "api_key": budget.api_key.public_id if budget.api_key_id else None,
            "metric": budget.metric,
            "amount": str(budget.amount.normalize()),
            "currency": budget.currency or None,
            "period": budget.period,
        },
    }
    if alert:
        data["alert"] = {
            "kind": alert.kind,
            "threshold": alert.threshold,
            "period_start": alert.period_start.isoformat(),
            "spent": str(alert.spent.normalize()),
            "limit": str(alert.limit.normalize()),
            "projected": str(alert.projected.normalize()),
        }
    return data


def _subject(data):
    budget = data["budget"]
    alert = data.get("alert")
    if alert is None:
        return f"Test message of budget {budget['name']}"
    what = "is forecast to exceed 100%" if alert["kind"] == "forecast" else f"reached {alert['threshold']}%"
    return f"Budget {budget['name']} ({data['tenant']}) {what}"


def send_webhook(delivery, data):
    """POST the signed payload; returns the HTTP status (raises on a network error or non-2xx)."""
    body = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "usage-statistics-budgets/1",
        "X-Usage-Delivery-Id": data["delivery_id"],
        "X-Usage-Timestamp": timestamp,
        "X-Usage-Signature": signature(webhook_secret(delivery.budget), timestamp, body),
    }
    request = urllib.request.Request(delivery.budget.webhook_url, data=body, headers=headers, method="POST")  # noqa: S310
    # The URL's scheme is validated to be http(s) when the budget is saved.
    with urllib.request.urlopen(request, timeout=settings.BUDGET_WEBHOOK_TIMEOUT_SECONDS) as response:  # noqa: S310
        return response.status


def send_email(delivery, data):
    recipients = [address.strip() for address in delivery.budget.emails.split(",") if address.strip()]
    lines = [f"{name}: {value}" for name, value in {**data["budget"], **data.get("alert", {})}.items()]
    text = "\n".join([_subject(data), "", *lines, "", f"Delivery id: {data['delivery_id']}"])
    send_mail(_subject(data), text, settings.DEFAULT_FROM_EMAIL, recipients)


@dataclass(frozen=True)
class Outcome:
    status: str
    attempts: int
    retry: bool


def _record(delivery_pk, index, **entry):
    with transaction.atomic():
        delivery = AlertDelivery.objects.select_for_update().get(pk=delivery_pk)
        delivery.log[index].update(entry)
        delivery.updated_at = timezone.now()
        delivery.save(update_fields=["log", "updated_at"])
    return delivery


def delivery_attempt(*, delivery_pk):
    """Make one attempt of a pending delivery and record it; delivered or failed ones are left alone.

    The attempt is recorded as "sending" before anything is sent, so an attempt cut short by a
    killed worker still shows in the log.
    """
    with transaction.atomic():
        delivery = AlertDelivery.objects.select_for_update().filter(pk=delivery_pk).first()
        if delivery is None or delivery.status != AlertDelivery.Status.PENDING:
            return Outcome(delivery.status if delivery else "missing", delivery.attempts if delivery else 0, False)
        delivery.attempts += 1
        delivery.log.append({"at": timezone.now().isoformat(), "result": "sending"})
        delivery.updated_at = timezone.now()
        delivery.save(update_fields=["attempts", "log", "updated_at"])
    index, attempts = len(delivery.log) - 1, delivery.attempts
    delivery = AlertDelivery.objects.select_related("budget__tenant", "budget__api_key", "alert").get(pk=delivery_pk)
    data = payload(delivery)
    try:
        code = send_webhook(delivery, data) if delivery.channel == AlertDelivery.Channel.WEBHOOK else None
        if delivery.channel == AlertDelivery.Channel.EMAIL:
            send_email(delivery, data)
    except urllib.error.HTTPError as exc:
        return _failed(delivery_pk, index, attempts, status_code=exc.code, error=f"HTTP {exc.code}")
    except Exception as exc:  # network errors, SMTP errors: all retried
        return _failed(delivery_pk, index, attempts, status_code=None, error=f"{type(exc).__name__}: {exc}"[:500])
    with transaction.atomic():
        delivery = _record(delivery_pk, index, result="delivered", status_code=code)
        delivery.status, delivery.delivered_at = AlertDelivery.Status.DELIVERED, timezone.now()
        delivery.save(update_fields=["status", "delivered_at"])
    return Outcome(delivery.status, attempts, False)


def _failed(delivery_pk, index, attempts, **entry):
    with transaction.atomic():
        delivery = _record(delivery_pk, index, result="failed", **entry)
        if attempts >= settings.BUDGET_DELIVERY_MAX_ATTEMPTS:
            delivery.status = AlertDelivery.Status.FAILED
            delivery.save(update_fields=["status"])
    return Outcome(delivery.status, attempts, delivery.status == AlertDelivery.Status.PENDING)


def delivery_test(*, budget, channel):
    """The page's "Send test" button: one delivery without an alert, attempted at once."""
    import uuid

    delivery = AlertDelivery.objects.create(budget=budget, channel=channel, delivery_id=uuid.uuid4())
    delivery_attempt(delivery_pk=delivery.pk)
    delivery.refresh_from_db()
    return delivery

"""Sending an alert: e-mail through Django's backend, or a signed webhook.

Webhook signature: Standard Webhooks (https://www.standardwebhooks.com/), made with the
``standardwebhooks`` package, so any of its libraries verifies it. Each budget with a webhook has
its own 32-byte key, ``HMAC-SHA256(SECRET_HASH_KEY, "budget-webhook:" + salt)`` (only the random
salt is stored), shown once when the URL is set in two encodings of the same key: ``whsec_<base64>``
for Standard Webhooks and 64 hex digits for the legacy headers. Every request carries

    webhook-id:          <delivery id, a uuid: the same on every retry of one delivery: dedupe by it>
    webhook-timestamp:   <unix seconds of this attempt>
    webhook-signature:   v1,<base64 HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<raw body>")>

and, for receivers written before, the legacy headers

    X-Usage-Delivery-Id: <the same uuid>
    X-Usage-Timestamp:   <the same unix seconds>
    X-Usage-Signature:   v1=<hex HMAC-SHA256(hex secret as text, "<timestamp>.<raw body>")>

Any 2xx answer acknowledges the delivery; a 3xx is not followed (``usage.budgets.egress``).
"""

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from standardwebhooks import Webhook

from usage.budgets import egress, unpriced
from usage.models import AlertDelivery
from usageproject import metrics

logger = logging.getLogger(__name__)

SIGNATURE_VERSION = "v1"
# What an attempt may take beyond the HTTP deadline (database writes) before its lease runs out.
ATTEMPT_MARGIN_SECONDS = 10
EMAIL_FAILED = "e-mail not accepted"


def _webhook_key(budget) -> bytes:
    message = f"budget-webhook:{budget.webhook_salt}".encode()
    return hmac.new(settings.SECRET_HASH_KEY.encode(), message, hashlib.sha256).digest()


def webhook_secret(budget) -> str:
    """The legacy (X-Usage-Signature) secret: the key in hex."""
    return _webhook_key(budget).hex()


def standard_webhook_secret(budget) -> str:
    """The Standard Webhooks secret: the same key as ``whsec_<base64>``."""
    return "whsec_" + base64.b64encode(_webhook_key(budget)).decode()


def signature(secret, timestamp, body):
    """The legacy X-Usage-Signature value of ``body`` (bytes) sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def plain(amount: Decimal) -> str:
    """A decimal as plain digits: "1000", never "1E+3"."""
    return format(amount.normalize(), "f")


def payload(delivery):
    if delivery.monitor_event_id:
        return monitor_payload(delivery)
    budget, alert = delivery.budget, delivery.alert
    if delivery.unpriced_id:  # a model used without a price: the tenant's, told through a budget's channel
        return {
            "type": "model.unpriced",
            "delivery_id": str(delivery.delivery_id),
            "tenant": budget.tenant.slug,
            "unpriced": unpriced.payload_data(delivery.unpriced),
        }
    data = {
        "type": "budget.alert" if alert else "budget.test",
        "delivery_id": str(delivery.delivery_id),
        "tenant": budget.tenant.slug,
        "budget": {
            "id": budget.pk,
            "name": budget.name,
            "api_key": budget.api_key.public_id if budget.api_key_id else None,
            "metric": budget.metric,
            "amount": plain(budget.amount),
            "currency": budget.currency or None,
            "period": budget.period,
        },
    }
    if alert:
        data["alert"] = {
            "kind": alert.kind,
            "threshold": alert.threshold,
            "period_start": alert.period_start.isoformat(),
            "spent": plain(alert.spent),
            "limit": plain(alert.limit),
            "projected": plain(alert.projected),
        }
    return data


def monitor_payload(delivery):
    """A monitor's firing or resolve (``usage.monitors``), sent through its budget's channels."""
    event = delivery.monitor_event
    monitor = event.monitor
    return {
        "type": f"monitor.{event.kind}",
        "delivery_id": str(delivery.delivery_id),
        "tenant": monitor.tenant.slug,
        "monitor": {
            "id": monitor.pk,
            "name": monitor.name,
            "metric": monitor.metric,
            "threshold": plain(monitor.threshold),
            "model": monitor.model.name if monitor.model_id else None,
            "api_key": monitor.api_key.public_id if monitor.api_key_id else None,
            "window_minutes": monitor.window_minutes,
            "window_hours": monitor.whole_hours,
            "min_calls": monitor.min_calls,
        },
        "event": {
            "kind": event.kind,
            "value": event.value,
            "calls": event.calls,
            "window_start": event.window_start.isoformat(),
            "at": event.created_at.isoformat(),
        },
    }


def _subject(data):
    if data["type"] == "model.unpriced":
        return unpriced.subject(data["tenant"], data["unpriced"]["model"])
    if "monitor" in data:
        monitor, event = data["monitor"], data["event"]
        value = "n/a" if event["value"] is None else f"{event['value']:,.2f}"
        return f"Monitor {monitor['name']} ({data['tenant']}) {event['kind']}: {monitor['metric']} {value}"
    budget = data["budget"]
    alert = data.get("alert")
    if alert is None:
        return f"Test message of budget {budget['name']}"
    what = "is forecast to exceed 100%" if alert["kind"] == "forecast" else f"reached {alert['threshold']}%"
    return f"Budget {budget['name']} ({data['tenant']}) {what}"


def webhook_headers(budget, delivery_id: str, body: bytes, sent_at: dt.datetime) -> dict[str, str]:
    timestamp = str(int(sent_at.timestamp()))
    standard = Webhook(standard_webhook_secret(budget)).sign(delivery_id, sent_at, body.decode())
    return {
        "Content-Type": "application/json",
        "User-Agent": "usage-statistics-budgets/2",
        "webhook-id": delivery_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": standard,
        "X-Usage-Delivery-Id": delivery_id,
        "X-Usage-Timestamp": timestamp,
        "X-Usage-Signature": signature(webhook_secret(budget), timestamp, body),
    }


def send_webhook(delivery, data):
    """POST the signed payload; returns the HTTP status (raises egress.Failure otherwise)."""
    body = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    sent_at = dt.datetime.fromtimestamp(int(timezone.now().timestamp()), tz=dt.UTC)
    headers = webhook_headers(delivery.budget, data["delivery_id"], body, sent_at)
    return egress.post(delivery.budget.webhook_url, body, headers, timeout=settings.BUDGET_WEBHOOK_TIMEOUT_SECONDS)


def send_email(delivery, data):
    recipients = [address.strip() for address in delivery.budget.emails.split(",") if address.strip()]
    if delivery.unpriced_id:
        alert = delivery.unpriced
        text = (
            unpriced.message_text(data["tenant"], alert.model.name, alert) + f"\n\nDelivery id: {data['delivery_id']}"
        )
        send_mail(_subject(data), text, settings.DEFAULT_FROM_EMAIL, recipients)
        return
    details = {**data["monitor"], **data["event"]} if "monitor" in data else {**data["budget"], **data.get("alert", {})}
    lines = [f"{name}: {value}" for name, value in details.items()]
    text = "\n".join([_subject(data), "", *lines, "", f"Delivery id: {data['delivery_id']}"])
    send_mail(_subject(data), text, settings.DEFAULT_FROM_EMAIL, recipients)


@dataclass(frozen=True)
class Outcome:
    status: str
    attempts: int
    retry: bool
    tenant_id: int | None = None


def backoff_seconds(attempts):
    """5 s, 10 s, 20 s, ... after the n-th failed attempt, capped at BUDGET_DELIVERY_BACKOFF_MAX_SECONDS."""
    base = settings.BUDGET_DELIVERY_BACKOFF_SECONDS
    return min(base * 2 ** max(attempts - 1, 0), settings.BUDGET_DELIVERY_BACKOFF_MAX_SECONDS)


def _record(delivery_pk, index, **entry):
    with transaction.atomic():
        delivery = AlertDelivery.objects.select_for_update().get(pk=delivery_pk)
        delivery.log[index].update(entry)
        delivery.updated_at = timezone.now()
        delivery.lease_until = delivery.dispatch_id = None
        delivery.save(update_fields=["log", "updated_at", "lease_until", "dispatch_id"])
    return delivery


def _start(delivery_pk, dispatch_id):
    """Mark an attempt "sending" (so one cut short by a killed worker still shows) and lease it for
    the attempt's length; None when there is nothing to do (done, or a stale task message)."""
    with transaction.atomic():
        delivery = AlertDelivery.objects.select_for_update().filter(pk=delivery_pk).first()
        if delivery is None or delivery.status != AlertDelivery.Status.PENDING:
            return None
        if dispatch_id is not None and str(delivery.dispatch_id) != str(dispatch_id):
            return None  # handed out again since (lease expired): that newer message makes the attempt
        now = timezone.now()
        delivery.attempts += 1
        delivery.log.append({"at": now.isoformat(), "result": "sending"})
        delivery.updated_at = now
        lease = settings.BUDGET_WEBHOOK_TIMEOUT_SECONDS + ATTEMPT_MARGIN_SECONDS
        delivery.lease_until = now + dt.timedelta(seconds=lease)
        delivery.save(update_fields=["attempts", "log", "updated_at", "lease_until"])
    return delivery


def delivery_attempt(*, delivery_pk, dispatch_id=None):
    """Make one attempt of a pending delivery and record it; delivered or failed ones are left alone.

    ``dispatch_id`` is the hand-out a task message carries (``services.deliveries_dispatch``); a
    message from an older hand-out does nothing. Called without one (tests), it always attempts.
    """
    started = _start(delivery_pk, dispatch_id)
    if started is None:
        delivery = AlertDelivery.objects.filter(pk=delivery_pk).select_related("budget").first()
        tenant_id = delivery.budget.tenant_id if delivery else None
        return Outcome(
            delivery.status if delivery else "missing", delivery.attempts if delivery else 0, False, tenant_id
        )
    index, attempts = len(started.log) - 1, started.attempts
    delivery = AlertDelivery.objects.select_related(
        "budget__tenant", "budget__api_key", "alert", "unpriced__model", "monitor_event__monitor__tenant"
    ).get(pk=delivery_pk)
    tenant_id = delivery.budget.tenant_id
    try:
        code = _send(delivery)
    except egress.Failure as exc:
        logger.warning("Budget webhook %s attempt %s failed: %s", delivery.delivery_id, attempts, exc.detail)
        status_code = int(exc.category[5:8]) if exc.category.startswith("HTTP ") else None
        return _failed(delivery_pk, index, attempts, tenant_id, status_code=status_code, error=exc.category)
    except Exception:  # SMTP errors: retried; the detail is for the operator's log only
        logger.exception("Budget alert e-mail %s attempt %s failed", delivery.delivery_id, attempts)
        return _failed(delivery_pk, index, attempts, tenant_id, status_code=None, error=EMAIL_FAILED)
    with transaction.atomic():
        delivery = _record(delivery_pk, index, result="delivered", status_code=code)
        delivery.status, delivery.delivered_at = AlertDelivery.Status.DELIVERED, timezone.now()
        delivery.save(update_fields=["status", "delivered_at"])
    metrics.delivery_counted(delivery.channel, delivery.status, retry=False)
    return Outcome(delivery.status, attempts, False, tenant_id)


def result_text(delivery) -> str:
    """The last attempt as the tenant sees it: a category of failure, never a socket's message
    (rows from before this rule may hold one: shown as plain "failed")."""
    if not delivery.log:
        return "queued"
    last = delivery.log[-1]
    if last.get("result") == "delivered":
        return f"HTTP {last['status_code']}" if last.get("status_code") else "accepted"
    if last.get("result") == "sending":
        return "sending"
    error = str(last.get("error") or "")
    shown = error in egress.CATEGORIES or error == EMAIL_FAILED or re.fullmatch(r"HTTP \d{3}( \(.*\))?", error)
    text = error if shown else "failed"
    if delivery.status == AlertDelivery.Status.PENDING and delivery.next_attempt_at:
        text += "; will retry"
    return text


def _send(delivery):
    data = payload(delivery)
    if delivery.channel == AlertDelivery.Channel.WEBHOOK:
        return send_webhook(delivery, data)
    send_email(delivery, data)
    return None


def _failed(delivery_pk, index, attempts, tenant_id, **entry):
    with transaction.atomic():
        delivery = _record(delivery_pk, index, result="failed", **entry)
        if attempts >= settings.BUDGET_DELIVERY_MAX_ATTEMPTS:
            delivery.status = AlertDelivery.Status.FAILED
        else:
            delivery.next_attempt_at = timezone.now() + dt.timedelta(seconds=backoff_seconds(attempts))
        delivery.save(update_fields=["status", "next_attempt_at"])
    retry = delivery.status == AlertDelivery.Status.PENDING
    metrics.delivery_counted(delivery.channel, delivery.status, retry=retry)
    return Outcome(delivery.status, attempts, retry, tenant_id)

"""One alert per tenant and model the first time the model is used with no price in force.

Evaluated with the tenant's budgets (after ingestion, by the worker; and by beat for every
tenant, so a tenant without budgets is covered within ``BUDGET_EVALUATE_SECONDS``), never on the
ingest request path. The unique ``UnpricedModelAlert`` row per tenant and model makes it fire
once, whatever evaluations race. It goes to the tenant's budget channels (one delivery per
distinct e-mail list or webhook URL, through the budgets' deliveries: retries, Standard Webhooks
signatures); a tenant with no budget channel gets an e-mail to its owners.

Looked at: the tenant's last ``WINDOW_DAYS`` local days (new calls, and late ones within the
ingestion API's window).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction

from accounts.models import Membership, Tenant
from usage.localtime import tenant_today
from usage.models import AlertDelivery, Budget, Model, UnpricedModelAlert, UsageDailyModel
from usage.reporting.costs import prices_in_force

logger = logging.getLogger(__name__)

WINDOW_DAYS = 7


def unpriced_models_check(*, tenant: Tenant, now: dt.datetime | None = None) -> list[UnpricedModelAlert]:
    """Fire the alert of every model the tenant used unpriced in the window and was not told of."""
    today = tenant_today(tenant, now)
    first = today - dt.timedelta(days=WINDOW_DAYS - 1)
    told = UnpricedModelAlert.objects.filter(tenant=tenant).values_list("model_id", flat=True)
    rows = (
        UsageDailyModel.objects.filter(tenant=tenant, day__range=(first, today), calls__gt=0)
        .exclude(model_id__in=told)
        .values_list("model_id", "day", "calls", "input_tokens", "output_tokens")
    )
    found: dict[int, list] = {}
    book = None
    for model_id, day, calls, input_tokens, output_tokens in rows.order_by("day"):
        book = book or prices_in_force(tenant=tenant, terms_only=True)
        if book.price_for(model_id, day) is None:
            entry = found.setdefault(model_id, [day, 0, 0])
            entry[1] += calls
            entry[2] += input_tokens + output_tokens
    fired = []
    for model_id, (day, calls, tokens) in sorted(found.items()):
        alert = _fire_once(tenant, model_id, day, calls, tokens)
        if alert is not None:
            fired.append(alert)
    return fired


def _fire_once(tenant: Tenant, model_id: int, day: dt.date, calls: int, tokens: int) -> UnpricedModelAlert | None:
    try:
        with transaction.atomic():
            alert = UnpricedModelAlert.objects.create(
                tenant=tenant, model_id=model_id, first_day=day, calls=calls, tokens=tokens
            )
            channels = _channels(tenant)
            for budget, channel in channels:
                AlertDelivery.objects.create(budget=budget, unpriced=alert, channel=channel, delivery_id=uuid.uuid4())
            if not channels:
                # No channel to retry through: the e-mail is sent inside the transaction, so a
                # failure leaves no row and the next evaluation tries again.
                _email_owners(alert)
    except IntegrityError:
        return None  # another evaluation fired it
    logger.info("Tenant %s used model %s without a price from %s", tenant.pk, model_id, day)
    return alert


def _channels(tenant: Tenant) -> list[tuple[Budget, str]]:
    """(budget, channel) per distinct target of the tenant's budgets: one message per address list or URL."""
    seen, channels = set(), []
    for budget in Budget.objects.filter(tenant=tenant).order_by("pk"):
        for channel, target in ((AlertDelivery.Channel.EMAIL, budget.emails), ("webhook", budget.webhook_url)):
            if target and (channel, target) not in seen:
                seen.add((channel, target))
                channels.append((budget, channel))
    return channels


def subject(tenant_slug: str, model_name: str) -> str:
    return f"Model {model_name} is used without a price ({tenant_slug})"


def _email_owners(alert: UnpricedModelAlert) -> None:
    owners = Membership.objects.filter(tenant=alert.tenant, role=Membership.Role.OWNER).select_related("user")
    recipients = sorted({m.user.email for m in owners if m.user.email})
    if not recipients:
        return
    model = Model.objects.get(pk=alert.model_id)
    send_mail(
        subject(alert.tenant.slug, model.name),
        message_text(alert.tenant.slug, model.name, alert),
        settings.DEFAULT_FROM_EMAIL,
        recipients,
    )


def message_text(tenant_slug: str, model_name: str, alert: UnpricedModelAlert) -> str:
    return "\n".join(
        [
            subject(tenant_slug, model_name),
            "",
            f"From {alert.first_day}, {alert.calls:,} calls ({alert.tokens:,} tokens) of {model_name} had no price in",
            "force: their cost is not in any amount (reported as unpriced) until a price covering those days is set.",
            "This alert is sent once per model.",
        ]
    )


def payload_data(alert: UnpricedModelAlert) -> dict:
    """The ``model.unpriced`` webhook payload's own member."""
    return {
        "model": alert.model.name,
        "first_day": alert.first_day.isoformat(),
        "calls": alert.calls,
        "tokens": alert.tokens,
    }

"""Budgets for tests, and calls at chosen local times."""

import datetime as dt

from django.utils import timezone

from usage.budgets import services
from usage.localtime import tenant_today
from usage.models import Budget

from ..usage.factories import make_calls


def budget(tenant, **fields):
    values = {
        "name": "monthly",
        "metric": Budget.Metric.TOKENS,
        "amount": 1000,
        "currency": "",
        "period": "month",
        "thresholds": [50, 80, 100],
    }
    values.update(fields)
    created, _secret = services.budget_create(tenant=tenant, data=values)
    return created


def start_of_today(tenant):
    """The instant today starts in the tenant's zone: in every period kind's current period, and past."""
    today = tenant_today(tenant)
    return dt.datetime.combine(today, dt.time(), tzinfo=tenant.tz).astimezone(dt.UTC)


def spend(tenant, key, model, tokens, at=None):
    """Calls worth ``tokens`` input tokens at ``at`` (default: the start of the tenant's today)."""
    return make_calls(
        tenant, [{"api_key": key, "model": model, "occurred_at": at or start_of_today(tenant), "input_tokens": tokens}]
    )


def now():
    return timezone.now()

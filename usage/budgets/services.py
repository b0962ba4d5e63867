"""Writes of budgets: create, evaluate (state and alerts), and the hook ingestion calls.

Exactly once. An alert is a row unique on (budget, period start, kind, threshold). Every
evaluation that sees a threshold crossed tries to insert it; the database lets one insert win
(PostgreSQL makes a concurrent second insert wait for the first and then fail), and only the
winner creates the alert's deliveries, in the same transaction. So however many workers,
retries or concurrent batches evaluate at once, each threshold fires once per period.
"""

import datetime as dt
import logging
import secrets
import uuid
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from usage.budgets import tasks
from usage.budgets.periods import budget_period
from usage.budgets.selectors import budget_status, budget_status_for_period, budgets_for_key
from usage.localtime import tenant_today
from usage.models import AlertDelivery, Budget, BudgetAlert
from usage.outages import log_outage, task_publish

logger = logging.getLogger(__name__)


def budget_create(*, tenant, data):
    """A budget from validated form data; returns (budget, webhook secret or None)."""
    budget = Budget(tenant=tenant, **data)
    if budget.webhook_url:
        budget.webhook_salt = secrets.token_hex(16)
    budget.save()
    return budget, (webhook_secret(budget) if budget.webhook_url else None)


def budget_update(*, budget, data):
    """Save changed fields; a new webhook URL gets a new secret, returned (else None)."""
    new_url = data.get("webhook_url") and data["webhook_url"] != budget.webhook_url
    for name, value in data.items():
        setattr(budget, name, value)
    if new_url:
        budget.webhook_salt = secrets.token_hex(16)
    budget.state_at = None  # re-evaluate with the new terms
    budget.save()
    return webhook_secret(budget) if new_url else None


def webhook_secret(budget):
    from usage.budgets.delivery import webhook_secret as secret

    return secret(budget)


# --- Evaluation -------------------------------------------------------------------------------


def budget_evaluate(*, budget, now=None):
    """Compute the budget's state, store it, and fire the alerts it crossed. Returns the status."""
    now = now or timezone.now()
    status = budget_status(budget=budget, now=now)
    Budget.objects.filter(pk=budget.pk).update(
        state=status.state, state_spent=status.spent, state_period_start=status.period.start, state_at=now
    )
    budget.state, budget.state_spent, budget.state_period_start, budget.state_at = (
        status.state,
        status.spent,
        status.period.start,
        now,
    )
    _fire(status, forecast=True)
    # A late call or a price change may still push the previous period over a threshold.
    previous_end = status.period.start - dt.timedelta(days=1)
    _fire(budget_status_for_period(budget=budget, period=budget_period(budget, previous_end)), forecast=False)
    return status


def _fire(status, *, forecast):
    for threshold in sorted(set(status.budget.thresholds)):
        if status.percent >= threshold:
            _alert_once(status, BudgetAlert.Kind.THRESHOLD, threshold)
    if forecast and status.forecast_exceeds and status.spent < status.limit:
        _alert_once(status, BudgetAlert.Kind.FORECAST, 100)


def _alert_once(status, kind, threshold):
    """Insert the alert and its deliveries, unless another evaluation already did."""
    budget = status.budget
    try:
        with transaction.atomic():
            alert = BudgetAlert.objects.create(
                budget=budget,
                period_start=status.period.start,
                kind=kind,
                threshold=threshold,
                spent=status.spent,
                limit=status.limit,
                projected=status.projected,
            )
            deliveries = [_delivery(budget, alert, channel) for channel in budget_channels(budget)]
    except IntegrityError:
        return None
    for delivery in deliveries:
        transaction.on_commit(partial(_enqueue_delivery, delivery.pk))
    logger.info("Budget %s crossed %s %s%% in the period from %s", budget.pk, kind, threshold, status.period.start)
    return alert


def budget_channels(budget):
    """The channels an alert of ``budget`` goes to."""
    return [
        channel
        for channel, configured in ((AlertDelivery.Channel.EMAIL, budget.emails), ("webhook", budget.webhook_url))
        if configured
    ]


def _delivery(budget, alert, channel):
    return AlertDelivery.objects.create(budget=budget, alert=alert, channel=channel, delivery_id=uuid.uuid4())


def _enqueue_delivery(delivery_pk):
    try:
        task_publish(tasks.deliver_alert, (delivery_pk,), what=f"budget alert delivery {delivery_pk}")
    except Exception:  # the beat re-enqueues pending deliveries; a broker outage must not fail the caller
        logger.exception("Could not enqueue budget alert delivery %s", delivery_pk)


def tenant_budgets_evaluate(*, tenant_id, now=None):
    count = 0
    for budget in Budget.objects.filter(tenant_id=tenant_id).select_related("tenant", "api_key"):
        budget_evaluate(budget=budget, now=now)
        count += 1
    return count


def budgets_evaluate_all(*, now=None):
    """What beat runs: every budget, then the deliveries left pending (a lost enqueue, a crash)."""
    count = 0
    for tenant_id in Budget.objects.values_list("tenant_id", flat=True).distinct().order_by("tenant_id"):
        count += tenant_budgets_evaluate(tenant_id=tenant_id, now=now)
    stale = (now or timezone.now()) - dt.timedelta(seconds=settings.BUDGET_DELIVERY_STALE_SECONDS)
    pending = AlertDelivery.objects.filter(status=AlertDelivery.Status.PENDING, updated_at__lt=stale)
    for delivery_pk in pending.values_list("pk", flat=True):
        _enqueue_delivery(delivery_pk)
    return count


def budget_state_for_key(*, key, now=None):
    """keys/verify's ``budget`` member: the worst state of the enforcing budgets, or None.

    A stored state older than BUDGET_STATE_MAX_AGE_SECONDS, or from a past period, is
    re-evaluated first, so the answer is never older than that bound.
    """
    now = now or timezone.now()
    budgets = budgets_for_key(key=key)
    if not budgets:
        return None
    max_age = settings.BUDGET_STATE_MAX_AGE_SECONDS
    for budget in budgets:
        fresh = budget.state_at and (now - budget.state_at).total_seconds() <= max_age
        if not fresh or budget.state_period_start != budget_period(budget, tenant_today(budget.tenant, now)).start:
            budget_evaluate(budget=budget, now=now)
    order = [Budget.State.WITHIN, Budget.State.WARNING, Budget.State.EXCEEDED]
    worst = max(budgets, key=lambda b: (order.index(b.state), b.pk))
    return {
        "state": worst.state,
        "budget": worst.name,
        "as_of": min(b.state_at for b in budgets).isoformat().replace("+00:00", "Z"),
        "max_age_seconds": max_age,
    }


# --- The ingestion hook ------------------------------------------------------------------------


def budgets_after_ingest(tenant_ids):
    """Called by ingestion with the tenants of newly stored calls: after the commit, evaluate the
    budgets of those that have any. Never raises: a broker outage must not fail ingestion."""
    try:
        ids = sorted(set(Budget.objects.filter(tenant_id__in=list(tenant_ids)).values_list("tenant_id", flat=True)))
        for tenant_id in ids:
            transaction.on_commit(partial(_enqueue_evaluation, tenant_id))
    except Exception:
        logger.exception("Could not schedule the budget evaluation of tenants %s", tenant_ids)


def _enqueue_evaluation(tenant_id):
    # Never waits on the broker (``task_publish``); an outage is logged once a minute, and beat's
    # evaluate_budgets catches up (as for the rollup recompute, ``usage.tasks.enqueue_rollup``).
    try:
        task_publish(tasks.evaluate_tenant_budgets, (tenant_id,), what=f"the budget evaluation of tenant {tenant_id}")
    except Exception as exc:  # noqa: BLE001
        log_outage("Could not enqueue the budget evaluation of tenant %s: %r", tenant_id, exc)

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
from django.db.models import Q
from django.utils import timezone

from accounts.models import Tenant
from usage.budgets import tasks
from usage.budgets.periods import budget_period
from usage.budgets.selectors import budget_status, budget_status_for_period, budgets_for_key
from usage.budgets.unpriced import unpriced_models_check
from usage.localtime import tenant_today
from usage.models import (
    MAX_BUDGET_THRESHOLDS,
    AlertDelivery,
    Budget,
    BudgetAlert,
    DeliveryQuota,
    validate_budget_thresholds,
)
from usage.outages import log_outage, task_publish

logger = logging.getLogger(__name__)


def budget_create(*, tenant, data):
    """A budget from validated form data; returns (budget, webhook secret or None)."""
    budget = Budget(tenant=tenant, **data)
    validate_budget_thresholds(budget.thresholds)
    if budget.webhook_url:
        budget.webhook_salt = secrets.token_hex(16)
    budget.save()
    return budget, (webhook_secret(budget) if budget.webhook_url else None)


def budget_update(*, budget, data):
    """Save changed fields; a new webhook URL gets a new secret, returned (else None)."""
    new_url = data.get("webhook_url") and data["webhook_url"] != budget.webhook_url
    validate_budget_thresholds(data.get("thresholds", budget.thresholds))
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
    first = first_alerting_period_start(budget)
    if status.period.start >= first:
        _fire(status, forecast=True)
    # A late call or a price change may still push the previous period over a threshold.
    previous = budget_period(budget, status.period.start - dt.timedelta(days=1))
    if previous.start >= first:
        _fire(budget_status_for_period(budget=budget, period=previous), forecast=False)
    return status


def first_alerting_period_start(budget):
    """Alerts start with the period the budget was created in: usage before it never alerts."""
    return budget_period(budget, tenant_today(budget.tenant, budget.created_at)).start


def _fire(status, *, forecast):
    # The first MAX_BUDGET_THRESHOLDS only: a budget saved before the limit (migration 0009 did not
    # change stored rows) must not fan out into hundreds of alerts either.
    for threshold in sorted(set(status.budget.thresholds))[:MAX_BUDGET_THRESHOLDS]:
        if status.reached(threshold):
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
    if deliveries:
        transaction.on_commit(partial(_dispatch_after_commit, budget.tenant_id))
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


def delivery_test_create(*, budget, channel):
    """The page's "Send test" button: a delivery without an alert, made by a worker like any other."""
    delivery = _delivery(budget, None, channel)
    transaction.on_commit(partial(_dispatch_after_commit, budget.tenant_id))
    return delivery


# --- Dispatch: deliveries go to the workers under each tenant's caps ------------------------------


def _dispatch_after_commit(tenant_id):
    try:
        deliveries_dispatch(tenant_id=tenant_id)
    except Exception:  # the sweep hands them out later; the caller (ingestion, a page) must not fail
        logger.exception("Could not dispatch the alert deliveries of tenant %s", tenant_id)


def _quota(tenant_id):
    try:
        with transaction.atomic():
            DeliveryQuota.objects.get_or_create(tenant_id=tenant_id)
    except IntegrityError:
        pass  # made by a concurrent dispatch
    return DeliveryQuota.objects.select_for_update().get(tenant_id=tenant_id)


def _due(tenant_id, now):
    return AlertDelivery.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lte=now),
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
        budget__tenant_id=tenant_id,
        status=AlertDelivery.Status.PENDING,
    )


def deliveries_dispatch(*, tenant_id, now=None):
    """Hand the tenant's due deliveries to the workers, within its caps; returns how many.

    At most BUDGET_DELIVERY_TENANT_CONCURRENCY of a tenant's deliveries are queued or running at
    once, and at most BUDGET_DELIVERY_TENANT_RATE_PER_MINUTE are handed out per minute; the rest
    wait in the database (in order) for a finished attempt or the sweep. The quota row is the
    tenant's lock, so concurrent dispatches cannot both fill the same free slot.
    """
    now = now or timezone.now()
    with transaction.atomic():
        quota = _quota(tenant_id)
        if quota.window_start <= now - dt.timedelta(minutes=1):
            quota.window_start, quota.started = now, 0
        pending = AlertDelivery.objects.filter(budget__tenant_id=tenant_id, status=AlertDelivery.Status.PENDING)
        in_flight = pending.filter(lease_until__gt=now).count()
        room = min(
            settings.BUDGET_DELIVERY_TENANT_CONCURRENCY - in_flight,
            settings.BUDGET_DELIVERY_TENANT_RATE_PER_MINUTE - quota.started,
        )
        handed = []
        if room > 0:
            for delivery in _due(tenant_id, now).order_by("created_at", "pk").select_for_update()[:room]:
                delivery.dispatch_id = uuid.uuid4()
                delivery.lease_until = now + dt.timedelta(seconds=settings.BUDGET_DELIVERY_QUEUE_LEASE_SECONDS)
                delivery.save(update_fields=["dispatch_id", "lease_until"])
                handed.append((delivery.pk, str(delivery.dispatch_id)))
        quota.started += len(handed)
        quota.save(update_fields=["window_start", "started"])
        transaction.on_commit(partial(_enqueue_deliveries, handed))
    return len(handed)


def _enqueue_deliveries(handed):
    for delivery_pk, dispatch_id in handed:
        # Never waits on the broker; a delivery not published keeps its lease until it runs out,
        # then the sweep hands it out again.
        task_publish(tasks.deliver_alert, (delivery_pk, dispatch_id), what=f"budget alert delivery {delivery_pk}")


def deliveries_sweep(*, now=None):
    """What beat runs every BUDGET_DELIVERY_SWEEP_SECONDS: every tenant with deliveries due (new,
    a back-off over, or a lease run out because a worker died mid-attempt)."""
    now = now or timezone.now()
    tenant_ids = AlertDelivery.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lte=now),
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
        status=AlertDelivery.Status.PENDING,
    ).values_list("budget__tenant_id", flat=True)
    return sum(deliveries_dispatch(tenant_id=t, now=now) for t in sorted(set(tenant_ids)))


def tenant_budgets_evaluate(*, tenant_id, now=None):
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is not None and unpriced_models_check(tenant=tenant, now=now):
        transaction.on_commit(partial(_dispatch_after_commit, tenant_id))  # its deliveries, if any
    count = 0
    for budget in Budget.objects.filter(tenant_id=tenant_id).select_related("tenant", "api_key"):
        budget_evaluate(budget=budget, now=now)
        count += 1
    return count


def budgets_evaluate_all(*, now=None):
    """What beat runs: every budget, then the deliveries due (as ``deliveries_sweep``)."""
    count = 0
    # Every tenant, with budgets or not: a model used without a price is told once to each.
    for tenant_id in Tenant.objects.values_list("pk", flat=True).order_by("pk"):
        count += tenant_budgets_evaluate(tenant_id=tenant_id, now=now)
    deliveries_sweep()
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

"""Celery tasks of budgets: thin wrappers around ``usage.budgets.services``.

Registered by ``usage.apps.UsageConfig.ready`` (autodiscovery only finds ``usage.tasks``).
"""

from celery import shared_task
from django.conf import settings


@shared_task(acks_late=True, reject_on_worker_lost=True, autoretry_for=(Exception,), retry_backoff=2, max_retries=5)
def evaluate_tenant_budgets(tenant_id):
    """Evaluate a tenant's budgets; a rerun is harmless (alerts are unique per period)."""
    from usage.budgets.services import tenant_budgets_evaluate

    return tenant_budgets_evaluate(tenant_id=tenant_id)


@shared_task
def evaluate_budgets():
    """Beat, every BUDGET_EVALUATE_SECONDS: all budgets (price changes, period changes)."""
    from usage.budgets.services import budgets_evaluate_all

    return budgets_evaluate_all()


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    # A hard stop well past the attempt's own deadline (egress.post), for a hang it cannot see.
    time_limit=settings.BUDGET_WEBHOOK_TIMEOUT_SECONDS + 30,
)
def deliver_alert(delivery_pk, dispatch_id=None):
    """One attempt of a delivery (on the ``webhooks`` queue), then the tenant's next due ones.

    Retries are not Celery retries: a failed attempt records when the next is due, and the
    dispatcher hands it out then (``services.deliveries_sweep``, beat), so the attempt count and
    the back-off live in the database and survive any worker's death.
    """
    from usage.budgets.delivery import delivery_attempt
    from usage.budgets.services import deliveries_dispatch

    outcome = delivery_attempt(delivery_pk=delivery_pk, dispatch_id=dispatch_id)
    if outcome.tenant_id is not None:
        deliveries_dispatch(tenant_id=outcome.tenant_id)
    return outcome.status


@shared_task
def dispatch_deliveries():
    """Beat, every BUDGET_DELIVERY_SWEEP_SECONDS: hand out the deliveries that are due."""
    from usage.budgets.services import deliveries_sweep

    return deliveries_sweep()

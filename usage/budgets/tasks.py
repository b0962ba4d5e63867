"""Celery tasks of budgets: thin wrappers around ``usage.budgets.services``.

Registered by ``usage.apps.UsageConfig.ready`` (autodiscovery only finds ``usage.tasks``).
"""

from celery import shared_task
from django.conf import settings

from usageproject.celery import app


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


def backoff_seconds(attempts):
    """5 s, 10 s, 20 s, ... after the n-th failed attempt, capped at BUDGET_DELIVERY_BACKOFF_MAX_SECONDS."""
    base = settings.BUDGET_DELIVERY_BACKOFF_SECONDS
    return min(base * 2 ** max(attempts - 1, 0), settings.BUDGET_DELIVERY_BACKOFF_MAX_SECONDS)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def deliver_alert(self, delivery_pk):
    """One attempt of a delivery; retried with exponential back-off until delivered or out of attempts.

    The attempt count lives in the database (it survives a killed worker, whose task is
    redelivered). Run eagerly (no broker), a failed attempt stays pending for ``evaluate_budgets``.
    """
    from usage.budgets.delivery import delivery_attempt

    outcome = delivery_attempt(delivery_pk=delivery_pk)
    if outcome.retry and not (app.conf.task_always_eager or self.request.is_eager):
        raise self.retry(countdown=backoff_seconds(outcome.attempts))
    return outcome.status

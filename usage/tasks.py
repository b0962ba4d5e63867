"""Celery tasks: thin wrappers that call the rollup and ledger services, and the debounced
enqueue of a recompute when days are marked dirty (``recompute.days_marked_dirty``)."""

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.dispatch import receiver
from django.utils import timezone

from accounts.models import Tenant
from usage import localtime
from usage.ledger import partitions, retention
from usage.models import DirtyDay
from usage.outages import log_outage, task_publish
from usage.rollups import recompute

logger = logging.getLogger(__name__)


# Rollup work survives a killed worker (redelivered, then recomputed from the ledger) and retries
# with backoff: a recompute is idempotent.
DURABLE = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (Exception,),
    "retry_backoff": 2,
    "retry_backoff_max": 120,
    "max_retries": 8,
}


@shared_task(bind=True, **DURABLE)
def rollup_tenant(self, tenant_id):
    """Recompute the tenant's dirty days. A kill mid-way leaves them dirty for the next run."""
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return 0
    return recompute.usage_rollup_dirty(tenant=tenant)


@shared_task
def sweep_dirty_rollups():
    """Beat's safety net: enqueue every tenant that still has dirty days."""
    tenant_ids = sorted(set(DirtyDay.objects.values_list("tenant_id", flat=True)))
    for tenant_id in tenant_ids:
        rollup_tenant.delay(tenant_id)
    if tenant_ids:
        logger.info("Swept dirty rollups of %d tenants", len(tenant_ids))
    return len(tenant_ids)


@shared_task(**DURABLE)
def rebuild_tenant(tenant_id):
    """Rebuild all of a tenant's rollups, e.g. after its time zone changed."""
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    return recompute.usage_rebuild(tenant=tenant) if tenant else 0


@shared_task
def ledger_partitions_ahead():
    """Beat: the ledger's partitions of this month and the next ones exist (PostgreSQL)."""
    created = partitions.ledger_partitions_ahead(now=timezone.now())
    if created:
        logger.info("Created ledger partitions %s", ", ".join(created))
    return created


@shared_task(**DURABLE)
def purge_claims():
    """After ``purge_calls``: delete the request-id claims before the purge horizon, in batches."""
    deleted = retention.claims_purge()
    if deleted:
        logger.info("Deleted %d request-id claims of purged months", deleted)
    return deleted


@shared_task
def purge_calls():
    """Beat (when CALL_RETENTION_MONTHS is set): purge call detail older than the retention."""
    if settings.CALL_RETENTION_MONTHS < 1:
        return 0
    summary = retention.calls_purge(older_than_months=settings.CALL_RETENTION_MONTHS)
    if summary.calls or summary.partitions:
        logger.info("Purged %d calls before %s", summary.calls, summary.before.date())
    return summary.calls


@shared_task(**DURABLE)
def warehouse_export():
    """Beat (when WAREHOUSE_BUCKET is set): the last WAREHOUSE_DAYS_BACK closed days of every
    tenant to the warehouse; complete partitions are skipped, so a retry only redoes the rest."""
    from usage import warehouse

    if not settings.WAREHOUSE_BUCKET:
        return (0, 0)
    written, skipped = 0, 0
    for tenant in Tenant.objects.order_by("slug"):
        today = localtime.tenant_today(tenant)
        start = today - timedelta(days=settings.WAREHOUSE_DAYS_BACK)
        result = warehouse.warehouse_export(
            tenants=[tenant], bucket=settings.WAREHOUSE_BUCKET, prefix=settings.WAREHOUSE_PREFIX, start=start
        )
        written, skipped = written + result[0], skipped + result[1]
    logger.info("Warehouse export: %d partitions written, %d already complete", written, skipped)
    return (written, skipped)


DEBOUNCE_SECONDS = 2


@receiver(recompute.days_marked_dirty)
def _enqueue_after_marks(sender, tenant_id, **kwargs):
    enqueue_rollup(tenant_id)


def enqueue_rollup(tenant_id):
    """Enqueue the tenant's recompute once per burst: later marks ride on the queued task.

    The countdown equals the debounce window, so a mark that finds the window taken was
    committed before the queued task starts and is read by it. Runs after the marks committed:
    if the broker or the cache is down, the marks stay and the beat sweep enqueues them later,
    so the outage is logged (once per ``OUTAGE_LOG_SECONDS``) and never raised to the writer.
    """
    try:
        if rollup_tenant.app.conf.task_always_eager:
            rollup_tenant.delay(tenant_id)
        elif cache.add(f"rollup-queued:{tenant_id}", 1, timeout=DEBOUNCE_SECONDS):
            task_publish(
                rollup_tenant, (tenant_id,), countdown=DEBOUNCE_SECONDS, what=f"the rollup of tenant {tenant_id}"
            )
    except Exception as exc:  # noqa: BLE001 - any broker/cache failure: the sweep catches up
        log_outage("Could not enqueue the rollup of tenant %s (the sweep will): %r", tenant_id, exc)


def enqueue_claims_purge() -> bool:
    """Hand the claims to the worker; False when they must be deleted here (no worker to run the
    task, an outer transaction the task could not see yet, or the broker unreachable)."""
    if purge_claims.app.conf.task_always_eager or connection.in_atomic_block:
        return False
    try:
        purge_claims.delay()
    except Exception:  # noqa: BLE001 (kombu's errors of an unreachable broker vary by transport)
        logger.warning("Broker unreachable: deleting the purged months' request-id claims now", exc_info=True)
        return False
    return True

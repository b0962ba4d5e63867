"""Rollups: daily and hourly usage per (tenant, key, model), recomputed from the ledger.

Contract for writers of the ledger: inside the transaction that inserts calls, call
``mark_days_dirty(tenant=..., days=...)`` with the tenant's local days those calls fall on
(``local_day(tenant, instant)`` gives one). On commit a debounced Celery task recomputes them.
"""

import uuid

from django.db import transaction
from django.utils import timezone

from .models import DirtyDay


def local_day(tenant, instant):
    """The tenant's local date of an aware instant."""
    return instant.astimezone(tenant.tz).date()


def mark_days_dirty(*, tenant, days):
    """Mark ``days`` (local dates) of ``tenant`` stale and enqueue their recompute on commit."""
    days = sorted(set(days))
    if not days:
        return
    token = uuid.uuid4().hex
    now = timezone.now()
    DirtyDay.objects.bulk_create(
        [DirtyDay(tenant_id=tenant.pk, day=day, token=token, marked_at=now) for day in days],
        update_conflicts=True,
        unique_fields=["tenant", "day"],
        update_fields=["token", "marked_at"],
    )
    tenant_id = tenant.pk
    transaction.on_commit(lambda: enqueue_rollup(tenant_id))


def enqueue_rollup(tenant_id):
    """Placeholder until the rollup task lands: nothing is enqueued yet."""

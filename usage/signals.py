"""Signal handlers: SQLite helper functions for the rollup SQL, and rebuilds on a zone change."""

import datetime as dt

from django.db import connection, transaction
from django.db.backends.signals import connection_created
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from accounts.models import Tenant

from . import increments, rollups
from .increments import zone as _zone


def _parse_utc(value):
    return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)


def local_hour_start(value, zone_name):
    """UTC instant at which the local hour containing ``value`` began (fold-safe)."""
    if value is None:
        return None
    return increments.local_hour_start(_parse_utc(value), _zone(zone_name)).strftime("%Y-%m-%d %H:%M:%S")


def local_date(value, zone_name):
    if value is None:
        return None
    return _parse_utc(value).astimezone(_zone(zone_name)).date().isoformat()


@receiver(connection_created)
def register_sqlite_functions(sender, connection, **kwargs):
    if connection.vendor == "sqlite":
        connection.connection.create_function("usage_local_hour", 2, local_hour_start, deterministic=True)
        connection.connection.create_function("usage_local_date", 2, local_date, deterministic=True)


@receiver(pre_save, sender=Tenant)
def remember_old_timezone(sender, instance, **kwargs):
    instance._previous_timezone = (
        Tenant.objects.filter(pk=instance.pk).values_list("timezone", flat=True).first() if instance.pk else None
    )


@receiver(post_save, sender=Tenant)
def recompute_after_timezone_change(sender, instance, created, **kwargs):
    """Local days move with the zone: every day with calls is marked dirty in the same transaction.

    Reads then come from the ledger (exact in the new zone) until the rollup task, its retries
    and the beat sweep have recomputed each day; old buckets are replaced as days are redone.
    A day either side is included because the old zone's dates differ by at most one.

    The tenant's rollup lock is taken exclusively first: a batch that read the old zone has
    committed by then (its calls are in the range read here), and later batches see the new one.
    """
    previous = getattr(instance, "_previous_timezone", None)
    if created or previous is None or previous == instance.timezone:
        return
    with transaction.atomic(), connection.cursor() as cursor:
        increments.lock_tenant_exclusive(cursor, instance.pk)
        bounds = rollups.ledger_day_range(tenant=instance)
        if bounds is not None:
            first, last = bounds[0] - dt.timedelta(days=1), bounds[1] + dt.timedelta(days=1)
            days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
            rollups.mark_days_dirty(tenant=instance, days=days)
        rollups.usage_resum_purged_days(tenant=instance)

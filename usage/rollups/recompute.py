"""Rollups: hourly and daily usage per (tenant, key, model), kept exact as calls arrive.

Ingestion adds each stored call to its buckets in the transaction that stores it
(``usage.rollups.increments``), so rollups need no recompute to be fresh. The full recompute here is
for what increments cannot do: a change of the tenant's time zone (every local day moves),
a repair, and ``rebuild_rollups``. A day that needs one is marked with ``mark_days_dirty``; until
it is recomputed, reads aggregate that day from the ledger, and a debounced Celery task (with
retries and the beat sweep as safety nets) recomputes it.

A recompute deletes the buckets of a range of local days and inserts them again from the
ledger with one ``INSERT .. SELECT .. GROUP BY`` per table, under the tenant's exclusive rollup
lock (increments hold it shared), so a rerun, a duplicate task or a crash half-way (the
transaction rolls back, the day stays dirty) always ends in the right answer, and its result
equals the increments' row for row. Hourly buckets are local hours (``hour`` is the instant the
local hour starts, so +05:30 zones and the repeated hour of a DST change stay apart); daily
buckets are summed from the hourly ones by local date, and a per-model daily table sums those
over keys for the "All keys" reads.

Before the retention horizon (``usage.ledger.retention``) the ledger is gone and the hourly buckets are
the record: a recompute rebuilds hourly buckets only from the first local hour at or after the
horizon, and daily buckets, as always, from the hourly ones, so a rebuild or a zone change never
wipes a purged day. Days that start before the horizon are never marked dirty (a dirty day is
read from the ledger); after a zone change they are re-summed from their hourly buckets at once.
Hourly buckets before the horizon keep the old zone's hour starts (the same instants for zones
a whole number of hours apart).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import QuerySet
from django.dispatch import Signal
from django.utils import timezone

from usage.ledger.retention import detail_available_from, purge_horizon
from usage.localtime import (
    SqlAndParams,
    consecutive_ranges,
    day_span,
    local_date_sql,
    local_day,
    local_hour_sql,
    local_hour_start,
    local_midnight,
)
from usage.models import (
    CallRecord,
    DirtyDay,
    PerformanceHourly,
    UsageDaily,
    UsageDailyModel,
    UsageHourly,
    UsagePricingClass,
)
from usage.rollups import performance, pricing
from usage.rollups.increments import lock_tenant_exclusive

if TYPE_CHECKING:
    from accounts.models import Tenant

logger = logging.getLogger(__name__)

# Sent after a transaction that marked days dirty commits, with ``tenant_id``: ``usage.tasks``
# enqueues the recompute (this module never imports the tasks that call it).
days_marked_dirty = Signal()


def mark_days_dirty(*, tenant: Tenant, days: Iterable[dt.date]) -> None:
    """Mark ``days`` (local dates) of ``tenant`` stale and enqueue their recompute on commit."""
    available_from = detail_available_from(tenant)
    days = sorted(day for day in set(days) if available_from is None or day >= available_from)
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
    transaction.on_commit(lambda: days_marked_dirty.send(sender=DirtyDay, tenant_id=tenant_id))


# --- SQL ---------------------------------------------------------------------------------

_TABLES = {
    "ledger": CallRecord._meta.db_table,
    "hourly": UsageHourly._meta.db_table,
    "daily": UsageDaily._meta.db_table,
    "daily_model": UsageDailyModel._meta.db_table,
}

_SUMS = (
    "SUM(input_tokens), SUM(output_tokens), SUM(cached_input_tokens), SUM(reasoning_tokens), "
    "SUM(cache_creation_input_tokens), SUM(cache_creation_1h_input_tokens)"
)
_COUNTS = (
    "input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, "
    "cache_creation_input_tokens, cache_creation_1h_input_tokens"
)
_COLUMNS = "tenant_id, api_key_id, model_id, {bucket}, calls, " + _COUNTS


def _instant_params(start: dt.datetime, end: dt.datetime) -> list[Any]:
    """Raw SQL gets instants the way the ORM stores them (SQLite: naive UTC text)."""
    adapt = connection.ops.adapt_datetimefield_value
    return [adapt(start), adapt(end)]


def _insert_grouped(
    cursor: CursorWrapper,
    tenant: Tenant,
    start: dt.datetime,
    end: dt.datetime,
    *,
    target: str,
    bucket: tuple[str, SqlAndParams],
    source: str,
    time_column: str,
    calls: str,
) -> None:
    """INSERT the buckets of ``target`` summed from ``source`` rows whose ``time_column`` lies in [start, end)."""
    bucket_name, (bucket_sql, params) = bucket
    cursor.execute(
        f"INSERT INTO {_TABLES[target]} ({_COLUMNS.format(bucket=bucket_name)}) "
        f"SELECT tenant_id, api_key_id, model_id, {bucket_sql}, {calls}, {_SUMS} "
        f"FROM {_TABLES[source]} WHERE tenant_id = %s AND {time_column} >= %s AND {time_column} < %s "
        "GROUP BY tenant_id, api_key_id, model_id, 4",
        [*params, tenant.pk, *_instant_params(start, end)],
    )


def _insert_hourly(cursor: CursorWrapper, tenant: Tenant, start: dt.datetime, end: dt.datetime) -> None:
    bucket = ("hour", local_hour_sql("occurred_at", tenant.timezone))
    _insert_grouped(
        cursor, tenant, start, end, target="hourly", bucket=bucket, source="ledger", time_column="occurred_at",
        calls="COUNT(*)",
    )  # fmt: skip


def _insert_performance(cursor: CursorWrapper, tenant: Tenant, start: dt.datetime, end: dt.datetime) -> None:
    hour, hour_params = local_hour_sql("occurred_at", tenant.timezone)
    params = [*hour_params, tenant.pk, *_instant_params(start, end)]
    cursor.execute(performance.recompute_sql(connection.vendor, hour=hour), params * 4)


def _insert_daily(cursor: CursorWrapper, tenant: Tenant, start: dt.datetime, end: dt.datetime) -> None:
    bucket = ("day", local_date_sql("hour", tenant.timezone))
    _insert_grouped(
        cursor, tenant, start, end, target="daily", bucket=bucket, source="hourly", time_column="hour",
        calls="SUM(calls)",
    )  # fmt: skip


def _insert_daily_model(cursor: CursorWrapper, tenant: Tenant, first_day: dt.date, last_day: dt.date) -> None:
    cursor.execute(
        f"INSERT INTO {_TABLES['daily_model']} (tenant_id, model_id, day, calls, {_COUNTS}) "
        f"SELECT tenant_id, model_id, day, SUM(calls), {_SUMS} FROM {_TABLES['daily']} "
        "WHERE tenant_id = %s AND day >= %s AND day <= %s GROUP BY tenant_id, model_id, day",
        [tenant.pk, connection.ops.adapt_datefield_value(first_day), connection.ops.adapt_datefield_value(last_day)],
    )


# --- Recompute ---------------------------------------------------------------------------


def usage_rollup_days(*, tenant: Tenant, first_day: dt.date, last_day: dt.date) -> None:
    """Recompute the hourly and daily buckets of local days first_day..last_day inclusive.

    Dirty marks of those days are cleared only if no ingestion re-marked them meanwhile. Hourly
    buckets before the retention horizon are kept (see the module doc).
    """
    start, end = day_span(tenant, first_day, last_day)
    hourly_start = max(start, _first_hour_in_ledger(tenant))
    with transaction.atomic(), connection.cursor() as cursor:
        lock_tenant_exclusive(cursor, tenant.pk)
        marks = list(
            DirtyDay.objects.filter(tenant=tenant, day__range=(first_day, last_day)).values_list("pk", "token")
        )
        if hourly_start < end:
            UsageHourly.objects.filter(tenant=tenant, hour__gte=hourly_start, hour__lt=end).delete()
            _insert_hourly(cursor, tenant, hourly_start, end)
            PerformanceHourly.objects.filter(tenant=tenant, hour__gte=hourly_start, hour__lt=end).delete()
            _insert_performance(cursor, tenant, hourly_start, end)
            pricing.recompute(cursor, tenant=tenant, start=hourly_start, end=end)
        UsageDaily.objects.filter(tenant=tenant, day__range=(first_day, last_day)).delete()
        _insert_daily(cursor, tenant, start, end)
        UsageDailyModel.objects.filter(tenant=tenant, day__range=(first_day, last_day)).delete()
        _insert_daily_model(cursor, tenant, first_day, last_day)
        for pk, token in marks:
            DirtyDay.objects.filter(pk=pk, token=token).delete()


def _first_hour_in_ledger(tenant: Tenant) -> dt.datetime:
    """The first of the tenant's local hours whose calls are all in the ledger (the horizon, or the
    next local hour start after it in a zone like +05:30)."""
    horizon = purge_horizon()
    if horizon is None:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    hour = local_hour_start(horizon, tenant.tz)
    return hour if hour >= horizon else hour + dt.timedelta(hours=1)


def usage_resum_purged_days(*, tenant: Tenant) -> None:
    """Re-sum the daily buckets of days before call detail is available from their hourly buckets
    (after a zone change: their local dates moved). Touches no hourly bucket and no ledger."""
    available_from = detail_available_from(tenant)
    first = UsageHourly.objects.filter(tenant=tenant).order_by("hour").values_list("hour", flat=True).first()
    if available_from is None or first is None:
        return
    first_day = local_day(tenant, first)
    if first_day < available_from:
        usage_rollup_days(tenant=tenant, first_day=first_day, last_day=available_from - dt.timedelta(days=1))


def usage_rollup_dirty(*, tenant: Tenant, chunk_days: int = 31) -> int:
    """Recompute every dirty day of the tenant, in transactions of at most ``chunk_days`` days.

    A range that fails does not stop the others: each is tried, then the first error is raised
    (so the task retries) once the rest are done. Returns how many days were recomputed.
    """
    days = list(DirtyDay.objects.filter(tenant=tenant).values_list("day", flat=True))
    failed, done = None, 0
    for first_day, last_day in consecutive_ranges(days):
        while first_day <= last_day:
            chunk_end = min(first_day + dt.timedelta(days=chunk_days - 1), last_day)
            try:
                usage_rollup_days(tenant=tenant, first_day=first_day, last_day=chunk_end)
                done += (chunk_end - first_day).days + 1
            except Exception as exc:
                logger.exception("Recompute of tenant %s days %s..%s failed", tenant.pk, first_day, chunk_end)
                failed = failed or exc
            first_day = chunk_end + dt.timedelta(days=1)
    if failed is not None:
        raise failed
    return done


def ledger_day_range(*, tenant: Tenant) -> tuple[dt.date, dt.date] | None:
    """First and last local day with calls, or None when the tenant has none."""
    bounds = CallRecord.objects.filter(tenant=tenant).order_by("occurred_at").values_list("occurred_at", flat=True)
    first, last = bounds.first(), bounds.last()
    if first is None or last is None:
        return None
    return local_day(tenant, first), local_day(tenant, last)


def usage_rebuild(
    *,
    tenant: Tenant,
    first_day: dt.date | None = None,
    last_day: dt.date | None = None,
    chunk_days: int = 7,
    progress: Callable[[int], object] | None = None,
) -> int:
    """Rebuild a tenant's rollups over a range (default: all its ledger), in chunks of days.

    Buckets outside the ledger's range (e.g. left from a previous time zone) are removed.
    ``progress`` is called with the number of days done after each chunk.
    """
    bounds = ledger_day_range(tenant=tenant)
    available_from = detail_available_from(tenant)
    if first_day is None and last_day is None:
        _drop_rollups_outside(tenant, bounds, available_from)
    if bounds is None:
        return 0
    first_day, last_day = first_day or bounds[0], last_day or bounds[1]
    if available_from is not None:
        first_day = max(first_day, available_from)
    day, done = first_day, 0
    while day <= last_day:
        chunk_end = min(day + dt.timedelta(days=chunk_days - 1), last_day)
        usage_rollup_days(tenant=tenant, first_day=day, last_day=chunk_end)
        done += (chunk_end - day).days + 1
        if progress:
            progress((chunk_end - day).days + 1)
        day = chunk_end + dt.timedelta(days=1)
    return done


def _drop_rollups_outside(
    tenant: Tenant, bounds: tuple[dt.date, dt.date] | None, available_from: dt.date | None
) -> None:
    """Remove buckets of days without calls, except those before the horizon (the only record left)."""
    hourly: list[QuerySet[Any]] = [
        UsageHourly.objects.filter(tenant=tenant),
        PerformanceHourly.objects.filter(tenant=tenant),
    ]
    daily: list[QuerySet[Any]] = [
        UsageDaily.objects.filter(tenant=tenant),
        UsageDailyModel.objects.filter(tenant=tenant),
        UsagePricingClass.objects.filter(tenant=tenant),
    ]
    if available_from is not None:
        hourly = [queryset.filter(hour__gte=local_midnight(tenant, available_from)) for queryset in hourly]
        daily = [queryset.filter(day__gte=available_from) for queryset in daily]
    if bounds is not None:
        start, end = day_span(tenant, *bounds)
        hourly = [queryset.exclude(hour__gte=start, hour__lt=end) for queryset in hourly]
        daily = [queryset.exclude(day__range=bounds) for queryset in daily]
    for queryset in [*hourly, *daily]:
        queryset.delete()


def tenant_zone_changed(*, tenant: Tenant) -> None:
    """Local days move with the zone: every day with calls is marked dirty in one transaction.

    Reads then come from the ledger (exact in the new zone) until the rollup task, its retries
    and the beat sweep have recomputed each day; old buckets are replaced as days are redone.
    A day either side is included because the old zone's dates differ by at most one.

    The tenant's rollup lock is taken exclusively first: a batch that read the old zone has
    committed by then (its calls are in the range read here), and later batches see the new one.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        lock_tenant_exclusive(cursor, tenant.pk)
        bounds = ledger_day_range(tenant=tenant)
        if bounds is not None:
            first, last = bounds[0] - dt.timedelta(days=1), bounds[1] + dt.timedelta(days=1)
            mark_days_dirty(tenant=tenant, days=[first + dt.timedelta(days=n) for n in range((last - first).days + 1)])
        usage_resum_purged_days(tenant=tenant)

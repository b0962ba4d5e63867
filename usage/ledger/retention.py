"""Retention of call-level detail: purge whole months of the ledger, keep the rollups.

``calls_purge`` removes every call before a UTC month start (the *horizon*): on PostgreSQL by
dropping the months' partitions (instant, frees the disk at once), on SQLite by deleting in
bounded batches. The rollups keep every day's totals, so the page, the API, the CSV and the
reports still show purged months exactly. The horizon is recorded (``CallPurge``) before
anything is removed, and from then on:

- ingestion rejects calls before it (their claims are gone, so a re-sent call could not be
  recognised as a duplicate and would count twice);
- a recompute never rebuilds a local day that starts before it (it would read an empty ledger
  and wipe the day's totals), and such days are never marked dirty;
- the ledger API answers requests for days before it with 410 and the date detail starts from.

The claims (``CallRequest``) of purged calls are deleted after the partitions, in batches: by the
worker when ``purge_calls`` hands them over (``claims_later``), otherwise before returning.
"""

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import Min
from django.utils import timezone

from accounts.models import Tenant
from usage.ledger import partitions
from usage.models import CallPurge, CallRecord, CallRequest

BATCH_SIZE = 20_000
Progress = Callable[[int], object]  # called with the calls deleted so far
logger = logging.getLogger(__name__)


def purge_horizon() -> dt.datetime | None:
    """The instant before which call-level detail was purged, or None."""
    return CallPurge.objects.order_by("-purged_before").values_list("purged_before", flat=True).first()


def detail_available_from(tenant: Tenant, horizon: dt.datetime | None = None) -> dt.date | None:
    """The tenant's first local day whose calls are all in the ledger, or None if none was purged."""
    horizon = horizon or purge_horizon()
    if horizon is None:
        return None
    local = horizon.astimezone(tenant.tz)
    day = local.date()
    if local.replace(tzinfo=None) != dt.datetime.combine(day, dt.time.min):
        day += dt.timedelta(days=1)  # the local day around the horizon is partly purged
    return day


@dataclass
class PurgeSummary:
    before: dt.datetime
    dry_run: bool
    calls: int = 0
    partitions: list[str] = field(default_factory=list)
    claims: int | None = 0  # None: left to the worker (``claims_purge``)
    seconds: float = 0.0  # the ledger's part (drop or deletes), not the claims' cleanup
    estimated: bool = False  # ``calls`` includes a partition's row estimate (PostgreSQL)


def purge_before(*, older_than_months: int, now: dt.datetime | None = None) -> dt.datetime:
    """The horizon of ``purge_calls --older-than N``: the start of the UTC month N months ago."""
    return partitions.add_months(partitions.month_start(now or timezone.now()), -older_than_months)


def calls_purge(
    *,
    older_than_months: int,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
    claims_later: Callable[[], bool] | None = None,
) -> PurgeSummary:
    """Purge the calls of whole UTC months older than ``older_than_months`` before the current one.

    ``progress(done_calls)`` is called as batches go. Returns a ``PurgeSummary``.

    ``claims_later``: a function that hands the request-id claims of the purged months to the
    worker (``usage.tasks.enqueue_claims_purge``), True when it did; then they are deleted there
    instead of before returning. They are inert once the horizon
    is recorded (ingestion rejects calls before it before claiming), and deleting millions of them
    takes far longer than dropping their partitions (BENCHMARKS.md "Scale"). With the broker
    unreachable they are deleted here after all.
    """
    if older_than_months < 1:
        raise ValueError("older_than_months must be at least 1")
    summary = PurgeSummary(before=purge_before(older_than_months=older_than_months, now=now), dry_run=dry_run)
    started = time.perf_counter()
    if partitions.partitioned():
        _drop_partitions(summary)
    else:
        _delete_calls(summary, progress, batch_size)
    summary.seconds = time.perf_counter() - started
    if dry_run:
        return summary
    if claims_later is not None and claims_later():
        summary.claims = None
    else:
        summary.claims = _delete_claims(summary.before, batch_size)
    return summary


def claims_purge(batch_size: int = BATCH_SIZE) -> int:
    """Delete the request-id claims before the purge horizon, in batches; how many. Idempotent."""
    horizon = purge_horizon()
    return 0 if horizon is None else _delete_claims(horizon, batch_size)


def _drop_partitions(summary: PurgeSummary) -> None:
    if not summary.dry_run:
        partitions.partitions_split_default()  # old rows that landed there are dropped with their month
    with transaction.atomic(), connection.cursor() as cursor:
        old = [
            name for month, name in partitions.partitions_list(cursor) if partitions.next_month(month) <= summary.before
        ]
        for name in old:
            summary.calls += _partition_rows(cursor, name, summary)
        summary.partitions = old
        if summary.dry_run:
            return
        _record(summary)
        # Deferred key checks still queued for these rows (only when called inside an outer
        # transaction that wrote them, e.g. a test) would forbid the DROP: run them now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for name in old:
            cursor.execute(f"DROP TABLE {name}")


# Below this many rows (by the planner's estimate) a partition is counted exactly: quick, and an
# estimate taken while the month was nearly empty may be far off for a small month.
COUNT_BELOW = 100_000


def _partition_rows(cursor: CursorWrapper, name: str, summary: PurgeSummary) -> int:
    """The planner's row count of a big partition once it was analysed (a month past is, by
    autovacuum); an exact count otherwise. Counting a month of a big platform would take longer
    than the drop (0.8 s for 3.4M calls, BENCHMARKS.md "Scale")."""
    cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [name])
    estimate = cursor.fetchone()[0]
    if estimate >= COUNT_BELOW:
        summary.estimated = True
        return estimate
    cursor.execute(f"SELECT count(*) FROM {name}")
    return cursor.fetchone()[0]


def _delete_calls(summary: PurgeSummary, progress: Progress | None, batch_size: int) -> None:
    old = CallRecord.objects.filter(occurred_at__lt=summary.before)
    summary.calls = old.count()
    if summary.dry_run:
        return
    _record(summary)
    done = 0
    while True:
        with transaction.atomic():
            ids = list(old.order_by("pk").values_list("pk", flat=True)[:batch_size])
            if not ids:
                break
            CallRecord.objects.filter(pk__in=ids).delete()
        done += len(ids)
        if progress:
            progress(done)


def _record(summary: PurgeSummary) -> None:
    horizon = purge_horizon()
    if horizon is None or horizon < summary.before:
        CallPurge.objects.create(purged_before=summary.before, calls=summary.calls, partitions=summary.partitions)


_FIRST_WINDOW = dt.timedelta(hours=1)
_WIDEST_WINDOW = dt.timedelta(days=31)
_NARROWEST_WINDOW = dt.timedelta(seconds=1)


def _delete_claims(before: dt.datetime, batch_size: int) -> int:
    """Delete the claims before ``before``: at most ``batch_size`` a transaction, window by window
    of ``occurred_at``, from the earliest claim on. How many.

    On PostgreSQL the claims' time index is a BRIN index (cheap to keep up on every stored call),
    which narrows a scan to page ranges rather than rows: a LIMIT-batched delete over the whole span
    would read the same ranges again on every batch. A window is read again only while it still
    holds a full batch; it narrows when it does, and widens across sparse or empty stretches.
    """
    table = CallRequest._meta.db_table
    batch = f"SELECT {{row}} FROM {table} WHERE occurred_at >= %s AND occurred_at < %s LIMIT %s"
    if connection.vendor == "postgresql":  # = ANY(ARRAY(..)): a TID scan, not a join
        sql = f"DELETE FROM {table} WHERE ctid = ANY(ARRAY({batch.format(row='ctid')}))"
    else:
        sql = f"DELETE FROM {table} WHERE rowid IN ({batch.format(row='rowid')})"
    adapt = connection.ops.adapt_datetimefield_value
    _summarise_time_index()
    with transaction.atomic():
        _through_the_time_index()
        earliest = CallRequest.objects.filter(occurred_at__lt=before).aggregate(first=Min("occurred_at"))["first"]
    total, start, width = 0, earliest, _FIRST_WINDOW
    while start is not None and start < before:
        end = min(start + width, before)
        with transaction.atomic(), connection.cursor() as cursor:
            _through_the_time_index()
            cursor.execute(sql, [adapt(start), adapt(end), batch_size])
            deleted = cursor.rowcount
        total += deleted
        if deleted >= batch_size:  # the window may hold more: again, narrower
            width = max(width / 2, _NARROWEST_WINDOW)
            continue
        start = end
        if deleted < batch_size // 4:
            width = min(width * 2, _WIDEST_WINDOW)
    return total


def _summarise_time_index() -> None:
    """PostgreSQL: summarise the page ranges of the claims' BRIN index filled since it last was
    (autosummarize lags behind a fast import); an unsummarised range matches every window. Once
    before the windows: deleting adds no ranges."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT brin_summarize_new_values('callrequest_time')")


def _through_the_time_index() -> None:
    """PostgreSQL, for the current transaction: read the claims through their BRIN index. With a
    LIMIT the planner may prefer a sequential scan that stops at the batch's last row, which here
    means reading the whole table when the window's claims lie at its end (an older month
    imported last)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")

"""Monthly partitions of the ledger on PostgreSQL (SQLite keeps one plain table).

``usage_callrecord`` is range-partitioned on ``occurred_at`` by UTC month, one table per month
named ``usage_callrecord_yYYYYmMM``. The beat creates the current month and
``LEDGER_PARTITIONS_AHEAD`` months ahead (``ledger_partitions_ahead``), so the live path finds
them; a backfill into an older month creates it on demand (``partitions_ensure``, which the
ingestion services call before every insert: one catalog query per batch). A creation takes a
short exclusive lock on the parent, so it runs in its own transaction whenever the writer is not
inside an outer one.

Any other writer (an ORM ``create``, a script) never fails either: a DEFAULT partition takes
rows of months that have no partition yet, and the beat (or the next ``partitions_ensure`` of
that month) splits them out into their month's partition in one transaction.
"""

import datetime as dt
import re
from collections.abc import Iterable

from django.conf import settings
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper

LOCK_NAMESPACE = 0x5550  # "UP": advisory lock of partition creation
TABLE = "usage_callrecord"
DEFAULT = f"{TABLE}_default"
_NAME = re.compile(rf"{TABLE}_y(\d{{4}})m(\d{{2}})\Z")


def partitioned() -> bool:
    return connection.vendor == "postgresql"


def month_start(instant: dt.datetime) -> dt.datetime:
    """The UTC instant at which the UTC month of ``instant`` starts."""
    instant = instant.astimezone(dt.UTC)
    return dt.datetime(instant.year, instant.month, 1, tzinfo=dt.UTC)


def next_month(month: dt.datetime) -> dt.datetime:
    return dt.datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=dt.UTC)


def add_months(month: dt.datetime, count: int) -> dt.datetime:
    index = month.year * 12 + month.month - 1 + count
    return dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=dt.UTC)


def partition_name(month: dt.datetime) -> str:
    return f"{TABLE}_y{month.year:04d}m{month.month:02d}"


def create_sql(month: dt.datetime) -> str:
    """DDL of one month's partition (also used by migration 0006)."""
    return (
        f"CREATE TABLE IF NOT EXISTS {partition_name(month)} PARTITION OF {TABLE} "
        f"FOR VALUES FROM ('{month.isoformat()}') TO ('{next_month(month).isoformat()}')"
    )


def default_sql() -> str:
    return f"CREATE TABLE IF NOT EXISTS {DEFAULT} PARTITION OF {TABLE} DEFAULT"


def _create(cursor: CursorWrapper, month: dt.datetime) -> None:
    """Create one month's partition, moving its rows out of the DEFAULT partition if it has some."""
    bounds = [month, next_month(month)]
    cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {DEFAULT} WHERE occurred_at >= %s AND occurred_at < %s)", bounds)
    if not cursor.fetchone()[0]:
        cursor.execute(create_sql(month))
        return
    name = partition_name(month)
    cursor.execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    cursor.execute(
        f"WITH moved AS (DELETE FROM {DEFAULT} WHERE occurred_at >= %s AND occurred_at < %s RETURNING *)"
        f" INSERT INTO {name} SELECT * FROM moved",
        bounds,
    )
    cursor.execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)", bounds)


def partitions_split_default() -> list[str]:
    """Move rows that landed in the DEFAULT partition into their months' partitions."""
    if not partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC') FROM {DEFAULT}")
        months = [value.replace(tzinfo=dt.UTC) for (value,) in cursor.fetchall()]
    return partitions_ensure(months)


def partitions_list(cursor: CursorWrapper) -> list[tuple[dt.datetime, str]]:
    """[(month start, partition name)] of the ledger's partitions, oldest first."""
    cursor.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
        [TABLE],
    )
    found = []
    for (name,) in cursor.fetchall():
        match = _NAME.match(name)
        if match:
            found.append((dt.datetime(int(match[1]), int(match[2]), 1, tzinfo=dt.UTC), name))
    return sorted(found)


def _months_of(instants: Iterable[dt.datetime]) -> list[dt.datetime]:
    """The UTC month starts of ``instants``, sorted. An import chunk holds tens of thousands of
    instants, mostly of one month: when its earliest and latest share a month, that is the answer."""
    instants = list(instants)
    if not instants:
        return []
    earliest, latest = month_start(min(instants)), month_start(max(instants))
    if earliest == latest:
        return [earliest]
    return sorted({month_start(instant) for instant in instants})


def partitions_ensure(instants: Iterable[dt.datetime]) -> list[str]:
    """Create the partitions the given instants fall in, if missing. Returns the names created.

    Safe under concurrency: creators serialise on an advisory lock and re-check.
    """
    if not partitioned():
        return []
    months = _months_of(instants)
    if not months:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n FROM unnest(%s::text[]) AS n WHERE to_regclass(n) IS NULL", [[partition_name(m) for m in months]]
        )
        missing = {name for (name,) in cursor.fetchall()}
    if not missing:
        return []
    created = []
    with transaction.atomic(), connection.cursor() as cursor:
        for month in months:
            name = partition_name(month)
            if name not in missing:
                continue
            # One lock for all months: creators of two months would otherwise each hold one of the
            # parent's and the DEFAULT partition's exclusive locks and wait for the other.
            cursor.execute("SELECT pg_advisory_xact_lock(%s, 0)", [LOCK_NAMESPACE])
            cursor.execute("SELECT to_regclass(%s)", [name])
            if cursor.fetchone()[0] is None:
                _create(cursor, month)
                created.append(name)
    return created


def ledger_partitions_ahead(*, now: dt.datetime, months: int | None = None) -> list[str]:
    """The beat's job: partitions of the current UTC month and ``months`` ahead exist."""
    months = settings.LEDGER_PARTITIONS_AHEAD if months is None else months
    current = month_start(now)
    return partitions_split_default() + partitions_ensure([add_months(current, n) for n in range(months + 1)])

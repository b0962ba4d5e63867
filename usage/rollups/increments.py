"""Rollup increments: the buckets of newly stored calls, added in the transaction that stores them.

Ingestion inserts calls with ``ON CONFLICT DO NOTHING RETURNING``; only the rows that insert
really stored are summed into hourly buckets (tenant, key, model, local hour) and those into the
daily and per-model daily buckets, each with one ``INSERT .. ON CONFLICT DO UPDATE`` that adds
the sums. A duplicate stores nothing and so adds nothing; a crash rolls the calls and their
increments back together. So the rollups are exact at every commit, and a read never touches
the ledger, whatever the size of the day.

Concurrency (PostgreSQL): writers of a tenant's calls hold the tenant's advisory lock in shared
mode, the full recompute (``usage.rollups.recompute.usage_rollup_days``) and a zone change hold it
exclusively; so a recompute never interleaves with increments. Concurrent batches of one tenant
update the same bucket rows: each statement takes its rows in one global order (hourly, then
daily, then per-model daily; sorted within each), so they wait for each other but never deadlock.

Each per-model daily row carries a ``revision`` bumped by every increment: with the newest id
and the row count it versions a range of days for the caches (``selectors.usage_versions``).
"""

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

import psycopg
from django.db import connection, models
from django.db.backends.utils import CursorWrapper

from usage.localtime import local_hour_start, zone
from usage.models import UsageDaily, UsageDailyModel, UsageHourly

LOCK_NAMESPACE = 0x5553  # "US": the first key of every advisory lock on a tenant's rollups

# [calls, input, output, cached or None, reasoning or None]: None while no call reported the count.
Sums = list[Any]
HourKey = tuple[int, int, int, dt.datetime, dt.date]  # tenant, key, model, hour start (UTC), local date
Buckets = Mapping[HourKey, Sums]


def lock_tenants_shared(tenant_ids: Collection[int]) -> None:
    """Hold each tenant's rollup lock in shared mode until the transaction ends (PostgreSQL).

    Sorted, so writers and a recompute that lock several tenants always lock in one order.
    """
    if connection.vendor != "postgresql" or not tenant_ids:
        return
    with connection.cursor() as cursor:
        for tenant_id in sorted(tenant_ids):
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", [LOCK_NAMESPACE, tenant_id])


def lock_tenant_exclusive(cursor: CursorWrapper, tenant_id: int) -> None:
    """Hold the tenant's rollup lock exclusively: no increment of its buckets runs meanwhile."""
    if connection.vendor == "postgresql":
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, tenant_id])


def tenant_zones(tenant_ids: Iterable[int]) -> dict[int, str]:
    """{tenant id: zone name}, read inside the writing transaction (after the lock), so that a
    zone change committed before it is seen and one committed after it waits for it."""
    from accounts.models import Tenant

    return dict(Tenant.objects.filter(pk__in=tenant_ids).values_list("pk", "timezone"))


def _add(sums: Sums, calls: int, inp: int, out: int, *optional: int | None) -> None:
    """Add one bucket's (or call's) counts; the optional ones (cached, reasoning, cache writes,
    one-hour writes) stay None while neither side reported them."""
    sums[0] += calls
    sums[1] += inp
    sums[2] += out
    for index, value in enumerate(optional, start=3):
        if value is not None:
            sums[index] = value if sums[index] is None else sums[index] + value


def _new_sums() -> Sums:
    return [0, 0, 0, None, None, None, None]


def hourly_from_values(values: Iterable[Sequence[Any]], zones: Mapping[int, str]) -> dict[HourKey, Sums]:
    """Hourly buckets of ledger rows given as (tenant, key, model, instant, in, out, cached, reasoning,
    cache writes, one-hour writes, ...).

    Returns {(tenant, key, model, hour start UTC, local date): [calls, in, out, cached, reasoning,
    cache writes, one-hour writes]}.
    """
    buckets: defaultdict[HourKey, Sums] = defaultdict(_new_sums)
    for tenant_id, key_id, model_id, instant, inp, out, *optional in values:
        tz = zone(zones[tenant_id])
        hour = local_hour_start(instant, tz)
        _add(buckets[(tenant_id, key_id, model_id, hour, hour.astimezone(tz).date())], 1, inp, out, *optional[:4])
    return buckets


_HOURLY_FROM_INSERTED = """
SELECT i.tenant_id, i.api_key_id, i.model_id, {hour} AS hour, ({hour} AT TIME ZONE t.timezone)::date,
       COUNT(*), SUM(i.input_tokens), SUM(i.output_tokens), SUM(i.cached_input_tokens), SUM(i.reasoning_tokens),
       SUM(i.cache_creation_input_tokens), SUM(i.cache_creation_1h_input_tokens)
FROM inserted i JOIN accounts_tenant t ON t.id = i.tenant_id
GROUP BY 1, 2, 3, 4, 5
"""


def hourly_from_inserted_sql() -> str:
    """SQL (after a ``WITH inserted AS (INSERT .. RETURNING *)``) giving the same buckets as
    ``hourly_from_values``, computed by PostgreSQL: one row per bucket reaches Python, not per call."""
    local = "(i.occurred_at AT TIME ZONE t.timezone)"
    hour = f"(i.occurred_at - ({local} - date_trunc('hour', {local})))"
    return _HOURLY_FROM_INSERTED.format(hour=hour)


def buckets_from_rows(rows: Iterable[Sequence[Any]]) -> dict[HourKey, Sums]:
    """The result rows of ``hourly_from_inserted_sql`` as ``hourly_from_values`` returns them."""
    buckets: dict[HourKey, Sums] = {}
    for tenant_id, key_id, model_id, hour, day, calls, inp, out, *optional in rows:
        buckets[(tenant_id, key_id, model_id, hour.astimezone(dt.UTC), day)] = [
            int(calls), int(inp), int(out), *(None if value is None else int(value) for value in optional),
        ]  # fmt: skip
    return buckets


def apply(buckets: Buckets) -> None:
    """Add hourly buckets (as ``hourly_from_values`` returns them) to the three rollup tables."""
    if not buckets:
        return
    daily: defaultdict[tuple[int, dt.date, int, int], Sums] = defaultdict(_new_sums)
    per_model: defaultdict[tuple[int, dt.date, int], Sums] = defaultdict(_new_sums)
    for (tenant_id, key_id, model_id, _hour, day), sums in buckets.items():
        _add(daily[(tenant_id, day, key_id, model_id)], *sums)
        _add(per_model[(tenant_id, day, model_id)], *sums)
    hourly = {
        (tenant_id, hour, key_id, model_id): sums for (tenant_id, key_id, model_id, hour, _), sums in buckets.items()
    }
    _upsert(UsageHourly, ("tenant_id", "hour", "api_key_id", "model_id"), hourly)
    _upsert(UsageDaily, ("tenant_id", "day", "api_key_id", "model_id"), daily)
    _upsert(UsageDailyModel, ("tenant_id", "day", "model_id"), per_model, revision=True)


_SUM_COLUMNS = (
    "calls", "input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens",
    "cache_creation_input_tokens", "cache_creation_1h_input_tokens",
)  # fmt: skip
_PG_KEY_TYPES = {"tenant_id": "int8", "api_key_id": "int8", "model_id": "int8", "hour": "timestamptz", "day": "date"}
_SQLITE_ROWS_PER_STATEMENT = 400  # 11 values a row: far below SQLite's 32,766 variables


def _set_clause(table: str, revision: bool) -> str:
    added = [f"{name} = {table}.{name} + excluded.{name}" for name in _SUM_COLUMNS[:3]]
    # Null stays null only while neither side reported the count.
    nullable = [
        f"{name} = CASE WHEN {table}.{name} IS NULL AND excluded.{name} IS NULL THEN NULL"
        f" ELSE COALESCE({table}.{name}, 0) + COALESCE(excluded.{name}, 0) END"
        for name in _SUM_COLUMNS[3:]
    ]
    bump = [f"revision = {table}.revision + 1"] if revision else []
    return ", ".join(added + nullable + bump)


def _upsert(
    model: type[models.Model],
    key_columns: tuple[str, ...],
    rows: Mapping[tuple[Any, ...], Sums],
    revision: bool = False,
) -> None:
    table = model._meta.db_table
    columns = (*key_columns, *_SUM_COLUMNS)
    conflict = f"ON CONFLICT ({', '.join(key_columns)}) DO UPDATE SET {_set_clause(table, revision)}"
    ordered = sorted(rows.items(), key=lambda item: item[0])
    if connection.vendor == "postgresql":
        types = [_PG_KEY_TYPES[name] for name in key_columns] + ["int8"] * len(_SUM_COLUMNS)
        arrays = ", ".join(f"%b::{kind}[]" for kind in types)
        order = ", ".join(str(n) for n in range(1, len(key_columns) + 1))
        sql = f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) ORDER BY {order} {conflict}"
        values = [(*key, *sums) for key, sums in ordered]
        connection.ensure_connection()
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(sql, [list(column) for column in zip(*values, strict=True)])
        return
    adapt = _sqlite_adapters(key_columns)
    with connection.cursor() as cursor:
        for start in range(0, len(ordered), _SQLITE_ROWS_PER_STATEMENT):
            chunk = ordered[start : start + _SQLITE_ROWS_PER_STATEMENT]
            placeholders = ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * len(chunk))
            params: list[Any] = []
            for key, sums in chunk:
                params.extend((*(a(v) for a, v in zip(adapt, key, strict=True)), *sums))
            cursor.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES {placeholders} {conflict}", params)


def _sqlite_adapters(key_columns: tuple[str, ...]) -> list[Callable[[Any], Any]]:
    ops = connection.ops
    by_name = {"hour": ops.adapt_datetimefield_value, "day": ops.adapt_datefield_value}
    return [by_name.get(name, lambda value: value) for name in key_columns]

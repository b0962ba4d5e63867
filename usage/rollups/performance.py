"""Performance rollups: per local hour, key and model, how many calls fell in each bucket.

One sparse table (``PerformanceHourly``) holds four metrics, each as (metric, bucket) -> calls:

- ``STATUS``: bucket 0 is ``ok``, 1..7 the error types in ``ErrorType`` order, 8 an error that
  named no type. A call that reported no status has no row here (it is not counted as failed).
- ``LATENCY`` (``duration_ms``), ``TTFT`` (``time_to_first_token_ms``) and ``TOKENS_PER_SECOND``
  (output tokens per second of generation, ``output_tokens / ((duration - ttft) / 1000)``, kept
  as whole thousandths): histograms over ``BOUNDS``, of the calls not marked as errors (a
  rejected call's quick answer would make a degraded model look fast).

Buckets (fixed, so that any range of hours, keys and models merges by adding counts): the values
0..10 each have their own bucket; above, each lower bound is the previous one times 1.1, rounded
down. A bucket [lo, hi] of whole numbers so has hi < 1.1 lo, and its estimate sqrt(lo * hi) is
within sqrt(1.1) - 1 < 4.9% of every value in it. A percentile is the nearest-rank one (the value
of rank ceil(p * n), as PostgreSQL's ``percentile_disc``): the histogram finds the bucket holding
that rank exactly, so the percentile it gives is within 4.9% relative of the ledger's. Values at
or above the last bound (1e12: 31 years in milliseconds, 1e9 tokens per second) share one
open bucket whose estimate is its lower bound.

Increments are added in the ingest transaction (before the usage rollups', the same order for the
API and the file import) and the full recompute rebuilds them from the ledger with the same
bucket function in SQL (PostgreSQL ``width_bucket``, a registered function on SQLite), so both
agree row for row.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import psycopg
from django.db import connection
from django.db.backends.signals import connection_created
from django.dispatch import receiver

from usage.histograms import (  # noqa: F401 (the names the rollups are defined by, for their readers here)
    BOUNDS,
    ERROR_BUCKETS,
    LATENCY,
    METRICS,
    OK_BUCKET,
    RELATIVE_ERROR_BOUND,
    STATUS,
    TOKENS_PER_SECOND,
    TPS_SCALE,
    TTFT,
    UNTYPED_ERROR_BUCKET,
    bucket_estimate,
    bucket_of,
    metric_buckets,
    stats_select_sql,
    status_bucket,
    tokens_per_second_scaled,
)
from usage.localtime import local_hour_start, zone

# (tenant, hour start UTC, key, model, metric, bucket)
StatKey = tuple[int, dt.datetime, int, int, int, int]


def stats_from_values(values: Iterable[Sequence[Any]], zones: Mapping[int, str]) -> dict[StatKey, int]:
    """Performance buckets of ledger rows given in ``usage.ingestion.services._COLUMNS`` order."""
    stats: defaultdict[StatKey, int] = defaultdict(int)
    for (
        tenant_id,
        key_id,
        model_id,
        instant,
        _inp,
        out,
        _c,
        _r,
        _w,
        _w1h,
        duration,
        ttft,
        status,
        error_type,
        *_,
    ) in values:
        if status is None and duration is None and ttft is None:
            continue
        hour = local_hour_start(instant, zone(zones[tenant_id]))
        for metric, bucket in metric_buckets(out, duration, ttft, status, error_type):
            stats[(tenant_id, hour, key_id, model_id, metric, bucket)] += 1
    return stats


@receiver(connection_created)
def register_sqlite_functions(sender: object, connection: Any, **kwargs: object) -> None:
    if connection.vendor == "sqlite":
        connection.connection.create_function("usage_perf_bucket", 1, _sqlite_bucket, deterministic=True)


def _sqlite_bucket(value: int | None) -> int | None:
    return None if value is None else bucket_of(value)


# --- Increments ---------------------------------------------------------------------------------

_TABLE = "usage_performancehourly"
_KEY = ("tenant_id", "hour", "api_key_id", "model_id", "metric", "bucket")
_UPSERT = (
    f"INSERT INTO {_TABLE} ({', '.join(_KEY)}, calls) {{select}}"
    f" ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET calls = {_TABLE}.calls + excluded.calls"
)
_SQLITE_ROWS_PER_STATEMENT = 500  # 7 values a row


def apply(stats: Mapping[StatKey, int]) -> None:
    """Add performance buckets (as ``stats_from_values`` returns them) to ``PerformanceHourly``.

    Sorted, so that concurrent batches of a tenant take the rows in one order and never deadlock.
    """
    if not stats:
        return
    ordered = sorted(stats.items())
    if connection.vendor == "postgresql":
        types = ("int8", "timestamptz", "int8", "int8", "int2", "int2", "int8")
        arrays = ", ".join(f"%b::{kind}[]" for kind in types)
        sql = _UPSERT.format(select=f"SELECT * FROM unnest({arrays}) ORDER BY 1, 2, 3, 4, 5, 6")
        columns = [list(column) for column in zip(*((*key, calls) for key, calls in ordered), strict=True)]
        connection.ensure_connection()
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(sql, columns)
        return
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        for start in range(0, len(ordered), _SQLITE_ROWS_PER_STATEMENT):
            chunk = ordered[start : start + _SQLITE_ROWS_PER_STATEMENT]
            params: list[Any] = []
            for (tenant_id, hour, key_id, model_id, metric, bucket), calls in chunk:
                params.extend((tenant_id, adapt(hour), key_id, model_id, metric, bucket, calls))
            values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(chunk))
            cursor.execute(_UPSERT.format(select=f"VALUES {values}"), params)


def upsert_from_inserted_sql() -> str:
    """A data-modifying CTE body (PostgreSQL) adding the buckets of the rows of a CTE ``inserted``
    (``INSERT .. RETURNING`` the ledger's columns) in the database: the file import's path."""
    source = "(SELECT i.*, t.timezone AS tz FROM inserted i JOIN accounts_tenant t ON t.id = i.tenant_id) AS s"
    hour = "(occurred_at - ((occurred_at AT TIME ZONE tz) - date_trunc('hour', occurred_at AT TIME ZONE tz)))"
    select = stats_select_sql("postgresql", source=source, hour=hour, where="TRUE")
    return _UPSERT.format(select=f"SELECT * FROM ({select}) AS stats ORDER BY 1, 2, 3, 4, 5, 6")


def recompute_sql(vendor: str, *, hour: str) -> str:
    """INSERT the buckets of a tenant's ledger rows in [start, end) (params: hour's, tenant, start, end
    for each of the four parts)."""
    where = "tenant_id = %s AND occurred_at >= %s AND occurred_at < %s"
    select = stats_select_sql(vendor, source="usage_callrecord", hour=hour, where=where)
    return f"INSERT INTO {_TABLE} ({', '.join(_KEY)}, calls) {select}"

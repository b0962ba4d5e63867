"""Pricing-class rollup: calls of a local day x key x model by service tier, context band and UTC
half-hour (``UsagePricingClass``), what a call-dependent price is costed from
(``usage.pricing_rules``).

Added in the ingest transaction with the other rollups (in Python from the stored rows, or by
PostgreSQL from the ``inserted`` rows of the file import), and rebuilt by the full recompute with
the same band and half-hour in SQL, so both agree row for row. Sparse and additive: a row per
class with calls; any range of days, keys and models merges by adding.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import psycopg
from django.db import connection

from usage.models import UsagePricingClass
from usage.pricing_rules import HALF_HOUR_SQL, SERVICE_TIER_POSITION, ClassKey, band_sql, classes_from_values

_TABLE = UsagePricingClass._meta.db_table
_KEY = ("tenant_id", "day", "api_key_id", "model_id", "service_tier", "band", "half_hour")
_SUMS = ("calls", "input_tokens", "output_tokens", "cached_input_tokens")
_UPSERT = (
    f"INSERT INTO {_TABLE} ({', '.join(_KEY + _SUMS)}) {{select}}"
    f" ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET "
    + ", ".join(f"{name} = {_TABLE}.{name} + excluded.{name}" for name in _SUMS)
)
_SQLITE_ROWS_PER_STATEMENT = 300  # 11 values a row


def apply(classes: Mapping[ClassKey, list[int]]) -> None:
    """Add classes (as ``classes_from_values`` returns them), in one order (no deadlock)."""
    if not classes:
        return
    ordered = sorted(classes.items())
    if connection.vendor == "postgresql":
        types = ("int8", "date", "int8", "int8", "text", "int2", "timestamptz", "int8", "int8", "int8", "int8")
        arrays = ", ".join(f"%b::{kind}[]" for kind in types)
        sql = _UPSERT.format(select=f"SELECT * FROM unnest({arrays}) ORDER BY 1, 2, 3, 4, 5, 6, 7")  # noqa: S608
        columns = [list(column) for column in zip(*((*key, *sums) for key, sums in ordered), strict=True)]
        connection.ensure_connection()
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(sql, columns)
        return
    adapt_time, adapt_day = connection.ops.adapt_datetimefield_value, connection.ops.adapt_datefield_value
    with connection.cursor() as cursor:
        for start in range(0, len(ordered), _SQLITE_ROWS_PER_STATEMENT):
            chunk = ordered[start : start + _SQLITE_ROWS_PER_STATEMENT]
            params: list[Any] = []
            for (tenant_id, day, key_id, model_id, tier, band, half_hour), sums in chunk:
                params.extend((tenant_id, adapt_day(day), key_id, model_id, tier, band, adapt_time(half_hour), *sums))
            values = ", ".join(["(" + ", ".join(["%s"] * 11) + ")"] * len(chunk))
            cursor.execute(_UPSERT.format(select=f"VALUES {values}"), params)  # noqa: S608 (placeholders only)


def _select_sql(source: str, where: str) -> str:
    """SELECT of the classes of ledger rows ``source`` (with a ``tz`` column), PostgreSQL."""
    half_hour = HALF_HOUR_SQL.format(instant="occurred_at")
    columns = (
        "tenant_id, (occurred_at AT TIME ZONE tz)::date, api_key_id, model_id, COALESCE(service_tier, ''),"
        f" {band_sql('input_tokens')}, {half_hour}, COUNT(*), SUM(input_tokens), SUM(output_tokens),"
        " SUM(COALESCE(cached_input_tokens, 0))"
    )
    return f"SELECT {columns} FROM {source} WHERE {where} GROUP BY 1, 2, 3, 4, 5, 6, 7"  # noqa: S608


def upsert_from_inserted_sql() -> str:
    """A data-modifying CTE body (PostgreSQL) adding the classes of the CTE ``inserted``'s rows."""
    source = "(SELECT i.*, t.timezone AS tz FROM inserted i JOIN accounts_tenant t ON t.id = i.tenant_id) AS s"
    select = _select_sql(source, "TRUE")
    return _UPSERT.format(select=f"SELECT * FROM ({select}) AS c ORDER BY 1, 2, 3, 4, 5, 6, 7")  # noqa: S608


def recompute(cursor: Any, *, tenant: Any, start: dt.datetime, end: dt.datetime) -> None:
    """Delete and rebuild the tenant's classes of calls in [start, end) (under its exclusive lock)."""
    first, last = start.astimezone(tenant.tz).date(), (end - dt.timedelta(microseconds=1)).astimezone(tenant.tz).date()
    UsagePricingClass.objects.filter(tenant_id=tenant.pk, day__range=(first, last)).delete()
    if connection.vendor == "postgresql":
        source = "(SELECT *, %s::text AS tz FROM usage_callrecord WHERE tenant_id = %s) AS s"
        cursor.execute(
            f"INSERT INTO {_TABLE} ({', '.join(_KEY + _SUMS)}) "
            + _select_sql(source, "occurred_at >= %s AND occurred_at < %s"),
            [tenant.timezone, tenant.pk, start, end],
        )
        return
    from usage.models import CallRecord

    rows = CallRecord.objects.filter(tenant_id=tenant.pk, occurred_at__gte=start, occurred_at__lt=end).values_list(
        "tenant_id", "api_key_id", "model_id", "occurred_at", "input_tokens", "output_tokens", "cached_input_tokens",
        "service_tier",
    )  # fmt: skip
    values = [(*row[:7], *[None] * (SERVICE_TIER_POSITION - 7), row[7]) for row in rows.iterator()]
    apply(classes_from_values(values, {tenant.pk: tenant.timezone}))

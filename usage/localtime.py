"""The tenant's local time: instants are stored in UTC, days and hours are the tenant's.

One place for every conversion the writers and the readers share: a zone by name, the local
date of an instant, the instants a range of local days spans, the instant a local hour starts
(in Python, and as SQL for PostgreSQL and for SQLite, whose functions are registered here).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable
from functools import lru_cache
from itertools import groupby
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.db.backends.signals import connection_created
from django.dispatch import receiver
from django.utils import timezone

if TYPE_CHECKING:
    from accounts.models import Tenant

SqlAndParams = tuple[str, list[Any]]


@lru_cache(maxsize=64)
def zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def local_day(tenant: Tenant, instant: dt.datetime) -> dt.date:
    """The tenant's local date of an aware instant."""
    return instant.astimezone(tenant.tz).date()


def local_midnight(tenant: Tenant, day: dt.date) -> dt.datetime:
    """The aware instant at which ``day`` starts in the tenant's zone."""
    return dt.datetime.combine(day, dt.time.min, tzinfo=tenant.tz)


def day_span(tenant: Tenant, first_day: dt.date, last_day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) instants covering local days first_day..last_day inclusive."""
    return local_midnight(tenant, first_day), local_midnight(tenant, last_day + dt.timedelta(days=1))


def local_hour_start(instant: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """The UTC instant at which the local hour of ``instant`` starts (as ``local_hour_sql``)."""
    local = instant.astimezone(tz)
    into_hour = dt.timedelta(minutes=local.minute, seconds=local.second, microseconds=local.microsecond)
    return (instant - into_hour).astimezone(dt.UTC)


def tenant_today(tenant: Tenant, now: dt.datetime | None = None) -> dt.date:
    return (now or timezone.now()).astimezone(tenant.tz).date()


def consecutive_ranges(days: Iterable[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """[d1, d2, d3, d7] -> [(d1, d3), (d7, d7)]."""
    ranges = []
    for _, group in groupby(enumerate(sorted(days)), key=lambda pair: pair[1].toordinal() - pair[0]):
        members = [day for _, day in group]
        ranges.append((members[0], members[-1]))
    return ranges


def local_hour_sql(column: str, zone_name: str) -> SqlAndParams:
    """(sql, params) for the instant at which the local hour of ``column`` starts."""
    if connection.vendor == "postgresql":
        # Subtract how far into its local hour the instant is: exact for +05:30 zones and,
        # unlike truncating the local wall time, keeps the two 01:00 hours of a DST fall-back apart.
        sql = f"{column} - (({column} AT TIME ZONE %s) - date_trunc('hour', {column} AT TIME ZONE %s))"
        return sql, [zone_name, zone_name]
    return f"usage_local_hour({column}, %s)", [zone_name]


def local_date_sql(column: str, zone_name: str) -> SqlAndParams:
    """(sql, params) for the local date of ``column``."""
    if connection.vendor == "postgresql":
        return f"({column} AT TIME ZONE %s)::date", [zone_name]
    return f"usage_local_date({column}, %s)", [zone_name]


# --- SQLite: the same two functions, in Python --------------------------------------------------


def _parse_utc(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)


def _sqlite_local_hour(value: str | None, zone_name: str) -> str | None:
    """UTC instant at which the local hour containing ``value`` began (fold-safe)."""
    if value is None:
        return None
    return local_hour_start(_parse_utc(value), zone(zone_name)).strftime("%Y-%m-%d %H:%M:%S")


def _sqlite_local_date(value: str | None, zone_name: str) -> str | None:
    if value is None:
        return None
    return _parse_utc(value).astimezone(zone(zone_name)).date().isoformat()


@receiver(connection_created)
def register_sqlite_functions(sender: object, connection: Any, **kwargs: object) -> None:
    if connection.vendor == "sqlite":
        connection.connection.create_function("usage_local_hour", 2, _sqlite_local_hour, deterministic=True)
        connection.connection.create_function("usage_local_date", 2, _sqlite_local_date, deterministic=True)

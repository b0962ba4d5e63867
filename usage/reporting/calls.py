"""The calls explorer's read: one page of a tenant's calls, filtered, newest or slowest first,
by keyset (cursor) pagination, so a page costs the same on the first day and on the ten-millionth
call, and a cursor stays valid while calls arrive.

Which index serves which question (PostgreSQL, each partition of the ledger has them):

- newest first, any filters but status: ``callrecord_tenant_time`` (tenant, occurred_at),
  read backwards from the range's end, pruned to the range's partitions;
- ``status=error`` newest first: ``callrecord_tenant_errors``, a partial index of the failed
  calls only (so the ledger's inserts of successful calls pay nothing for it);
- request id prefix: ``callrecord_request_prefix``;
- slowest first: the range's calls sorted; offered for ranges of at most ``SLOWEST_MAX_DAYS``
  (the chart links one hour), since an index on duration would cost every insert.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db.models import Q, QuerySet

from usage import localtime
from usage.models import CallRecord

if TYPE_CHECKING:
    from accounts.models import ApiKey, Tenant
    from usage.models import Model

PAGE_SIZE = 50
SLOWEST_MAX_DAYS = 2
SORTS = ("newest", "slowest")
# What a stored call can hold (ingestion's bounds, ``usage.ingestion.validation``; the ledger's int4).
_EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_LATEST = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
_MAX_DURATION = 2**31 - 1


class InvalidCursor(ValueError):
    """A cursor this code did not write (edited, truncated or forged)."""


@dataclass(frozen=True)
class CallFilters:
    tenant: Tenant
    start: dt.datetime  # [start, end) instants
    end: dt.datetime
    api_key: ApiKey | None = None
    model: Model | None = None
    status: str = ""
    error_type: str = ""
    request_id_prefix: str = ""
    sort: str = "newest"


@dataclass
class CallPage:
    calls: list[CallRecord]
    next_cursor: str | None


def _queryset(filters: CallFilters) -> QuerySet[CallRecord]:
    calls = CallRecord.objects.filter(
        tenant=filters.tenant, occurred_at__gte=filters.start, occurred_at__lt=filters.end
    )
    if filters.api_key is not None:
        calls = calls.filter(api_key=filters.api_key)
    if filters.model is not None:
        calls = calls.filter(model=filters.model)
    if filters.status:
        calls = calls.filter(status=filters.status)
    if filters.error_type:
        calls = calls.filter(error_type=filters.error_type)
    if filters.request_id_prefix:
        calls = calls.filter(request_id__startswith=filters.request_id_prefix)
    if filters.sort == "slowest":
        calls = calls.filter(duration_ms__isnull=False)
    return calls


def calls_page(filters: CallFilters, cursor: str | None = None, *, size: int = PAGE_SIZE) -> CallPage:
    """One page of the filtered calls after ``cursor`` (None: the first page)."""
    calls = _queryset(filters)
    order = ("-duration_ms", "-occurred_at", "-id") if filters.sort == "slowest" else ("-occurred_at", "-id")
    if cursor:
        calls = calls.filter(_after(filters.sort, decode_cursor(filters.sort, cursor)))
    rows = list(calls.select_related("api_key", "model").order_by(*order)[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return CallPage(rows, encode_cursor(filters.sort, rows[-1]) if more else None)


def _after(sort: str, position: tuple[Any, ...]) -> Q:
    """The calls after ``position`` in the sort order (descending on every column)."""
    if sort == "slowest":
        duration, instant, pk = position
        return (
            Q(duration_ms__lt=duration)
            | Q(duration_ms=duration, occurred_at__lt=instant)
            | Q(duration_ms=duration, occurred_at=instant, id__lt=pk)
        )
    instant, pk = position
    return Q(occurred_at__lt=instant) | Q(occurred_at=instant, id__lt=pk)


def encode_cursor(sort: str, call: CallRecord) -> str:
    values: list[Any] = [call.occurred_at.astimezone(dt.UTC).isoformat(), call.pk]
    if sort == "slowest":
        values.insert(0, call.duration_ms)
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(sort: str, text: str) -> tuple[Any, ...]:
    """The position a cursor names; InvalidCursor for anything ``encode_cursor`` could not have written."""
    try:
        values = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor from exc
    width = 3 if sort == "slowest" else 2
    if not isinstance(values, list) or len(values) != width:
        raise InvalidCursor
    *duration, instant_text, pk = values
    if type(pk) is not int or not 0 < pk < 2**63 or not isinstance(instant_text, str):
        raise InvalidCursor
    try:
        instant = dt.datetime.fromisoformat(instant_text)
    except ValueError as exc:
        raise InvalidCursor from exc
    if instant.tzinfo is None or not _EARLIEST <= instant <= _LATEST:
        raise InvalidCursor
    if duration and (type(duration[0]) is not int or not 0 <= duration[0] <= _MAX_DURATION):
        raise InvalidCursor
    return (*duration, instant, pk)


def hour_span(tenant: Tenant, hour: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of the tenant's local hour that starts at (or contains) ``hour``."""
    start = localtime.local_hour_start(hour, tenant.tz)
    return start, start + dt.timedelta(hours=1)

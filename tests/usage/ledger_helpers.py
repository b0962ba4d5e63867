"""Calls stored through the import service (PostgreSQL: the COPY path), for ledger tests."""

from django.db import connection
from django.db.models import Count, Sum

from usage.ingestion import services
from usage.ingestion import validation as ingest
from usage.models import CallRecord, UsageDaily


def item(key, request_id, at, **fields):
    return {
        "request_id": request_id,
        "api_key": key.public_id,
        "model": "public/deepseek-r1",
        "occurred_at": at,
        "input_tokens": 100,
        "output_tokens": 20,
        **fields,
    }


def call_records_import(*, calls, tenant=None, now=None):
    """Calls of a file stored the way ``import_calls`` stores a chunk: checked, then stored."""
    return services.call_records_store(services.call_records_check(calls=calls, tenant=tenant), now=now)


def store(items, **kwargs):
    calls = []
    for line, raw in enumerate(items):
        call, errors = ingest.validate_call(raw)
        assert not errors, errors
        calls.append((line, call))
    return call_records_import(calls=calls, **kwargs)


def daily_totals():
    return sorted(
        UsageDaily.objects.values_list("tenant_id", "day").annotate(Sum("calls"), Sum("input_tokens")).order_by()
    )


def ledger_by_day(tenant):
    """(day, calls, input tokens) summed from the ledger, UTC days (the test tenants' zone)."""
    rows = (
        CallRecord.objects.filter(tenant=tenant)
        .values_list("occurred_at__date")
        .annotate(Count("id"), Sum("input_tokens"))
        .order_by("occurred_at__date")
    )
    return [tuple(row) for row in rows]


def rollup_by_day(tenant):
    rows = (
        UsageDaily.objects.filter(tenant=tenant)
        .values_list("day")
        .annotate(Sum("calls"), Sum("input_tokens"))
        .order_by("day")
    )
    return [tuple(row) for row in rows]


def partition_of(request_id):
    """PostgreSQL: the partition table holding the call."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM usage_callrecord WHERE request_id = %s", [request_id])
        return [name for (name,) in cursor.fetchall()]

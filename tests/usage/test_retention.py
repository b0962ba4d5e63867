"""Retention: purge_calls removes whole months of calls, and every number stays as it was."""

import datetime as dt
import zoneinfo
from collections import Counter
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from usage.ledger import partitions, retention
from usage.models import CallPurge, CallRecord, CallRequest, DirtyDay, UsageDaily, UsageDailyModel, UsageHourly
from usage.rollups import recompute as rollups

from .api_helpers import csv_body, token_client
from .ledger_helpers import item, store

NOW = dt.datetime(2025, 6, 15, 12, tzinfo=dt.UTC)
RANGE = {"start": "2025-01-01", "end": "2025-06-30"}
HORIZON = dt.datetime(2025, 4, 1, tzinfo=dt.UTC)  # of ``calls_purge(older_than_months=2)`` at NOW


@pytest.fixture(autouse=True)
def frozen_now(monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: NOW)


@pytest.fixture
def calls(api_key, llm, other_api_key):
    """Calls in Feb, Mar (end of month), Apr and Jun 2025 for acme (UTC) and globex (Asia/Kolkata)."""
    instants = ["2025-02-10T08:00:00Z", "2025-03-31T23:59:59Z", "2025-04-01T00:00:00Z", "2025-06-01T09:00:00Z"]
    items = [item(api_key, f"a{n}", at, input_tokens=10 + n) for n, at in enumerate(instants)]
    items += [item(other_api_key, f"g{n}", at, input_tokens=100 + n) for n, at in enumerate(instants)]
    assert store(items).accepted == 8


def _rollups():
    return [
        sorted(model.objects.values_list(*fields, "calls", "input_tokens"))
        for model, fields in [
            (UsageHourly, ("tenant_id", "hour")),
            (UsageDaily, ("tenant_id", "day")),
            (UsageDailyModel, ("tenant_id", "day")),
        ]
    ]


def _purge(*args):
    out = StringIO()
    call_command("purge_calls", *args, stdout=out)
    return out.getvalue()


def _numbers(client, tenant):
    params = {**RANGE, "tenant": tenant.slug}
    summary = client.get("/api/v1/usage/summary", params).json()
    series = client.get("/api/v1/usage/timeseries", {**params, "bucket": "day"}).json()
    export = csv_body(client.get("/api/v1/usage/export.csv", params))
    return summary, series, export


def test_purge_keeps_rollups_page_api_and_csv_exactly(calls, tenant, owner_client):
    client = token_client(tenant)
    before, numbers = _rollups(), _numbers(client, tenant)
    output = _purge("--older-than", "2")
    assert "Purged 4 calls before 2025-04-01" in output
    assert sorted(CallRecord.objects.values_list("request_id", flat=True)) == ["a2", "a3", "g2", "g3"]
    assert CallRequest.objects.count() == 4
    assert _rollups() == before
    assert _numbers(client, tenant) == numbers
    page = owner_client.get(f"/t/{tenant.slug}/usage/", RANGE).content.decode()
    assert "Call-level detail (the API's call list) is available from 2025-04-01" in page


def test_the_ledger_api_answers_410_for_purged_days_and_serves_later_ones(calls, tenant, other_tenant):
    retention.calls_purge(older_than_months=2)
    client = token_client(tenant)
    response = client.get("/api/v1/calls", {"start": "2025-03-31", "end": "2025-04-30"})
    assert response.status_code == 410
    assert response["Content-Type"] == "application/problem+json"
    assert "available from 2025-04-01" in response.json()["detail"]
    later = client.get("/api/v1/calls", {"start": "2025-04-01", "end": "2025-06-30"})
    assert [call["request_id"] for call in later.json()["results"]] == ["a3", "a2"]
    # Kolkata is ahead of UTC: its local 2025-04-01 starts before the horizon, so detail starts a day later.
    assert retention.detail_available_from(other_tenant) == dt.date(2025, 4, 2)
    assert token_client(other_tenant, "x").get("/api/v1/calls", {"start": "2025-04-01"}).status_code == 410


def test_a_full_rebuild_keeps_the_rollups_of_purged_days(calls, tenant, other_tenant):
    before = _rollups()
    retention.calls_purge(older_than_months=2)
    call_command("rebuild_rollups", verbosity=0)
    assert _rollups() == before
    rollups.usage_rollup_days(tenant=tenant, first_day=dt.date(2025, 2, 1), last_day=dt.date(2025, 6, 30))
    assert _rollups() == before


def test_a_zone_change_keeps_every_purged_call_in_the_rollups(calls, tenant):
    retention.calls_purge(older_than_months=2)
    tenant.timezone = "America/New_York"
    tenant.save()
    # Days starting before the horizon (2025-04-01T00:00Z = March 31, 20:00 in New York) are never dirty.
    assert not DirtyDay.objects.filter(tenant=tenant, day__lt=dt.date(2025, 4, 1)).exists()
    rollups.usage_rollup_dirty(tenant=tenant)
    new_york = zoneinfo.ZoneInfo("America/New_York")
    expected = Counter()
    for hour, count in UsageHourly.objects.filter(tenant=tenant).values_list("hour", "calls"):
        expected[hour.astimezone(new_york).date()] += count
    daily = dict(UsageDaily.objects.filter(tenant=tenant).values_list("day", "calls"))
    assert daily == dict(expected)
    assert sum(daily.values()) == 4
    assert daily[dt.date(2025, 3, 31)] == 2  # a purged call and a kept one, now one New York day


def test_calls_before_the_horizon_are_rejected_afterwards(calls, api_key):
    retention.calls_purge(older_than_months=2)
    result = store([item(api_key, "a0", "2025-02-10T08:00:00Z"), item(api_key, "late", "2025-04-02T00:00:00Z")])
    assert (result.accepted, result.rejected) == (1, 1)
    assert [(error["field"], error["code"]) for error in result.errors] == [("occurred_at", "purged")]


def test_a_call_at_the_exact_horizon_is_stored_and_one_a_microsecond_earlier_is_not(calls, api_key):
    retention.calls_purge(older_than_months=2)
    at, just_before = "2025-04-01T00:00:00Z", "2025-03-31T23:59:59.999999Z"
    result = store([item(api_key, "at", at), item(api_key, "just-before", just_before)])
    assert (result.accepted, result.rejected) == (1, 1)
    assert [(error["index"], error["code"]) for error in result.errors] == [(1, "purged")]
    assert CallRecord.objects.filter(request_id="at", occurred_at=HORIZON).exists()


def test_a_recompute_rebuilds_the_hour_starting_at_the_horizon_from_the_ledger(calls, tenant):
    """a2 is at 2025-04-01T00:00Z, the horizon itself: its hour's calls are all in the ledger, so a
    recompute rebuilds that hour (a lost bucket comes back) rather than keeping it as purged."""
    before = _rollups()
    retention.calls_purge(older_than_months=2)
    assert UsageHourly.objects.filter(tenant=tenant, hour=HORIZON).delete()[0] == 1
    rollups.usage_rollup_days(tenant=tenant, first_day=dt.date(2025, 4, 1), last_day=dt.date(2025, 4, 1))
    assert _rollups() == before


def test_dry_run_changes_nothing(calls):
    output = _purge("--older-than", "2", "--dry-run")
    assert "Dry run: 4 calls would be purged; nothing changed." in output
    assert CallRecord.objects.count() == 8
    assert not CallPurge.objects.exists()


def test_purging_again_or_less_keeps_the_horizon(calls):
    retention.calls_purge(older_than_months=2)
    retention.calls_purge(older_than_months=4)
    assert retention.purge_horizon() == dt.datetime(2025, 4, 1, tzinfo=dt.UTC)
    assert CallRecord.objects.count() == 4


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_postgresql_drops_the_months_partitions(calls):
    summary = retention.calls_purge(older_than_months=2)
    assert {"usage_callrecord_y2025m02", "usage_callrecord_y2025m03"} <= set(summary.partitions)
    with connection.cursor() as cursor:
        names = {name for _, name in partitions.partitions_list(cursor)}
    assert not names & set(summary.partitions)
    assert "usage_callrecord_y2025m04" in names


@pytest.mark.skipif("connection.vendor == 'postgresql'")
def test_sqlite_deletes_in_bounded_batches(calls):
    done = []
    retention.calls_purge(older_than_months=2, progress=done.append, batch_size=3)
    assert done == [3, 4]


def test_claims_are_deleted_window_by_window_in_bounded_batches(tenant, other_tenant):
    """Dense seconds, sparse years and the instant just before the horizon: every claim before it
    goes, none at or after it, of either tenant, and no transaction deletes more than a batch."""
    before = dt.datetime(2025, 4, 1, tzinfo=dt.UTC)
    dense = [dt.datetime(2024, 7, 1, 3, tzinfo=dt.UTC) + dt.timedelta(microseconds=n) for n in range(40)]
    sparse = [dt.datetime(2021 + n // 3, 1 + 4 * (n % 3), 9, tzinfo=dt.UTC) for n in range(12)]
    edge = [before - dt.timedelta(microseconds=1), before, before + dt.timedelta(days=40)]
    claims = [
        CallRequest(tenant=owner, request_id=f"{owner.pk}-{n}", occurred_at=at)
        for owner in (tenant, other_tenant)
        for n, at in enumerate(dense + sparse + edge)
    ]
    CallRequest.objects.bulk_create(claims)
    kept = sorted((c.tenant_id, c.request_id) for c in claims if c.occurred_at >= before)
    deleted = []

    def count_deletes(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.startswith("DELETE"):
            deleted.append(context["cursor"].rowcount)
        return result

    with connection.execute_wrapper(count_deletes):
        total = retention._delete_claims(before, batch_size=7)
    assert total == sum(deleted) == len(claims) - len(kept) == 2 * (40 + 12 + 1)
    assert max(deleted) <= 7
    assert sorted(CallRequest.objects.values_list("tenant_id", "request_id")) == kept


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_an_analysed_month_is_purged_on_its_row_estimate(calls, monkeypatch):
    """Counting a month of a big platform would outlast the drop: once analysed, a big month's
    planner estimate is reported, and said to be one (big: 2 calls here)."""
    monkeypatch.setattr(retention, "COUNT_BELOW", 2)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE usage_callrecord_y2025m02")
    output = _purge("--older-than", "3", "--claims-now")
    assert "Purged about 2 calls before 2025-03-01" in output
    assert CallRecord.objects.filter(occurred_at__lt=dt.datetime(2025, 3, 1, tzinfo=dt.UTC)).count() == 0


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_a_small_month_is_counted_even_when_its_estimate_is_stale(calls, api_key, other_api_key):
    """Analysed while it held fewer calls, a small month's estimate is wrong: it is counted."""
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE usage_callrecord_y2025m02")
    later = [item(key, f"late-{n}", "2025-02-20T10:00:00Z") for n, key in enumerate([api_key, other_api_key])]
    assert store(later).accepted == 2
    output = _purge("--older-than", "3", "--claims-now")
    assert "Purged 4 calls before 2025-03-01" in output

"""Rollups kept by increments at ingestion equal a full rebuild, and every read equals the ledger.

Seeded random interleavings of what happens in production: batches through the API path and the
import path (COPY on PostgreSQL) with duplicates, conflicts and late calls, recomputes of random
days, full rebuilds and time zone changes. After every step each tenant's reads (summary, daily
series, hourly series, export rows, the page's cached grid) equal ground truth computed here in
Python from the ledger, and the rollup tables of its clean days equal what the rebuild writes.
Two tenants share keys' days and models, so a read that loses its tenant filter fails. Calls carry
performance (issue 27): its buckets (``PerformanceHourly``) are held to the same rule.
"""

import datetime as dt
import random
import zoneinfo
from collections import defaultdict

import pytest

from accounts import services as accounts
from tests.usage.ledger_helpers import call_records_import
from usage.ingestion import services
from usage.ingestion.validation import ERROR_TYPES, validate_call
from usage.models import (
    CallRecord,
    DirtyDay,
    Model,
    PerformanceHourly,
    UsageDaily,
    UsageDailyModel,
    UsageHourly,
    UsagePricingClass,
)
from usage.reporting.grid import usage_grid
from usage.reporting.periods import Period
from usage.reporting.selectors import UsageFilters, usage_rows, usage_series, usage_summary
from usage.rollups import performance
from usage.rollups import recompute as rollups

NOW = dt.datetime(2026, 11, 3, 12, 0, tzinfo=dt.UTC)  # two days after New York's fall-back
ZONES = ["UTC", "Asia/Kolkata", "America/New_York", "Australia/Lord_Howe"]
WINDOW = Period(dt.date(2026, 9, 25), dt.date(2026, 11, 4))  # every local day the window can touch


@pytest.fixture
def world(db):
    tenants = [
        accounts.tenant_create(slug="acme", name="Acme", timezone_name="UTC"),
        accounts.tenant_create(slug="globex", name="Globex", timezone_name="America/New_York"),
    ]
    keys = {
        tenant.pk: [accounts.api_key_create(tenant=tenant, name=f"key-{n}")[0] for n in range(2)] for tenant in tenants
    }
    models = [Model.objects.create(name=f"public/model-{n}") for n in range(3)]
    return tenants, keys, models


def _instant(rng):
    """Mostly the last hours (today), sometimes a late call up to 30 days back, DST night included."""
    roll = rng.random()
    if roll < 0.6:
        return NOW - dt.timedelta(seconds=rng.randrange(0, 36 * 3600))
    if roll < 0.8:
        return dt.datetime(2026, 11, 1, 5, 0, tzinfo=dt.UTC) + dt.timedelta(seconds=rng.randrange(0, 3 * 3600))
    return NOW - dt.timedelta(seconds=rng.randrange(0, 30 * 86400))


class Scenario:
    def __init__(self, world, seed):
        self.tenants, self.keys, self.models = world
        self.rng = random.Random(seed)
        self.sent = []  # raw items sent so far: re-sent as duplicates or changed into conflicts
        self.next_id = 0

    def _new_item(self):
        rng = self.rng
        tenant = rng.choice(self.tenants)
        self.next_id += 1
        item = {
            "request_id": f"r{self.next_id}",
            "api_key": rng.choice(self.keys[tenant.pk]).public_id,
            "model": rng.choice(self.models).name,
            "occurred_at": _instant(rng).isoformat().replace("+00:00", "Z"),
            "input_tokens": rng.randrange(0, 5000),
            "output_tokens": rng.randrange(0, 2000),
        }
        if rng.random() < 0.5:
            item["cached_input_tokens"] = rng.randrange(0, item["input_tokens"] + 1)
        if rng.random() < 0.3:
            item["reasoning_tokens"] = rng.randrange(0, item["output_tokens"] + 1)
        if rng.random() < 0.4:  # the pricing classes' dimensions: a service tier, a long context
            item["service_tier"] = rng.choice(["standard", "batch", "flex", "priority"])
            item["input_tokens"] += rng.choice([0, 40_000, 250_000])
        if rng.random() < 0.4:  # cache writes: at most the input left after the cached reads
            writes = item["cache_creation_input_tokens"] = rng.randrange(
                0, item["input_tokens"] - item.get("cached_input_tokens", 0) + 1
            )
            if rng.random() < 0.5:
                item["cache_creation_1h_input_tokens"] = rng.randrange(0, writes + 1)
        return _with_performance(rng, item)

    def batch(self):
        rng, items = self.rng, []
        for _ in range(rng.randrange(1, 40)):
            roll = rng.random()
            if self.sent and roll < 0.15:
                items.append(dict(rng.choice(self.sent)))  # a duplicate
            elif self.sent and roll < 0.25:
                changed = dict(rng.choice(self.sent))
                # A conflict: same request id, other content (the counts, or only the performance).
                field = rng.choice(["input_tokens", "duration_ms"])
                changed[field] = (changed.get(field) or 0) + 1
                items.append(changed)
            else:
                items.append(self._new_item())
        self.sent.extend(items)
        return items

    def step(self):
        rng = self.rng
        roll = rng.random()
        if roll < 0.45:
            result = services.call_records_ingest(items=self.batch(), now=NOW)
            return f"ingest {result.accepted}/{result.duplicates}/{result.rejected}"
        if roll < 0.7:
            calls = [(line, validate_call(item)[0]) for line, item in enumerate(self.batch(), start=1)]
            result = call_records_import(calls=calls, now=NOW)
            return f"import {result.accepted}/{result.duplicates}/{result.rejected}"
        tenant = rng.choice(self.tenants)
        tenant.refresh_from_db()
        if roll < 0.82:
            first = WINDOW.start + dt.timedelta(days=rng.randrange(0, WINDOW.days))
            last = min(first + dt.timedelta(days=rng.randrange(0, 5)), WINDOW.end)
            rollups.usage_rollup_days(tenant=tenant, first_day=first, last_day=last)
            return f"recompute {tenant.slug} {first}..{last}"
        if roll < 0.88:
            rollups.usage_rebuild(tenant=tenant)
            return f"rebuild {tenant.slug}"
        if roll < 0.94:
            tenant.timezone = rng.choice([zone for zone in ZONES if zone != tenant.timezone])
            tenant.save()
            return f"zone {tenant.slug} -> {tenant.timezone}"
        rollups.usage_rollup_dirty(tenant=tenant)
        return f"sweep {tenant.slug}"


def _with_performance(rng, item):
    """Performance on most calls: durations across many buckets, some failures, some unreported."""
    if rng.random() < 0.8:
        item["duration_ms"] = int(rng.lognormvariate(7, 1.5))
        if rng.random() < 0.7:
            item["time_to_first_token_ms"] = rng.randrange(0, item["duration_ms"] + 1)
    roll = rng.random()
    if roll < 0.6:
        item["status"] = "ok"
    elif roll < 0.8:
        item["status"] = "error"
        if rng.random() < 0.8:
            item["error_type"] = rng.choice(ERROR_TYPES)
    return item


def _local_hour(instant, tz):
    local = instant.astimezone(tz)
    return instant - dt.timedelta(minutes=local.minute, seconds=local.second, microseconds=local.microsecond)


def _add(sums, call):
    sums[0] += 1
    sums[1] += call.input_tokens
    sums[2] += call.output_tokens
    optional = (
        call.cached_input_tokens, call.reasoning_tokens,
        call.cache_creation_input_tokens, call.cache_creation_1h_input_tokens,
    )  # fmt: skip
    for index, value in enumerate(optional, start=3):
        if value is not None:
            sums[index] = (sums[index] or 0) + value


def truth(tenant):
    """Buckets of the tenant's ledger, computed here: {table: {key: [calls, in, out, cached, reasoning,
    cache writes, one-hour writes]}}."""
    tz = zoneinfo.ZoneInfo(tenant.timezone)
    tables = {
        name: defaultdict(lambda: [0, 0, 0, None, None, None, None]) for name in ("hourly", "daily", "daily_model")
    }
    stats = defaultdict(int)
    for call in CallRecord.objects.filter(tenant=tenant):
        day = call.occurred_at.astimezone(tz).date()
        hour = _local_hour(call.occurred_at, tz)
        for metric, bucket in performance.metric_buckets(
            call.output_tokens, call.duration_ms, call.time_to_first_token_ms, call.status, call.error_type
        ):
            stats[(hour, call.api_key_id, call.model_id, metric, bucket)] += 1
        _add(tables["hourly"][(_local_hour(call.occurred_at, tz), call.api_key_id, call.model_id)], call)
        _add(tables["daily"][(day, call.api_key_id, call.model_id)], call)
        _add(tables["daily_model"][(day, call.model_id)], call)
    return {
        **{name: {key: tuple(sums) for key, sums in table.items()} for name, table in tables.items()},
        "performance": dict(stats),
    }


def stored(tenant, clean_day):
    """The rollup tables of the tenant, only buckets on days ``clean_day`` accepts."""
    tz = zoneinfo.ZoneInfo(tenant.timezone)
    sums = (
        "calls", "input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens",
        "cache_creation_input_tokens", "cache_creation_1h_input_tokens",
    )  # fmt: skip
    hourly = {
        (row[0], row[1], row[2]): tuple(row[3:])
        for row in UsageHourly.objects.filter(tenant=tenant).values_list("hour", "api_key_id", "model_id", *sums)
        if clean_day(row[0].astimezone(tz).date())
    }
    daily = {
        (row[0], row[1], row[2]): tuple(row[3:])
        for row in UsageDaily.objects.filter(tenant=tenant).values_list("day", "api_key_id", "model_id", *sums)
        if clean_day(row[0])
    }
    per_model = {
        (row[0], row[1]): tuple(row[2:])
        for row in UsageDailyModel.objects.filter(tenant=tenant).values_list("day", "model_id", *sums)
        if clean_day(row[0])
    }
    stats = {
        tuple(row[:5]): row[5]
        for row in PerformanceHourly.objects.filter(tenant=tenant).values_list(
            "hour", "api_key_id", "model_id", "metric", "bucket", "calls"
        )
        if clean_day(row[0].astimezone(tz).date())
    }
    return {"hourly": hourly, "daily": daily, "daily_model": per_model, "performance": stats}


def only(table, clean_day, tz, *, hourly=False):
    return {key: value for key, value in table.items() if clean_day(key[0].astimezone(tz).date() if hourly else key[0])}


def check_reads(tenant, expected, label):
    tz = zoneinfo.ZoneInfo(tenant.timezone)
    daily = expected["daily_model"]
    # Summary over the window and over one week.
    for period in (WINDOW, Period(dt.date(2026, 10, 28), dt.date(2026, 11, 3))):
        want = [0, 0, 0]
        for (day, _model), sums in daily.items():
            if period.start <= day <= period.end:
                want = [want[0] + sums[0], want[1] + sums[1], want[2] + sums[2]]
        got = usage_summary(tenant=tenant, filters=UsageFilters(period))
        assert [got.calls, got.input_tokens, got.output_tokens] == want, f"{label}: summary {period}"
        # The page's grid (cached, keyed by usage versions): a stale entry would show here.
        grid = usage_grid(tenant=tenant, filters=UsageFilters(period), bucket="day")
        assert [grid.totals.calls, grid.totals.input_tokens, grid.totals.output_tokens] == want, f"{label}: grid"
    # Daily series per model.
    series = usage_series(tenant=tenant, filters=UsageFilters(WINDOW), bucket="day", group_by="model")
    got = {
        (day, model.pk): (point.calls, point.input_tokens, point.output_tokens)
        for model, points in series.groups
        for day, point in zip(series.buckets, points, strict=True)
        if point.calls
    }
    assert got == {key: sums[:3] for key, sums in daily.items() if WINDOW.start <= key[0] <= WINDOW.end}, label
    # Hourly series over the last two local days, by key.
    today = NOW.astimezone(tz).date()
    two_days = Period(today - dt.timedelta(days=1), today)
    series = usage_series(tenant=tenant, filters=UsageFilters(two_days), bucket="hour", group_by="api_key")
    got = defaultdict(int)
    for key, points in series.groups:
        for hour, point in zip(series.buckets, points, strict=True):
            if point.calls:
                got[(hour, key.pk)] += point.input_tokens
    want = defaultdict(int)
    for (hour, key_id, _model), sums in expected["hourly"].items():
        if two_days.start <= hour.astimezone(tz).date() <= two_days.end:
            want[(hour, key_id)] += sums[1]
    assert dict(got) == dict(want), f"{label}: hourly"
    # Export rows: day x key x model, with cached and reasoning (null kept apart from 0).
    rows = {
        (day, key.pk, model.pk): (
            t.calls,
            t.input_tokens,
            t.output_tokens,
            t.cached_input_tokens,
            t.reasoning_tokens,
            t.cache_creation_input_tokens,
            t.cache_creation_1h_input_tokens,
        )
        for day, key, model, t in usage_rows(tenant=tenant, filters=UsageFilters(WINDOW))
    }
    assert rows == expected["daily"], f"{label}: export rows"


@pytest.mark.parametrize("seed", range(4))
def test_random_interleavings_stay_exact_and_equal_a_rebuild(world, seed):
    scenario = Scenario(world, seed)
    log = []
    for _ in range(30):
        log.append(scenario.step())
        label = f"seed {seed} after {log}"
        for tenant in scenario.tenants:
            tenant.refresh_from_db()
            expected = truth(tenant)
            check_reads(tenant, expected, label)
            dirty = set(DirtyDay.objects.filter(tenant=tenant).values_list("day", flat=True))
            tz = zoneinfo.ZoneInfo(tenant.timezone)

            def clean(day, dirty=dirty):
                return day not in dirty

            want = {
                "hourly": only(expected["hourly"], clean, tz, hourly=True),
                "daily": only(expected["daily"], clean, tz),
                "daily_model": only(expected["daily_model"], clean, tz),
                "performance": only(expected["performance"], clean, tz, hourly=True),
            }
            assert stored(tenant, clean) == want, f"{label}: rollup tables of {tenant.slug}"
    # And the increments' tables equal a full rebuild's, row for row, for both tenants.
    for tenant in scenario.tenants:
        tenant.refresh_from_db()
        rollups.usage_rollup_dirty(tenant=tenant)
        before = stored(tenant, lambda day: True)
        classes = UsagePricingClass.objects.filter(tenant=tenant).values_list(
            "day", "api_key_id", "model_id", "service_tier", "band", "half_hour", "calls", "input_tokens",
            "output_tokens", "cached_input_tokens",
        )  # fmt: skip
        classes_before = sorted(classes)
        assert sum(row[6] for row in classes_before) == CallRecord.objects.filter(tenant=tenant).count()
        rollups.usage_rebuild(tenant=tenant)
        assert stored(tenant, lambda day: True) == before
        assert sorted(classes.all()) == classes_before, "pricing classes: increments equal a rebuild"
    assert CallRecord.objects.filter(tenant=scenario.tenants[0]).exists()
    assert CallRecord.objects.filter(tenant=scenario.tenants[1]).exists()


def test_late_calls_on_two_closed_days_read_in_between_both_show(world):
    """The stale-cache case: a cached grid of closed days must not survive a late call on any of them."""
    tenants, keys, models = world
    tenant, key, model = tenants[0], keys[tenants[0].pk][0], models[0]
    period = Period(dt.date(2026, 10, 20), dt.date(2026, 11, 2))  # all closed on NOW's day

    def send(request_id, when, tokens):
        item = {
            "request_id": request_id,
            "api_key": key.public_id,
            "model": model.name,
            "occurred_at": when,
            "input_tokens": tokens,
            "output_tokens": 0,
        }
        assert services.call_records_ingest(items=[item], now=NOW).accepted == 1

    def read():
        return usage_grid(tenant=tenant, filters=UsageFilters(period)).totals.input_tokens

    send("a", "2026-10-21T10:00:00Z", 5)
    assert read() == 5
    send("b", "2026-10-25T10:00:00Z", 7)  # late, on another closed day
    assert read() == 12
    send("c", "2026-10-21T11:00:00Z", 11)  # late again, on the first day: only its row's revision moves
    assert read() == 23
    assert usage_summary(tenant=tenant, filters=UsageFilters(period)).input_tokens == 23

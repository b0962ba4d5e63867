"""Performance reads (issue 27): percentiles from the rollups' histograms within the stated bound of
the ledger's exact ones; GET /api/v1/usage/performance exact, weighted by requests, tenant-scoped."""

import datetime as dt
import math
import random
from collections import defaultdict

import pytest
from django.utils import timezone

from accounts import services as account_services
from tests.usage.api_helpers import token_client
from usage.ingestion.services import call_records_ingest
from usage.models import CallRecord, Model
from usage.reporting.performance import percentile, query_performance
from usage.reporting.periods import Period
from usage.reporting.query import UsageQuery
from usage.rollups import performance as perf
from usage.rollups import recompute

NOW = dt.datetime(2026, 11, 20, 18, 0, tzinfo=dt.UTC)
DAY = "2026-11-20"


@pytest.fixture(autouse=True)
def frozen_now(monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: NOW)


def call(key, request_id, at, *, model="public/alpha", **fields):
    return {
        "request_id": request_id,
        "api_key": key.public_id,
        "model": model,
        "occurred_at": at.isoformat(),
        "input_tokens": 100,
        "output_tokens": fields.pop("output_tokens", 50),
        **fields,
    }


def exact(values, p):
    """Nearest-rank percentile of the values themselves."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p * len(ordered))) - 1] if ordered else None


# --- the bound -------------------------------------------------------------------------------------


def test_bucket_bounds_are_fixed_and_narrow():
    assert perf.BOUNDS[:12] == (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
    for low, high in zip(perf.BOUNDS[11:], perf.BOUNDS[12:], strict=False):
        assert (high - 1) / low < 1.1  # the whole numbers of a bucket span less than 10%
    assert perf.RELATIVE_ERROR_BOUND < 0.049
    for value in (0, 7, 10, 11, 250, 999_999, 604_800_000):
        estimate = perf.bucket_estimate(perf.bucket_of(value))
        assert abs(estimate - value) <= perf.RELATIVE_ERROR_BOUND * value


@pytest.mark.parametrize("seed", range(3))
def test_percentiles_from_rollups_are_within_the_bound_of_the_ledger(tenant, other_tenant, seed):
    rng = random.Random(seed)
    keys = [account_services.api_key_create(tenant=tenant, name=f"k{n}")[0] for n in range(2)]
    other_key = account_services.api_key_create(tenant=other_tenant, name="theirs")[0]
    items = []
    for n in range(600):
        key = other_key if n % 5 == 0 else rng.choice(keys)
        duration = int(rng.lognormvariate(7, 1.2)) if rng.random() < 0.9 else None
        ttft = rng.randrange(0, duration + 1) if duration is not None and rng.random() < 0.8 else None
        at = NOW - dt.timedelta(minutes=rng.randrange(1, 2 * 24 * 60))
        fields = {"duration_ms": duration, "time_to_first_token_ms": ttft, "output_tokens": rng.randrange(0, 3000)}
        fields["status"] = "error" if rng.random() < 0.1 else "ok"
        items.append(call(key, f"r{n}", at, model=rng.choice(["public/alpha", "public/beta"]), **fields))
    assert call_records_ingest(items=items).rejected == 0
    period = Period(dt.date(2026, 11, 18), dt.date(2026, 11, 20))
    for api_key in (None, keys[0]):
        for model in (None, Model.objects.get(name="public/beta")):
            query = UsageQuery(tenant, period, api_key=api_key, model=model)
            total = query_performance(query, group_by="model").total
            calls = query.calls().exclude(status="error")
            durations = [c.duration_ms for c in calls if c.duration_ms is not None]
            ttfts = [c.time_to_first_token_ms for c in calls if c.time_to_first_token_ms is not None]
            tps = [
                c.output_tokens * 1000 / (c.duration_ms - c.time_to_first_token_ms)
                for c in calls
                if c.duration_ms is not None
                and c.time_to_first_token_ms is not None
                and c.duration_ms > c.time_to_first_token_ms
            ]
            assert total.calls == query.calls().count()
            for metric, values, scale in (
                (perf.LATENCY, durations, 1),
                (perf.TTFT, ttfts, 1),
                (perf.TOKENS_PER_SECOND, tps, perf.TPS_SCALE),
            ):
                assert sum(total.histograms[metric].values()) == len(values)
                for p in (0.5, 0.95, 0.99):
                    want = exact(values, p)
                    got = percentile(total.histograms[metric], p) / scale
                    # Tokens per second are kept in whole thousandths (rounded down): 0.001 more.
                    assert abs(got - want) <= perf.RELATIVE_ERROR_BOUND * want + 0.001, (metric, p, api_key, model)


# --- the API --------------------------------------------------------------------------------------


@pytest.fixture
def two_tenants(tenant, other_tenant):
    """Acme: four calls of alpha on the 20th at 09:xx and one of beta at 10:xx; Globex: calls on the
    same days with other numbers, which must not show."""
    key = account_services.api_key_create(tenant=tenant, name="prod")[0]
    other = account_services.api_key_create(tenant=other_tenant, name="theirs")[0]
    nine = dt.datetime(2026, 11, 20, 9, 5, tzinfo=dt.UTC)
    items = [
        call(key, "a1", nine, duration_ms=1000, time_to_first_token_ms=200, output_tokens=400, status="ok"),
        call(key, "a2", nine, duration_ms=3000, time_to_first_token_ms=1000, output_tokens=100, status="ok"),
        call(key, "a3", nine, duration_ms=40, status="error", error_type="rate_limited", output_tokens=0),
        call(key, "a4", nine),  # reported nothing: a call, not an error, in no histogram
        call(key, "b1", nine + dt.timedelta(hours=1), model="public/beta", duration_ms=5, status="error"),
        call(other, "x1", nine, duration_ms=9, status="error", error_type="timeout"),
        call(other, "x2", nine, duration_ms=7, status="ok"),
    ]
    assert call_records_ingest(items=items).accepted == len(items)
    return key, other


def estimate(value):
    return round(perf.bucket_estimate(perf.bucket_of(value)), 1)


def test_performance_api_is_exact_and_weighted_by_requests(tenant, two_tenants):
    _key, _other = two_tenants
    body = token_client(tenant).get("/api/v1/usage/performance", {"start": DAY, "end": DAY}).json()
    assert body["buckets"] == [DAY] and body["bucket"] == "day" and body["group_by"] == "model"
    total = body["total"]
    assert total["calls"] == 5
    assert total["errors"] == {
        "total": 2,
        "rate_limited": 1,
        "timeout": 0,
        "server_error": 0,
        "client_error": 0,
        "cancelled": 0,
        "content_filter": 0,
        "other": 0,
        "unspecified": 1,
    }
    assert total["error_rate"] == 0.4
    # Successful calls only: 1000 and 3000 ms; nearest rank p50 is the first, p95 the second.
    assert total["latency_ms"] == {"p50": estimate(1000), "p95": estimate(3000), "p99": estimate(3000), "calls": 2}
    assert total["time_to_first_token_ms"]["p50"] == estimate(200)
    # 400 tokens in 0.8 s = 500/s; 100 in 2 s = 50/s: the median is 50/s.
    assert total["output_tokens_per_second"] == {
        "p50": round(perf.bucket_estimate(perf.bucket_of(50_000)) / 1000, 1),
        "calls": 2,
    }
    by_model = {series["model"]: series for series in body["series"]}
    assert [series["model"] for series in body["series"]] == ["public/alpha", "public/beta"]  # most calls first
    assert by_model["public/alpha"]["total"]["calls"] == 4
    assert by_model["public/beta"]["points"][0]["errors"]["unspecified"] == 1
    assert by_model["public/beta"]["points"][0]["latency_ms"]["p50"] is None


def test_performance_by_hour_and_key(tenant, two_tenants):
    key, _other = two_tenants
    params = {"start": DAY, "end": DAY, "bucket": "hour", "group_by": "api_key"}
    body = token_client(tenant).get("/api/v1/usage/performance", params).json()
    assert len(body["buckets"]) == 24
    [series] = body["series"]
    assert (series["api_key"], series["api_key_name"]) == (key.public_id, "prod")
    calls = [point["calls"] for point in series["points"]]
    assert calls[9] == 4 and calls[10] == 1 and sum(calls) == 5
    assert series["points"][9]["error_rate"] == 0.25 and series["points"][0]["error_rate"] is None


def test_other_tenant_sees_only_its_own(other_tenant, two_tenants):
    body = token_client(other_tenant).get("/api/v1/usage/performance", {"start": DAY, "end": DAY}).json()
    assert body["total"]["calls"] == 2
    assert body["total"]["errors"]["timeout"] == 1 and body["total"]["errors"]["total"] == 1
    assert body["total"]["latency_ms"]["p50"] == 7.0


def test_another_tenants_key_or_model_is_refused(tenant, other_tenant, two_tenants):
    _key, other = two_tenants
    private = Model.objects.create(name="globex/secret", tenant=other_tenant)
    client = token_client(tenant)
    for params in ({"api_key": other.public_id}, {"model": private.name}):
        response = client.get("/api/v1/usage/performance", {"start": DAY, **params})
        assert response.status_code == 400  # as every usage endpoint: the parameter is named
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["errors"][0]["field"] == next(iter(params))


def test_outsider_session_naming_the_tenant_gets_404(outsider_client, tenant, two_tenants):
    response = outsider_client.get("/api/v1/usage/performance", {"tenant": tenant.slug, "start": DAY})
    assert response.status_code == 404


def test_dirty_days_read_from_the_ledger_equal_the_rollups(tenant, two_tenants):
    query = UsageQuery(tenant, Period(dt.date(2026, 11, 20), dt.date(2026, 11, 20)), bucket="hour")
    before = query_performance(query, group_by="model")
    recompute.mark_days_dirty(tenant=tenant, days=[dt.date(2026, 11, 20)])
    from usage.models import PerformanceHourly

    PerformanceHourly.objects.filter(tenant=tenant).delete()  # stale rollups must not be read
    after = query_performance(UsageQuery(tenant, query.period, bucket="hour"), group_by="model")
    assert after.total.as_api() == before.total.as_api()
    assert {g: [p.as_api() for p in points] for g, points in after.groups.items()} == {
        g: [p.as_api() for p in points] for g, points in before.groups.items()
    }


def test_schema_documents_the_endpoint(tenant):
    schema = token_client(tenant).get("/api/v1/schema", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/usage/performance"]["get"]
    names = {parameter["name"] for parameter in operation["parameters"]}
    assert {"start", "end", "preset", "api_key", "model", "bucket", "group_by"} <= names
    assert "PerformanceStats" in schema["components"]["schemas"]


def test_error_calls_count_in_usage(tenant, two_tenants):
    hourly = defaultdict(int)
    for record in CallRecord.objects.filter(tenant=tenant):
        hourly[record.status] += 1
    assert hourly == {"ok": 2, "error": 2, None: 1}
    body = token_client(tenant).get("/api/v1/usage/summary", {"start": DAY, "end": DAY}).json()
    assert body["calls"] == 5 and body["output_tokens"] == 400 + 100 + 0 + 50 + 50

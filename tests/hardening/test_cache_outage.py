"""Issue 25, item 1: with the shared cache's Redis stopped (a real outage of a private
redis-server, not a mock), every read goes on uncached with the same exact numbers."""

import datetime as dt
import logging
import time

import pytest
from django.test import override_settings
from django.urls import reverse

from accounts import services as account_services
from tests.services import private_redis
from tests.usage.api_helpers import token_client
from usage import outages
from usage.ingestion.services import call_records_ingest
from usage.models import Model

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
RANGE = {"start": "2026-11-20", "end": "2026-11-21"}


def _calls(key, model, prefix, tokens):
    return [
        {
            "request_id": f"{prefix}-{i}",
            "api_key": key.public_id,
            "model": model.name,
            "occurred_at": f"2026-11-{20 + i % 2}T09:00:00Z",
            "input_tokens": inp,
            "output_tokens": out,
        }
        for i, (inp, out) in enumerate(tokens)
    ]


@pytest.fixture
def two_tenants(tenant, other_tenant, owner):
    llm = Model.objects.create(name="public/outage-llm")
    acme_key, _ = account_services.api_key_create(tenant=tenant, name="acme-key")
    globex_key, _ = account_services.api_key_create(tenant=other_tenant, name="globex-key")
    acme = call_records_ingest(items=_calls(acme_key, llm, "a", [(1000, 100), (500, 50), (7, 3)]), now=NOW)
    globex = call_records_ingest(items=_calls(globex_key, llm, "g", [(3000, 300), (4000, 400)]), now=NOW)
    assert (acme.accepted, globex.accepted) == (3, 2)
    return tenant, other_tenant


def _reads(client, api):
    """Every read surface's calls and tokens for RANGE: page, data, charts, API, OpenAI-compatible."""
    page = client.get(reverse("usage:dashboard", args=["acme"]), RANGE)
    data = client.get(reverse("usage:data", args=["acme"]), RANGE)
    trend = client.get(reverse("usage:chart_trend", args=["acme"]), RANGE)
    summary = api.get(reverse("api_usage_summary"), RANGE)
    window = {"start_time": 1795132800, "end_time": 1795305600, "bucket_width": "1d"}  # Nov 20-21 UTC
    completions = api.get(reverse("openai_usage_completions"), window)
    costs = api.get(reverse("openai_costs"), window)
    statuses = [r.status_code for r in (page, data, trend, summary, completions, costs)]
    buckets = completions.json()["data"]
    return {
        "statuses": statuses,
        "page_total": "1,660" in page.content.decode() or "1660" in page.content.decode(),
        "summary": {k: summary.json()[k] for k in ("calls", "input_tokens", "output_tokens", "total_tokens")},
        "openai_input": sum(r["input_tokens"] for b in buckets for r in b["results"]),
        "openai_requests": sum(r["num_model_requests"] for b in buckets for r in b["results"]),
        "data": data.json(),
        "trend": trend.json(),
    }


EXPECTED_SUMMARY = {"calls": 3, "input_tokens": 1507, "output_tokens": 153, "total_tokens": 1660}


def test_reads_answer_exactly_while_the_cache_is_down(two_tenants, owner_client, monkeypatch, caplog):
    api, globex_api = token_client(two_tenants[0]), token_client(two_tenants[1], "globex-bi")
    monkeypatch.setattr(outages, "_last_outage_log", [0.0])
    with private_redis() as redis_server:
        cache = {"BACKEND": "usageproject.cache.ResilientRedisCache", "LOCATION": redis_server.url(1)}
        with override_settings(CACHES={"default": cache}, CACHE_OUTAGE_RETRY_SECONDS=0):
            warm = _reads(owner_client, api)
            assert warm["statuses"] == [200] * 6
            assert warm["summary"] == EXPECTED_SUMMARY
            assert (warm["openai_input"], warm["openai_requests"]) == (1507, 3)
            redis_server.stop()
            with caplog.at_level(logging.WARNING, logger="usage.outages"):
                started = time.monotonic()
                down = [_reads(owner_client, api) for _ in range(3)]
                globex = globex_api.get(reverse("api_usage_summary"), RANGE).json()
                elapsed = time.monotonic() - started
    for answer in down:
        assert answer["statuses"] == [200] * 6
        assert answer["summary"] == EXPECTED_SUMMARY
        assert (answer["openai_input"], answer["openai_requests"]) == (1507, 3)
        assert answer["page_total"]
        # The same cards, table and chart as with the cache (only the moment of the answer moves).
        moment = {"updated_at": None, "updated_display": None}
        assert {**answer["data"], **moment} == {**warm["data"], **moment}
        assert answer["trend"] == warm["trend"]
    assert {k: globex[k] for k in EXPECTED_SUMMARY} == {
        "calls": 2,
        "input_tokens": 7000,
        "output_tokens": 700,
        "total_tokens": 7700,
    }
    # Each of the 19 reads touched the cache several times; the outage is logged once.
    assert [r.getMessage()[:17] for r in caplog.records if r.name == "usage.outages"] == ["Cache unreachable"]
    assert elapsed < 10, f"18 reads took {elapsed:.1f} s with the cache down"

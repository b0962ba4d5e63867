"""Issue 25, item 5: while calls arrive, reads of the same questions keep the shared cache at one
entry per question (each read used to store a new ~51 KB entry for an hour). A private
redis-server is the cache, so keys and bytes are Redis's own counts."""

import datetime as dt

import pytest
import redis
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from accounts import services as account_services
from tests.services import private_redis
from tests.usage.api_helpers import token_client
from usage.ingestion.services import call_records_ingest
from usage.models import Model

ROUNDS = 8


def _calls(key, model, prefix, count, at):
    return [
        {
            "request_id": f"{prefix}-{i}",
            "api_key": key.public_id,
            "model": model.name,
            "occurred_at": at.isoformat(),
            "input_tokens": 10,
            "output_tokens": 1,
        }
        for i in range(count)
    ]


def _footprint(client: redis.Redis) -> tuple[int, int]:
    keys = client.keys("*")
    return len(keys), sum(client.memory_usage(key) or 0 for key in keys)


@pytest.fixture
def redis_cache():
    with private_redis() as server:
        backend = {"BACKEND": "usageproject.cache.ResilientRedisCache", "LOCATION": server.url(0)}
        with override_settings(CACHES={"default": backend}):
            yield redis.Redis.from_url(server.url(0))


def test_reads_while_calls_arrive_keep_one_entry_per_question(redis_cache, tenant, other_tenant, owner_client):
    llm = Model.objects.create(name="public/cache-llm")
    acme_key, _ = account_services.api_key_create(tenant=tenant, name="a")
    globex_key, _ = account_services.api_key_create(tenant=other_tenant, name="g")
    yesterday = timezone.now() - dt.timedelta(days=1)
    call_records_ingest(items=_calls(acme_key, llm, "old", 4, yesterday))
    call_records_ingest(items=_calls(globex_key, llm, "old", 6, yesterday))
    acme_api, globex_api = token_client(tenant, "a"), token_client(other_tenant, "g")
    data_url = reverse("usage:data", args=[tenant.slug])
    summary_url = reverse("api_usage_summary")
    footprints = []
    for round_ in range(ROUNDS):
        now = timezone.now()
        assert call_records_ingest(items=_calls(acme_key, llm, f"r{round_}", 5, now)).accepted == 5
        assert call_records_ingest(items=_calls(globex_key, llm, f"r{round_}", 3, now)).accepted == 3
        for preset in ("today", "last_2_weeks"):
            data = owner_client.get(data_url, {"preset": preset}).json()
            acme = acme_api.get(summary_url, {"preset": preset}).json()
            globex = globex_api.get(summary_url, {"preset": preset}).json()
            today_only = preset == "today"
            assert acme["calls"] == 5 * (round_ + 1) + (0 if today_only else 4)
            assert globex["calls"] == 3 * (round_ + 1) + (0 if today_only else 6)
            assert data["cards"][0]["value"] == acme["total_tokens"]
        footprints.append(_footprint(redis_cache))
    keys, size = footprints[-1]
    # Before: every round stored new grids, panels and costs for today (8 rounds, 160+ keys).
    # Now one entry per question; a minute's cut-day entry may be added as the clock turns.
    assert keys <= footprints[0][0] + 2, footprints
    assert size <= footprints[0][1] * 1.5, footprints

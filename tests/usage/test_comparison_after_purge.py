"""The page's change figures when the compared period ends on a day whose calls were purged.

The truth is computed here from the items ingested (not by the product's functions), for two
tenants with calls on the same days: acme (UTC) and globex (Asia/Kolkata, +05:30, whose local
hours start at :30 UTC).
"""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from usage.ingestion.services import call_records_ingest
from usage.ledger import retention

from .factories import price

NOW = dt.datetime(2026, 12, 2, 15, 45, tzinfo=dt.UTC)  # 15:45 in acme, 21:15 in globex
# A custom range ending today: compared with Jul 30 to Sep 30, the last day cut at the time of now.
RANGE = {"preset": "custom", "start": "2026-10-01", "end": "2026-12-02"}
PREVIOUS = (dt.date(2026, 7, 30), dt.date(2026, 9, 30))
CURRENT = (dt.date(2026, 10, 1), dt.date(2026, 12, 2))
# Instants around both tenants' cut hour on Sep 30 and elsewhere in both periods.
MOMENTS = [
    "2026-07-29T12:00:00Z",  # before the previous period (globex: Jul 29 17:30)
    "2026-07-29T20:00:00Z",  # globex's Jul 30, acme's Jul 29
    "2026-07-30T09:00:00Z",
    "2026-09-12T18:00:00Z",
    "2026-09-30T01:00:00Z",
    "2026-09-30T14:10:00Z",
    "2026-09-30T15:05:00Z",  # acme's cut hour (15:00-16:00), before its cutoff
    "2026-09-30T15:40:00Z",  # the cut hour of both (globex: 21:10, its hour from 15:30 UTC)
    "2026-09-30T15:50:00Z",  # after both cutoffs
    "2026-09-30T19:00:00Z",  # globex's Oct 01
    "2026-10-01T00:30:00Z",
    "2026-10-01T15:20:00Z",  # the cut hour of a comparison ending on Oct 01 (kept)
    "2026-10-01T15:50:00Z",
    "2026-10-02T08:00:00Z",
    "2026-11-15T12:00:00Z",
    "2026-12-02T10:00:00Z",
    "2026-12-02T15:40:00Z",
]
PRICE_IN, PRICE_OUT = Decimal("1.00"), Decimal("2.00")  # per 1K tokens


def _items(key, prefix):
    return [
        {
            "request_id": f"{prefix}-{n}",
            "api_key": key.public_id,
            "model": "public/deepseek-r1",
            "occurred_at": at,
            "input_tokens": 1000 + 370 * n + (50 if prefix == "g" else 0),
            "output_tokens": 200 + 90 * n,
        }
        for n, at in enumerate(MOMENTS)
    ]


@pytest.fixture
def ingested(api_key, other_api_key, llm, monkeypatch):
    """Every item through the ingestion service at its own time; then the clock at NOW."""
    price(llm, dt.date(2026, 1, 1), str(PRICE_IN), str(PRICE_OUT))
    sent = {"acme": _items(api_key, "a"), "globex": _items(other_api_key, "g")}
    for item in [*sent["acme"], *sent["globex"]]:
        at = dt.datetime.fromisoformat(item["occurred_at"])
        assert call_records_ingest(items=[item], now=at + dt.timedelta(minutes=1)).accepted == 1
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    return sent


def _truth(items, zone, days, until):
    """{card key: value} and the cost of the items on the local ``days`` occurring before ``until``."""
    tz = ZoneInfo(zone)
    chosen = []
    for item in items:
        at = dt.datetime.fromisoformat(item["occurred_at"])
        if days[0] <= at.astimezone(tz).date() <= days[1] and at < until:
            chosen.append(item)
    inputs = sum(item["input_tokens"] for item in chosen)
    outputs = sum(item["output_tokens"] for item in chosen)
    cards = {"calls": len(chosen), "input_tokens": inputs, "output_tokens": outputs, "total_tokens": inputs + outputs}
    cost = (inputs * PRICE_IN + outputs * PRICE_OUT) / 1000
    return cards, cost


def _percent(current, previous):
    return round(float((current - previous) / previous * 100), 1)


def _assert_page_equals_truth(client, tenant, items, cutoff, periods=(RANGE, CURRENT, PREVIOUS)):
    params, current_days, previous_days = periods
    """The figures equal the truth up to the instant the page says it cut at, and that is ``cutoff``."""
    data = client.get(reverse("usage:data", kwargs={"slug": tenant.slug}), params).json()
    stated = dt.datetime.fromisoformat(data["previous_until"])
    current, current_cost = _truth(items, tenant.timezone, current_days, NOW)
    previous, previous_cost = _truth(items, tenant.timezone, previous_days, stated)
    assert {card["key"]: card["value"] for card in data["cards"]} == current
    shown = {card["key"]: card["change"]["percent"] for card in data["cards"]}
    assert shown == {key: _percent(current[key], previous[key]) for key in current}
    assert data["cost"]["change"]["percent"] == _percent(current_cost, previous_cost)
    assert stated == cutoff
    return data


# The cutoffs: the time of now on Sep 30; after the purge, the start of that local hour.
ACME_CUT, ACME_HOUR = dt.datetime(2026, 9, 30, 15, 45, tzinfo=dt.UTC), dt.datetime(2026, 9, 30, 15, tzinfo=dt.UTC)
GLOBEX_CUT, GLOBEX_HOUR = ACME_CUT, dt.datetime(2026, 9, 30, 15, 30, tzinfo=dt.UTC)  # 21:15 and 21:00 in Kolkata


def test_before_a_purge_the_cut_is_at_the_minute(ingested, tenant, other_tenant, owner_client, outsider_client):
    _assert_page_equals_truth(owner_client, tenant, ingested["acme"], ACME_CUT)
    _assert_page_equals_truth(outsider_client, other_tenant, ingested["globex"], GLOBEX_CUT)


def test_after_a_purge_the_cut_is_at_the_hour_the_rollups_keep(
    ingested, tenant, other_tenant, owner_client, outsider_client
):
    retention.calls_purge(older_than_months=2, now=NOW)  # the calls before Oct 01 (UTC)
    cache.clear()  # a later page load: nothing cached from before the purge
    data = _assert_page_equals_truth(owner_client, tenant, ingested["acme"], ACME_HOUR)
    assert "until 15:00 " in data["comparison"] and "by the hour" in data["comparison"]
    data = _assert_page_equals_truth(outsider_client, other_tenant, ingested["globex"], GLOBEX_HOUR)
    assert "until 21:00 " in data["comparison"]


def test_after_a_purge_a_cut_on_a_kept_day_stays_at_the_minute(ingested, tenant, owner_client):
    retention.calls_purge(older_than_months=2, now=NOW)
    # Oct 02 to Dec 02 is compared with Aug 01 to Oct 01, cut on Oct 01 (kept) at 15:45.
    params = {"preset": "custom", "start": "2026-10-02", "end": "2026-12-02"}
    periods = (params, (dt.date(2026, 10, 2), NOW.date()), (dt.date(2026, 8, 1), dt.date(2026, 10, 1)))
    cut = dt.datetime(2026, 10, 1, 15, 45, tzinfo=dt.UTC)
    _assert_page_equals_truth(owner_client, tenant, ingested["acme"], cut, periods)

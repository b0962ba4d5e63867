"""The page, the API and the CSV export read the same numbers: the ledger's.

Random calls (fixed seed) in a zone with daylight saving, part of them rolled up and part
still dirty, and a second tenant's (Asia/Kolkata) on the same days; random filter sets; for
each, summary = sum of the timeseries = sum of the breakdown = sum of the CSV rows = the page's
cards = the ledger. With prices (a change inside the range, a contract price in another
currency, an unpriced model) the same holds for cost, per currency: summary = breakdowns =
daily series = CSV cells = usage_cost = monthly report.
"""

import csv
import datetime as dt
import io
import random
import re
from collections import Counter
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.utils import timezone

from accounts import services
from usage import localtime
from usage.api.scope import filters_or_errors
from usage.models import CallRecord, Model
from usage.reporting.costs import usage_cost
from usage.reporting.periods import PRESETS

from .api_helpers import csv_body, token_client
from .factories import make_calls, price

SEED = 6
FIELDS = ["calls", "input_tokens", "output_tokens", "total_tokens", "cached_input_tokens", "reasoning_tokens"]


def _optional_sum(values):
    present = [value for value in values if value is not None]
    return sum(present) if present else None


def _totals(items):
    """Totals of dicts (or CSV rows) with the API's fields; None stays apart from 0."""
    items = list(items)
    totals = {name: sum(int(item[name]) for item in items) for name in ("calls", "input_tokens", "output_tokens")}
    totals["total_tokens"] = totals["input_tokens"] + totals["output_tokens"]
    for name in ("cached_input_tokens", "reasoning_tokens"):
        totals[name] = _optional_sum(None if item[name] in (None, "") else int(item[name]) for item in items)
    return totals


def _random_calls(rng, tenant, keys, models, today, count, dirty=False):
    specs = []
    for _ in range(count):
        instant = dt.datetime.combine(today - dt.timedelta(days=rng.randint(0, 45)), dt.time(), tzinfo=tenant.tz)
        instant += dt.timedelta(minutes=rng.randint(0, 24 * 60 - 1))
        inp, out = rng.randint(0, 5000), rng.randint(0, 2000)
        specs.append(
            {
                "api_key": rng.choice(keys),
                "model": rng.choice(models),
                "occurred_at": instant.astimezone(dt.UTC),
                "input_tokens": inp,
                "output_tokens": out,
                # Within the input and output: ingestion refuses more (they are counted inside them).
                "cached_input_tokens": rng.choice([None, rng.randint(0, min(100, inp))]),
                "reasoning_tokens": rng.choice([None, None, rng.randint(0, min(300, out))]),
            }
        )
    make_calls(tenant, specs, dirty=dirty)


@pytest.fixture
def world(tenant, owner, other_tenant):
    cache.clear()
    tenant.timezone = "America/New_York"
    tenant.save()
    rng = random.Random(SEED)
    keys = [services.api_key_create(tenant=tenant, name=f"key-{n}")[0] for n in range(3)]
    models = [Model.objects.create(name=f"public/model-{n}") for n in range(3)]
    today = timezone.now().astimezone(tenant.tz).date()
    _random_calls(rng, tenant, keys, models, today, 250)  # these days read from the rollups ...
    _random_calls(rng, tenant, keys, models, today, 80, dirty=True)  # ... and these days from the ledger
    services.credential_revoke(keys[2])  # a revoked key keeps its usage
    # Globex: its own random calls on the same days, with the same models (its rng: Acme's stays as it was).
    their_keys = [services.api_key_create(tenant=other_tenant, name=f"their-{n}")[0] for n in range(2)]
    _random_calls(random.Random(SEED + 1), other_tenant, their_keys, models, today, 120)
    return rng, keys, models, today


@pytest.fixture
def theirs(world, other_tenant, outsider_client):
    """Globex's side of ``world``: (its rng, its keys, its client, its owner's page client)."""
    keys = list(other_tenant.api_keys.order_by("name"))
    return random.Random(SEED + 2), keys, token_client(other_tenant, "globex-bi"), outsider_client


def _filter_sets(rng, keys, models, today, count):
    for _ in range(count):
        params = {}
        if rng.random() < 0.4:
            params["preset"] = rng.choice(list(PRESETS))
        else:
            start = today - dt.timedelta(days=rng.randint(0, 50))
            params["start"] = start.isoformat()
            if rng.random() < 0.7:
                params["end"] = min(start + dt.timedelta(days=rng.randint(0, 20)), today).isoformat()
        if rng.random() < 0.4:
            params["api_key"] = rng.choice(keys).public_id
        if rng.random() < 0.4:
            params["model"] = rng.choice(models).name
        yield params


def _ledger(tenant, summary, params):
    start, end = (dt.date.fromisoformat(summary[name]) for name in ("start", "end"))
    first, last = localtime.day_span(tenant, start, end)
    calls = CallRecord.objects.filter(tenant=tenant, occurred_at__gte=first, occurred_at__lt=last)
    if "api_key" in params:
        calls = calls.filter(api_key__public_id=params["api_key"])
    if "model" in params:
        calls = calls.filter(model__name=params["model"])
    values = calls.values("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens")
    return _totals({**value, "calls": 1} for value in values)


def _timeseries(client, params, bucket, group_by):
    body = client.get("/api/v1/usage/timeseries", {**params, "bucket": bucket, "group_by": group_by}).json()
    assert all(len(series["points"]) == len(body["buckets"]) for series in body["series"])
    return _totals(point for series in body["series"] for point in series["points"])


def _breakdown(client, params, by):
    return _totals(client.get("/api/v1/usage/breakdown", {**params, "by": by}).json()["results"])


def _csv(client, params):
    rows = list(csv.DictReader(io.StringIO(csv_body(client.get("/api/v1/usage/export.csv", params)))))
    assert len({(row["date"], row["api_key"], row["model"]) for row in rows}) == len(rows)
    return _totals(rows)


def _page_cards(owner_client, params, slug="acme"):
    """The numbers on the Usage Statistics page's cards, {card: value}; {} while the page has none."""
    html = owner_client.get(f"/t/{slug}/usage/", params).content.decode()
    cards = re.findall(r'data-card="(\w+)".*?data-value="(-?\d+)"', html, flags=re.DOTALL)
    return {card: int(value) for card, value in cards}


def _check_one(tenant, client, owner_client, rng, params):
    summary = client.get("/api/v1/usage/summary", params).json()
    expected = {name: summary[name] for name in FIELDS}
    assert expected == _ledger(tenant, summary, params), params
    assert _timeseries(client, params, "day", rng.choice(["model", "api_key", "none"])) == expected, params
    start, end = dt.date.fromisoformat(summary["start"]), dt.date.fromisoformat(summary["end"])
    if (end - start).days < 2:
        assert _timeseries(client, params, "hour", rng.choice(["model", "api_key", "none"])) == expected, params
    assert _breakdown(client, params, rng.choice(["model", "api_key"])) == expected, params
    assert _csv(client, params) == expected, params
    for card, value in _page_cards(owner_client, params, tenant.slug).items():
        assert value == expected[card], (params, card)
    return expected["calls"]


def test_page_api_and_csv_agree_with_the_ledger(tenant, world, owner_client):
    rng, keys, models, today = world
    client = token_client(tenant)
    calls = [
        _check_one(tenant, client, owner_client, rng, params) for params in _filter_sets(rng, keys, models, today, 30)
    ]
    assert sum(1 for count in calls if count) >= 15, "most filter sets should find calls"


def test_the_second_tenants_page_api_and_csv_agree_with_its_own_ledger(other_tenant, world, theirs):
    """Globex reads its own calls on the same days, in its zone: none of Acme's."""
    _rng, _keys, models, today = world
    rng, keys, client, page_client = theirs
    today = timezone.now().astimezone(other_tenant.tz).date()
    calls = [
        _check_one(other_tenant, client, page_client, rng, params)
        for params in _filter_sets(rng, keys, models, today, 12)
    ]
    assert sum(1 for count in calls if count) >= 6, "most filter sets should find calls"


def test_the_page_shows_cards_to_compare(tenant, world, owner_client):
    """Guards the parity test above: if the page stops rendering cards, it would compare nothing."""
    cards = _page_cards(owner_client, {"preset": "last_30_days"})
    assert cards, "The Usage Statistics page renders no cards: the parity test would compare nothing"
    assert {"calls", "total_tokens", "input_tokens", "output_tokens"} <= set(cards)


# --- Cost -------------------------------------------------------------------------------------


@pytest.fixture
def priced_world(tenant, other_tenant, world):
    """model-0: a platform price that changes 20 days ago; model-1: a platform price in USD and,
    from 10 days ago, the tenant's contract price in EUR; model-2: no price at all."""
    _rng, _keys, models, today = world
    price(models[0], today - dt.timedelta(days=400), "0.137", "0.411", cached="0.013")
    price(models[0], today - dt.timedelta(days=20), "0.171", "0.533")
    price(models[1], today - dt.timedelta(days=400), "1.003", "2.997")
    price(models[1], today - dt.timedelta(days=10), "0.901", "2.503", tenant=tenant, currency="EUR")
    price(models[1], today - dt.timedelta(days=400), "99", "99", tenant=other_tenant, currency="GBP")  # not ours
    return world


def _money(cost_objects):
    """({currency: Decimal} without zero amounts, unpriced tokens) of one API ``cost`` list."""
    amounts = Counter({item["currency"]: Decimal(item["amount"]) for item in cost_objects})
    unpriced = {item["unpriced_tokens"] for item in cost_objects}
    assert len(unpriced) == 1, cost_objects  # the same on every object of a list
    return amounts, unpriced.pop()


def _money_sum(cost_lists):
    amounts, unpriced = Counter(), 0
    for cost_objects in cost_lists:
        line_amounts, line_unpriced = _money(cost_objects)
        amounts.update(line_amounts)
        unpriced += line_unpriced
    return {currency: amount for currency, amount in amounts.items() if amount}, unpriced


def _csv_money(client, params):
    amounts, unpriced = Counter(), 0
    for row in csv.DictReader(io.StringIO(csv_body(client.get("/api/v1/usage/export.csv", params)))):
        if row["cost"]:
            amounts[row["currency"]] += Decimal(row["cost"])
        else:
            assert row["currency"] == ""
            unpriced += int(row["input_tokens"]) + int(row["output_tokens"])
    return {currency: amount for currency, amount in amounts.items() if amount}, unpriced


def _cost_views(client, params, group_by):
    """The cost of ``params`` as each read of the API adds it up."""
    breakdowns = {
        by: [row["cost"] for row in client.get("/api/v1/usage/breakdown", {**params, "by": by}).json()["results"]]
        for by in ("model", "api_key")
    }
    series = client.get("/api/v1/usage/timeseries", {**params, "bucket": "day", "group_by": group_by}).json()
    return {
        "breakdown by model": _money_sum(breakdowns["model"]),
        "breakdown by key": _money_sum(breakdowns["api_key"]),
        f"daily series by {group_by}": _money_sum(p["cost"] for line in series["series"] for p in line["points"]),
        "CSV": _csv_money(client, params),
    }


def _check_cost(tenant, client, rng, params):
    summary = client.get("/api/v1/usage/summary", params).json()
    expected = _money_sum([summary["cost"]])
    filters, errors = filters_or_errors(params, tenant)
    assert not errors
    direct = usage_cost(tenant=tenant, filters=filters)
    assert expected == ({c: a for c, a in direct.amounts.items() if a}, direct.unpriced_tokens), params
    assert summary["unpriced_models"] == direct.unpriced_models
    for name, got in _cost_views(client, params, rng.choice(["model", "api_key", "none"])).items():
        assert got == expected, (params, name)
    return expected


def test_cost_agrees_across_summary_breakdown_series_and_csv(tenant, priced_world):
    rng, keys, models, today = priced_world
    client = token_client(tenant)
    costs = [_check_cost(tenant, client, rng, params) for params in _filter_sets(rng, keys, models, today, 25)]
    currencies = {currency for amounts, _unpriced in costs for currency in amounts}
    assert currencies == {"USD", "EUR"}, "the filter sets should meet both currencies"
    assert any(unpriced for _amounts, unpriced in costs), "and the unpriced model"
    everything = {"start": (today - dt.timedelta(days=45)).isoformat(), "end": today.isoformat()}
    whole = _check_cost(tenant, client, rng, everything)
    assert set(whole[0]) == {"USD", "EUR"} and whole[1] > 0


@pytest.mark.parametrize("months_ago", [0, 1])
def test_monthly_report_total_equals_the_summary_of_the_month(tenant, priced_world, months_ago):
    today = priced_world[3]
    first = today.replace(day=1)
    for _ in range(months_ago):
        first = (first - dt.timedelta(days=1)).replace(day=1)
    last = (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
    client = token_client(tenant)
    report = client.get("/api/v1/reports/monthly", {"month": f"{first:%Y-%m}"}).json()
    summary = client.get("/api/v1/usage/summary", {"start": first.isoformat(), "end": last.isoformat()}).json()
    assert report["cost"] == summary["cost"]
    assert report["unpriced_models"] == summary["unpriced_models"]
    assert report["totals"]["total_tokens"] == summary["total_tokens"] > 0

"""Cache economics (issue 26, item 7): hit rate and what cached reads saved, per model, exact.

Two tenants (UTC and Asia/Kolkata) on the same days through the real write path; a price with a
cached rate that changes mid-range, a contract price in EUR for one tenant, a model whose price
has no cached rate (saves nothing) and an unpriced model. The truth is computed here with
``Fraction`` from the calls sent.
"""

import datetime as dt
import random
from collections import defaultdict
from decimal import Decimal
from fractions import Fraction

import pytest
from django.test import Client
from django.urls import reverse

from accounts import services as accounts
from accounts.models import Membership, User
from usage.ingestion import services
from usage.models import Model
from usage.reporting.money import money_text

from .api_helpers import token_client
from .factories import price, utc

NOW = utc(2026, 11, 20, 12)
PERIOD = {"start": "2026-11-01", "end": "2026-11-18"}
# model -> [(from, tenant slug or None, currency, input, cached)] per 1K tokens (output priced apart)
PRICES = {
    "public/r1": [
        (dt.date(2026, 1, 1), None, "USD", "0.00055", "0.00014"),
        (dt.date(2026, 11, 9), None, "USD", "0.0006", "0.00001"),
        (dt.date(2026, 11, 5), "globex", "EUR", "0.00047", "0.00012345"),
    ],
    "public/plain": [(dt.date(2026, 1, 1), None, "USD", "0.001", None)],
    "x/unpriced": [],
}
ZONES = {"acme": "UTC", "globex": "Asia/Kolkata"}


@pytest.fixture(autouse=True)
def _clock(monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)


@pytest.fixture
def world(db):
    tenants = {s: accounts.tenant_create(slug=s, name=s.title(), timezone_name=z) for s, z in ZONES.items()}
    keys = {s: accounts.api_key_create(tenant=t, name="k")[0] for s, t in tenants.items()}
    for name, terms in PRICES.items():
        model = Model.objects.create(name=name)
        for day, slug, currency, inp, cached in terms:
            price(model, day, inp, "0.002", tenant=tenants.get(slug), currency=currency, cached=cached)
    rng, items = random.Random(7), []
    for n in range(300):
        slug = rng.choice(list(tenants))
        item = {
            "request_id": f"ce-{n}",
            "api_key": keys[slug].public_id,
            "model": rng.choice(list(PRICES)),
            "occurred_at": (utc(2026, 10, 31) + dt.timedelta(seconds=rng.randrange(0, 19 * 86400)))
            .isoformat()
            .replace("+00:00", "Z"),
            "input_tokens": rng.randrange(0, 50000),
            "output_tokens": rng.randrange(0, 5000),
        }
        if rng.random() < 0.7:
            item["cached_input_tokens"] = rng.randrange(0, item["input_tokens"] + 1)
        items.append(item)
    assert services.call_records_ingest(items=items, now=NOW).accepted == len(items)
    return tenants, keys, items


def truth(world, slug, first=dt.date(2026, 11, 1), last=dt.date(2026, 11, 18)):
    """{model: (input, cached, {currency: saved})} of the tenant's calls on its local days first..last."""
    tenants, keys, items = world
    tenant = tenants[slug]
    sums = defaultdict(lambda: [0, 0, defaultdict(Fraction)])
    for item in items:
        day = dt.datetime.fromisoformat(item["occurred_at"][:-1] + "+00:00").astimezone(tenant.tz).date()
        if item["api_key"] != keys[slug].public_id or not first <= day <= last:
            continue
        entry, cached = sums[item["model"]], item.get("cached_input_tokens") or 0
        entry[0] += item["input_tokens"]
        entry[1] += cached
        terms = [t for t in PRICES[item["model"]] if t[0] <= day]
        chosen = max([t for t in terms if t[1] == slug] or [t for t in terms if t[1] is None] or [None], key=_day)
        if chosen is not None and chosen[4] is not None and cached:
            entry[2][chosen[2]] += cached * (Fraction(chosen[3]) - Fraction(chosen[4])) / 1000
    return {model: (inp, cached, dict(saved)) for model, (inp, cached, saved) in sums.items()}


def _day(terms):
    return dt.date.min if terms is None else terms[0]


@pytest.mark.parametrize("slug", list(ZONES))
def test_the_api_breakdown_carries_hit_rate_and_exact_savings(world, slug):
    tenants, _keys, _items = world
    expected = truth(world, slug)
    rows = token_client(tenants[slug]).get("/api/v1/usage/breakdown", {**PERIOD, "by": "model"}).json()["results"]
    assert {row["model"] for row in rows} == set(expected)
    for row in rows:
        inp, cached, saved = expected[row["model"]]
        assert row["cache_hit_rate"] == (cached / inp if inp else None)
        assert {s["currency"]: Fraction(Decimal(s["amount"])) for s in row["cache_savings"]} == saved
    assert any(expected[m][2] for m in expected)  # something was saved
    assert expected["public/plain"][1] and not expected["public/plain"][2]  # cached reads at input price


@pytest.mark.parametrize("slug", list(ZONES))
@pytest.mark.parametrize(
    "period", [PERIOD, {"start": "2026-11-08", "end": "2026-11-09"}], ids=["by day", "by hour, across a price change"]
)
def test_the_page_shows_hit_rate_and_savings_per_model(world, slug, period):
    tenants, _keys, _items = world
    expected = truth(world, slug, *(dt.date.fromisoformat(period[k]) for k in ("start", "end")))
    user = User.objects.create_user(f"o@{slug}.test", "pw-for-tests-123")
    Membership.objects.create(user=user, tenant=tenants[slug], role=Membership.Role.OWNER)
    client = Client()
    client.force_login(user)
    data = client.get(reverse("usage:data", kwargs={"slug": slug}), {"preset": "custom", **period}).json()
    assert "Cache hit" in data["html"]["distribution"] and "Cache saved" in data["html"]["distribution"]
    for row in data["distribution"]:
        inp, cached, saved = expected[row["model"]]
        assert row["cache_hit"] == f"{cached / inp * 100:.1f}%"
        shown = " + ".join(
            f"{money_text(Decimal(a.numerator) / Decimal(a.denominator), c)} {c}" for c, a in sorted(saved.items())
        )
        assert row["cache_saved"] == (shown or None), row["model"]

"""Never a silent zero (issue 26, item 6): calls with no price are reported as unpriced, calls and
tokens, on the cards, the API (summary, breakdown), the month-end report and budgets.

Two tenants (UTC and America/New_York) on the same days through the real write path; a model
with no price at all, one priced only from a day inside the range (its calls before are
unpriced) and a contract price that prices a model for one tenant only. Calls with no tokens
are calls too. The truth is counted here from the calls sent.
"""

import datetime as dt
import random
from collections import defaultdict

import pytest
from django.test import Client
from django.urls import reverse

from accounts import services as accounts
from accounts.models import Membership, User
from usage.ingestion import services
from usage.models import Budget, Model

from ..budgets.helpers import budget
from .api_helpers import token_client
from .factories import price, utc

NOW = utc(2026, 11, 20, 12)
PERIOD = {"start": "2026-11-01", "end": "2026-11-18"}
ZONES = {"acme": "UTC", "gotham": "America/New_York"}
# model -> [(from, tenant slug or None)]: no price before the first date in force
PRICED = {
    "public/priced": [(dt.date(2026, 1, 1), None)],
    "public/late": [(dt.date(2026, 11, 9), None)],
    "public/contract": [(dt.date(2026, 11, 4), "gotham")],
    "x/unpriced": [],
}


@pytest.fixture(autouse=True)
def _clock(monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)


@pytest.fixture
def world(db):
    tenants = {s: accounts.tenant_create(slug=s, name=s.title(), timezone_name=z) for s, z in ZONES.items()}
    keys = {s: accounts.api_key_create(tenant=t, name="k")[0] for s, t in tenants.items()}
    for name, terms in PRICED.items():
        model = Model.objects.create(name=name)
        for day, slug in terms:
            price(model, day, "0.001", "0.002", tenant=tenants.get(slug))
    rng, items = random.Random(6), []
    for n in range(260):
        slug = rng.choice(list(tenants))
        items.append(
            {
                "request_id": f"un-{n}",
                "api_key": keys[slug].public_id,
                "model": rng.choice(list(PRICED)),
                "occurred_at": (utc(2026, 11, 1, 6) + dt.timedelta(seconds=rng.randrange(0, 17 * 86400)))
                .isoformat()
                .replace("+00:00", "Z"),
                "input_tokens": rng.choice([0, rng.randrange(0, 9000)]),
                "output_tokens": rng.choice([0, rng.randrange(0, 900)]),
            }
        )
    assert services.call_records_ingest(items=items, now=NOW).accepted == len(items)
    return tenants, keys, items


def truth(world, slug, first=dt.date(2026, 11, 1), last=dt.date(2026, 11, 18)):
    """{model: [unpriced calls, unpriced tokens]} of the tenant's calls on its local days."""
    tenants, keys, items = world
    found = defaultdict(lambda: [0, 0])
    for item in items:
        day = dt.datetime.fromisoformat(item["occurred_at"][:-1] + "+00:00").astimezone(tenants[slug].tz).date()
        if item["api_key"] != keys[slug].public_id or not first <= day <= last:
            continue
        if not any(start <= day and who in (None, slug) for start, who in PRICED[item["model"]]):
            found[item["model"]][0] += 1
            found[item["model"]][1] += item["input_tokens"] + item["output_tokens"]
    return dict(found)


def _total(found):
    return [sum(v[0] for v in found.values()), sum(v[1] for v in found.values())]


def member_client(tenant):
    user = User.objects.create_user(f"owner@{tenant.slug}.test", "pw-for-tests-123")
    Membership.objects.create(user=user, tenant=tenant, role=Membership.Role.OWNER)
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("slug", list(ZONES))
def test_the_api_reports_unpriced_calls_and_tokens(world, slug):
    tenants, _keys, _items = world
    expected, client = truth(world, slug), token_client(tenants[slug])
    summary = client.get("/api/v1/usage/summary", PERIOD).json()
    assert [summary["unpriced_calls"], summary["cost"][0]["unpriced_tokens"]] == _total(expected)
    rows = client.get("/api/v1/usage/breakdown", {**PERIOD, "by": "model"}).json()["results"]
    assert {row["model"]: row["unpriced_calls"] for row in rows if row["unpriced_calls"]} == {
        model: calls for model, (calls, _tokens) in expected.items()
    }
    assert {"x/unpriced", "public/late"} <= set(expected)
    assert "public/priced" not in expected and "public/contract" in expected  # gotham's: before its contract


@pytest.mark.parametrize("slug", list(ZONES))
def test_the_cards_and_the_report_name_the_unpriced_calls(world, slug):
    tenants, _keys, _items = world
    tenant, client = tenants[slug], member_client(tenants[slug])
    calls, tokens = _total(truth(world, slug))
    data = client.get(reverse("usage:data", kwargs={"slug": slug}), {"preset": "custom", **PERIOD}).json()
    assert data["cost"]["unpriced_calls"] == calls
    assert (
        f'+ {tokens:,} unpriced tokens <span class="unpriced-calls">in {calls:,} calls</span>'
        in (data["html"]["cards"])
    )
    month = truth(world, slug, dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    report = token_client(tenant).get("/api/v1/reports/monthly", {"month": "2026-11"}).json()
    assert [report["unpriced_calls"], report["cost"][0]["unpriced_tokens"]] == _total(month)
    page = client.get(reverse("reports:monthly", kwargs={"slug": slug}), {"month": "2026-11"}).content.decode()
    assert f"{_total(month)[1]:,} tokens of {_total(month)[0]:,} calls had no price in force" in page


@pytest.mark.parametrize("slug", list(ZONES))
def test_budgets_report_the_unpriced_calls(world, slug):
    tenants, _keys, _items = world
    tenant = tenants[slug]
    plan = budget(tenant, metric="cost", currency="USD", amount=1000, thresholds=[100])
    Budget.objects.filter(pk=plan.pk).update(created_at=NOW)
    today = NOW.astimezone(tenant.tz).date()
    calls, tokens = _total(truth(world, slug, dt.date(2026, 11, 1), today))
    status = token_client(tenant).get("/api/v1/budgets").json()["results"][0]["status"]
    assert [status["unpriced_calls"], status["unpriced_tokens"]] == [calls, tokens]

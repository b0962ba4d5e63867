"""Exact money (issue 26, item 1): every surface carries the exact cost, rounded only where shown.

Random calls of three tenants on the same days (UTC, America/New_York across the end of daylight
saving time on 2026-11-01, Asia/Kolkata at +05:30) go through the real write path. The truth is
computed here, independently of the cost engine: each call's cost as a ``Fraction`` at the price
in force on its local day (contract first, then platform), summed. The page's data, the REST
API's summary, breakdowns and series, the CSV, the month-end report (API, page, CSV) and budgets
must equal it exactly, and show it rounded by the one rule (``usage.reporting.money``).
"""

import csv
import datetime as dt
import io
import json
import random
from collections import defaultdict
from decimal import Decimal
from fractions import Fraction

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from accounts import services as accounts
from accounts.models import Membership, User
from usage.budgets.selectors import budget_status
from usage.ingestion import services
from usage.models import Model

from ..budgets.helpers import budget
from .api_helpers import csv_body, token_client
from .factories import price, utc

NOW = utc(2026, 11, 12, 12)
START, END = dt.date(2026, 10, 26), dt.date(2026, 11, 10)
ZONES = {"acme": "UTC", "gotham": "America/New_York", "globex": "Asia/Kolkata"}
# model -> [(effective_from, tenant slug or None, currency, input, output, cached)] per 1K tokens
PRICES = {
    "public/glm-4-9b-chat": [(dt.date(2026, 1, 1), None, "USD", "0.0001", "0.0001", None)],
    "public/bge-m3": [(dt.date(2026, 1, 1), None, "USD", "0.00002", "0", None)],
    "public/deepseek-r1": [
        (dt.date(2026, 1, 1), None, "USD", "0.00055", "0.00219", "0.00014"),
        (dt.date(2026, 11, 5), None, "USD", "0.0005", "0.002", None),  # a cut on a day inside the range
        (dt.date(2026, 11, 3), "gotham", "USD", "0.00033333", "0.00123457", "0.00000001"),  # a contract
    ],
    "eu/mistral": [(dt.date(2026, 10, 30), "globex", "EUR", "0.00012345", "0.00067891", "0.00001234")],
    "x/unpriced": [],
}


@pytest.fixture(autouse=True)
def _clock(monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)


@pytest.fixture
def world(db):
    tenants = {
        slug: accounts.tenant_create(slug=slug, name=slug.title(), timezone_name=zone) for slug, zone in ZONES.items()
    }
    keys = {
        slug: [accounts.api_key_create(tenant=t, name=f"{slug}-{n}")[0] for n in range(2)]
        for slug, t in tenants.items()
    }
    models = {name: Model.objects.create(name=name) for name in PRICES}
    for name, terms in PRICES.items():
        for day, slug, currency, inp, out, cached in terms:
            tenant = tenants[slug] if slug else None
            price(models[name], day, inp, out, tenant=tenant, currency=currency, cached=cached)
    rng = random.Random(26)
    items = []
    for n in range(420):
        slug = rng.choice(list(tenants))
        when = utc(2026, 10, 25) + dt.timedelta(seconds=rng.randrange(0, 18 * 86400))
        item = {
            "request_id": f"exact-{n}",
            "api_key": rng.choice(keys[slug]).public_id,
            "model": rng.choice(list(models)),
            "occurred_at": when.isoformat().replace("+00:00", "Z"),
            "input_tokens": rng.choice([1, 7, rng.randrange(0, 60000)]),
            "output_tokens": rng.choice([0, 3, rng.randrange(0, 9000)]),
        }
        if rng.random() < 0.6:
            item["cached_input_tokens"] = rng.randrange(0, item["input_tokens"] + 1)
        items.append(item)
    result = services.call_records_ingest(items=items, now=NOW)
    assert result.accepted == len(items)
    return tenants, keys, models, items


# --- The truth, from the calls sent and the price list above --------------------------------


def in_force(model, slug, day):
    """The terms in force for the tenant on its local ``day``: its contract, else the platform's."""
    terms = [t for t in PRICES[model] if t[0] <= day]
    own = [t for t in terms if t[1] == slug]
    platform = [t for t in terms if t[1] is None]
    chosen = max(own or platform, key=lambda t: t[0], default=None)
    return None if chosen is None else chosen[2:]


def call_cost(item, terms):
    currency, inp, out, cached = terms
    read = item.get("cached_input_tokens") or 0
    fresh = item["input_tokens"] - read
    money = fresh * Fraction(inp) + read * Fraction(cached or inp) + item["output_tokens"] * Fraction(out)
    return currency, money / 1000


class Truth:
    """Exact costs of one tenant's calls on its local days ``first``..``last``."""

    def __init__(self, world, slug, first=START, last=END):
        tenants, keys, _models, items = world
        tenant = tenants[slug]
        names = {key.public_id: key for key in keys[slug]}
        self.lines = defaultdict(Fraction)  # (day, key public id, model, currency) -> cost
        self.unpriced = 0
        for item in items:
            if item["api_key"] not in names:
                continue
            when = dt.datetime.fromisoformat(item["occurred_at"].replace("Z", "+00:00"))
            day = when.astimezone(tenant.tz).date()
            if not first <= day <= last:
                continue
            terms = in_force(item["model"], slug, day)
            if terms is None:
                self.unpriced += item["input_tokens"] + item["output_tokens"]
                continue
            currency, cost = call_cost(item, terms)
            self.lines[(day, item["api_key"], item["model"], currency)] += cost

    def total(self, **where):
        sums = defaultdict(Fraction)
        fields = ("day", "key", "model", "currency")
        for line, cost in self.lines.items():
            if all(line[fields.index(name)] == value for name, value in where.items()):
                sums[line[3]] += cost
        return dict(sums)


def exact(api_cost):
    """{currency: Fraction} of an API ``cost`` list, with the zero object left out."""
    return {item["currency"]: Fraction(Decimal(item["amount"])) for item in api_cost if Decimal(item["amount"])}


def shown(amount, currency="USD"):
    """The rule, independently: half-even to the cent; below ten cents, three significant digits."""
    if amount and abs(amount) < Fraction(1, 10):
        digits = 2
        while abs(amount) * 10**digits < 100:  # until three significant digits are left of the point
            digits += 1
        text = f"{Decimal(round(amount * 10**digits)).scaleb(-digits):f}".rstrip("0")
        return text if len(text.split(".")[1]) >= 2 else f"{Decimal(text):.2f}"
    assert currency in ("USD", "EUR")
    return f"{Decimal(round(amount * 100)).scaleb(-2):,.2f}"


PERIOD = {"start": START.isoformat(), "end": END.isoformat()}
SLUGS = list(ZONES)


def member_client(tenant):
    user = User.objects.create_user(f"owner@{tenant.slug}.test", "pw-for-tests-123")
    Membership.objects.create(user=user, tenant=tenant, role=Membership.Role.OWNER)
    client = Client()
    client.force_login(user)
    return client


# --- The REST API -------------------------------------------------------------------------


@pytest.mark.parametrize("slug", SLUGS)
def test_api_summary_breakdown_and_series_are_exact(world, slug):
    tenants, keys, _models, _items = world
    truth, client = Truth(world, slug), token_client(tenants[slug])
    summary = client.get("/api/v1/usage/summary", PERIOD).json()
    assert exact(summary["cost"]) == truth.total()
    assert summary["cost"][0]["unpriced_tokens"] == truth.unpriced
    by_model = client.get("/api/v1/usage/breakdown", {**PERIOD, "by": "model"}).json()["results"]
    assert {row["model"]: exact(row["cost"]) for row in by_model} == {
        name: truth.total(model=name) for name in {row["model"] for row in by_model}
    }
    by_key = client.get("/api/v1/usage/breakdown", {**PERIOD, "by": "api_key"}).json()["results"]
    assert {row["api_key"]: exact(row["cost"]) for row in by_key} == {
        key.public_id: truth.total(key=key.public_id) for key in keys[slug]
    }
    series = client.get("/api/v1/usage/timeseries", {**PERIOD, "group_by": "model"}).json()["series"]
    for line in series:
        for point in line["points"]:
            day = dt.date.fromisoformat(point["bucket"][:10])
            assert exact(point["cost"]) == truth.total(model=line["model"], day=day), (line["model"], day)


@pytest.mark.parametrize("slug", SLUGS)
def test_csv_lines_are_exact_and_add_up_to_the_summary(world, slug):
    tenants, *_rest = world
    truth = Truth(world, slug)
    rows = list(
        csv.DictReader(io.StringIO(csv_body(token_client(tenants[slug]).get("/api/v1/usage/export.csv", PERIOD))))
    )
    costs = {
        (dt.date.fromisoformat(row["date"]), row["api_key"], row["model"], row["currency"]): Fraction(
            Decimal(row["cost"])
        )
        for row in rows
        if row["currency"]
    }
    assert costs == dict(truth.lines)
    assert all("e" not in row["cost"].lower() for row in rows)  # plain notation


# --- The page -------------------------------------------------------------------------------


@pytest.mark.parametrize("slug", SLUGS)
def test_page_data_is_exact_and_shows_each_figure_rounded_once(world, slug):
    tenants, *_rest = world
    tenant, truth = tenants[slug], Truth(world, slug)
    client = member_client(tenant)
    url = reverse("usage:data", kwargs={"slug": slug})
    data = client.get(url, {"preset": "custom", **PERIOD}).json()
    assert exact(data["cost"]["amounts"]) == truth.total()
    for row in data["distribution"]:
        amounts = truth.total(model=row["model"])
        expected = " + ".join(f"{shown(amounts[c])} {c}" for c in sorted(amounts)) if amounts else None
        assert row["cost"] == expected, row["model"]
    card = " + ".join(
        f"{shown(amount)} <small>{currency}</small>" for currency, amount in sorted(truth.total().items())
    )
    assert card in data["html"]["cards"]
    trend = data["trend"]
    if trend["cost_currency"]:  # one currency: the trend's cost metric, exact per model and day
        for dataset in trend["datasets"]:
            for label, amount in zip(trend["labels"], dataset["cost"], strict=True):
                day = dt.datetime.strptime(f"{label} 2026 +0000", "%b %d %Y %z").date()
                if day < START:
                    day = day.replace(year=2027)
                expected = truth.total(model=dataset["label"], day=day).get(trend["cost_currency"], 0)
                assert Fraction(Decimal(amount)) == expected, (dataset["label"], label)
    assert (trend["cost_currency"] is None) == (slug == "globex")  # globex also pays in EUR


# --- The month-end report and budgets --------------------------------------------------------


@pytest.mark.parametrize("slug", SLUGS)
def test_monthly_report_is_exact_and_shown_rounded(world, slug):
    tenants, *_rest = world
    tenant = tenants[slug]
    truth = Truth(world, slug, dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    report = token_client(tenant).get("/api/v1/reports/monthly", {"month": "2026-11"}).json()
    assert exact(report["cost"]) == truth.total()
    for section in report["keys"]:
        assert exact(section["cost"]) == truth.total(key=section["api_key"])
    for row in report["rows"]:
        expected = truth.total(key=row["api_key"], model=row["model"])
        assert exact(row["cost"]) == ({row["currency"]: expected[row["currency"]]} if row["currency"] else {})
    client = member_client(tenant)
    page = client.get(reverse("reports:monthly", kwargs={"slug": slug}), {"month": "2026-11"}).content.decode()
    for currency, amount in truth.total().items():
        assert f'<span class="amount">{shown(amount)} {currency}</span>' in page
    assert "computed exactly" in page and "shown rounded half-even" in page
    body = client.get(reverse("reports:monthly_csv", kwargs={"slug": slug}), {"month": "2026-11"}).content.decode()
    sums = defaultdict(Fraction)
    for row in csv.DictReader(io.StringIO(body)):
        if row["currency"]:
            sums[row["currency"]] += Fraction(Decimal(row["cost"]))
    assert dict(sums) == truth.total()


@pytest.mark.parametrize("slug", SLUGS)
def test_budgets_compare_and_report_the_exact_spent(world, slug):
    tenants, *_rest = world
    tenant = tenants[slug]
    truth = Truth(world, slug, dt.date(2026, 11, 1), NOW.astimezone(tenant.tz).date())
    spent = truth.total().get("USD", Fraction(0))
    limit = Decimal(round(spent * 10**8)).scaleb(-8) + Decimal("0.00000001")  # just above the exact spent
    plan = budget(tenant, metric="cost", currency="USD", amount=limit, thresholds=[100])
    status = budget_status(budget=plan)
    assert Fraction(status.spent) == spent
    # Exactly: the exact spent stays below a limit just above it (rounding to the cent first would not).
    assert status.state != "exceeded"
    api = token_client(tenant).get("/api/v1/budgets").json()["results"][0]["status"]
    assert Fraction(Decimal(api["spent"])) == spent
    page = member_client(tenant).get(reverse("budgets:list", kwargs={"slug": slug})).content.decode()
    assert f'<td class="num spent">{shown(spent)}</td>' in page


# --- The figures ----------------------------------------------------------------------


def test_a_cheap_model_no_longer_vanishes(db, monkeypatch):
    """public/glm-4-9b-chat: 3,164,304 tokens at 0.0001/1K in November = 0.3164304 USD (shown
    0.32; rounding each day x key line first said 0.00), public/bge-m3: 0.0139 USD (shown so)."""
    monkeypatch.setattr("django.utils.timezone.now", lambda: utc(2026, 12, 3, 12))
    tenant = accounts.tenant_create(slug="demo", name="Demo", timezone_name="Europe/Berlin")
    other = accounts.tenant_create(slug="side", name="Side", timezone_name="UTC")
    glm, bge = Model.objects.create(name="public/glm-4-9b-chat"), Model.objects.create(name="public/bge-m3")
    price(glm, dt.date(2026, 1, 1), "0.0001", "0.0001")
    price(bge, dt.date(2026, 1, 1), "0.00002", "0")
    items = []
    for owner in (tenant, other):  # the second tenant: calls on the same days, twice the tokens
        keys = [accounts.api_key_create(tenant=owner, name=f"k{n}")[0] for n in range(3)]
        scale = 1 if owner is tenant else 2
        glm_items = [
            _item(owner, key, glm, day, n, (35159 + (day * 3 + n) % 7 - 3) * scale, 0)  # lines of ~0.0035 USD
            for day in range(1, 31)
            for n, key in enumerate(keys)
        ]
        # The month's glm tokens: exactly 3,164,304 (x2 for the second tenant).
        glm_items[0]["input_tokens"] += 3164304 * scale - sum(item["input_tokens"] for item in glm_items)
        items += glm_items
        # bge-m3: 695,000 tokens at 0.00002/1K = 0.0139 USD, in lines of 0.000556.
        items += [_item(owner, keys[0], bge, day, 9, 27800 * scale, 0) for day in range(1, 26)]
    assert services.call_records_ingest(items=items, now=utc(2026, 12, 1, 12)).accepted == len(items)
    november = {"start": "2026-11-01", "end": "2026-11-30"}
    for owner, glm_cost, bge_cost, glm_shown, bge_shown in (
        (tenant, "0.3164304", "0.0139", "0.32", "0.0139"),
        (other, "0.6328608", "0.0278", "0.63", "0.0278"),
    ):
        client = token_client(owner)
        rows = client.get("/api/v1/usage/breakdown", {**november, "by": "model"}).json()["results"]
        assert {row["model"]: row["cost"][0]["amount"] for row in rows} == {glm.name: glm_cost, bge.name: bge_cost}
        total = Decimal(glm_cost) + Decimal(bge_cost)
        assert client.get("/api/v1/usage/summary", november).json()["cost"][0]["amount"] == str(total)
        cache.clear()
        data = (
            member_client(owner)
            .get(reverse("usage:data", kwargs={"slug": owner.slug}), {"preset": "custom", **november})
            .json()
        )
        assert {row["model"]: row["cost"] for row in data["distribution"]} == {
            glm.name: f"{glm_shown} USD",
            bge.name: f"{bge_shown} USD",
        }
        report = client.get("/api/v1/reports/monthly", {"month": "2026-11"}).json()
        assert report["cost"][0]["amount"] == str(total)


def _item(tenant, key, model, day, n, input_tokens, output_tokens):
    when = dt.datetime(2026, 11, day, 10 + n, tzinfo=tenant.tz).astimezone(dt.UTC)
    return {
        "request_id": f"{tenant.slug}-{model.name}-{day}-{n}",
        "api_key": key.public_id,
        "model": model.name,
        "occurred_at": when.isoformat().replace("+00:00", "Z"),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
    }


def test_a_threshold_is_compared_with_the_exact_spent(db):
    """79.96% of the limit is below an 80% threshold, although the percent shown (to 0.1) reads 80.0."""
    from usage.budgets.services import budget_evaluate
    from usage.models import Budget, BudgetAlert

    tenants = [
        accounts.tenant_create(slug=s, name=s, timezone_name=z) for s, z in (("a", "UTC"), ("b", "Asia/Kolkata"))
    ]
    model = Model.objects.create(name="public/glm-4-9b-chat")
    price(model, dt.date(2026, 1, 1), "0.0001", "0")
    for tenant, tokens in zip(tenants, (7_996_000, 8_000_000), strict=True):  # 0.7996 and 0.8000 USD
        key = accounts.api_key_create(tenant=tenant, name="k")[0]
        items = [_item(tenant, key, model, 1, n, tokens // 4, 0) for n in range(4)]  # before the run rate's days
        assert services.call_records_ingest(items=items, now=NOW).accepted == 4
    below, at = (budget(t, metric="cost", currency="USD", amount=1, thresholds=[80]) for t in tenants)
    for made in (below, at):  # made in the period evaluated: alerts start with a budget's first period
        Budget.objects.filter(pk=made.pk).update(created_at=NOW)
        made.refresh_from_db()
    status = budget_evaluate(budget=below, now=NOW)
    assert (status.spent, status.percent, status.state) == (Decimal("0.7996"), Decimal("80.0"), "within")
    assert not BudgetAlert.objects.filter(budget=below).exists()
    assert budget_evaluate(budget=at, now=NOW).state == "warning"
    assert BudgetAlert.objects.filter(budget=at, threshold=80).count() == 1


def test_the_demo_shows_the_exact_month_total(db, traces, monkeypatch):
    """``seed_demo``'s data: the month-end report's total (API and page) is the exact sum of its calls."""
    from accounts.models import Tenant
    from usage.demo import seed as demo
    from usage.models import CallRecord, ModelPrice

    from .test_token_class_costs import call_costs as class_call_costs

    now = dt.datetime(2026, 3, 18, 9, 30, tzinfo=dt.UTC)
    monkeypatch.setattr("django.utils.timezone.now", lambda: now)
    demo.seed_demo(config=demo.DemoConfig(days=20, trace_sample=8, synthetic_peak=15, trace_dir=traces), now=now)
    for tenant in Tenant.objects.filter(slug__in=("demo", "side-project")):
        month_start = now.astimezone(tenant.tz).date().replace(day=1)
        total = defaultdict(Fraction)
        for record in CallRecord.objects.filter(tenant=tenant).select_related("model"):
            day = record.occurred_at.astimezone(tenant.tz).date()
            if day < month_start:
                continue
            prices = ModelPrice.objects.filter(model=record.model, effective_from__lte=day).order_by("-effective_from")
            terms = prices.filter(tenant=tenant).first() or prices.filter(tenant=None).first()
            if terms is None:
                continue
            if terms.pricing_rules or terms.request_fee is not None:  # a call-priced price (issue 26 item 3)
                from .test_call_prices import call_cost as call_priced_cost

                rules = json.loads(terms.pricing_rules) if terms.pricing_rules else None
                rates = (terms.input_per_1k, terms.output_per_1k, terms.cached_input_per_1k, terms.request_fee, rules)
                item = {
                    "input_tokens": record.input_tokens,
                    "output_tokens": record.output_tokens,
                    "cached_input_tokens": record.cached_input_tokens,
                    "service_tier": record.service_tier,
                }
                total[terms.currency] += call_priced_cost(
                    item, tuple(str(r) if isinstance(r, Decimal) else r for r in rates), record.occurred_at
                )
            else:
                # Every token class (issue 26: the demo has a model with cache writes priced apart).
                rates = (
                    terms.currency, terms.input_per_1k, terms.output_per_1k, terms.cached_input_per_1k,
                    terms.cache_write_per_1k, terms.cache_write_1h_per_1k, terms.reasoning_per_1k,
                )  # fmt: skip
                item = {
                    name: getattr(record, name)
                    for name in (
                        "input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens",
                        "cache_creation_input_tokens", "cache_creation_1h_input_tokens",
                    )
                }  # fmt: skip
                currency, costs = class_call_costs(item, rates)
                total[currency] += sum(costs.values())
        assert total, tenant.slug
        month = f"{month_start:%Y-%m}"
        report = token_client(tenant).get("/api/v1/reports/monthly", {"month": month}).json()
        assert exact(report["cost"]) == dict(total)
        page = member_client(tenant).get(reverse("reports:monthly", kwargs={"slug": tenant.slug}), {"month": month})
        for currency, amount in total.items():
            assert f'<span class="amount">{shown(amount, currency)} {currency}</span>' in page.content.decode()

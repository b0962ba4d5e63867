"""Cost per token class (issue 26, items 2 and 8): cache writes (5-minute and one-hour) and
reasoning priced apart, shown per class on every surface, exact.

Random calls of three tenants on the same days (UTC, America/New_York across the end of daylight
saving time on 2026-11-01, Asia/Kolkata at +05:30), every token class in use, go through the real
write path. The truth is computed here, independently of the cost engine: each call's cost per
class as a ``Fraction`` at the price in force on its local day, by the rule the README states
(an empty cache write rate is the input rate, an empty one-hour rate the write rate, an empty
reasoning rate the output rate). The REST API (summary, breakdown by model and key), the CSV, the
month-end report (API, page, CSV) and the OpenAI-compatible costs by line item must equal it
exactly, and each surface's classes must add up to its cost exactly.
"""

import csv
import datetime as dt
import io
import random
from collections import defaultdict
from decimal import Decimal
from fractions import Fraction

import pytest
from django.urls import reverse

from accounts import services as accounts
from usage.ingestion import services
from usage.models import Model, ModelPrice

from .api_helpers import csv_body, token_client
from .factories import utc
from .test_exact_money import member_client

NOW = utc(2026, 11, 12, 12)
START, END = dt.date(2026, 10, 26), dt.date(2026, 11, 10)
ZONES = {"acme": "UTC", "gotham": "America/New_York", "globex": "Asia/Kolkata"}
CLASSES = ("input", "cached_read", "cache_write", "output")
LABELS = {"input": "input", "cached_read": "cached input", "cache_write": "cache write", "output": "output"}
# model -> [(from, tenant slug or None, currency, input, output, cached, write, write 1h, reasoning)] per 1K
PRICES = {
    "anthropic/claude": [
        (dt.date(2026, 1, 1), None, "USD", "0.003", "0.015", "0.0003", "0.00375", "0.006", None),
        (dt.date(2026, 11, 4), None, "USD", "0.0029", "0.0149", "0.00029", "0.0036", None, None),  # no 1h rate
        (dt.date(2026, 11, 2), "gotham", "USD", "0.00271", "0.01333", None, None, "0.00543", None),  # contract
    ],
    "openai/o-reasoner": [(dt.date(2026, 1, 1), None, "USD", "0.0011", "0.0044", "0.000275", None, None, "0.0088")],
    "eu/mistral": [(dt.date(2026, 10, 30), "globex", "EUR", "0.00012345", "0.00067891", None, "0.0002", None, None)],
    "x/unpriced": [],
}


@pytest.fixture(autouse=True)
def _clock(monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)


def _rate(value):
    return None if value is None else Decimal(value)


def _item(rng, n, key, model):
    when = utc(2026, 10, 25) + dt.timedelta(seconds=rng.randrange(0, 18 * 86400))
    inp = rng.choice([1, 9, rng.randrange(0, 80000)])
    out = rng.choice([0, 5, rng.randrange(0, 9000)])
    item = {
        "request_id": f"class-{n}",
        "api_key": key.public_id,
        "model": model,
        "occurred_at": when.isoformat().replace("+00:00", "Z"),
        "input_tokens": inp,
        "output_tokens": out,
    }
    if rng.random() < 0.6:
        item["cached_input_tokens"] = rng.randrange(0, inp + 1)
    if rng.random() < 0.6:
        writes = item["cache_creation_input_tokens"] = rng.randrange(0, inp - item.get("cached_input_tokens", 0) + 1)
        if rng.random() < 0.6:
            item["cache_creation_1h_input_tokens"] = rng.randrange(0, writes + 1)
    if rng.random() < 0.5:
        item["reasoning_tokens"] = rng.randrange(0, out + 1)
    return item


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
        for day, slug, currency, inp, out, cached, write, write_1h, reasoning in terms:
            ModelPrice.objects.create(
                model=models[name], tenant=tenants[slug] if slug else None, currency=currency,
                input_per_1k=Decimal(inp), output_per_1k=Decimal(out), cached_input_per_1k=_rate(cached),
                cache_write_per_1k=_rate(write), cache_write_1h_per_1k=_rate(write_1h),
                reasoning_per_1k=_rate(reasoning), effective_from=day,
            )  # fmt: skip
    rng = random.Random(2608)
    items = [
        _item(rng, n, rng.choice(keys[slug]), rng.choice(list(models)))
        for n, slug in enumerate(rng.choice(list(tenants)) for _ in range(360))
    ]
    result = services.call_records_ingest(items=items, now=NOW)
    assert result.accepted == len(items), result.errors[:3]
    return tenants, keys, models, items


# --- The truth ------------------------------------------------------------------------------------


def in_force(model, slug, day):
    terms = [t for t in PRICES[model] if t[0] <= day]
    own = [t for t in terms if t[1] == slug]
    platform = [t for t in terms if t[1] is None]
    chosen = max(own or platform, key=lambda t: t[0], default=None)
    return None if chosen is None else chosen[2:]


def call_costs(item, terms):
    """(currency, {class: Fraction}) of one call, by the README's rule."""
    currency, inp, out, cached, write, write_1h, reasoning = (
        terms[0], *(None if value is None else Fraction(value) for value in terms[1:])
    )  # fmt: skip
    cached, write = cached if cached is not None else inp, write if write is not None else inp
    write_1h, reasoning = write_1h if write_1h is not None else write, reasoning if reasoning is not None else out
    reads = item.get("cached_input_tokens") or 0
    writes = item.get("cache_creation_input_tokens") or 0
    hour = item.get("cache_creation_1h_input_tokens") or 0
    thought = item.get("reasoning_tokens") or 0
    costs = {
        "input": (item["input_tokens"] - reads - writes) * inp,
        "cached_read": reads * cached,
        "cache_write": (writes - hour) * write + hour * write_1h,
        "output": (item["output_tokens"] - thought) * out + thought * reasoning,
    }
    return currency, {name: value / 1000 for name, value in costs.items()}


class Truth:
    def __init__(self, world, slug, first=START, last=END):
        tenants, keys, _models, items = world
        tenant = tenants[slug]
        names = {key.public_id for key in keys[slug]}
        # (day, key, model, currency) -> {class: Fraction}
        self.lines = defaultdict(lambda: dict.fromkeys(CLASSES, Fraction(0)))
        self.tokens = defaultdict(lambda: [0, 0])  # (day, key, model) -> [cache writes, 1h writes]
        for item in items:
            if item["api_key"] not in names:
                continue
            when = dt.datetime.fromisoformat(item["occurred_at"].replace("Z", "+00:00"))
            day = when.astimezone(tenant.tz).date()
            if not first <= day <= last:
                continue
            tokens = self.tokens[(day, item["api_key"], item["model"])]
            tokens[0] += item.get("cache_creation_input_tokens") or 0
            tokens[1] += item.get("cache_creation_1h_input_tokens") or 0
            terms = in_force(item["model"], slug, day)
            if terms is None:
                continue
            currency, costs = call_costs(item, terms)
            line = self.lines[(day, item["api_key"], item["model"], currency)]
            for name in CLASSES:
                line[name] += costs[name]

    def classes(self, **where):
        """{currency: {class: Fraction}} of the lines matching ``where``."""
        fields = ("day", "key", "model", "currency")
        sums = defaultdict(lambda: dict.fromkeys(CLASSES, Fraction(0)))
        for line, costs in self.lines.items():
            if all(line[fields.index(name)] == value for name, value in where.items()):
                for name in CLASSES:
                    sums[line[3]][name] += costs[name]
        return dict(sums)

    def total(self, **where):
        return {currency: sum(costs.values()) for currency, costs in self.classes(**where).items()}


def exact_text(amount):
    """The exact decimal of a Fraction whose denominator divides a power of ten, at least 2 decimals."""
    digits = 0
    while (amount * 10**digits).denominator != 1:
        digits += 1
    text = f"{Decimal(int(amount * 10**digits)).scaleb(-digits):f}"
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def api_classes(cost_by_class):
    return {item["currency"]: {name: Fraction(Decimal(item[name])) for name in CLASSES} for item in cost_by_class}


def api_cost(cost):
    return {item["currency"]: Fraction(Decimal(item["amount"])) for item in cost if Decimal(item["amount"])}


def added_up(classes):
    return {currency: sum(costs.values()) for currency, costs in classes.items()}


PERIOD = {"start": START.isoformat(), "end": END.isoformat()}
SLUGS = list(ZONES)


# --- The REST API -------------------------------------------------------------------------------


@pytest.mark.parametrize("slug", SLUGS)
def test_api_breakdown_cost_per_class_is_exact_and_adds_up(world, slug):
    tenants, keys, _models, _items = world
    truth, client = Truth(world, slug), token_client(tenants[slug])
    assert api_cost(client.get("/api/v1/usage/summary", PERIOD).json()["cost"]) == truth.total()
    for by, field, members in (
        ("model", "model", list(PRICES)),
        ("api_key", "api_key", [key.public_id for key in keys[slug]]),
    ):
        rows = client.get("/api/v1/usage/breakdown", {**PERIOD, "by": by}).json()["results"]
        where = "model" if by == "model" else "key"
        got = {row[field]: api_classes(row["cost_by_class"]) for row in rows}
        assert got == {m: truth.classes(**{where: m}) for m in members if m in got}, by
        for row in rows:
            assert added_up(api_classes(row["cost_by_class"])) == api_cost(row["cost"]), row[field]


@pytest.mark.parametrize("slug", SLUGS)
def test_csv_lines_carry_the_classes_and_their_costs(world, slug):
    tenants, *_rest = world
    truth = Truth(world, slug)
    body = csv_body(token_client(tenants[slug]).get("/api/v1/usage/export.csv", PERIOD))
    rows = list(csv.DictReader(io.StringIO(body)))
    got = {}
    for row in rows:
        line = (dt.date.fromisoformat(row["date"]), row["api_key"], row["model"])
        writes = (int(row["cache_creation_input_tokens"] or 0), int(row["cache_creation_1h_input_tokens"] or 0))
        assert list(writes) == truth.tokens[line], line
        if row["currency"]:
            classes = {name: Fraction(Decimal(row[f"cost_{name}"])) for name in CLASSES}
            assert sum(classes.values()) == Fraction(Decimal(row["cost"]))
            got[(*line, row["currency"])] = classes
        else:
            assert [row[f"cost_{name}"] for name in CLASSES] == ["", "", "", ""]
    assert got == dict(truth.lines)


# --- The month-end report ------------------------------------------------------------------------


@pytest.mark.parametrize("slug", SLUGS)
def test_report_costs_per_class_are_exact(world, slug):
    tenants, *_rest = world
    tenant = tenants[slug]
    truth = Truth(world, slug, dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    report = token_client(tenant).get("/api/v1/reports/monthly", {"month": "2026-11"}).json()
    assert api_classes(report["cost_by_class"]) == truth.classes()
    assert added_up(api_classes(report["cost_by_class"])) == api_cost(report["cost"])
    for row in report["rows"]:
        expected = truth.classes(key=row["api_key"], model=row["model"])
        assert api_classes(row["cost_by_class"]) == (
            {row["currency"]: expected[row["currency"]]} if row["currency"] else {}
        )
    client = member_client(tenant)
    page = client.get(reverse("reports:monthly", kwargs={"slug": slug}), {"month": "2026-11"}).content.decode()
    assert "Cost by token class" in page
    for costs in truth.classes().values():
        for amount in costs.values():
            assert f'<td class="num">{exact_text(amount)}</td>' in page
    body = client.get(reverse("reports:monthly_csv", kwargs={"slug": slug}), {"month": "2026-11"}).content.decode()
    sums = defaultdict(lambda: dict.fromkeys(CLASSES, Fraction(0)))
    for row in csv.DictReader(io.StringIO(body)):
        if row["currency"]:
            for name in CLASSES:
                sums[row["currency"]][name] += Fraction(Decimal(row[f"cost_{name}"]))
    assert dict(sums) == truth.classes()


# --- The OpenAI-compatible costs -----------------------------------------------------------------


@pytest.mark.parametrize("slug", SLUGS)
def test_openai_costs_by_line_item_are_the_classes(world, slug):
    tenants, *_rest = world
    tenant = tenants[slug]
    truth = Truth(world, slug)
    start = dt.datetime.combine(START, dt.time(), tenant.tz)
    params = {
        "start_time": int(start.timestamp()), "limit": 16, "group_by": "line_item",
        "x_timezone": "tenant", "x_usage_statistics": "true",
    }  # fmt: skip
    data = token_client(tenant).get("/api/openai/v1/organization/costs", params).json()["data"]
    got = defaultdict(Fraction)
    for bucket in data:
        day = dt.datetime.fromtimestamp(bucket["start_time"], tenant.tz).date()
        for result in bucket["results"]:
            model, _, label = result["line_item"].rpartition(", ")
            extension = result["x_usage_statistics"]
            if label == "unpriced":
                assert extension["unpriced_tokens"] > 0 and in_force(model, slug, day) is None
                continue
            got[(day, model, extension["currency"], label)] += Fraction(Decimal(extension["amount"]))
    want = defaultdict(Fraction)
    for (day, _key, model, currency), costs in truth.lines.items():
        for name in CLASSES:
            if costs[name] or (day, model, currency, LABELS[name]) in got:
                want[(day, model, currency, LABELS[name])] += costs[name]
    assert {k: v for k, v in got.items() if v} == {k: v for k, v in want.items() if v}
    # A filter naming one item returns that item only.
    only = {**params, "line_items": "anthropic/claude, cache write"}
    data = token_client(tenant).get("/api/openai/v1/organization/costs", only).json()["data"]
    items = {result["line_item"] for bucket in data for result in bucket["results"]}
    assert items <= {"anthropic/claude, cache write"}


# --- The page -------------------------------------------------------------------------------------


@pytest.mark.parametrize("slug", SLUGS)
def test_page_shows_the_cache_writes_and_the_exact_cost(world, slug):
    tenants, *_rest = world
    tenant, truth = tenants[slug], Truth(world, slug)
    client = member_client(tenant)
    data = client.get(reverse("usage:data", kwargs={"slug": slug}), {"preset": "custom", **PERIOD}).json()
    assert api_cost(data["cost"]["amounts"]) == truth.total()
    assert data["cache_write_column"] is True
    writes = defaultdict(lambda: [0, 0])
    for (_day, _key, model), (total, hour) in truth.tokens.items():
        writes[model][0] += total
        writes[model][1] += hour
    for row in data["distribution"]:
        total, hour = writes[row["model"]]
        assert row["cache_writes_title"].startswith(f"{total:,} tokens written to the cache"), row["model"]
        assert (f", {hour:,} of them for one hour" in row["cache_writes_title"]) == bool(hour)
    assert "Cache writes (K)" in data["html"]["distribution"]


# --- One rule: Python, SQL and the stored day costs -----------------------------------------------


def test_sql_and_python_class_costs_are_the_same_digits(world, monkeypatch):
    from django.db import connection

    from usage.reporting import costs_sql
    from usage.reporting.costs import CostEngine
    from usage.reporting.periods import Period
    from usage.reporting.query import UsageQuery
    from usage.reporting.selectors import UsageFilters

    if connection.vendor != "postgresql":
        pytest.skip("The SQL costing path exists on PostgreSQL only")
    tenants, *_rest = world
    for slug, tenant in tenants.items():
        query = UsageQuery.of(tenant, UsageFilters(Period(START, END)))
        engine = CostEngine.for_query(query)
        for groups in (("model",), ("day", "api_key", "model")):
            assert costs_sql.applies(query=query)
            in_sql = engine.class_summaries(query, groups)
            totals = engine.summaries(query, groups)
            with monkeypatch.context() as patch:
                patch.setattr(costs_sql, "applies", lambda **_: False)
                in_python = engine.class_summaries(query, groups)
            assert in_sql == in_python, (slug, groups)
            for key, per_currency in in_sql.items():  # the classes add up to the group's cost exactly
                assert {c: costs.total for c, costs in per_currency.items()} == totals[key].amounts, (slug, key)


def test_stored_day_costs_without_the_class_rates_are_costed_again(world):
    from django.db import connection

    from usage.models import UsageDailyModel
    from usage.reporting.grid import usage_grid
    from usage.reporting.periods import Period
    from usage.reporting.selectors import UsageFilters

    if connection.vendor != "postgresql":
        pytest.skip("Day costs are stored on PostgreSQL only")
    tenants, *_rest = world
    tenant, truth = tenants["acme"], Truth(world, "acme")
    filters = UsageFilters(Period(START, END))

    def grid_total():
        grid = usage_grid(tenant=tenant, filters=filters, bucket="day")
        total = defaultdict(Fraction)
        for usage in grid.models.values():
            for currency, amounts in usage.cost.items():
                total[currency] += sum(Fraction(a) for a in amounts if a is not None)
        return dict(total)

    from django.core.cache import cache

    assert grid_total() == truth.total()  # computes and stores the closed days' costs
    stored = UsageDailyModel.objects.filter(tenant=tenant).exclude(cost_currency=None)
    assert stored.exists() and all(" classes " in row.cost_terms for row in stored)
    # What the release before cache writes were priced stored: terms without the class rates, and
    # amounts that cost cache writes as input.
    for row in stored:
        UsageDailyModel.objects.filter(pk=row.pk).update(
            cost_terms=row.cost_terms.partition(" classes ")[0], cost_amount=row.cost_amount + 1
        )
    cache.clear()
    assert grid_total() == truth.total()


# --- The price book: preview and audit of the class rates -----------------------------------------


def test_a_write_rate_change_is_previewed_exactly_and_audited(world):
    from usage.models import PriceChange
    from usage.pricebook.preview import price_preview
    from usage.pricebook.services import Actor, price_save

    tenants, _keys, models, _items = world
    claude = models["anthropic/claude"]
    original = ModelPrice.objects.get(model=claude, tenant=None, effective_from=dt.date(2026, 1, 1))
    edited = ModelPrice.objects.get(pk=original.pk)
    edited.cache_write_1h_per_1k = Decimal("0.0075")
    preview = price_preview(original=original, new=edited)
    # The truth: only the one-hour writes of days this price is in force for change, by their count x the rate change.
    rows = {(row.tenant.slug, row.month): row for row in preview.rows}
    assert rows, "a changed one-hour write rate changes the cost of the months with one-hour writes"
    for (slug, month), row in rows.items():
        old, new = (Fraction(row.old.amounts.get("USD", 0)), Fraction(row.new.amounts.get("USD", 0)))
        hours = 0
        for item in world[3]:
            key_tenant = next(s for s, ks in world[1].items() if item["api_key"] in {k.public_id for k in ks})
            when = dt.datetime.fromisoformat(item["occurred_at"].replace("Z", "+00:00"))
            day = when.astimezone(tenants[key_tenant].tz).date()
            terms = in_force(item["model"], key_tenant, day)
            # Only calls of the month the edited price (the platform's first) is in force for.
            mine = key_tenant == slug and item["model"] == claude.name and day.replace(day=1) == month
            if mine and terms == PRICES[claude.name][0][2:]:
                hours += item.get("cache_creation_1h_input_tokens") or 0
        assert new - old == hours * (Fraction("0.0075") - Fraction("0.006")) / 1000, (slug, month)
    change = price_save(price=edited, actor=Actor(source="test", name="tester"))
    assert change is not None and change.action == PriceChange.Action.CHANGED
    assert (change.old_terms["cache_write_1h_per_1k"], change.new_terms["cache_write_1h_per_1k"]) == ("0.006", "0.0075")
    assert change.new_terms["cache_write_per_1k"] == "0.00375" and change.new_terms["reasoning_per_1k"] is None

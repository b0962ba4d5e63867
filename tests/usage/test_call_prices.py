"""Prices that depend on the call (issue 26, item 3): context tiers, service tiers, time-of-day
windows and a fee per request, exact on every surface.

Random calls of three tenants on the same days (UTC, America/New_York across the end of daylight
saving time on 2026-11-01, Asia/Kolkata at +05:30) go through the real write path with every
service tier (and none), input tokens in every context band, at every hour. The truth is computed
here, independently of the engine: each call's cost as a ``Fraction`` from the price list below,
read as the README states the rules (the tier with the highest edge below the call's input
tokens; its service tier; the window holding the instant it started; the fee), summed. The REST
API, the CSV, the page, the month-end report (API, page, CSV), budgets and the OpenAI-compatible
costs must equal it exactly; calls of a service tier the price does not name are unpriced.
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
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse

from accounts import services as accounts
from usage.budgets.selectors import budget_status
from usage.ingestion import services
from usage.models import CallRecord, Model, ModelPrice, UsagePricingClass
from usage.rollups.recompute import usage_rebuild

from ..budgets.helpers import budget
from .api_helpers import csv_body, token_client
from .factories import utc
from .test_exact_money import member_client, shown

NOW = utc(2026, 11, 12, 12)
START, END = dt.date(2026, 10, 26), dt.date(2026, 11, 10)
ZONES = {"acme": "UTC", "gotham": "America/New_York", "globex": "Asia/Kolkata"}
TIERED = {
    "tiers": [
        {"above": 32000, "factor": "1.5"},
        {"above": 200000, "input_per_1k": "0.006", "output_per_1k": "0.0225", "cached_input_per_1k": "0.0006"},
    ],
    "service_tiers": {"batch": {"factor": "0.5"}, "priority": {"input_per_1k": "0.0051", "output_per_1k": "0.0255"}},
}
OFF_PEAK = {"windows": [{"start": "16:30", "end": "00:30", "zone": "UTC", "factor": "0.25"}]}
# The same window written in Shanghai's time (UTC+8), at another discount, from a later day.
OFF_PEAK_SHANGHAI = {"windows": [{"start": "00:30", "end": "08:30", "zone": "Asia/Shanghai", "factor": "0.5"}]}
# model -> [(effective_from, tenant slug or None, input, output, cached, fee, rules)] per 1K tokens, USD
PRICES = {
    "public/tiered": [(dt.date(2026, 1, 1), None, "0.003", "0.015", "0.0003", "0.0001", TIERED)],
    "public/deepseek-r1": [
        (dt.date(2026, 1, 1), None, "0.00055", "0.00219", "0.00014", None, OFF_PEAK),
        (dt.date(2026, 11, 5), None, "0.0005", "0.002", None, None, OFF_PEAK_SHANGHAI),
        (dt.date(2026, 11, 3), "gotham", "0.00033333", "0.00123457", "0.00000001", None, None),  # a flat contract
    ],
    "public/glm": [(dt.date(2026, 1, 1), None, "0.0001", "0.0001", None, None, None)],
    "public/fee-only": [(dt.date(2026, 1, 1), None, "0.0002", "0.0004", None, "0.00123", None)],
    "x/unpriced": [],
}
SERVICE_TIERS = [None, "standard", "batch", "flex", "priority"]


@pytest.fixture(autouse=True)
def _clock(monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)


def _price(model, day, tenant, inp, out, cached, fee, rules):
    made = ModelPrice(
        model=model,
        tenant=tenant,
        currency="USD",
        input_per_1k=Decimal(inp),
        output_per_1k=Decimal(out),
        cached_input_per_1k=None if cached is None else Decimal(cached),
        request_fee=None if fee is None else Decimal(fee),
        pricing_rules=json.dumps(rules) if rules else "",
        effective_from=day,
    )
    made.full_clean()
    made.save()


@pytest.fixture
def world(db, tmp_path):
    tenants = {
        slug: accounts.tenant_create(slug=slug, name=slug.title(), timezone_name=zone) for slug, zone in ZONES.items()
    }
    keys = {
        slug: [accounts.api_key_create(tenant=t, name=f"{slug}-{n}")[0] for n in range(2)]
        for slug, t in tenants.items()
    }
    models = {name: Model.objects.create(name=name) for name in PRICES}
    for name, terms in PRICES.items():
        for day, slug, *rest in terms:
            _price(models[name], day, tenants[slug] if slug else None, *rest)
    rng = random.Random(263)
    items = []
    for n in range(600):
        slug = rng.choice(list(tenants))
        when = utc(2026, 10, 25) + dt.timedelta(seconds=rng.randrange(0, 18 * 86400))
        item = {
            "request_id": f"tier-{n}",
            "api_key": rng.choice(keys[slug]).public_id,
            "model": rng.choice(list(models)),
            "occurred_at": when.isoformat().replace("+00:00", "Z"),
            "input_tokens": rng.choice([0, 7, 32000, 32001, 200000, 200001, rng.randrange(0, 400000)]),
            "output_tokens": rng.choice([0, 3, rng.randrange(0, 9000)]),
        }
        tier = rng.choice(SERVICE_TIERS)
        if tier is not None:
            item["service_tier"] = tier
        if rng.random() < 0.6:
            item["cached_input_tokens"] = rng.randrange(0, item["input_tokens"] + 1)
        items.append(item)
    # Half through the API path (INSERT .. RETURNING), half through the file import's (COPY).
    assert services.call_records_ingest(items=items[:300], now=NOW).accepted == 300
    path = tmp_path / "calls.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in items[300:]))
    call_command("import_calls", str(path), "--no-progress", stdout=io.StringIO())
    assert CallRecord.objects.count() == 600
    return tenants, keys, models, items


# --- The truth --------------------------------------------------------------------------------


def in_force(model, slug, day):
    terms = [t for t in PRICES[model] if t[0] <= day]
    own = [t for t in terms if t[1] == slug]
    chosen = max(own or [t for t in terms if t[1] is None], key=lambda t: t[0], default=None)
    return None if chosen is None else chosen[2:]


def _apply(rates, override):
    if "factor" in override:
        return tuple(rate * Fraction(override["factor"]) for rate in rates)
    inp = Fraction(override["input_per_1k"])
    return inp, Fraction(override["output_per_1k"]), Fraction(override.get("cached_input_per_1k", inp))


def _in_window(when, window):
    from zoneinfo import ZoneInfo

    local = when.astimezone(ZoneInfo(window["zone"]))
    minute = local.hour * 60 + local.minute + Fraction(local.second, 60)
    start, end = (int(t[:2]) * 60 + int(t[3:]) for t in (window["start"], window["end"]))
    return start <= minute < end if start < end else (minute >= start or minute < end)


def call_cost(item, terms, when):
    """The call's cost as a Fraction, or None when its service tier has no price."""
    inp, out, cached, fee, rules = terms
    rates = (Fraction(inp), Fraction(out), Fraction(cached or inp))
    rules = rules or {}
    tiers = [t for t in rules.get("tiers", []) if item["input_tokens"] > t["above"]]
    if tiers:
        rates = _apply(rates, max(tiers, key=lambda t: t["above"]))
    tier = item.get("service_tier") or "standard"
    if tier != "standard" and rules.get("service_tiers"):
        if tier not in rules["service_tiers"]:
            return None
        rates = _apply(rates, rules["service_tiers"][tier])
    for window in rules.get("windows", []):
        if _in_window(when, window):
            rates = _apply(rates, window)
            break
    read = item.get("cached_input_tokens") or 0
    money = (item["input_tokens"] - read) * rates[0] + read * rates[2] + item["output_tokens"] * rates[1]
    return money / 1000 + (Fraction(fee) if fee else 0)


class Truth:
    def __init__(self, world, slug, first=START, last=END):
        tenants, keys, _models, items = world
        tenant = tenants[slug]
        names = {key.public_id for key in keys[slug]}
        self.lines = defaultdict(Fraction)  # (day, key, model) -> cost
        self.unpriced = 0
        for item in items:
            if item["api_key"] not in names:
                continue
            when = dt.datetime.fromisoformat(item["occurred_at"].replace("Z", "+00:00"))
            day = when.astimezone(tenant.tz).date()
            if not first <= day <= last:
                continue
            terms = in_force(item["model"], slug, day)
            cost = None if terms is None else call_cost(item, terms, when)
            if cost is None:
                self.unpriced += item["input_tokens"] + item["output_tokens"]
                continue
            self.lines[(day, item["api_key"], item["model"])] += cost

    def total(self, **where):
        fields = ("day", "key", "model")
        found = [c for line, c in self.lines.items() if all(line[fields.index(k)] == v for k, v in where.items())]
        return {"USD": sum(found, Fraction(0))} if found else {}


def exact(api_cost):
    return {item["currency"]: Fraction(Decimal(item["amount"])) for item in api_cost if Decimal(item["amount"])}


PERIOD = {"start": START.isoformat(), "end": END.isoformat()}
SLUGS = list(ZONES)


def test_the_data_uses_every_rule(world):
    """Guards the fixture: every service tier, band and the window are really exercised."""
    *_rest, items = world
    assert {item.get("service_tier") for item in items} == set(SERVICE_TIERS)
    assert any(item["input_tokens"] > 200000 for item in items)
    assert any(32000 < item["input_tokens"] <= 200000 for item in items)
    assert any(_in_window(utc(2026, 10, 26, 16, 45), OFF_PEAK["windows"][0]) for _ in [0])
    assert UsagePricingClass.objects.filter(service_tier="flex").exists()


@pytest.mark.parametrize("slug", SLUGS)
def test_api_summary_breakdowns_and_series_are_exact(world, slug):
    tenants, keys, _models, _items = world
    truth, client = Truth(world, slug), token_client(tenants[slug])
    summary = client.get("/api/v1/usage/summary", PERIOD).json()
    assert exact(summary["cost"]) == truth.total()
    assert summary["cost"][0]["unpriced_tokens"] == truth.unpriced
    by_model = client.get("/api/v1/usage/breakdown", {**PERIOD, "by": "model"}).json()["results"]
    assert {row["model"]: exact(row["cost"]) for row in by_model} == {
        row["model"]: truth.total(model=row["model"]) for row in by_model
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
def test_csv_lines_are_exact(world, slug):
    tenants, *_rest = world
    truth = Truth(world, slug)
    body = csv_body(token_client(tenants[slug]).get("/api/v1/usage/export.csv", PERIOD))
    costs = {
        (dt.date.fromisoformat(row["date"]), row["api_key"], row["model"]): Fraction(Decimal(row["cost"]))
        for row in csv.DictReader(io.StringIO(body))
        if row["currency"] and Decimal(row["cost"])
    }
    assert costs == {line: cost for line, cost in truth.lines.items() if cost}


@pytest.mark.parametrize("slug", SLUGS)
def test_page_data_is_exact(world, slug):
    tenants, *_rest = world
    truth = Truth(world, slug)
    data = (
        member_client(tenants[slug])
        .get(reverse("usage:data", kwargs={"slug": slug}), {"preset": "custom", **PERIOD})
        .json()
    )
    assert exact(data["cost"]["amounts"]) == truth.total()
    for row in data["distribution"]:
        amounts = truth.total(model=row["model"])
        assert row["cost"] == (f"{shown(amounts['USD'])} USD" if amounts else None), row["model"]
    for dataset in data["trend"]["datasets"]:
        for label, amount in zip(data["trend"]["labels"], dataset["cost"], strict=True):
            day = dt.datetime.strptime(f"{label} 2026", "%b %d %Y").date()  # noqa: DTZ007 (a label of the fixed period)
            assert Fraction(Decimal(amount)) == truth.total(model=dataset["label"], day=day).get("USD", 0)


@pytest.mark.parametrize("slug", SLUGS)
def test_monthly_report_is_exact_and_names_the_rates(world, slug):
    tenants, *_rest = world
    tenant = tenants[slug]
    truth = Truth(world, slug, dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    client = token_client(tenant)
    report = client.get("/api/v1/reports/monthly", {"month": "2026-11"}).json()
    assert exact(report["cost"]) == truth.total()
    assert report["cost"][0]["unpriced_tokens"] == truth.unpriced
    for row in report["rows"]:
        assert exact(row["cost"]) == truth.total(key=row["api_key"], model=row["model"]), row
    member = member_client(tenant)
    page = member.get(reverse("reports:monthly", kwargs={"slug": slug}), {"month": "2026-11"})
    text = page.content.decode()
    assert f'<span class="amount">{shown(truth.total()["USD"])} USD</span>' in text
    assert "batch" in text and "&gt;200,000" in text
    body = member.get(reverse("reports:monthly_csv", kwargs={"slug": slug}), {"month": "2026-11"}).content.decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert sum(Fraction(Decimal(r["cost"])) for r in rows if r["currency"]) == truth.total()["USD"]


@pytest.mark.parametrize("slug", SLUGS)
def test_budgets_and_openai_costs_are_exact(world, slug):
    tenants, *_rest = world
    tenant = tenants[slug]
    truth = Truth(world, slug, dt.date(2026, 11, 1), NOW.astimezone(tenant.tz).date())
    plan = budget(tenant, metric="cost", currency="USD", amount=1000, thresholds=[100])
    assert Fraction(budget_status(budget=plan).spent) == truth.total()["USD"]
    period = Truth(world, slug)
    start = dt.datetime.combine(START, dt.time(), tzinfo=tenant.tz)
    end = dt.datetime.combine(END + dt.timedelta(days=1), dt.time(), tzinfo=tenant.tz)
    params = {"start_time": int(start.timestamp()), "end_time": int(end.timestamp()), "limit": 31}
    params |= {"x_usage_statistics": "true", "x_timezone": "tenant"}
    data = token_client(tenant).get("/api/openai/v1/organization/costs", params).json()
    assert not data["has_more"]
    amounts = [Decimal(r["x_usage_statistics"]["amount"]) for b in data["data"] for r in b["results"]]
    assert Fraction(sum(amounts, Decimal(0))) == period.total()["USD"]


def test_a_rebuild_gives_the_same_classes_and_costs(world):
    tenants, *_rest = world
    before = sorted(UsagePricingClass.objects.values_list(*_CLASS_FIELDS))
    for tenant in tenants.values():
        usage_rebuild(tenant=tenant)
    assert sorted(UsagePricingClass.objects.values_list(*_CLASS_FIELDS)) == before
    for slug in SLUGS:
        summary = token_client(tenants[slug]).get("/api/v1/usage/summary", PERIOD).json()
        assert exact(summary["cost"]) == Truth(world, slug).total()


def test_a_zone_change_day_is_costed_from_the_ledger_while_dirty(world):
    """A day marked dirty reads its classes from the ledger: still exact."""
    from usage.rollups.recompute import mark_days_dirty

    tenants, *_rest = world
    tenant = tenants["gotham"]
    mark_days_dirty(tenant=tenant, days=[dt.date(2026, 11, 1), dt.date(2026, 11, 2)])
    UsagePricingClass.objects.filter(tenant=tenant, day=dt.date(2026, 11, 1)).delete()  # stale anyway
    summary = token_client(tenant).get("/api/v1/usage/summary", PERIOD).json()
    assert exact(summary["cost"]) == Truth(world, "gotham").total()


_CLASS_FIELDS = ("tenant_id", "day", "api_key_id", "model_id", "service_tier", "band", "half_hour", "calls",
                 "input_tokens", "output_tokens", "cached_input_tokens")  # fmt: skip


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"tiers": [{"above": 150000, "factor": "2"}]}, "context edges"),
        ({"windows": [{"start": "16:15", "end": "00:30", "zone": "UTC", "factor": "0.5"}]}, "half hour"),
        ({"windows": [{"start": "16:30", "end": "00:30", "zone": "Asia/Kathmandu", "factor": "0.5"}]}, "half hours"),
        ({"service_tiers": {"turbo": {"factor": "2"}}}, "turbo"),
        ({"service_tiers": {"batch": {"factor": "0.3333"}}}, "8 decimals"),
        ({"service_tiers": {"batch": {"input_per_1k": "1"}}}, "both required"),
    ],
)
def test_rules_that_can_not_be_exact_are_refused(db, rules, message):
    model = Model.objects.create(name="public/x")
    made = ModelPrice(
        model=model,
        input_per_1k=Decimal("0.00123457"),
        output_per_1k=Decimal("0.002"),
        pricing_rules=json.dumps(rules),
        effective_from=dt.date(2026, 1, 1),
    )
    with pytest.raises(ValidationError, match=message):
        made.full_clean()


def test_an_unknown_service_tier_is_refused_and_nothing_is_stored(db):
    tenant = accounts.tenant_create(slug="t", name="T", timezone_name="UTC")
    key = accounts.api_key_create(tenant=tenant, name="k")[0]
    Model.objects.create(name="public/glm")
    item = {"request_id": "r", "api_key": key.public_id, "model": "public/glm", "input_tokens": 1,
            "output_tokens": 1, "occurred_at": "2026-11-01T00:00:00Z", "service_tier": "turbo"}  # fmt: skip
    result = services.call_records_ingest(items=[item], now=NOW)
    assert (result.accepted, result.rejected) == (0, 1)
    assert (result.errors[0]["field"], result.errors[0]["code"]) == ("service_tier", "invalid_choice")
    assert not CallRecord.objects.exists() and not UsagePricingClass.objects.exists()


def test_every_intake_path_carries_the_service_tier(db):
    """The JSON API (above), OTLP attributes (OpenAI's conventions, "default" = standard) and
    LiteLLM's logged cost breakdown all store the tier the call was billed at."""
    from usage.api import litellm_logs, otlp

    tenant = accounts.tenant_create(slug="t", name="T", timezone_name="UTC")
    key = accounts.api_key_create(tenant=tenant, name="k")[0]
    attributes = {"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 2, "gen_ai.request.model": "m"}
    for response_tier, request_tier, expected in (
        ("flex", "auto", "flex"),
        (None, "priority", "priority"),
        ("default", "flex", "standard"),
        (None, "auto", None),
    ):
        tiers = {"openai.response.service_tier": response_tier, "openai.request.service_tier": request_tier}
        pairs = [{"key": k, "value": {"stringValue": v}} for k, v in tiers.items() if v]
        pairs += [{"key": k, "value": {"intValue": str(v)}} for k, v in attributes.items() if isinstance(v, int)]
        pairs += [{"key": "gen_ai.request.model", "value": {"stringValue": "m"}}]
        span = otlp._JsonSpan(
            {"traceId": "ab" * 16, "spanId": "cd" * 8, "endTimeUnixNano": "1790000000000000000", "attributes": pairs}
        )
        call = otlp.span_call(span, {"usage_statistics.api_key": key.public_id})
        assert call.get("service_tier") == expected, tiers
    payload = {"id": "x", "model": "m", "prompt_tokens": 1, "completion_tokens": 1, "endTime": 1_790_000_000}
    payload |= {"cost_breakdown": {"service_tier": "batches"}, "metadata": {"user_api_key_alias": key.public_id}}
    assert litellm_logs.payload_call(payload)["service_tier"] == "batch"

"""FOCUS 1.2 export (``usage.reporting.focus``): the API, the page's link, the operator command.

Two tenants (UTC and New York) with calls on the same days, through the real write path; a
cached-input rate, a contract price in EUR and an unpriced model. Each tenant's BilledCost sums
equal its summary's cost exactly, and the rows never name the other tenant.
"""

import csv
import datetime as dt
import io
import random
from collections import defaultdict
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from accounts import services as accounts
from usage.ingestion import services
from usage.models import Model, ModelPrice
from usage.reporting import focus
from usage.reporting.periods import Period
from usage.reporting.query import UsageQuery

from .api_helpers import csv_body, token_client
from .factories import price, utc
from .focus_validator import validate

NOW = utc(2026, 11, 28, 15, 30)
PERIOD = Period(dt.date(2026, 11, 10), dt.date(2026, 11, 27))
RANGE = {"start": "2026-11-10", "end": "2026-11-27"}


@pytest.fixture(autouse=True)
def _clock(monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)


@pytest.fixture
def world(db):
    tenants = [
        accounts.tenant_create(slug="acme", name="Acme", timezone_name="UTC"),
        accounts.tenant_create(slug="globex", name="Globex", timezone_name="America/New_York"),
    ]
    keys = {t.pk: [accounts.api_key_create(tenant=t, name=f"key-{n}")[0] for n in range(2)] for t in tenants}
    models = [Model.objects.create(name=f"public/model-{n}") for n in range(3)]
    price(models[0], dt.date(2026, 1, 1), "0.137", "0.411", cached="0.013")
    price(models[0], dt.date(2026, 11, 18), "0.171", "0.533")
    price(models[1], dt.date(2026, 1, 1), "1.003", "2.997")
    price(models[1], dt.date(2026, 11, 15), "0.901", "2.503", tenant=tenants[1], currency="EUR")
    rng = random.Random(28)
    items = []
    for n in range(400):
        tenant = tenants[n % 2]
        when = utc(2026, 11, 10) + dt.timedelta(seconds=rng.randrange(0, 18 * 86400))
        item = {
            "request_id": f"r-{n}",
            "api_key": rng.choice(keys[tenant.pk]).public_id,
            "model": rng.choice(models).name,
            "occurred_at": when.isoformat().replace("+00:00", "Z"),
            "input_tokens": rng.randrange(0, 5000),
            "output_tokens": rng.randrange(0, 2000),
        }
        if rng.random() < 0.5:
            item["cached_input_tokens"] = rng.randrange(0, item["input_tokens"] + 1)
        items.append(item)
    assert services.call_records_ingest(items=items, now=NOW).accepted == 400
    return tenants, keys, models


def _rows(text):
    return list(csv.DictReader(io.StringIO(text)))


def _sums(rows, column):
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        sums[row["BillingCurrency"]] += Decimal(row[column])
    return {currency: amount for currency, amount in sums.items() if amount}


def test_billed_cost_sums_equal_each_tenants_summary_exactly(world):
    tenants, keys, _models = world
    for tenant in tenants:
        response = token_client(tenant).get("/api/v1/exports/focus", RANGE)
        assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
        rows = _rows(csv_body(response))
        summary = UsageQuery(tenant, PERIOD).cost()
        assert summary.amounts and len(summary.amounts) == (2 if tenant.slug == "globex" else 1)
        for column in ("BilledCost", "EffectiveCost", "ContractedCost"):
            assert _sums(rows, column) == summary.amounts
        assert {row["BillingAccountId"] for row in rows} == {tenant.slug}
        assert {row["ResourceId"] for row in rows} == {key.public_id for key in keys[tenant.pk]}


def test_consumed_tokens_per_class_equal_the_ledger(world):
    tenants, _keys, _models = world
    for tenant in tenants:
        rows = _rows(csv_body(token_client(tenant).get("/api/v1/exports/focus", RANGE)))
        by_class: dict[str, int] = defaultdict(int)
        for row in rows:
            by_class[row["x_TokenClass"]] += int(row["ConsumedQuantity"])
            assert Decimal(row["PricingQuantity"]) * 1000 == int(row["ConsumedQuantity"])
        calls = UsageQuery(tenant, PERIOD).calls()  # the local days of the export
        cached = sum(min(c.cached_input_tokens or 0, c.input_tokens) for c in calls)
        assert by_class == {
            "input": sum(c.input_tokens for c in calls) - cached,
            "cached_input": cached,
            "output": sum(c.output_tokens for c in calls),
        }


def test_one_line_becomes_three_class_rows_with_their_prices(db):
    tenant = accounts.tenant_create(slug="solo", name="Solo", timezone_name="Asia/Kolkata")
    key, _ = accounts.api_key_create(tenant=tenant, name="prod")
    model = Model.objects.create(name="public/m")
    terms = price(model, dt.date(2026, 1, 1), "0.5", "1.5", cached="0.05")
    call = {"request_id": "a", "api_key": key.public_id, "model": model.name, "occurred_at": "2026-11-20T10:00:00Z"}
    call |= {"input_tokens": 1000, "cached_input_tokens": 400, "output_tokens": 500}
    services.call_records_ingest(items=[call], now=NOW)
    rows = _rows("".join(focus.csv_lines([UsageQuery(tenant, Period(dt.date(2026, 11, 20), dt.date(2026, 11, 20)))])))
    assert [
        (r["x_TokenClass"], r["ConsumedQuantity"], r["PricingQuantity"], r["ListUnitPrice"], r["SkuPriceId"])
        for r in rows
    ] == [
        ("input", "600", "0.6", "0.5", f"{terms.pk}:input"),
        ("cached_input", "400", "0.4", "0.05", f"{terms.pk}:cached_input"),
        ("output", "500", "0.5", "1.5", f"{terms.pk}:output"),
    ]
    assert (
        sum(Decimal(r["BilledCost"]) for r in rows)
        == UsageQuery(tenant, Period(dt.date(2026, 11, 20), dt.date(2026, 11, 20))).cost().amounts["USD"]
    )
    first = rows[0]
    # The local day 2026-11-20 in +05:30, in UTC; the billing period is its local month.
    assert (first["ChargePeriodStart"], first["ChargePeriodEnd"]) == ("2026-11-19T18:30:00Z", "2026-11-20T18:30:00Z")
    assert (first["BillingPeriodStart"], first["BillingPeriodEnd"]) == ("2026-10-31T18:30:00Z", "2026-11-30T18:30:00Z")
    assert (first["ResourceId"], first["SkuId"], first["ChargeCategory"]) == (key.public_id, "public/m:input", "Usage")


def test_unpriced_lines_are_kept_with_zero_cost(world):
    tenants, _keys, models = world
    rows = _rows(csv_body(token_client(tenants[0]).get("/api/v1/exports/focus", RANGE)))
    unpriced = [row for row in rows if row["x_Model"] == models[2].name]
    assert unpriced and all(row["BilledCost"] == "0" and row["ListUnitPrice"] == "" for row in unpriced)
    assert all("no price in force" in row["ChargeDescription"] for row in unpriced)


def test_page_link_matches_the_api_and_outsiders_get_404(world, client):
    tenants, _keys, _models = world
    user = accounts_user(tenants[0])
    client.force_login(user)
    page = csv_body(client.get("/t/acme/usage/export-focus.csv", RANGE))
    assert page == csv_body(token_client(tenants[0]).get("/api/v1/exports/focus", RANGE))
    assert client.get("/t/globex/usage/export-focus.csv", RANGE).status_code == 404
    assert 'id="export-focus"' in client.get("/t/acme/usage/", RANGE).content.decode()


def accounts_user(tenant):
    from accounts.models import Membership, User

    user = User.objects.create_user(f"owner@{tenant.slug}.test", "pw-for-tests-123")
    Membership.objects.create(user=user, tenant=tenant, role=Membership.Role.OWNER)
    return user


def test_bad_range_is_a_problem(world):
    response = token_client(world[0][0]).get("/api/v1/exports/focus", {"start": "2026-11-27", "end": "2026-11-10"})
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"


def test_command_writes_every_tenant_with_progress(world, tmp_path):
    tenants, _keys, _models = world
    out = io.StringIO()
    call_command("export_focus", "--start", "2026-11-10", "--end", "2026-11-27", "--output", str(tmp_path), stdout=out)
    assert "[1/2] acme:" in out.getvalue() and "[2/2] globex:" in out.getvalue()
    for tenant in tenants:
        api = csv_body(token_client(tenant).get("/api/v1/exports/focus", RANGE))
        assert (tmp_path / f"focus-{tenant.slug}-2026-11-10-2026-11-27.csv").read_bytes().decode() == api
    single = tmp_path / "all.csv"
    call_command(
        "export_focus", "--start", "2026-11-10", "--end", "2026-11-27", "--output", str(single), stdout=io.StringIO()
    )
    rows = _rows(single.read_text())
    assert {row["BillingAccountId"] for row in rows} == {"acme", "globex"}
    with pytest.raises(CommandError):
        call_command(
            "export_focus", "--start", "2026-11-10", "--end", "2026-11-27", "--tenant", "nope", "--output", str(single)
        )


def test_demo_export_passes_focus_validator(db, tmp_path):
    from tests.usage.test_seed_demo import seed

    trace_dir = tmp_path / "traces"
    trace_dir.mkdir()
    for name, scale in (("AzureLLMInferenceTrace_code.csv", 3), ("AzureLLMInferenceTrace_conv.csv", 1)):
        lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
        lines += [f"2023-11-16 18:{10 + n:02d}:0{n % 10}.1234567,{100 * scale + n},{10 + n}" for n in range(40)]
        (trace_dir / name).write_text("\n".join(lines) + "\n")
    seed(trace_dir, now=NOW)
    path = tmp_path / "focus.csv"
    call_command(
        "export_focus", "--start", "2026-11-01", "--end", "2026-11-30", "--output", str(path), stdout=io.StringIO()
    )
    assert len(path.read_text().splitlines()) > 10
    errors, output = validate(path)
    assert errors == 0, output[-6000:]


def test_validator_reports_an_export_missing_a_mandatory_column(tmp_path):
    """The check above can fail: the same run on a file without BilledCost counts errors."""
    header = [column for column in focus.COLUMNS if column != "BilledCost"]
    path = tmp_path / "broken.csv"
    path.write_text(",".join(header) + "\n")
    errors, _output = validate(path)
    assert errors > 0


def test_contract_price_is_billed_and_the_platform_price_is_the_list(db):
    tenant = accounts.tenant_create(slug="solo", name="Solo", timezone_name="UTC")
    other = accounts.tenant_create(slug="other", name="Other", timezone_name="UTC")
    model = Model.objects.create(name="public/m")
    price(model, dt.date(2026, 1, 1), "2", "4")
    contract = price(model, dt.date(2026, 1, 1), "1", "3", tenant=tenant)
    calls = []
    for each in (tenant, other):
        key, _ = accounts.api_key_create(tenant=each, name="prod")
        call = {"request_id": f"{each.slug}-a", "api_key": key.public_id, "model": model.name}
        calls.append(call | {"occurred_at": "2026-11-20T10:00:00Z", "input_tokens": 2000, "output_tokens": 1000})
    services.call_records_ingest(items=calls, now=NOW)
    day = Period(dt.date(2026, 11, 20), dt.date(2026, 11, 20))
    rows = _rows("".join(focus.csv_lines([UsageQuery(tenant, day)])))
    assert [
        (r["x_TokenClass"], Decimal(r["BilledCost"]), Decimal(r["ListCost"]), r["ListUnitPrice"], r["SkuPriceId"])
        for r in rows
    ] == [
        ("input", Decimal(2), Decimal(4), "2", f"{contract.pk}:input"),
        ("output", Decimal(3), Decimal(4), "4", f"{contract.pk}:output"),
    ]
    others = _rows("".join(focus.csv_lines([UsageQuery(other, day)])))
    assert [(r["BillingAccountId"], Decimal(r["BilledCost"]), Decimal(r["ListCost"])) for r in others] == [
        ("other", Decimal(4), Decimal(4)),
        ("other", Decimal(4), Decimal(4)),
    ]


def test_cache_writes_and_priced_reasoning_are_rows_of_their_own(db):
    """Issue 26: a line with 5-minute and one-hour cache writes and reasoning priced apart has a row
    per class, each at its own unit price; the rows add up to the line's cost exactly."""
    tenant = accounts.tenant_create(slug="solo", name="Solo", timezone_name="UTC")
    key, _ = accounts.api_key_create(tenant=tenant, name="prod")
    model = Model.objects.create(name="public/m")
    terms = price(model, dt.date(2026, 1, 1), "0.5", "1.5", cached="0.05")
    ModelPrice.objects.filter(pk=terms.pk).update(
        cache_write_per_1k=Decimal("0.625"), cache_write_1h_per_1k=Decimal("1"), reasoning_per_1k=Decimal("2")
    )
    call = {"request_id": "a", "api_key": key.public_id, "model": model.name, "occurred_at": "2026-11-20T10:00:00Z"}
    call |= {"input_tokens": 1000, "cached_input_tokens": 100, "cache_creation_input_tokens": 700}
    call |= {"cache_creation_1h_input_tokens": 300, "output_tokens": 500, "reasoning_tokens": 200}
    services.call_records_ingest(items=[call], now=NOW)
    day = Period(dt.date(2026, 11, 20), dt.date(2026, 11, 20))
    rows = _rows("".join(focus.csv_lines([UsageQuery(tenant, day)])))
    got = [(r["x_TokenClass"], r["ConsumedQuantity"], r["ListUnitPrice"], Decimal(r["BilledCost"])) for r in rows]
    assert got == [
        ("input", "200", "0.5", Decimal("0.1")),
        ("cached_input", "100", "0.05", Decimal("0.005")),
        ("cache_write", "400", "0.625", Decimal("0.25")),
        ("cache_write_1h", "300", "1", Decimal("0.3")),
        ("output", "300", "1.5", Decimal("0.45")),
        ("reasoning", "200", "2", Decimal("0.4")),
    ]
    assert sum(Decimal(r["BilledCost"]) for r in rows) == UsageQuery(tenant, day).cost().amounts["USD"]

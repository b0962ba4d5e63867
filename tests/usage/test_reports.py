"""Prices, the month-end expense report (page, CSV, API) and the operations page."""

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import services
from usage.models import Model
from usage.reporting.costs import usage_cost
from usage.reporting.periods import month_period
from usage.reporting.selectors import SCALE_HINT_CHANGE, UsageFilters, model_week_over_week

from .factories import make_calls, price, utc

MONTH = "2026-11"
NOVEMBER = UsageFilters(period=month_period(2026, 11))
API_URL = "/api/v1/reports/monthly"


def token_client(tenant):
    _token, secret = services.access_token_create(tenant=tenant, name="finance")
    return Client(headers={"Authorization": f"Bearer {secret}"})


@pytest.fixture
def month_of_usage(tenant, owner, api_key, llm, other_tenant, other_api_key):
    """November: a price change, a contract price, an unpriced model, a EUR model and two keys.

    Hand-computed cost:
      production / deepseek: Nov 3, 1000 in + 500 out at 0.50/1.50 = 0.50 + 0.75 = 1.25 USD
                             Nov 20, 2000 in + 1000 out at the new 1.00/2.00 = 2.00 + 2.00 = 4.00 USD
      staging / deepseek:    Nov 25, 1000 in at the contract 0.80 (from Nov 21) = 0.80 USD
      staging / mistral:     Nov 5, 1500 in at 2.00 EUR = 3.00 EUR
      staging / unpriced:    Nov 6, 300 in + 200 out: 500 unpriced tokens
    Totals: 6.05 USD, 3.00 EUR, 500 unpriced tokens. The days up to Nov 6 are rolled up, Nov 20
    and 25 left dirty (read from the ledger).

    Globex (Asia/Kolkata) on the same days, none of it Acme's:
      theirs / deepseek:     Nov 3, 7000 in + 3000 out at 0.50/1.50 = 3.50 + 4.50 = 8.00 USD (rolled up)
                             Nov 20, 4000 in at 1.00 = 4.00 USD; Nov 25, 1000 in at 1.00 (Acme's
                             contract is not theirs) = 1.00 USD (both dirty)
    Globex totals: 3 calls, 12000 in, 3000 out, 13.00 USD.
    """
    staging, _ = services.api_key_create(tenant=tenant, name="staging", created_by=owner)
    mistral = Model.objects.create(name="eu/mistral-large")
    unpriced = Model.objects.create(name="public/unpriced-7b")
    price(llm, dt.date(2026, 10, 1), "0.50", "1.50")
    price(llm, dt.date(2026, 11, 15), "1.00", "2.00")
    price(llm, dt.date(2026, 11, 21), "0.80", "0", tenant=tenant)
    price(mistral, dt.date(2026, 1, 1), "2.00", currency="EUR")

    def c(key, model, day, inp, out=0):
        return {
            "api_key": key,
            "model": model,
            "occurred_at": utc(2026, 11, day, 12),
            "input_tokens": inp,
            "output_tokens": out,
        }

    make_calls(
        tenant,
        [
            c(api_key, llm, 3, 1000, 500),
            c(staging, mistral, 5, 1500),
            c(staging, unpriced, 6, 300, 200),
            {**c(api_key, llm, 1, 5000), "occurred_at": utc(2026, 10, 31, 23)},  # October: not in the report
        ],
    )
    make_calls(other_tenant, [c(other_api_key, llm, 3, 7000, 3000)])
    make_calls(tenant, [c(api_key, llm, 20, 2000, 1000), c(staging, llm, 25, 1000)], dirty=True)
    make_calls(other_tenant, [c(other_api_key, llm, 20, 4000), c(other_api_key, llm, 25, 1000)], dirty=True)
    return staging


def report_url(tenant, name="monthly"):
    return reverse(f"reports:{name}", kwargs={"slug": tenant.slug})


def csv_rows(response):
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8"))))


# --- Tenancy -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["prices", "monthly", "monthly_csv", "operations"])
def test_outsider_gets_404(name, tenant, outsider_client):
    assert outsider_client.get(report_url(tenant, name)).status_code == 404


@pytest.mark.parametrize("name", ["prices", "monthly", "monthly_csv", "operations"])
def test_anonymous_is_sent_to_login(name, tenant):
    response = Client().get(report_url(tenant, name))
    assert response.status_code == 302 and "login" in response["Location"]


@pytest.mark.parametrize("name", ["prices", "monthly", "monthly_csv", "operations"])
def test_viewer_can_read(name, tenant, viewer_client):
    assert viewer_client.get(report_url(tenant, name)).status_code == 200


def test_api_outsider_gets_404_for_another_tenant(tenant, outsider_client, month_of_usage):
    response = outsider_client.get(API_URL, {"month": MONTH, "tenant": tenant.slug})
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


def test_api_token_reads_only_its_tenant(tenant, other_tenant, other_api_key, month_of_usage):
    client = token_client(other_tenant)
    report = client.get(API_URL, {"month": MONTH}).json()
    assert [(r["api_key"], r["model"], r["calls"]) for r in report["rows"]] == [
        (other_api_key.public_id, "public/deepseek-r1", 3)
    ]
    assert (report["totals"]["input_tokens"], report["totals"]["output_tokens"]) == (12000, 3000)
    assert [(c["amount"], c["currency"]) for c in report["cost"]] == [("13.00", "USD")]
    assert client.get(API_URL, {"month": MONTH, "tenant": tenant.slug}).status_code == 404


def test_another_tenant_on_the_same_days_has_its_own_report_page_and_csv(outsider_client, other_tenant, month_of_usage):
    client = outsider_client  # Globex's owner
    report = client.get(report_url(other_tenant), {"month": MONTH}).context["report"]
    assert report.cost.amounts == {"USD": Decimal("13.00")} and report.cost.unpriced_tokens == 0
    assert (report.totals.calls, report.totals.input_tokens, report.totals.output_tokens) == (3, 12000, 3000)
    rows = csv_rows(client.get(report_url(other_tenant, "monthly_csv"), {"month": MONTH}))
    assert sum(Decimal(row["cost"]) for row in rows) == Decimal("13.00")
    assert sum(int(row["input_tokens"]) for row in rows) == 12000


def test_api_requires_authentication(db):
    assert Client().get(API_URL).status_code in (401, 403)


# --- Monthly report ------------------------------------------------------------------------------


def test_report_page_totals_are_hand_checked(owner_client, tenant, month_of_usage):
    response = owner_client.get(report_url(tenant), {"month": MONTH})
    assert response.status_code == 200
    report = response.context["report"]
    assert report.cost.amounts == {"EUR": Decimal("3.00"), "USD": Decimal("6.05")}
    assert (report.cost.unpriced_tokens, report.cost.unpriced_models) == (500, ["public/unpriced-7b"])
    assert [s.api_key.name for s in report.sections] == ["production", "staging"]
    assert [s.cost.amounts for s in report.sections] == [
        {"USD": Decimal("5.25")},
        {"EUR": Decimal("3.00"), "USD": Decimal("0.80")},
    ]
    html = response.content.decode()
    assert "6.05 USD" in html and "3.00 EUR" in html
    assert "Cost is partial" in html and "public/unpriced-7b" in html
    assert "css/print.css" in html


def test_report_page_csv_api_and_usage_cost_agree(owner_client, tenant, month_of_usage):
    page = owner_client.get(report_url(tenant), {"month": MONTH}).context["report"]
    rows = csv_rows(owner_client.get(report_url(tenant, "monthly_csv"), {"month": MONTH}))
    api = owner_client.get(API_URL, {"month": MONTH}).json()
    overall = usage_cost(tenant=tenant, filters=NOVEMBER)
    csv_amounts = {}
    for row in rows:
        if row["currency"]:
            csv_amounts[row["currency"]] = csv_amounts.get(row["currency"], Decimal(0)) + Decimal(row["cost"])
    assert page.cost == overall
    assert csv_amounts == overall.amounts
    assert sum(int(row["unpriced_tokens"]) for row in rows) == overall.unpriced_tokens
    assert sum(int(row["input_tokens"]) for row in rows) == page.totals.input_tokens == api["totals"]["input_tokens"]
    assert (
        api["cost"]
        == overall.as_api()
        == [
            {"amount": "3.00", "currency": "EUR", "unpriced_tokens": 500},
            {"amount": "6.05", "currency": "USD", "unpriced_tokens": 500},
        ]
    )


def test_api_rows_equal_page_rows(owner_client, tenant, month_of_usage):
    page = owner_client.get(report_url(tenant), {"month": MONTH}).context["report"]
    api = owner_client.get(API_URL, {"month": MONTH}).json()
    page_rows = [(r.api_key.public_id, r.model.name, r.currency, r.totals.calls, r.cost.as_api()) for r in page.rows]
    api_rows = [(r["api_key"], r["model"], r["currency"], r["calls"], r["cost"]) for r in api["rows"]]
    assert api_rows == page_rows
    assert [k["cost"] for k in api["keys"]] == [s.cost.as_api() for s in page.sections]
    assert api["month"] == MONTH and api["unpriced_models"] == ["public/unpriced-7b"]


def test_api_lists_the_prices_used(owner_client, month_of_usage):
    prices = owner_client.get(API_URL, {"month": MONTH}).json()["prices"]
    assert [(p["model"], p["scope"], p["input_per_1k"], p["first_day"], p["last_day"]) for p in prices] == [
        ("eu/mistral-large", "platform", "2.00000000", "2026-11-05", "2026-11-05"),
        ("public/deepseek-r1", "contract", "0.80000000", "2026-11-25", "2026-11-25"),
        ("public/deepseek-r1", "platform", "0.50000000", "2026-11-03", "2026-11-03"),
        ("public/deepseek-r1", "platform", "1.00000000", "2026-11-20", "2026-11-20"),
    ]


def test_key_filter_narrows_page_csv_and_api(owner_client, tenant, month_of_usage):
    query = {"month": MONTH, "api_key": month_of_usage.public_id}
    page = owner_client.get(report_url(tenant), query).context["report"]
    rows = csv_rows(owner_client.get(report_url(tenant, "monthly_csv"), query))
    api = owner_client.get(API_URL, query).json()
    assert page.cost.amounts == {"EUR": Decimal("3.00"), "USD": Decimal("0.80")}
    assert {row["api_key"] for row in rows} == {"staging"}
    assert api["api_key"] == month_of_usage.public_id and len(api["rows"]) == len(rows) == 3


def test_csv_download_link_keeps_the_choice(owner_client, tenant, month_of_usage):
    html = owner_client.get(report_url(tenant), {"month": MONTH}).content.decode()
    assert f"{report_url(tenant, 'monthly_csv')}?month={MONTH}" in html


def test_csv_is_an_attachment_with_stable_columns(owner_client, tenant, month_of_usage):
    response = owner_client.get(report_url(tenant, "monthly_csv"), {"month": MONTH})
    assert response["Content-Disposition"] == 'attachment; filename="expense-report-acme-2026-11.csv"'
    header = response.content.decode().splitlines()[0]
    assert header == (
        "month,api_key,api_key_id,model,calls,input_tokens,output_tokens,cached_input_tokens,"
        "cache_creation_input_tokens,cache_creation_1h_input_tokens,cost,currency,unpriced_tokens,"
        "cost_input,cost_cached_read,cost_cache_write,cost_output"
    )


def test_csv_keeps_names_from_being_formulas(owner_client, tenant, owner, llm):
    key, _ = services.api_key_create(tenant=tenant, name="=HYPERLINK(1)", created_by=owner)
    make_calls(tenant, [{"api_key": key, "model": llm, "occurred_at": utc(2026, 11, 2), "input_tokens": 1}])
    rows = csv_rows(owner_client.get(report_url(tenant, "monthly_csv"), {"month": MONTH}))
    assert rows[0]["api_key"] == "'=HYPERLINK(1)"


def test_default_is_the_current_local_month_and_all_keys(owner_client, tenant):
    today = timezone.now().date()  # the tenant is in UTC
    response = owner_client.get(report_url(tenant))
    assert response.status_code == 200
    assert response.context["period"] == month_period(today.year, today.month)
    assert response.context["report"].filters.api_key is None
    assert owner_client.get(API_URL).json()["month"] == f"{today:%Y-%m}"


def test_empty_month_says_no_usage(owner_client, tenant):
    html = owner_client.get(report_url(tenant), {"month": "2020-01"}).content.decode()
    assert "No usage in this period" in html


@pytest.mark.parametrize(
    "month", ["2026-13", "2026-00", "nov", "2026-1", "0000-05", "9999-12", "2026-11-01", "1969-12"]
)
def test_bad_month_is_a_form_error_not_a_500(month, owner_client, tenant):
    page = owner_client.get(report_url(tenant), {"month": month})
    assert page.status_code == 400 and "Enter a month" in page.content.decode()
    assert owner_client.get(report_url(tenant, "monthly_csv"), {"month": month}).status_code == 400
    api = owner_client.get(API_URL, {"month": month})
    assert api.status_code == 400 and api["Content-Type"] == "application/problem+json"
    assert api.json()["errors"][0]["field"] == "month"


def test_another_tenants_key_is_a_form_error(owner_client, tenant, other_api_key):
    query = {"month": MONTH, "api_key": other_api_key.public_id}
    assert owner_client.get(report_url(tenant), query).status_code == 400
    assert owner_client.get(API_URL, query).status_code == 400


def test_api_schema_documents_the_report(owner_client):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operation = schema["paths"]["/api/v1/reports/monthly"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"month", "api_key", "tenant"}


# --- Prices page --------------------------------------------------------------------------------


def test_prices_page_marks_overridden_platform_price_and_upcoming(owner_client, tenant, other_tenant, llm):
    today = timezone.now().date()
    price(llm, today - dt.timedelta(days=30), "1.00")
    price(llm, today - dt.timedelta(days=3), "0.80", tenant=tenant)
    price(llm, today + dt.timedelta(days=10), "0.70")
    price(llm, today - dt.timedelta(days=3), "0.10", tenant=other_tenant)
    response = owner_client.get(report_url(tenant, "prices"))
    current = [(e.price.input_per_1k, e.applies) for e in response.context["current"]]
    assert current == [(Decimal("0.80"), True), (Decimal("1.00"), False)]
    assert [(e.price.input_per_1k, e.applies) for e in response.context["upcoming"]] == [(Decimal("0.70"), False)]
    html = response.content.decode()
    assert "overridden by your contract price" in html


def test_prices_page_hides_other_tenants_private_models(owner_client, tenant, other_tenant):
    private = Model.objects.create(name="globex/secret-model", tenant=other_tenant)
    price(private, dt.date(2026, 1, 1), "3.00")
    assert "globex/secret-model" not in owner_client.get(report_url(tenant, "prices")).content.decode()


# --- Operations ----------------------------------------------------------------------------------


def _noon(days_ago):
    day = timezone.now().date() - dt.timedelta(days=days_ago)
    return dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.UTC)


def test_week_over_week_per_model(tenant, api_key, llm):
    growing, shrinking, fresh = llm, Model.objects.create(name="b/shrinking"), Model.objects.create(name="c/new")

    def c(model, days_ago, tokens):
        return {"api_key": api_key, "model": model, "occurred_at": _noon(days_ago), "input_tokens": tokens}

    make_calls(
        tenant,
        [
            c(growing, 0, 3000),  # this week: today ...
            c(growing, 6, 1000),  # ... back to 6 days ago: 4000 against 2000 = +100 %
            c(growing, 7, 2000),  # last week starts 7 days ago
            c(shrinking, 13, 4000),  # last week's first day: 4000, this week 1000 = -75 %
            c(shrinking, 1, 1000),
            c(fresh, 2, 500),
            c(fresh, 14, 9999),  # before last week: ignored
        ],
    )
    this_week, last_week, trends = model_week_over_week(tenant=tenant, today=timezone.now().date())
    assert (this_week.days, last_week.days, last_week.end + dt.timedelta(days=1)) == (7, 7, this_week.start)
    summary = [(t.model.name, t.tokens, t.previous_tokens, t.change_percent, t.share_percent, t.hint) for t in trends]
    assert summary == [
        ("public/deepseek-r1", 4000, 2000, 100, 73, "scale up"),  # 4000 / 5500
        ("b/shrinking", 1000, 4000, -75, 18, "scale down"),
        ("c/new", 500, 0, None, 9, "scale up"),
    ]


def test_small_change_has_no_hint(tenant, api_key, llm):
    make_calls(
        tenant,
        [
            {"api_key": api_key, "model": llm, "occurred_at": _noon(1), "input_tokens": 1100},
            {"api_key": api_key, "model": llm, "occurred_at": _noon(8), "input_tokens": 1000},
        ],
    )
    [trend] = model_week_over_week(tenant=tenant, today=timezone.now().date())[2]
    assert trend.change < SCALE_HINT_CHANGE and trend.hint == ""


def test_operations_page_lists_models(owner_client, tenant, api_key, llm):
    make_calls(tenant, [{"api_key": api_key, "model": llm, "occurred_at": _noon(1), "input_tokens": 10}])
    html = owner_client.get(report_url(tenant, "operations")).content.decode()
    assert "public/deepseek-r1" in html and "Scale up" not in html  # new, but one call: below the hint's minimum


def test_operations_empty_state(owner_client, tenant):
    assert "No usage in these two weeks" in owner_client.get(report_url(tenant, "operations")).content.decode()


@pytest.mark.parametrize("month", ["1970-01", "9998-12"])
def test_edge_months_are_empty_reports(month, owner_client, tenant):
    assert owner_client.get(report_url(tenant), {"month": month}).status_code == 200
    assert owner_client.get(API_URL, {"month": month}).json()["cost"][0]["amount"] == "0.00"


def test_report_reads_a_fixed_number_of_queries(tenant, month_of_usage, django_assert_max_num_queries):
    from usage.reporting.costs import expense_report

    # Dirty days, rollups, ledger (days still dirty), prices, models, keys: never one per row.
    with django_assert_max_num_queries(6):
        report = expense_report(tenant=tenant, filters=NOVEMBER)
        assert len(report.rows) == 4 and [use.price.model.name for use in report.prices]


def test_operations_compares_whole_days_so_today_is_not_counted(owner_client, tenant, api_key, llm):
    make_calls(tenant, [{"api_key": api_key, "model": llm, "occurred_at": timezone.now(), "input_tokens": 10}])
    assert "No usage in these two weeks" in owner_client.get(report_url(tenant, "operations")).content.decode()


def test_operations_weekly_trend_sums_whole_weeks(owner_client, tenant, api_key, llm):
    from usage.dashboard.reports import TREND_WEEKS, weekly_trend

    make_calls(
        tenant,
        [
            {"api_key": api_key, "model": llm, "occurred_at": _noon(1), "input_tokens": 10},
            {"api_key": api_key, "model": llm, "occurred_at": _noon(7), "input_tokens": 20},
            {"api_key": api_key, "model": llm, "occurred_at": _noon(8), "input_tokens": 40},
            {"api_key": api_key, "model": llm, "occurred_at": _noon(0), "input_tokens": 999},  # today: not a whole day
        ],
    )
    yesterday = timezone.now().date() - dt.timedelta(days=1)
    weekly = weekly_trend(tenant, yesterday)
    [dataset] = weekly["datasets"]
    assert len(weekly["labels"]) == TREND_WEEKS and dataset["label"] == llm.name
    assert dataset["data"][-1] == 30 and dataset["data"][-2] == 40 and sum(dataset["data"]) == 70
    assert dataset["borderColor"] == "#7c3aed"  # the model's own colour
    html = owner_client.get(report_url(tenant, "operations")).content.decode()
    assert "Tokens per week, 10 whole weeks to" in html and 'fill="#7c3aed"' in html


def _week_param(days_ago_end):
    """The ``week`` parameter of the whole week that ends ``days_ago_end`` days before today."""
    return f"{timezone.now().date() - dt.timedelta(days=days_ago_end + 6):%Y-%m-%d}"


def test_operations_week_and_key_pick_what_is_compared(owner_client, tenant, owner, api_key, llm):
    other_key = services.api_key_create(tenant=tenant, name="batch", created_by=owner)[0]
    make_calls(
        tenant,
        [
            {"api_key": api_key, "model": llm, "occurred_at": _noon(8), "input_tokens": 300},  # week 8..14 days ago
            {"api_key": api_key, "model": llm, "occurred_at": _noon(15), "input_tokens": 100},  # the week before it
            {"api_key": other_key, "model": llm, "occurred_at": _noon(9), "input_tokens": 5000},
            {"api_key": api_key, "model": llm, "occurred_at": _noon(1), "input_tokens": 7},  # the latest week
        ],
    )
    params = {"week": _week_param(8), "api_key": api_key.public_id}
    response = owner_client.get(report_url(tenant, "operations"), params)
    assert response.status_code == 200
    [trend] = response.context["trends"]
    assert (trend.tokens, trend.previous_tokens, trend.calls, trend.change_percent) == (300, 100, 1, 200)
    assert response.context["this_week"].end == timezone.now().date() - dt.timedelta(days=8)
    weekly = response.context["weekly"]
    assert weekly["datasets"][0]["data"][-2:] == [100, 300]  # the trend ends with the week picked
    everything = owner_client.get(report_url(tenant, "operations"), {"week": _week_param(8)}).context["trends"]
    assert everything[0].tokens == 5300


@pytest.mark.parametrize(
    "params",
    [{"week": "2020-01-01"}, {"week": "not-a-date"}, {"week": "9999-99-99"}, {"api_key": "nope"}],
)
def test_operations_refuses_a_week_or_key_it_does_not_offer(owner_client, tenant, params):
    response = owner_client.get(report_url(tenant, "operations"), params)
    assert response.status_code == 400
    assert response.context["form"].errors and response.context.get("trends") is None


def test_operations_another_tenants_key_is_a_form_error_and_shows_nothing_of_it(
    owner_client, tenant, api_key, llm, other_api_key
):
    make_calls(
        other_api_key.tenant, [{"api_key": other_api_key, "model": llm, "occurred_at": _noon(2), "input_tokens": 999}]
    )
    response = owner_client.get(report_url(tenant, "operations"), {"api_key": other_api_key.public_id})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Select a valid choice" in html
    assert "999" not in html and "theirs" not in html and llm.name not in html

"""Hand-checked costs: every expected amount below is worked out by hand in the comment next to it."""

import datetime as dt
from decimal import Decimal
from fractions import Fraction
from types import SimpleNamespace

import pytest

from usage.models import Model
from usage.reporting.costs import (
    CostSummary,
    cost_by,
    expense_report,
    line_cost,
    price_sheet,
    prices_in_force,
    row_cost,
    usage_cost,
)
from usage.reporting.money import amount_text, money_text
from usage.reporting.periods import month_period
from usage.reporting.selectors import Totals, UsageFilters
from usage.rollups import recompute as rollups

from .factories import make_calls, price, utc

NOVEMBER = UsageFilters(period=month_period(2026, 11))


def call(api_key, model, when, inp, out=0, cached=None):
    return {
        "api_key": api_key,
        "model": model,
        "occurred_at": when,
        "input_tokens": inp,
        "output_tokens": out,
        "cached_input_tokens": cached,
    }


def fake_price(inp, out="0", cached=None, currency="USD"):
    return SimpleNamespace(
        input_per_1k=Decimal(inp),
        output_per_1k=Decimal(out),
        cached_input_per_1k=None if cached is None else Decimal(cached),
        currency=currency,
    )


@pytest.fixture
def rolled_up():
    """Recompute the dirty days, so a test can read from the rollups instead of the ledger."""

    def roll(tenant):
        rollups.usage_rollup_dirty(tenant=tenant)

    return roll


# --- Lines are exact; a figure is rounded where it is shown -----------------------------------


@pytest.mark.parametrize(
    ("tokens", "exact", "shown"),
    [
        (500, "0.005", "0.005"),  # 500 x 0.01 / 1000: below ten cents, three significant digits
        (1500, "0.015", "0.015"),
        (25000, "0.25", "0.25"),
        (3164304, "31.64304", "31.64"),
        (125000, "1.25", "1.25"),
        (1125, "0.01125", "0.0112"),  # three significant digits, half-even: 0.01125 -> 0.0112
        (10125, "0.10125", "0.10"),  # at ten cents and above: the minor unit, half-even
        (10135, "0.10135", "0.10"),
        (11500, "0.115", "0.12"),
    ],
)
def test_a_line_is_exact_and_its_figure_is_rounded_once(tokens, exact, shown):
    amount = line_cost(price=fake_price("0.01"), totals=Totals(1, tokens, 0))
    assert amount == Decimal(exact)
    assert amount_text(amount, "USD") == exact
    assert money_text(amount, "USD") == shown


@pytest.mark.parametrize(
    ("currency", "tokens", "exact", "shown"),
    [
        ("JPY", 500, "0.5", "0.5"),  # half a yen: below ten yen, significant digits
        ("JPY", 12500, "12.5", "12"),  # 12.5 yen -> 12 (half-even)
        ("JPY", 13500, "13.5", "14"),
        ("KWD", 500, "0.0005", "0.0005"),
        ("KWD", 15000, "0.015", "0.015"),
        ("KWD", 1234500, "1.2345", "1.234"),  # half-even to the fils
    ],
)
def test_minor_units_of_other_currencies(currency, tokens, exact, shown):
    per_1k = "1" if currency == "JPY" else "0.001"
    amount = line_cost(price=fake_price(per_1k, currency=currency), totals=Totals(1, tokens, 0))
    assert amount == Decimal(exact)
    assert money_text(amount, currency) == shown


def test_api_strings_are_exact_plain_and_keep_the_minor_digits():
    assert amount_text(Decimal("0.31643040000"), "USD") == "0.3164304"
    assert amount_text(Decimal("12.3"), "USD") == "12.30"
    assert amount_text(Decimal("0E-11"), "USD") == "0.00"
    assert amount_text(Decimal("1E+3"), "USD") == "1000.00"  # never an exponent
    assert amount_text(Decimal("1E-11"), "USD") == "0.00000000001"
    assert amount_text(Decimal("150"), "JPY") == "150"
    assert money_text(Decimal("1234567.125"), "USD") == "1,234,567.12"
    assert money_text(Decimal("0"), "USD") == "0.00"


def test_cached_tokens_cost_the_cached_price_and_the_rest_the_input_price():
    totals = Totals(1, 1000, 100, cached_input_tokens=400)
    # 600 x 1.00 + 400 x 0.10 + 100 x 2.00 = 600 + 40 + 200 = 840 per 1000 -> 0.84
    assert line_cost(price=fake_price("1.00", "2.00", cached="0.10"), totals=totals) == Decimal("0.84")
    # No cached price: all 1000 input tokens at 1.00 = 1.00, plus 0.20 output
    assert line_cost(price=fake_price("1.00", "2.00"), totals=totals) == Decimal("1.20")


def test_huge_token_counts_stay_exact():
    tokens, per_1k = 2**53 - 1, 999999999999999999  # the largest price: 9999999999.99999999
    exact = Fraction(tokens * per_1k, 10**11)  # tokens x per_1k / 10**8 (price decimals) / 1000 (per 1K)
    amount = line_cost(price=fake_price("9999999999.99999999"), totals=Totals(1, tokens, 0))
    assert Fraction(amount) == exact
    assert amount_text(amount, "USD") == "90071992547409909909928.00745259009"


def test_totals_are_exact_sums_of_lines(tenant, api_key, llm):
    price(llm, dt.date(2026, 1, 1), "0.01", "0")
    # Three days of 500 input tokens: each line 0.005; rounding lines first would say 0.00.
    make_calls(tenant, [call(api_key, llm, utc(2026, 11, day, 12), 500) for day in (2, 3, 4)])
    summary = usage_cost(tenant=tenant, filters=NOVEMBER)
    assert summary.amounts == {"USD": Decimal("0.015")}
    assert summary.display == [("0.015", "USD")]


# --- Price in force --------------------------------------------------------------------------


def test_price_change_in_the_middle_of_the_month(tenant, api_key, llm, rolled_up):
    price(llm, dt.date(2026, 10, 1), "0.50", "1.50")
    price(llm, dt.date(2026, 11, 15), "1.00", "2.00")
    make_calls(
        tenant,
        [
            call(api_key, llm, utc(2026, 11, 14, 23, 59), 1000, 500),  # 0.50 + 0.75 = 1.25 at the old price
            call(api_key, llm, utc(2026, 11, 15, 0, 0), 2000, 1000),  # 2.00 + 2.00 = 4.00 at the new price
        ],
    )
    rolled_up(tenant)
    summary = usage_cost(tenant=tenant, filters=NOVEMBER)
    assert summary.amounts == {"USD": Decimal("5.25")}
    assert not summary.partial
    by_day = cost_by(tenant=tenant, filters=NOVEMBER, group="day")
    assert by_day[dt.date(2026, 11, 14)].amounts == {"USD": Decimal("1.25")}
    assert by_day[dt.date(2026, 11, 15)].amounts == {"USD": Decimal("4.00")}


def test_price_change_applies_on_local_days(other_tenant, other_api_key, llm):
    price(llm, dt.date(2026, 10, 1), "1.00", "0")
    price(llm, dt.date(2026, 11, 15), "2.00", "0")
    # 20:00 UTC on the 14th is 01:30 on the 15th in Kolkata: the new price, 1000 x 2.00 = 2.00
    make_calls(other_tenant, [call(other_api_key, llm, utc(2026, 11, 14, 20), 1000)])
    assert usage_cost(tenant=other_tenant, filters=NOVEMBER).amounts == {"USD": Decimal("2.00")}


def test_tenant_override_applies_from_its_own_date(tenant, other_tenant, api_key, other_api_key, llm):
    price(llm, dt.date(2026, 1, 1), "1.00", "0")
    price(llm, dt.date(2026, 11, 15), "0.80", "0", tenant=tenant)
    make_calls(
        tenant,
        [
            call(api_key, llm, utc(2026, 11, 14, 12), 1000),  # platform: 1.00
            call(api_key, llm, utc(2026, 11, 15, 12), 1000),  # contract: 0.80
        ],
    )
    make_calls(other_tenant, [call(other_api_key, llm, utc(2026, 11, 15, 12), 1000)])  # platform: 1.00
    assert usage_cost(tenant=tenant, filters=NOVEMBER).amounts == {"USD": Decimal("1.80")}
    assert usage_cost(tenant=other_tenant, filters=NOVEMBER).amounts == {"USD": Decimal("1.00")}


def test_override_wins_over_a_later_platform_price(tenant, llm):
    price(llm, dt.date(2026, 1, 1), "1.00", "0")
    contract = price(llm, dt.date(2026, 2, 1), "0.80", "0", tenant=tenant)
    price(llm, dt.date(2026, 6, 1), "0.90", "0")
    book = prices_in_force(tenant=tenant, model_ids=[llm.pk], period=NOVEMBER.period)
    assert book.price_for(llm.pk, dt.date(2026, 11, 1)) == contract
    assert book.price_for(llm.pk, dt.date(2025, 12, 31)) is None


def test_model_with_no_price_is_partial_and_named(tenant, api_key, llm):
    unpriced = Model.objects.create(name="public/unpriced-7b")
    price(llm, dt.date(2026, 1, 1), "1.00", "0")
    make_calls(
        tenant,
        [
            call(api_key, llm, utc(2026, 11, 3), 1000),  # 1.00
            call(api_key, unpriced, utc(2026, 11, 3), 300, 200),  # no price: 500 unpriced tokens
        ],
    )
    summary = usage_cost(tenant=tenant, filters=NOVEMBER)
    assert summary.amounts == {"USD": Decimal("1.00")}
    assert (summary.partial, summary.unpriced_tokens, summary.unpriced_models) == (True, 500, ["public/unpriced-7b"])
    assert summary.as_api() == [{"amount": "1.00", "currency": "USD", "unpriced_tokens": 500}]


def test_usage_before_the_first_price_is_unpriced(tenant, api_key, llm):
    price(llm, dt.date(2026, 11, 10), "1.00", "0")
    make_calls(tenant, [call(api_key, llm, utc(2026, 11, 9), 1000), call(api_key, llm, utc(2026, 11, 10), 1000)])
    summary = usage_cost(tenant=tenant, filters=NOVEMBER)
    assert (summary.amounts, summary.unpriced_tokens) == ({"USD": Decimal("1.00")}, 1000)


def test_three_currencies_are_never_summed(tenant, api_key, llm):
    euro_model = Model.objects.create(name="eu/mistral-large")
    yen_model = Model.objects.create(name="jp/plamo")
    price(llm, dt.date(2026, 1, 1), "1.00", "0")
    price(euro_model, dt.date(2026, 1, 1), "2.00", "0", currency="EUR")
    price(yen_model, dt.date(2026, 1, 1), "150", "0", currency="JPY")
    make_calls(
        tenant,
        [
            call(api_key, llm, utc(2026, 11, 3), 1000),  # 1.00 USD
            call(api_key, euro_model, utc(2026, 11, 3), 1500),  # 3.00 EUR
            call(api_key, yen_model, utc(2026, 11, 3), 1001),  # 150.15 JPY, shown 150
        ],
    )
    summary = usage_cost(tenant=tenant, filters=NOVEMBER)
    assert summary.amounts == {"EUR": Decimal("3.00"), "JPY": Decimal("150.15"), "USD": Decimal("1.00")}
    assert summary.as_api() == [
        {"amount": "3.00", "currency": "EUR", "unpriced_tokens": 0},
        {"amount": "150.15", "currency": "JPY", "unpriced_tokens": 0},
        {"amount": "1.00", "currency": "USD", "unpriced_tokens": 0},
    ]
    assert summary.display == [("3.00", "EUR"), ("150", "JPY"), ("1.00", "USD")]


def test_nothing_priced_gives_one_zero_object():
    assert CostSummary(unpriced_tokens=7).as_api() == [{"amount": "0.00", "currency": "USD", "unpriced_tokens": 7}]
    assert CostSummary().as_api(fallback_currency="JPY") == [{"amount": "0", "currency": "JPY", "unpriced_tokens": 0}]


def test_another_tenants_contract_and_private_model_are_ignored(tenant, other_tenant, api_key, llm):
    price(llm, dt.date(2026, 1, 1), "1.00", "0")
    price(llm, dt.date(2026, 1, 1), "0.10", "0", tenant=other_tenant)
    private = Model.objects.create(name="globex/private", tenant=other_tenant)
    price(private, dt.date(2026, 1, 1), "5.00", "0")
    book = prices_in_force(tenant=tenant)
    assert [p.tenant_id for p in book.prices()] == [None]


def test_row_cost_for_a_streaming_export(tenant, llm):
    price(llm, dt.date(2026, 1, 1), "1.00", "2.00")
    book = prices_in_force(tenant=tenant)
    assert row_cost(book, dt.date(2026, 11, 1), llm.pk, Totals(1, 1000, 1000)) == (Decimal("3.00"), "USD")
    assert row_cost(book, dt.date(2025, 11, 1), llm.pk, Totals(1, 1000, 1000)) == (None, None)


def test_cost_by_model_and_key(tenant, owner, api_key, llm):
    from accounts import services

    second_key, _ = services.api_key_create(tenant=tenant, name="staging", created_by=owner)
    other = Model.objects.create(name="public/qwen")
    price(llm, dt.date(2026, 1, 1), "1.00", "0")
    price(other, dt.date(2026, 1, 1), "0.25", "0")
    make_calls(
        tenant,
        [
            call(api_key, llm, utc(2026, 11, 3), 1000),  # 1.00
            call(second_key, llm, utc(2026, 11, 3), 2000),  # 2.00
            call(second_key, other, utc(2026, 11, 4), 4000),  # 1.00
        ],
    )
    by_model = {pk: s.amounts for pk, s in cost_by(tenant=tenant, filters=NOVEMBER, group="model").items()}
    assert by_model == {llm.pk: {"USD": Decimal("3.00")}, other.pk: {"USD": Decimal("1.00")}}
    by_key = {pk: s.amounts for pk, s in cost_by(tenant=tenant, filters=NOVEMBER, group="api_key").items()}
    assert by_key == {api_key.pk: {"USD": Decimal("1.00")}, second_key.pk: {"USD": Decimal("3.00")}}


def test_cost_by_day_and_model_keys_by_tuples(tenant, api_key, llm):
    price(llm, dt.date(2026, 1, 1), "1.00", "0")
    make_calls(tenant, [call(api_key, llm, utc(2026, 11, 3), 1000), call(api_key, llm, utc(2026, 11, 4), 2000)])
    by_day = cost_by(tenant=tenant, filters=NOVEMBER, group=("day", "model"))
    assert {key: s.amounts for key, s in by_day.items()} == {
        (dt.date(2026, 11, 3), llm.pk): {"USD": Decimal("1.00")},
        (dt.date(2026, 11, 4), llm.pk): {"USD": Decimal("2.00")},
    }
    with pytest.raises(ValueError, match="'week'"):
        cost_by(tenant=tenant, filters=NOVEMBER, group=("day", "week"))


# --- Report and price sheet ---------------------------------------------------------------------


def test_report_splits_a_mid_month_currency_switch_and_adds_up(tenant, api_key, llm):
    price(llm, dt.date(2026, 1, 1), "1.00", "0")
    price(llm, dt.date(2026, 11, 15), "0.90", "0", tenant=tenant, currency="EUR")
    make_calls(tenant, [call(api_key, llm, utc(2026, 11, 3), 1000), call(api_key, llm, utc(2026, 11, 20), 1000)])
    report = expense_report(tenant=tenant, filters=NOVEMBER)
    assert [(row.currency, row.totals.input_tokens) for row in report.rows] == [("EUR", 1000), ("USD", 1000)]
    assert report.cost.amounts == {"EUR": Decimal("0.90"), "USD": Decimal("1.00")}
    assert report.cost == usage_cost(tenant=tenant, filters=NOVEMBER)
    assert [(use.price.currency, use.first_day) for use in report.prices] == [
        ("EUR", dt.date(2026, 11, 20)),
        ("USD", dt.date(2026, 11, 3)),
    ]


def test_price_sheet_marks_overridden_and_upcoming(tenant, llm):
    platform = price(llm, dt.date(2026, 1, 1), "1.00", "0")
    contract = price(llm, dt.date(2026, 6, 1), "0.80", "0", tenant=tenant)
    later_platform = price(llm, dt.date(2026, 12, 1), "0.70", "0")
    later_contract = price(llm, dt.date(2027, 1, 1), "0.60", "0", tenant=tenant)
    current, upcoming = price_sheet(tenant=tenant, today=dt.date(2026, 11, 28))
    assert [(e.price, e.applies) for e in current] == [(contract, True), (platform, False)]
    assert [(e.price, e.applies) for e in upcoming] == [(later_platform, False), (later_contract, True)]


def test_cost_is_the_same_from_the_ledger_and_from_the_rollups(tenant, api_key, llm, rolled_up):
    price(llm, dt.date(2026, 1, 1), "0.30", "0.60", cached="0.03")
    calls = [call(api_key, llm, utc(2026, 11, day, 9), 1234 * day, 321 * day, 100 * day) for day in (1, 2)]
    make_calls(tenant, calls, dirty=True)
    from_ledger = usage_cost(tenant=tenant, filters=NOVEMBER)
    rolled_up(tenant)
    assert usage_cost(tenant=tenant, filters=NOVEMBER) == from_ledger
    # Nov 1: (1134 x 0.30 + 100 x 0.03 + 321 x 0.60) / 1000 = (340.2 + 3 + 192.6) / 1000 = 0.5358
    # Nov 2: twice the tokens: 1.0716; total 1.6074 (rounding each day first would say 1.61)
    assert from_ledger.amounts == {"USD": Decimal("1.6074")}


def test_a_new_price_changes_history_without_a_rebuild(tenant, api_key, llm, rolled_up):
    price(llm, dt.date(2026, 1, 1), "1.00", "0")
    make_calls(tenant, [call(api_key, llm, utc(2026, 11, 3), 1000)])
    rolled_up(tenant)
    assert usage_cost(tenant=tenant, filters=NOVEMBER).amounts == {"USD": Decimal("1.00")}
    price(llm, dt.date(2026, 11, 1), "0.25", "0")  # entered later, effective in the past
    assert usage_cost(tenant=tenant, filters=NOVEMBER).amounts == {"USD": Decimal("0.25")}

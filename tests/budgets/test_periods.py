"""Budget periods are calendar periods of the tenant's zone: +05:30, daylight saving, local midnight."""

import datetime as dt
from decimal import Decimal

import pytest

from accounts import services as accounts
from usage.budgets.periods import budget_period, local_midnight
from usage.budgets.selectors import budget_status
from usage.localtime import tenant_today
from usage.models import Budget, ModelPrice
from usage.reporting.periods import Period

from ..usage.factories import make_calls, utc


def _budget(period="month", week_start=0):
    return Budget(period=period, week_start=week_start)


@pytest.fixture
def kolkata(db):
    return accounts.tenant_create(slug="kol", name="Kolkata", timezone_name="Asia/Kolkata")


@pytest.fixture
def new_york(db):
    return accounts.tenant_create(slug="ny", name="New York", timezone_name="America/New_York")


def test_the_month_starts_at_local_midnight_in_kolkata(kolkata):
    before, at = utc(2026, 2, 28, 18, 29, 59), utc(2026, 2, 28, 18, 30)
    assert budget_period(_budget(), tenant_today(kolkata, before)) == Period(dt.date(2026, 2, 1), dt.date(2026, 2, 28))
    assert budget_period(_budget(), tenant_today(kolkata, at)) == Period(dt.date(2026, 3, 1), dt.date(2026, 3, 31))
    assert local_midnight(kolkata, dt.date(2026, 3, 1)).astimezone(dt.UTC) == at


def test_the_month_starts_at_local_midnight_in_new_york_on_a_dst_weekend(new_york):
    # Daylight saving ends at 02:00 on 2026-11-01: that midnight is still EDT (UTC-4).
    before, at = utc(2026, 11, 1, 3, 59, 59), utc(2026, 11, 1, 4)
    assert budget_period(_budget(), tenant_today(new_york, before)).start == dt.date(2026, 10, 1)
    assert budget_period(_budget(), tenant_today(new_york, at)) == Period(dt.date(2026, 11, 1), dt.date(2026, 11, 30))


def test_a_week_spanning_the_spring_change_is_seven_local_days_of_167_hours(new_york):
    # Daylight saving starts on Sunday 2026-03-08; a week starting on Sunday.
    period = budget_period(_budget("week", week_start=6), dt.date(2026, 3, 11))
    assert period == Period(dt.date(2026, 3, 8), dt.date(2026, 3, 14))
    start, end = local_midnight(new_york, dt.date(2026, 3, 8)), local_midnight(new_york, dt.date(2026, 3, 15))
    assert (end - start).total_seconds() / 3600 == 167


def test_a_week_starts_on_the_configured_weekday():
    assert budget_period(_budget("week", week_start=0), dt.date(2026, 3, 11)).start == dt.date(2026, 3, 9)  # Monday
    assert budget_period(_budget("week", week_start=2), dt.date(2026, 3, 11)).start == dt.date(2026, 3, 11)
    assert budget_period(_budget("week", week_start=3), dt.date(2026, 3, 11)).start == dt.date(2026, 3, 5)


def test_a_day_budget_on_the_23_hour_day_is_that_local_day(new_york):
    assert budget_period(_budget("day"), dt.date(2026, 3, 8)) == Period(dt.date(2026, 3, 8), dt.date(2026, 3, 8))


def test_spent_counts_calls_from_local_midnight_on(kolkata, llm):
    key = accounts.api_key_create(tenant=kolkata, name="k")[0]
    ModelPrice.objects.create(model=llm, input_per_1k=1, output_per_1k=0, effective_from=dt.date(2026, 1, 1))
    make_calls(
        kolkata,
        [
            {"api_key": key, "model": llm, "occurred_at": utc(2026, 2, 28, 18, 29, 59), "input_tokens": 1000},
            {"api_key": key, "model": llm, "occurred_at": utc(2026, 2, 28, 18, 30), "input_tokens": 2000},
        ],
    )
    march = Budget.objects.create(tenant=kolkata, name="b", metric="cost", amount=10, currency="USD", thresholds=[50])
    status = budget_status(budget=march, now=utc(2026, 3, 1, 6))
    assert status.spent == 2 and status.period.start == dt.date(2026, 3, 1)
    february = budget_status(budget=march, now=utc(2026, 2, 28, 6))
    assert february.spent == 1


def _run_rate_of_100_a_day(tenant, api_key, llm, today, today_tokens=50):
    specs = [
        {
            "api_key": api_key,
            "model": llm,
            "occurred_at": local_midnight(tenant, today - dt.timedelta(days=n)) + dt.timedelta(hours=12),
            "input_tokens": 100,
        }
        for n in range(1, 8)
    ]
    today_call = {
        "api_key": api_key,
        "model": llm,
        "occurred_at": local_midnight(tenant, today) + dt.timedelta(hours=1),
        "input_tokens": today_tokens,
    }
    make_calls(tenant, [*specs, today_call])


def test_projection_is_spent_plus_the_7_day_run_rate_times_the_time_left(tenant, api_key, llm):
    # 100 tokens on each of the 7 days before 2026-04-15, 50 today; at noon, 15.5 days are left in April.
    _run_rate_of_100_a_day(tenant, api_key, llm, dt.date(2026, 4, 15))
    b = Budget.objects.create(tenant=tenant, name="t", metric="tokens", amount=1500, thresholds=[50, 80, 100])
    status = budget_status(budget=b, now=utc(2026, 4, 15, 12))
    assert (status.spent, status.daily_rate, status.projected) == (750, 100, 700 + 50 + 1550)
    assert status.projected_percent == Decimal("153.3") and status.forecast_exceeds
    assert status.state == Budget.State.WARNING
    assert status.percent == 50


@pytest.mark.parametrize(
    ("period", "week_start", "projected"),
    [
        ("day", 0, 50 + 50),  # the rest of today: half of it at noon
        ("week", 0, 50 + 50 + 4 * 100 + 2 * 100),  # Wed 2026-04-15 noon: spent Mon, Tue; Thu-Sun left
        ("month", 0, 50 + 700 + 50 + 15 * 100),
    ],
)
def test_the_forecast_counts_the_rest_of_today(tenant, api_key, llm, period, week_start, projected):
    _run_rate_of_100_a_day(tenant, api_key, llm, dt.date(2026, 4, 15))
    b = Budget.objects.create(tenant=tenant, name="t", metric="tokens", amount=10**6, period=period, thresholds=[100])
    assert budget_status(budget=b, now=utc(2026, 4, 15, 12)).projected == projected


def test_the_rest_of_a_25_hour_day_is_its_share_of_25_hours(new_york, llm):
    key = accounts.api_key_create(tenant=new_york, name="k")[0]
    # 2026-11-01 in New York has 25 hours; at 12:00 EST (17:00 UTC) 12 of them are left.
    _run_rate_of_100_a_day(new_york, key, llm, dt.date(2026, 11, 1), today_tokens=0)
    b = Budget.objects.create(tenant=new_york, name="d", metric="tokens", amount=1000, period="day", thresholds=[100])
    assert budget_status(budget=b, now=utc(2026, 11, 1, 17)).projected == 48  # 100 x 12/25

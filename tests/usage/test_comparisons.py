"""Like-for-like comparisons of the Usage Statistics page, on a pinned clock."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from usage.reporting.periods import Period, comparison, preset_period
from usage.rollups import recompute as rollups

from .factories import make_calls, price, utc

BERLIN = ZoneInfo("Europe/Berlin")
NOW = utc(2026, 12, 2, 13, 27, 41)  # 14:27 in Berlin, the second day of the month


def _compare(preset, now=NOW, tz=BERLIN):
    today = now.astimezone(tz).date()
    return comparison(preset_period(preset, today), now, tz)


def test_today_is_compared_with_yesterday_until_the_same_local_time():
    compared = _compare("today")
    assert compared.period == Period(dt.date(2026, 12, 1), dt.date(2026, 12, 1))
    assert compared.cutoff == dt.datetime(2026, 12, 1, 14, 27, tzinfo=BERLIN)
    assert compared.caption == "Compared with Dec 01 until 14:27 (the day before, up to the same time of day)."


def test_month_to_date_is_compared_with_the_same_days_of_last_month():
    compared = _compare("this_month")
    assert compared.period == Period(dt.date(2026, 11, 1), dt.date(2026, 11, 2))
    assert compared.cutoff == dt.datetime(2026, 11, 2, 14, 27, tzinfo=BERLIN)
    assert "the same days of last month" in compared.caption


def test_month_to_date_longer_than_last_month_compares_its_whole_days():
    now = dt.datetime(2026, 3, 31, 12, 0, tzinfo=BERLIN)
    compared = _compare("this_month", now=now)
    assert compared.period == Period(dt.date(2026, 2, 1), dt.date(2026, 2, 28))
    assert compared.cutoff is None and "whole days" in compared.caption


def test_last_two_weeks_cuts_the_previous_last_day_like_today():
    compared = _compare("last_2_weeks")
    assert compared.period == Period(dt.date(2026, 11, 5), dt.date(2026, 11, 18))
    assert compared.cutoff == dt.datetime(2026, 11, 18, 14, 27, tzinfo=BERLIN)


def test_a_past_period_is_compared_with_whole_days():
    compared = _compare("yesterday")
    assert compared.period == Period(dt.date(2026, 11, 30), dt.date(2026, 11, 30)) and compared.cutoff is None
    assert compared.caption == "Compared with Nov 30 (the day before)."
    assert _compare("last_month").period == Period(dt.date(2026, 10, 1), dt.date(2026, 10, 31))


def test_the_cutoff_keeps_the_wall_clock_across_a_dst_change():
    now = dt.datetime(2026, 10, 26, 9, 0, tzinfo=BERLIN)  # the day after fall-back
    compared = _compare("today", now=now)
    assert compared.cutoff.astimezone(BERLIN).hour == 9
    assert compared.cutoff == utc(2026, 10, 25, 8, 0)  # 09:00 CET is 08:00 UTC, 10:00 CEST the day before


PAGE_NOW = utc(2026, 12, 2, 15, 30)


@pytest.fixture
def pinned(monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: PAGE_NOW)


@pytest.fixture
def days_of_calls(request, tenant, api_key, llm, pinned, other_tenant, other_api_key):
    """Calls today before 15:30, yesterday around 15:30, and on Nov 1-2 (a UTC tenant); Globex
    (Asia/Kolkata) has calls at the same instants, ten times the size. Indirect parameter: True
    leaves Acme's days dirty."""
    moments = {
        "today": [utc(2026, 12, 2, 2), utc(2026, 12, 2, 15, 20)],
        "yesterday_before": [utc(2026, 12, 1, 1), utc(2026, 12, 1, 9), utc(2026, 12, 1, 15, 10)],
        "yesterday_after": [utc(2026, 12, 1, 15, 40), utc(2026, 12, 1, 20)],
        "nov_before": [utc(2026, 11, 1, 12), utc(2026, 11, 2, 8), utc(2026, 11, 2, 15, 29)],
        "nov_after": [utc(2026, 11, 2, 15, 31), utc(2026, 11, 2, 23)],
    }
    specs = [
        {"api_key": api_key, "model": llm, "occurred_at": moment, "input_tokens": 1000, "output_tokens": 500}
        for moments_of_group in moments.values()
        for moment in moments_of_group
    ]
    make_calls(tenant, specs, dirty=getattr(request, "param", False))
    theirs = [{**spec, "api_key": other_api_key, "input_tokens": 10_000, "output_tokens": 5_000} for spec in specs]
    make_calls(other_tenant, theirs)
    return moments


def _calls_change(client, tenant, preset):
    data = client.get(reverse("usage:data", kwargs={"slug": tenant.slug}), {"preset": preset}).json()
    card = next(card for card in data["cards"] if card["key"] == "calls")
    return data, card


@pytest.mark.parametrize("days_of_calls", [True, False], ids=["dirty", "rolled-up"], indirect=True)
def test_page_compares_today_with_yesterday_until_now(
    owner_client, tenant, llm, days_of_calls, other_tenant, outsider_client
):
    data, card = _calls_change(owner_client, tenant, "today")
    # 2 calls today against the 3 of yesterday before 15:30 (not the 5 of all yesterday).
    assert card["value"] == 2
    assert card["change"]["percent"] == round((2 - 3) / 3 * 100, 1)
    assert data["previous_period"] == {"start": "2026-12-01", "end": "2026-12-01"}
    assert data["previous_until"] == "2026-12-01T15:30:00+00:00"
    assert "until 15:30" in data["comparison"]
    page = owner_client.get(reverse("usage:dashboard", kwargs={"slug": tenant.slug}), {"preset": "today"})
    assert "Compared with Dec 01 until 15:30" in page.content.decode()
    # Globex's own page (Kolkata, 21:00 now): its Dec 2 holds 20:00 UTC of Dec 1 and both calls of
    # today; its Dec 1 until 21:00 (15:30 UTC) the three of Dec 1 before 15:30 UTC.
    theirs, their_card = _calls_change(outsider_client, other_tenant, "today")
    assert (their_card["value"], their_card["change"]["percent"]) == (3, 0.0)
    assert theirs["previous_until"] == "2026-12-01T15:30:00+00:00"  # 21:00 in Kolkata
    their_tokens = next(card for card in theirs["cards"] if card["key"] == "total_tokens")["value"]
    assert their_tokens == 3 * 15_000


def test_page_compares_month_to_date_with_the_same_days_of_last_month(owner_client, tenant, llm, days_of_calls):
    rollups.usage_rollup_dirty(tenant=tenant)
    data, card = _calls_change(owner_client, tenant, "this_month")
    assert card["value"] == 2 + 5  # Dec 1 (all of it) and Dec 2 until now
    assert card["change"]["percent"] == round((7 - 3) / 3 * 100, 1)
    assert data["previous_period"] == {"start": "2026-11-01", "end": "2026-11-02"}


def test_cost_change_compares_the_same_cut(owner_client, tenant, llm, days_of_calls):
    price(llm, dt.date(2026, 1, 1), "1.00", "2.00")
    rollups.usage_rollup_dirty(tenant=tenant)
    data = owner_client.get(reverse("usage:data", kwargs={"slug": tenant.slug}), {"preset": "today"}).json()
    # Each call costs 1.00 + 1.00 = 2.00 USD: 4.00 today against 6.00 yesterday until 15:30.
    assert data["cost"]["change"]["percent"] == round((4 - 6) / 6 * 100, 1)
    assert [Decimal(item["amount"]) for item in data["cost"]["amounts"]] == [Decimal("4.00")]


def test_an_empty_priced_period_costs_zero_on_the_page_as_in_the_api(owner_client, tenant, llm, pinned):
    price(llm, dt.date(2026, 1, 1), "1.00", "2.00")
    params = {"preset": "custom", "start": "2026-06-01", "end": "2026-06-03"}
    page = owner_client.get(reverse("usage:dashboard", kwargs={"slug": tenant.slug}), params).content.decode()
    card = page[page.index('id="cost-card"') :][:400]
    assert "0.00 <small>USD</small>" in card and "—" not in card
    data = owner_client.get(reverse("usage:data", kwargs={"slug": tenant.slug}), params).json()
    assert data["cost"]["amounts"] == [{"amount": "0.00", "currency": "USD", "unpriced_tokens": 0}]


def test_a_tenant_without_calls_is_told_how_calls_arrive(owner_client, tenant, pinned):
    page = owner_client.get(reverse("usage:dashboard", kwargs={"slug": tenant.slug})).content.decode()
    assert "No calls reported for Acme yet" in page and reverse("api_keys", kwargs={"slug": tenant.slug}) in page


def test_a_tenant_with_calls_elsewhere_sees_no_onboarding(owner_client, tenant, days_of_calls):
    params = {"preset": "custom", "start": "2026-06-01", "end": "2026-06-03"}
    page = owner_client.get(reverse("usage:dashboard", kwargs={"slug": tenant.slug}), params).content.decode()
    assert "No calls reported" not in page and "No usage in this period" in page


def test_updated_names_the_zone_and_the_report_says_month_to_date(owner_client, tenant, days_of_calls):
    data = owner_client.get(reverse("usage:data", kwargs={"slug": tenant.slug})).json()
    assert data["updated_display"] == "15:30:00 UTC"
    page = owner_client.get(reverse("reports:monthly", kwargs={"slug": tenant.slug})).content.decode()
    assert "(month to date)" in page and "month to date: 2026-12-01 to 2026-12-02" in page
    past = owner_client.get(reverse("reports:monthly", kwargs={"slug": tenant.slug}), {"month": "2026-11"})
    assert "month to date" not in past.content.decode()

"""The dashboard's grids: exact against the ledger, and never served stale from the cache.

Every test reads a grid, changes something its numbers depend on (a late call, a recompute, a
price, the zone, today's calls), and reads again: the second read must equal ground truth
computed from the ledger in Python, not what the first read cached.
"""

import datetime as dt
from decimal import Decimal

import pytest

from accounts import services
from usage import localtime
from usage.models import CallRecord
from usage.reporting.costs import line_cost
from usage.reporting.grid import usage_grid, usage_grids
from usage.reporting.periods import Period
from usage.reporting.selectors import Totals, UsageFilters
from usage.rollups import recompute as rollups

from .factories import make_calls, price, utc

NOW = utc(2026, 11, 28, 15, 30)
PERIOD = Period(dt.date(2026, 11, 20), dt.date(2026, 11, 28))  # eight closed days and today


@pytest.fixture(autouse=True)
def _clock(monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)


def call(api_key, model, when, inp, out=0):
    return {"api_key": api_key, "model": model, "occurred_at": when, "input_tokens": inp, "output_tokens": out}


def truth(tenant, period):
    """{model id: (calls, input, output, {day: cost})} straight from the ledger and the price rows.

    Cost by the rule, independently: one exact line per local day x key x model, then summed.
    """
    start, end = localtime.day_span(tenant, period.start, period.end)
    lines, result = {}, {}
    for record in CallRecord.objects.filter(tenant=tenant, occurred_at__gte=start, occurred_at__lt=end):
        day = record.occurred_at.astimezone(tenant.tz).date()
        lines.setdefault((day, record.api_key_id, record.model_id), []).append(record)
    for (day, _key, model_id), records in lines.items():
        calls, inp, out, costs = result.setdefault(model_id, [0, 0, 0, {}])
        totals = Totals(len(records), sum(r.input_tokens for r in records), sum(r.output_tokens for r in records))
        prices = [p for p in records[0].model.prices.all() if p.effective_from <= day and p.tenant_id is None]
        if prices:
            in_force = max(prices, key=lambda p: p.effective_from)
            costs[day] = costs.get(day, Decimal(0)) + line_cost(price=in_force, totals=totals)
        result[model_id] = [calls + totals.calls, inp + totals.input_tokens, out + totals.output_tokens, costs]
    return {model_id: (c, i, o, costs) for model_id, (c, i, o, costs) in result.items()}


def as_truth(grid):
    shaped = {}
    for model_id, usage in grid.models.items():
        costs = {}
        for amounts in usage.cost.values():
            costs.update({day: amount for day, amount in zip(grid.days, amounts, strict=True) if amount})
        shaped[model_id] = (sum(usage.calls), sum(usage.input), sum(usage.output), costs)
    return shaped


@pytest.fixture
def history(tenant, api_key, llm, other_tenant, other_api_key):
    """Calls on every day of PERIOD, rolled up (clean), and a price from before it.

    Another tenant (Asia/Kolkata) has calls of the same model on the same days, rolled up, and
    two more left dirty (a closed day and today): none of it may reach this tenant's grid.
    """
    price(llm, dt.date(2026, 1, 1), "1", "2")
    make_calls(tenant, [call(api_key, llm, utc(2026, 11, day, 10), 1000 + day, 10 * day) for day in range(20, 29)])
    make_calls(
        other_tenant, [call(other_api_key, llm, utc(2026, 11, day, 10), 7000 + day, 3 * day) for day in range(20, 29)]
    )
    rollups.usage_rollup_dirty(tenant=tenant)
    rollups.usage_rollup_dirty(tenant=other_tenant)
    make_calls(
        other_tenant,
        [
            call(other_api_key, llm, utc(2026, 11, 21, 11), 900, 9),
            call(other_api_key, llm, utc(2026, 11, 28, 9), 800, 8),
        ],
        dirty=True,
    )


def read(tenant, period=PERIOD, bucket="day"):
    return as_truth(usage_grid(tenant=tenant, filters=UsageFilters(period), bucket=bucket))


def test_grid_equals_the_ledger_and_its_buckets_are_gap_filled(tenant, api_key, llm, history):
    grid = usage_grid(tenant=tenant, filters=UsageFilters(Period(dt.date(2026, 11, 18), dt.date(2026, 11, 30))))
    assert grid.days == grid.buckets == [dt.date(2026, 11, 18) + dt.timedelta(days=n) for n in range(13)]
    usage = grid.models[llm.pk]
    assert usage.input[:2] == [0, 0] and usage.input[-2:] == [0, 0]  # before the calls, and the future
    assert usage.input[2:11] == [1000 + day for day in range(20, 29)]
    assert read(tenant) == truth(tenant, PERIOD)


def test_each_tenant_reads_only_its_own_calls_on_the_same_days(tenant, other_tenant, llm, history):
    # Hand-summed: Acme 1000 + day in, 10 x day out; Globex 7000 + day in, 3 x day out, plus 900 + 800 dirty.
    days = range(20, 29)
    assert read(tenant)[llm.pk][:3] == (9, sum(1000 + d for d in days), sum(10 * d for d in days))
    assert read(other_tenant)[llm.pk][:3] == (11, 64916, sum(3 * d for d in days) + 17)
    assert read(tenant) == truth(tenant, PERIOD)
    assert read(other_tenant) == truth(other_tenant, PERIOD)


def test_a_second_read_comes_from_the_cache(tenant, history, django_assert_num_queries):
    first = read(tenant, Period(dt.date(2026, 11, 20), dt.date(2026, 11, 27)))  # closed days only
    # Prices, and the days' rollup versions and dirty marks: no usage or costing query.
    with django_assert_num_queries(2):
        assert read(tenant, Period(dt.date(2026, 11, 20), dt.date(2026, 11, 27))) == first


@pytest.mark.parametrize("dirty", [True, False], ids=["dirty-from-the-ledger", "ingested-increments"])
def test_a_late_call_on_a_closed_day_shows_at_once_and_after_its_recompute(tenant, api_key, llm, history, dirty):
    assert read(tenant) == truth(tenant, PERIOD)
    make_calls(tenant, [call(api_key, llm, utc(2026, 11, 21, 23), 5000, 7)], dirty=dirty)
    assert read(tenant) == truth(tenant, PERIOD)
    make_calls(tenant, [call(api_key, llm, utc(2026, 11, 21, 23, 30), 1, 1)], dirty=dirty)  # the same day again
    assert read(tenant) == truth(tenant, PERIOD)
    rollups.usage_rollup_dirty(tenant=tenant)  # clean again: new rollup rows
    assert read(tenant) == truth(tenant, PERIOD)
    assert read(tenant)[llm.pk][1] == sum(1000 + day for day in range(20, 29)) + 5001


def test_calls_today_show_at_once(tenant, api_key, llm, other_api_key, history):
    assert read(tenant) == truth(tenant, PERIOD)
    make_calls(tenant, [call(api_key, llm, utc(2026, 11, 28, 15), 300, 30)])
    assert read(tenant) == truth(tenant, PERIOD)
    rollups.usage_rollup_dirty(tenant=tenant)
    make_calls(tenant, [call(api_key, llm, utc(2026, 11, 28, 15, 10), 1, 0)])
    assert read(tenant) == truth(tenant, PERIOD)


def test_a_price_change_recosts_cached_days(tenant, llm, history):
    before = read(tenant)
    price(llm, dt.date(2026, 11, 24), "3", "2")
    after = read(tenant)
    assert after == truth(tenant, PERIOD) and after != before
    assert after[llm.pk][3][dt.date(2026, 11, 23)] == before[llm.pk][3][dt.date(2026, 11, 23)]
    assert after[llm.pk][3][dt.date(2026, 11, 24)] > before[llm.pk][3][dt.date(2026, 11, 24)]
    in_force = llm.prices.get(effective_from=dt.date(2026, 11, 24))
    in_force.input_per_1k = Decimal("0.5")  # an edit in place, as the admin does
    in_force.save()
    assert read(tenant) == truth(tenant, PERIOD)
    in_force.delete()
    assert read(tenant) == before


def test_a_zone_change_rebuckets_cached_days(tenant, llm, history):
    before = read(tenant)
    assert before == truth(tenant, PERIOD)
    tenant.timezone = "Pacific/Kiritimati"  # UTC+14: every 10:00 UTC call moves to the next local day
    tenant.save()
    rollups.usage_rollup_dirty(tenant=tenant)
    after = read(tenant)
    assert after == truth(tenant, PERIOD) and after != before
    assert after[llm.pk][1] == sum(1000 + day for day in range(20, 28))  # the 28th's call is on the 29th now


def test_a_recompute_that_removes_a_day_is_seen(tenant, api_key, llm, history):
    """A day whose calls are gone (a tenant purge) rolls up to no rows: the row count changes."""
    assert read(tenant) == truth(tenant, PERIOD)
    CallRecord.objects.filter(tenant=tenant, occurred_at__date=dt.date(2026, 11, 22)).delete()
    rollups.mark_days_dirty(tenant=tenant, days=[dt.date(2026, 11, 22)])
    rollups.usage_rollup_dirty(tenant=tenant)
    assert read(tenant) == truth(tenant, PERIOD)


def test_hourly_grid_of_closed_hours_and_today(tenant, api_key, llm, history):
    period = Period(dt.date(2026, 11, 27), dt.date(2026, 11, 28))
    grid = usage_grid(tenant=tenant, filters=UsageFilters(period), bucket="hour")
    assert len(grid.buckets) == 48 and grid.days == [dt.date(2026, 11, 27), dt.date(2026, 11, 28)]
    assert grid.models[llm.pk].input[10] == 1027 and grid.models[llm.pk].input[24 + 10] == 1028
    make_calls(tenant, [call(api_key, llm, utc(2026, 11, 28, 14, 59), 9, 0)])
    grid = usage_grid(tenant=tenant, filters=UsageFilters(period), bucket="hour")
    assert grid.models[llm.pk].input[24 + 14] == 9
    assert read(tenant, period, "hour") == truth(tenant, period)


def test_scoped_grids_and_several_at_once(tenant, api_key, llm, history):
    second, _secret = services.api_key_create(tenant=tenant, name="second")
    make_calls(tenant, [call(second, llm, utc(2026, 11, 25, 8), 70, 7)])
    rollups.usage_rollup_dirty(tenant=tenant)
    one_key, previous = usage_grids(
        tenant=tenant,
        wanted=[(UsageFilters(PERIOD, api_key=second), "day"), (UsageFilters(PERIOD.previous()), "day")],
    )
    assert as_truth(one_key) == {
        llm.pk: (1, 70, 7, {dt.date(2026, 11, 25): Decimal("0.084")})  # 70 x 1 / 1000 + 7 x 2 / 1000, exact
    }
    assert previous.models == {} and previous.days == PERIOD.previous().dates()


def test_another_tenants_activity_does_not_touch_this_tenants_grid(
    tenant, other_tenant, other_api_key, llm, history, django_assert_num_queries
):
    first = read(tenant, Period(dt.date(2026, 11, 20), dt.date(2026, 11, 27)))
    make_calls(other_tenant, [call(other_api_key, llm, utc(2026, 11, 21, 9), 10, 0)])
    rollups.usage_rollup_dirty(tenant=other_tenant)
    with django_assert_num_queries(2):
        assert read(tenant, Period(dt.date(2026, 11, 20), dt.date(2026, 11, 27))) == first


def test_a_tenant_without_prices_has_an_unpriced_grid(db, llm):
    bare = services.tenant_create(slug="bare", name="Bare", timezone_name="UTC")
    key, _secret = services.api_key_create(tenant=bare, name="k")
    make_calls(bare, [call(key, llm, utc(2026, 11, 27, 9), 10, 0)])
    grid = usage_grid(tenant=bare, filters=UsageFilters(PERIOD))
    assert grid.priced is False and grid.models[llm.pk].cost == {}

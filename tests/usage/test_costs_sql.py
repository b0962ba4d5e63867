"""The PostgreSQL costing path gives exactly the Python path's answer (same rule, same digits)."""

import datetime as dt
import random
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection

from accounts import services
from usage.localtime import local_day
from usage.models import CallRecord, Model
from usage.reporting import costs, costs_sql
from usage.reporting.periods import Period
from usage.reporting.selectors import UsageFilters
from usage.rollups import recompute as rollups

from .factories import make_calls, price, utc

pytestmark = pytest.mark.django_db
GROUPS = [(), "model", "api_key", "day", ("day", "model"), ("day", "api_key")]


@pytest.fixture
def postgres():
    if connection.vendor != "postgresql":
        pytest.skip("The SQL costing path exists on PostgreSQL only (SQLite always costs in Python)")


def python_path(monkeypatch, fn, **kwargs):
    with monkeypatch.context() as patch:
        patch.setattr(costs_sql, "applies", lambda **_: False)
        return fn(**kwargs)


def both(monkeypatch, fn, **kwargs):
    assert costs_sql.applies(tenant=kwargs["tenant"], filters=kwargs["filters"])
    return fn(**kwargs), python_path(monkeypatch, fn, **kwargs)


@pytest.fixture
def priced_usage(tenant, other_tenant):
    keys = [services.api_key_create(tenant=tenant, name=f"k{i}")[0] for i in range(3)]
    usd, eur, yen, free = (Model.objects.create(name=name) for name in ("m/usd", "m/eur", "m/yen", "m/unpriced"))
    price(usd, dt.date(2026, 1, 1), "0.5", "1.5", cached="0.05")
    price(usd, dt.date(2026, 11, 10), "0.4", "1.2")  # price cut mid-month, no cached price: input price
    price(usd, dt.date(2026, 11, 20), "0.3", "0.9", tenant=tenant, currency="EUR")  # contract from the 20th
    price(usd, dt.date(2026, 11, 1), "9", "9", tenant=other_tenant)  # never applies to this tenant
    price(eur, dt.date(2026, 1, 1), "5", "5", currency="EUR")  # 1 token = 0.005: a half-cent tie
    price(yen, dt.date(2026, 11, 5), "150", "300", currency="JPY")  # before the 5th: unpriced
    rng = random.Random(7)
    specs = []
    for _ in range(600):
        inp = rng.choice([1, 3, 5, rng.randrange(0, 20000)])
        spec = {
            "api_key": rng.choice(keys),
            "model": rng.choice([usd, eur, yen, free]),
            "occurred_at": utc(2026, 11, 1) + dt.timedelta(minutes=rng.randrange(0, 30 * 24 * 60)),
            "input_tokens": inp,
            "output_tokens": rng.choice([0, 1, rng.randrange(0, 5000)]),
            # At most the input (ingestion refuses more): every share of it, none and all included.
            "cached_input_tokens": rng.choice([None, 0, inp, rng.randrange(0, inp + 1)]),
        }
        specs.append(spec)
    make_calls(tenant, specs)
    # Globex (Asia/Kolkata): calls on the same days on m/usd at its own price of 9 / 9 per 1K.
    their_keys = [services.api_key_create(tenant=other_tenant, name=f"g{i}")[0] for i in range(2)]
    theirs = [
        {
            "api_key": rng.choice(their_keys),
            "model": usd,
            "occurred_at": utc(2026, 11, 1) + dt.timedelta(minutes=rng.randrange(0, 29 * 24 * 60)),
            "input_tokens": rng.randrange(0, 3000),
            "output_tokens": rng.randrange(0, 700),
        }
        for _ in range(150)
    ]
    make_calls(other_tenant, theirs)
    return keys, (usd, eur, yen, free)


def their_cost(other_tenant):
    """Globex's cost from its ledger: 9 per 1K tokens, every local day x key line exact (no rounding
    before the sum)."""
    lines = Counter()
    for call in CallRecord.objects.filter(tenant=other_tenant):
        lines[(local_day(other_tenant, call.occurred_at), call.api_key_id)] += call.input_tokens + call.output_tokens
    return sum(Decimal(tokens) * 9 / 1000 for tokens in lines.values())


def test_every_grouping_equals_the_python_path(postgres, tenant, other_tenant, priced_usage, monkeypatch):
    filters = UsageFilters(Period(dt.date(2026, 11, 1), dt.date(2026, 11, 30)))
    sql_total, python_total = both(monkeypatch, costs.usage_cost, tenant=tenant, filters=filters)
    assert sql_total == python_total
    assert set(sql_total.amounts) == {"USD", "EUR", "JPY"} and sql_total.unpriced_models
    sql_theirs, python_theirs = both(monkeypatch, costs.usage_cost, tenant=other_tenant, filters=filters)
    assert sql_theirs == python_theirs == costs.CostSummary({"USD": their_cost(other_tenant)})
    for group in GROUPS[1:]:
        sql, python = both(monkeypatch, costs.cost_by, tenant=tenant, filters=filters, group=group)
        assert sql == python, group


def test_filtered_ranges_equal_the_python_path(postgres, tenant, priced_usage, monkeypatch):
    keys, models = priced_usage
    rng = random.Random(11)
    for _ in range(15):
        start = dt.date(2026, 11, 1) + dt.timedelta(days=rng.randrange(0, 30))
        period = Period(start, min(start + dt.timedelta(days=rng.randrange(0, 20)), dt.date(2026, 11, 30)))
        filters = UsageFilters(period, rng.choice([None, *keys]), rng.choice([None, *models]))
        sql, python = both(monkeypatch, costs.cost_by, tenant=tenant, filters=filters, group=rng.choice(GROUPS[1:]))
        assert sql == python


def test_sql_sums_exact_lines_without_rounding(postgres, tenant, api_key, monkeypatch):
    model = Model.objects.create(name="m/tie")
    price(model, dt.date(2026, 1, 1), "5", "0")
    make_calls(tenant, [{"api_key": api_key, "model": model, "occurred_at": utc(2026, 11, 2), "input_tokens": 1}])
    make_calls(tenant, [{"api_key": api_key, "model": model, "occurred_at": utc(2026, 11, 3), "input_tokens": 3}])
    rollups.usage_rollup_dirty(tenant=tenant)
    filters = UsageFilters(Period(dt.date(2026, 11, 1), dt.date(2026, 11, 30)))
    assert costs_sql.applies(tenant=tenant, filters=filters)
    by_day = costs.cost_by(tenant=tenant, filters=filters, group="day")
    # 1 token x 5 / 1000 = 0.005 and 3 tokens = 0.015: exact (rounded per line they were 0.00 and 0.02).
    assert by_day[dt.date(2026, 11, 2)].amounts == {"USD": Decimal("0.005")}
    assert by_day[dt.date(2026, 11, 3)].amounts == {"USD": Decimal("0.015")}
    assert costs.usage_cost(tenant=tenant, filters=filters).amounts == {"USD": Decimal("0.020")}


def test_a_dirty_day_in_range_falls_back_to_the_exact_python_path(tenant, api_key, llm):
    price(llm, dt.date(2026, 1, 1), "1", "0")
    call = {"api_key": api_key, "model": llm, "occurred_at": utc(2026, 11, 2), "input_tokens": 1000}
    make_calls(tenant, [call], dirty=True)
    filters = UsageFilters(Period(dt.date(2026, 11, 1), dt.date(2026, 11, 30)))
    assert not costs_sql.applies(tenant=tenant, filters=filters)
    assert costs.usage_cost(tenant=tenant, filters=filters).amounts == {"USD": Decimal("1.00")}


def test_closed_days_are_cached_until_a_day_is_recomputed_or_a_price_changes(
    postgres, tenant, api_key, llm, django_assert_num_queries
):
    price(llm, dt.date(2026, 1, 1), "1", "0")
    make_calls(tenant, [{"api_key": api_key, "model": llm, "occurred_at": utc(2026, 11, 2), "input_tokens": 1000}])
    rollups.usage_rollup_dirty(tenant=tenant)
    filters = UsageFilters(Period(dt.date(2026, 11, 1), dt.date(2026, 11, 3)))  # all before today
    first = costs.usage_cost(tenant=tenant, filters=filters)
    with django_assert_num_queries(3):  # dirty days, prices, rollup version: no costing query
        assert costs.usage_cost(tenant=tenant, filters=filters) == first == costs.CostSummary({"USD": Decimal("1.00")})
    make_calls(tenant, [{"api_key": api_key, "model": llm, "occurred_at": utc(2026, 11, 3), "input_tokens": 500}])
    rollups.usage_rollup_dirty(tenant=tenant)  # a late call: the day's buckets are new rows
    assert costs.usage_cost(tenant=tenant, filters=filters).amounts == {"USD": Decimal("1.50")}
    price(llm, dt.date(2026, 11, 3), "2", "0")  # a new price from the 3rd re-costs history at once
    assert costs.usage_cost(tenant=tenant, filters=filters).amounts == {"USD": Decimal("2.00")}


def test_a_range_ending_today_costs_today_afresh(postgres, tenant, api_key, llm, monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: utc(2026, 11, 3, 12))
    price(llm, dt.date(2026, 1, 1), "1", "0")
    make_calls(tenant, [{"api_key": api_key, "model": llm, "occurred_at": utc(2026, 11, 2), "input_tokens": 1000}])
    rollups.usage_rollup_dirty(tenant=tenant)
    filters = UsageFilters(Period(dt.date(2026, 11, 1), dt.date(2026, 11, 3)))
    assert costs.cost_by(tenant=tenant, filters=filters, group="day") == {
        dt.date(2026, 11, 2): costs.CostSummary({"USD": Decimal("1.00")})
    }
    make_calls(tenant, [{"api_key": api_key, "model": llm, "occurred_at": utc(2026, 11, 3, 9), "input_tokens": 2000}])
    rollups.usage_rollup_dirty(tenant=tenant)
    by_day = costs.cost_by(tenant=tenant, filters=filters, group="day")
    assert by_day[dt.date(2026, 11, 3)].amounts == {"USD": Decimal("2.00")}
    assert costs.usage_cost(tenant=tenant, filters=filters).amounts == {"USD": Decimal("3.00")}

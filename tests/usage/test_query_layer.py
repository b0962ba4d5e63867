"""The query layer's own guarantees (usage.reporting.query): the order requests are checked in,
what a query may name, and what its FilterSet's ``qs`` holds. Found by a review of issue 17."""

import pytest

from usage.models import Model
from usage.reporting.filters import UsageFilterSet
from usage.reporting.periods import Period
from usage.reporting.query import InvalidQuery, UsageQuery

from .api_helpers import token_client
from .factories import make_calls, utc

RANGE = {"start": "2026-11-01", "end": "2026-11-28"}


@pytest.mark.parametrize(("path", "own"), [("timeseries", {"bucket": "minute"}), ("breakdown", {"by": "bogus"})])
def test_another_tenant_is_a_404_before_the_endpoints_own_parameters(tenant, other_tenant, path, own):
    response = token_client(other_tenant).get(f"/api/v1/usage/{path}", {"tenant": tenant.slug, **own})
    assert response.status_code == 404


def test_a_bad_common_filter_is_named_before_the_endpoints_own_parameters(tenant):
    response = token_client(tenant).get("/api/v1/usage/timeseries", {"model": "no/such", "bucket": "minute"})
    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == ["model"]


def test_hourly_buckets_over_three_days_are_a_400_naming_bucket(tenant):
    response = token_client(tenant).get("/api/v1/usage/timeseries", {**RANGE, "bucket": "hour"})
    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == ["bucket"]


def test_a_tenant_without_prices_names_every_unpriced_model_even_one_without_tokens(
    tenant, other_tenant, api_key, other_api_key, llm
):
    zero = Model.objects.create(name="public/zero")
    make_calls(
        tenant,
        [
            {
                "api_key": api_key,
                "model": llm,
                "occurred_at": utc(2026, 11, 20, 9),
                "input_tokens": 100,
                "output_tokens": 10,
            },
            {"api_key": api_key, "model": zero, "occurred_at": utc(2026, 11, 20, 9)},
        ],
    )
    make_calls(
        other_tenant, [{"api_key": other_api_key, "model": llm, "occurred_at": utc(2026, 11, 20, 9), "input_tokens": 7}]
    )
    body = token_client(tenant).get("/api/v1/usage/summary", RANGE).json()
    assert body["unpriced_models"] == [llm.name, "public/zero"]
    assert body["cost"] == [{"amount": "0.00", "currency": "USD", "unpriced_tokens": 110}]
    theirs = token_client(other_tenant).get("/api/v1/usage/summary", RANGE).json()
    assert (theirs["unpriced_models"], theirs["total_tokens"]) == ([llm.name], 7)


def test_an_unbound_filterset_holds_only_the_tenants_calls_and_an_invalid_one_none(
    tenant, other_tenant, api_key, other_api_key, llm
):
    mine = make_calls(tenant, [{"api_key": api_key, "model": llm, "occurred_at": utc(2026, 11, 20, 9)}])
    make_calls(other_tenant, [{"api_key": other_api_key, "model": llm, "occurred_at": utc(2026, 11, 20, 9)}])
    assert list(UsageFilterSet(None, tenant=tenant).qs) == mine
    assert UsageFilterSet({"start": "2026-13-01"}, tenant=tenant).qs.count() == 0


def test_a_query_never_names_another_tenants_key(tenant, other_api_key):
    with pytest.raises(InvalidQuery) as raised:
        UsageQuery(tenant, Period(utc(2026, 11, 1).date(), utc(2026, 11, 2).date()), api_key=other_api_key)
    assert list(raised.value.errors) == ["api_key"]


def test_a_model_made_private_to_another_tenant_still_filters_this_tenants_calls(
    tenant, other_tenant, api_key, other_api_key, llm
):
    make_calls(tenant, [{"api_key": api_key, "model": llm, "occurred_at": utc(2026, 11, 20, 9), "input_tokens": 5}])
    make_calls(
        other_tenant, [{"api_key": other_api_key, "model": llm, "occurred_at": utc(2026, 11, 20, 9), "input_tokens": 7}]
    )
    llm.tenant = other_tenant  # an admin's edit after the calls
    llm.save()
    day = Period(utc(2026, 11, 20).date(), utc(2026, 11, 20).date())
    assert UsageQuery(tenant, day, model=llm).totals().input_tokens == 5
    assert UsageQuery(other_tenant, day, model=llm).totals().input_tokens == 7


def test_a_cache_filled_by_the_previous_layout_is_never_read(tenant, other_tenant, api_key, other_api_key, llm):
    """Before issue 17 a grid was pickled as ``usage.grid.UsageGrid`` under ``grid:<sha256>``; a
    shared cache still holds such entries after an upgrade, and unpickling one fails (the module
    moved). Keys carry ``CACHE_FORMAT``, so the old entry is a miss, not a 500."""
    import datetime as dt
    import hashlib
    import pickle
    import sys
    import types

    from django.core.cache import cache

    from usage.reporting.costs import price_fingerprint, prices_in_force
    from usage.reporting.grid import usage_grid
    from usage.reporting.selectors import UsageFilters, usage_versions

    make_calls(tenant, [{"api_key": api_key, "model": llm, "occurred_at": utc(2026, 11, 20, 9), "input_tokens": 3}])
    make_calls(
        other_tenant, [{"api_key": other_api_key, "model": llm, "occurred_at": utc(2026, 11, 20, 9), "input_tokens": 4}]
    )
    period = Period(dt.date(2026, 11, 19), dt.date(2026, 11, 21))  # closed days: one segment
    version = usage_versions(tenant, [period])[0]
    prices = price_fingerprint(prices_in_force(tenant=tenant, terms_only=True))
    raw = repr((tenant.pk, tenant.timezone, period, (None, None), "day", "model", version, prices))
    old_key = "grid:" + hashlib.sha256(raw.encode()).hexdigest()  # the key a6ce39b used
    old_module = types.ModuleType("usage.grid")

    class UsageGrid:
        pass

    UsageGrid.__module__, UsageGrid.__qualname__ = "usage.grid", "UsageGrid"
    old_module.UsageGrid = UsageGrid
    sys.modules["usage.grid"] = old_module
    try:
        stale = pickle.dumps(UsageGrid())
    finally:
        del sys.modules["usage.grid"]
    cache.set(old_key, "placeholder")
    cache._cache[cache.make_key(old_key)] = stale  # locmem keeps pickles: the old release's bytes
    with pytest.raises(ModuleNotFoundError):
        cache.get(old_key)
    grid = usage_grid(tenant=tenant, filters=UsageFilters(period))
    assert grid.totals.input_tokens == 3
    assert usage_grid(tenant=other_tenant, filters=UsageFilters(period)).totals.input_tokens == 4


def test_a_grid_cached_with_rounded_costs_is_never_read(tenant, other_tenant, api_key, other_api_key, llm):
    """Until issue 26 a grid's costs were sums of lines rounded to the cent, cached under format 2
    keys; after the upgrade a shared cache still holds them. The format is part of every key, so
    such a grid is a miss and the exact cost is read."""
    import datetime as dt
    import hashlib
    from decimal import Decimal

    from django.core.cache import cache

    from usage.reporting.costs import price_fingerprint, prices_in_force
    from usage.reporting.grid import usage_grid
    from usage.reporting.selectors import UsageFilters, usage_versions

    from .factories import price

    price(llm, dt.date(2026, 1, 1), "0.0001", "0")
    make_calls(tenant, [{"api_key": api_key, "model": llm, "occurred_at": utc(2026, 11, 20, 9), "input_tokens": 3}])
    make_calls(
        other_tenant, [{"api_key": other_api_key, "model": llm, "occurred_at": utc(2026, 11, 20, 9), "input_tokens": 4}]
    )
    period = Period(dt.date(2026, 11, 19), dt.date(2026, 11, 21))  # closed days: one segment
    version = usage_versions(tenant, [period])[0]
    prices = price_fingerprint(prices_in_force(tenant=tenant, terms_only=True))
    raw = repr((tenant.pk, tenant.timezone, period, (None, None), "day", "model", version, prices))
    old_key = "grid:2:" + hashlib.sha256(raw.encode()).hexdigest()  # the key release 2 used
    old = usage_grid(tenant=tenant, filters=UsageFilters(period))
    old.models[llm.pk].cost["USD"][1] = Decimal("0.00")  # 3 tokens x 0.0001/1K, rounded to the cent
    cache.clear()
    cache.set(old_key, old)
    grid = usage_grid(tenant=tenant, filters=UsageFilters(period))
    assert grid.models[llm.pk].cost["USD"][1] == Decimal("0.0000003")
    assert usage_grid(tenant=other_tenant, filters=UsageFilters(period)).models[llm.pk].cost["USD"][1] == Decimal(
        "0.0000004"
    )

"""The API's timeseries and breakdown read the page's grids (and their caches), point for point
equal to the selectors' own series and the cost engine's ``cost_by``, for two tenants with calls
on the same days, part rolled up and part dirty, with prices in two currencies and an unpriced
model. A repeated request is served from the cache: no rollup, ledger or cost query.
"""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import services
from usage.api.scope import filters_or_errors
from usage.reporting.cache_economics import CacheEconomics, cache_economics
from usage.reporting.costs import DEFAULT_CURRENCY, CostSummary, cost_by
from usage.reporting.query import UsageQuery
from usage.reporting.selectors import usage_breakdown, usage_series
from usage.reporting.unpriced import Unpriced, unpriced_usage

from .api_helpers import token_client
from .test_api_parity import _random_calls, priced_world, world  # noqa: F401  (fixtures)


@pytest.fixture
def both_tenants(priced_world, other_tenant):  # noqa: F811
    rng, _keys, models, today = priced_world
    other_keys = [services.api_key_create(tenant=other_tenant, name=f"globex-{n}")[0] for n in range(2)]
    _random_calls(rng, other_tenant, other_keys, models, today, 120)
    return priced_world


def _fallback(summaries):
    currencies = sorted({currency for summary in summaries for currency in summary.amounts})
    return currencies[0] if currencies else DEFAULT_CURRENCY


def _group_fields(group):
    if group is None:
        return {}
    if hasattr(group, "public_id"):
        return {"api_key": group.public_id, "api_key_name": group.name}
    return {"model": group.name}


def _expected_series(tenant, filters, bucket, group_by):
    """The series as the selectors and ``cost_by`` compute them, in the API's shape."""
    series = usage_series(tenant=tenant, filters=filters, bucket=bucket, group_by=group_by)
    costs, fallback = None, None
    if bucket == "day":
        costs = cost_by(tenant=tenant, filters=filters, group=("day", group_by) if group_by else ("day",))
        fallback = _fallback(costs.values())
    labels = [
        value.astimezone(tenant.tz).isoformat() if bucket == "hour" else value.isoformat() for value in series.buckets
    ]
    items = []
    for group, points in series.groups:
        rows = []
        for value, label, point in zip(series.buckets, labels, points, strict=True):
            key = (value, group.pk) if group else (value,)
            cost = None if costs is None else costs.get(key, CostSummary()).as_api(fallback_currency=fallback)
            rows.append({"bucket": label, **point.as_dict(), "cost": cost})
        items.append({**_group_fields(group), "points": rows})
    return labels, items


def _expected_breakdown(tenant, filters, by):
    costs = cost_by(tenant=tenant, filters=filters, group=by)
    fallback = _fallback(costs.values())
    query = UsageQuery.of(tenant, filters).using(by=by)
    economics = cache_economics(query, query.grid())
    unpriced = unpriced_usage(query, query.grid()) if by == "model" else None
    return [
        {**_group_fields(row.group), **row.totals.as_dict(), "share": row.share}
        | {"cost": costs.get(row.group.pk, CostSummary()).as_api(fallback_currency=fallback)}
        | economics.get(row.group.pk, CacheEconomics()).as_api()
        | {"unpriced_calls": None if unpriced is None else unpriced.get(row.group.pk, Unpriced()).calls}
        for row in usage_breakdown(tenant=tenant, filters=filters, by=by)
    ]


def _cases(keys, models, today):
    yield {"preset": "last_2_weeks"}
    yield {"preset": "last_30_days", "api_key": keys[0].public_id}
    yield {"start": (today - dt.timedelta(days=40)).isoformat(), "end": today.isoformat(), "model": models[1].name}
    yield {"start": (today - dt.timedelta(days=12)).isoformat(), "end": (today - dt.timedelta(days=3)).isoformat()}
    yield {"start": (today - dt.timedelta(days=1)).isoformat(), "end": today.isoformat()}  # hourly too


@pytest.mark.parametrize("which", ["tenant", "other_tenant"])
def test_timeseries_and_breakdown_equal_the_selectors(request, both_tenants, which):
    _rng, keys, models, today = both_tenants
    tenant = request.getfixturevalue(which)
    if which == "other_tenant":
        keys = list(tenant.api_keys.order_by("pk"))
    client = token_client(tenant)
    compared = 0
    for params in _cases(keys, models, today):
        filters, errors = filters_or_errors(params, tenant)
        assert not errors, errors
        buckets = ["day", "hour"] if filters.period.days <= 2 else ["day"]
        for bucket in buckets:
            for group_by in ("model", "api_key", "none"):
                body = client.get("/api/v1/usage/timeseries", {**params, "bucket": bucket, "group_by": group_by})
                assert body.status_code == 200, body.content
                labels, items = _expected_series(tenant, filters, bucket, None if group_by == "none" else group_by)
                assert body.json()["buckets"] == labels, (params, bucket, group_by)
                assert body.json()["series"] == items, (params, bucket, group_by)
                compared += sum(len(item["points"]) for item in items)
        for by in ("model", "api_key"):
            body = client.get("/api/v1/usage/breakdown", {**params, "by": by})
            assert body.status_code == 200, body.content
            results = body.json()["results"]
            for result in results:  # each currency's cost per token class adds up to its cost
                amounts = {cost["currency"]: Decimal(cost["amount"]) for cost in result["cost"]}
                for by_class in result.pop("cost_by_class"):
                    parts = sum(Decimal(by_class[name]) for name in ("input", "cached_read", "cache_write", "output"))
                    assert parts == amounts[by_class["currency"]], (params, by, result)
            assert results == _expected_breakdown(tenant, filters, by), (params, by)
    assert compared > 300


def test_a_repeated_read_is_served_from_the_grid_cache(tenant, both_tenants):
    client = token_client(tenant)
    params = {"preset": "last_30_days", "bucket": "day", "group_by": "api_key"}
    first = client.get("/api/v1/usage/timeseries", params).json()
    # The breakdown's cost per token class is its own cached answer (not part of the grid): read once.
    client.get("/api/v1/usage/breakdown", {"preset": "last_30_days", "by": "api_key"})
    with CaptureQueriesContext(connection) as queries:
        again = client.get("/api/v1/usage/timeseries", params).json()
        breakdown = client.get("/api/v1/usage/breakdown", {"preset": "last_30_days", "by": "api_key"}).json()
    assert again == first
    assert breakdown["results"]
    usage_tables = re.compile(r"usage_(callrecord|usagehourly|usagedaily)\b")
    reads = [query["sql"] for query in queries.captured_queries if usage_tables.search(query["sql"])]
    assert reads == [], reads

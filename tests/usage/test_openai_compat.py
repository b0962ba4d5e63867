"""/api/openai/v1/organization/usage/completions and /costs: OpenAI's shape, this product's numbers.

The sums are compared with /api/v1/usage/summary (the same selectors) on the demo data, on the
Azure traces and on two tenants with calls on the same days. The official ``openai`` package
(pinned in requirements-dev.txt; its ``client.admin.organization.usage`` has both methods) is
the client of a live server in the tests marked so.
"""

import datetime as dt
from decimal import Decimal
from io import StringIO

import openai
import pytest
from django.core.management import call_command
from django.urls import reverse

from accounts import services as account_services
from accounts.models import Tenant
from tests.usage.api_helpers import token_and_client
from tests.usage.factories import make_calls, price, utc
from usage import localtime
from usage.demo import seed as demo
from usage.models import Model

COMPLETIONS = "/api/openai/v1/organization/usage/completions"
COSTS = "/api/openai/v1/organization/costs"
DAY = dt.date(2026, 3, 10)


def ts(instant):
    return int(instant.timestamp())


def _sums(page_list):
    totals = {"calls": 0, "input_tokens": 0, "output_tokens": 0, "cached_input_tokens": 0, "reasoning_tokens": 0}
    for page in page_list:
        for bucket in page["data"]:
            for result in bucket["results"]:
                totals["calls"] += result["num_model_requests"]
                totals["input_tokens"] += result["input_tokens"]
                totals["output_tokens"] += result["output_tokens"]
                totals["cached_input_tokens"] += result.get("input_cached_tokens", 0)
                totals["reasoning_tokens"] += result["x_usage_statistics"]["reasoning_tokens"] or 0
    return totals


def _money(page_list):
    amounts = {}
    for page in page_list:
        for bucket in page["data"]:
            for result in bucket["results"]:
                extra = result["x_usage_statistics"]
                amounts[extra["currency"]] = amounts.get(extra["currency"], Decimal(0)) + Decimal(extra["amount"])
                assert Decimal(str(result["amount"]["value"])) == Decimal(extra["amount"])
                assert result["amount"]["currency"] == extra["currency"].lower()
    return {currency: amount for currency, amount in amounts.items() if amount}


def _all_pages(client, url, params):
    pages, page = [], None
    while True:
        query = {**params, "x_usage_statistics": "true", **({"page": page} if page else {})}
        response = client.get(url, query)
        assert response.status_code == 200, response.content
        pages.append(response.json())
        if not pages[-1]["has_more"]:
            return pages
        page = pages[-1]["next_page"]
        assert page


def _summary(client, start, end):
    data = client.get(reverse("api_usage_summary"), {"start": start.isoformat(), "end": end.isoformat()}).json()
    summed = {name: data[name] or 0 for name in ("calls", "input_tokens", "output_tokens")}
    summed |= {name: data[name] or 0 for name in ("cached_input_tokens", "reasoning_tokens")}
    money = {cost["currency"]: Decimal(cost["amount"]) for cost in data["cost"] if Decimal(cost["amount"])}
    return summed, money


def _check_against_summary(tenant, client, first, last):
    """Every bucket width and zone over the local days first..last sums to the summary of those days."""
    summary, money = _summary(client, first, last)
    assert summary["calls"] > 0
    start, end = localtime.day_span(tenant, first, last)
    window = {"start_time": ts(start), "end_time": ts(end)}
    for params in (
        {"bucket_width": "1d", "x_timezone": "tenant", "limit": 31},
        {"bucket_width": "1d", "x_timezone": "tenant", "limit": 2, "group_by": ["api_key_id", "model"]},
        {"bucket_width": "1h", "limit": 168, "group_by[]": ["model"]},
        {"bucket_width": "1h", "x_timezone": "tenant", "limit": 7, "group_by": "api_key_id"},
    ):
        assert _sums(_all_pages(client, COMPLETIONS, {**window, **params})) == summary, params
    for params in ({"x_timezone": "tenant"}, {"x_timezone": "tenant", "group_by": ["api_key_id", "line_item"]}):
        assert _money(_all_pages(client, COSTS, {**window, **params, "limit": 2})) == money, params
    if tenant.timezone == "UTC":  # the default zone is the tenant's: the same without the extension
        assert _sums(_all_pages(client, COMPLETIONS, {**window, "limit": 3})) == summary
        assert _money(_all_pages(client, COSTS, {**window, "group_by": "line_item"})) == money
    return summary, money


# --- demo data and the Azure traces -----------------------------------------------------------


def test_sums_equal_the_summary_on_the_demo_data(db, traces):
    now = dt.datetime(2026, 3, 18, 9, 30, tzinfo=dt.UTC)
    config = demo.DemoConfig(days=4, trace_sample=8, synthetic_peak=15, trace_dir=traces)
    demo.seed_demo(config=config, now=now)
    for slug in ("demo", "side-project"):
        tenant = Tenant.objects.get(slug=slug)
        _token, client = token_and_client(tenant)
        today = now.astimezone(tenant.tz).date()
        _check_against_summary(tenant, client, today - dt.timedelta(days=4), today)


def test_sums_equal_the_summary_on_the_azure_trace(tenant, traces):
    keys = [account_services.api_key_create(tenant=tenant, name=f"trace-{i}")[0] for i in range(3)]
    options = [option for key in keys for option in ("--api-key", key.public_id)]
    path = traces / "AzureLLMInferenceTrace_code.csv"
    args = ["--format", "azure", "--tenant", tenant.slug, "--model", "azure/code", "--no-progress", *options]
    call_command("import_calls", str(path), *args, stdout=StringIO())
    price(Model.objects.get(name="azure/code"), dt.date(2023, 1, 1), "0.0013", "0.0027", cached="0.0004")
    _token, client = token_and_client(tenant)
    day = dt.date(2023, 11, 16)
    summary, money = _check_against_summary(tenant, client, day, day)
    assert (summary["calls"], summary["input_tokens"], summary["output_tokens"]) == (8_819, 18_059_974, 245_896)
    assert money
    # Minutes of the trace's hour come from the ledger: still the same sums.
    hour = {"start_time": ts(utc(2023, 11, 16, 18)), "end_time": ts(utc(2023, 11, 16, 20)), "bucket_width": "1m"}
    pages = _all_pages(client, COMPLETIONS, {**hour, "limit": 1440, "group_by": "api_key_id"})
    assert len(pages) == 1 and len(pages[0]["data"]) == 120
    assert _sums(pages) == summary


# --- two tenants on the same days -------------------------------------------------------------


@pytest.fixture
def two_tenants(tenant, other_tenant):
    """Acme (UTC) and Globex (Asia/Kolkata, +05:30) with calls at the same instants, other sizes."""
    models = [Model.objects.create(name=name) for name in ("public/alpha", "public/beta")]
    price(models[0], dt.date(2026, 1, 1), "1", "2", cached="0.5")
    price(models[1], dt.date(2026, 1, 1), "0.3", "0.7", currency="EUR")
    world = {}
    for scale, owner in ((1, tenant), (10, other_tenant)):
        keys = [account_services.api_key_create(tenant=owner, name=f"k{i}")[0] for i in range(2)]
        specs = []
        for hour in range(0, 48, 5):
            at = utc(2026, 3, 9, 23, 40) + dt.timedelta(hours=hour)
            specs.append(
                {
                    "api_key": keys[hour % 2],
                    "model": models[hour % 3 % 2],
                    "occurred_at": at,
                    "input_tokens": scale * (100 + hour),
                    "output_tokens": scale * hour,
                    "cached_input_tokens": scale * 10 if hour % 2 else None,
                    "reasoning_tokens": scale * 3 if hour % 4 == 0 and hour else None,
                }
            )
        make_calls(owner, specs)
        _token, client = token_and_client(owner)
        world[owner.slug] = {"tenant": owner, "keys": keys, "specs": specs, "client": client}
    return world


def _expected(specs, start, end):
    chosen = [s for s in specs if start <= s["occurred_at"] < end]
    return {
        "calls": len(chosen),
        "input_tokens": sum(s["input_tokens"] for s in chosen),
        "output_tokens": sum(s["output_tokens"] for s in chosen),
        "cached_input_tokens": sum(s["cached_input_tokens"] or 0 for s in chosen),
        "reasoning_tokens": sum(s["reasoning_tokens"] or 0 for s in chosen),
    }


@pytest.mark.parametrize("width", ["1d", "1h", "1m"])
def test_each_tenant_gets_exactly_its_own_buckets(two_tenants, width):
    start, end = utc(2026, 3, 10), utc(2026, 3, 11)
    seconds = {"1d": 86400, "1h": 3600, "1m": 60}[width]
    for world in two_tenants.values():
        params = {
            "start_time": ts(start),
            "end_time": ts(end),
            "bucket_width": width,
            "limit": 1440 // (seconds // 60 or 1),
        }
        if width == "1d":
            params["limit"] = 1
        pages = _all_pages(world["client"], COMPLETIONS, params)
        buckets = [bucket for page in pages for bucket in page["data"]]
        assert len(buckets) == 86400 // seconds  # every bucket, empty ones too
        for bucket in buckets:
            assert bucket["end_time"] - bucket["start_time"] == seconds
            begin, finish = (dt.datetime.fromtimestamp(bucket[k], dt.UTC) for k in ("start_time", "end_time"))
            expected = _expected(world["specs"], begin, finish)
            if expected["calls"] == 0:
                assert bucket["results"] == []
            else:
                assert _sums([{"data": [bucket]}]) == expected


def test_tenant_zone_buckets_are_the_tenants_local_days(two_tenants):
    world = two_tenants["globex"]
    tenant = world["tenant"]
    start, end = localtime.day_span(tenant, DAY, DAY + dt.timedelta(days=1))
    params = {"start_time": ts(start), "end_time": ts(end), "x_timezone": "tenant", "group_by": "model"}
    page = world["client"].get(COMPLETIONS, {**params, "x_usage_statistics": "true"}).json()
    assert [bucket["start_time"] for bucket in page["data"]] == [
        ts(start),
        ts(localtime.local_midnight(tenant, DAY + dt.timedelta(days=1))),
    ]
    for bucket in page["data"]:
        begin, finish = (dt.datetime.fromtimestamp(bucket[k], dt.UTC) for k in ("start_time", "end_time"))
        assert _sums([{"data": [bucket]}]) == _expected(world["specs"], begin, finish)
        assert {result["model"] for result in bucket["results"]} <= {"public/alpha", "public/beta"}
        assert {result["api_key_id"] for result in bucket["results"]} == {None}


def test_field_mapping_of_one_call(tenant):
    key, _ = account_services.api_key_create(tenant=tenant, name="web")
    model = Model.objects.create(name="public/m")
    make_calls(
        tenant,
        [
            {
                "api_key": key,
                "model": model,
                "occurred_at": utc(2026, 3, 10, 8),
                "input_tokens": 1000,
                "output_tokens": 50,
                "cached_input_tokens": 800,
                "reasoning_tokens": 20,
            }
        ],
    )
    _token, client = token_and_client(tenant)
    params = {"start_time": ts(utc(2026, 3, 10)), "end_time": ts(utc(2026, 3, 11)), "group_by": "api_key_id,model"}
    [bucket] = client.get(COMPLETIONS, params).json()["data"]
    [extended] = client.get(COMPLETIONS, {**params, "x_usage_statistics": "true"}).json()["data"]
    assert bucket == {
        "object": "bucket",
        "start_time": ts(utc(2026, 3, 10)),
        "end_time": ts(utc(2026, 3, 11)),
        "results": [
            {
                "object": "organization.usage.completions.result",
                "input_tokens": 1000,  # includes the cached 800, as OpenAI's
                "output_tokens": 50,
                "input_cached_tokens": 800,
                "input_uncached_tokens": 200,
                "num_model_requests": 1,
                "project_id": None,
                "user_id": None,
                "api_key_id": key.public_id,
                "model": "public/m",
                "batch": None,
                "service_tier": None,
                "api_source": None,
            }
        ],
    }
    assert extended["results"][0] == {
        **bucket["results"][0],
        "x_usage_statistics": {"reasoning_tokens": 20, "total_tokens": 1050, "api_key_name": "web"},
    }


def test_costs_per_key_and_line_item_in_lower_case_currency(two_tenants):
    world = two_tenants["acme"]
    params = {
        "start_time": ts(utc(2026, 3, 10)),
        "end_time": ts(utc(2026, 3, 11)),
        "group_by[]": ["api_key_id", "line_item"],
        "x_usage_statistics": "true",
    }
    [bucket] = world["client"].get(COSTS, params).json()["data"]
    # A line item is "<model>, <token class>" (issue 26): the model's cost split by class.
    classes = ("input", "cached input", "cache write", "output")
    assert {(r["api_key_id"], r["line_item"], r["amount"]["currency"]) for r in bucket["results"]} <= {
        (key.public_id, f"{model}, {label}", currency)
        for key in world["keys"]
        for model, currency in (("public/alpha", "usd"), ("public/beta", "eur"))
        for label in classes
    }
    assert all(r["object"] == "organization.costs.result" for r in bucket["results"])
    _body, money = _summary(world["client"], DAY, DAY)
    assert _money([{"data": [bucket]}]) == money and len(money) == 2


def test_filters_and_another_tenants_key_id(two_tenants):
    acme, globex = two_tenants["acme"], two_tenants["globex"]
    window = {"start_time": ts(utc(2026, 3, 9)), "end_time": ts(utc(2026, 3, 12)), "limit": 3}
    window["x_usage_statistics"] = "true"
    own = acme["keys"][0].public_id
    page = acme["client"].get(COMPLETIONS, {**window, "api_key_ids[]": [own], "group_by": "api_key_id"}).json()
    assert {r["api_key_id"] for b in page["data"] for r in b["results"]} == {own}
    expected = _expected([s for s in acme["specs"] if s["api_key"].public_id == own], utc(2026, 3, 9), utc(2026, 3, 12))
    assert _sums([page]) == expected
    page = acme["client"].get(COMPLETIONS, {**window, "models": "public/beta", "group_by": "model"}).json()
    assert {r["model"] for b in page["data"] for r in b["results"]} == {"public/beta"}
    # Globex's key id in Acme's request matches nothing of Acme's, exactly as an unknown id.
    for url in (COMPLETIONS, COSTS):
        foreign = acme["client"].get(url, {**window, "api_key_ids": globex["keys"][0].public_id})
        unknown = acme["client"].get(url, {**window, "api_key_ids": "key_does_not_exist"})
        assert foreign.status_code == unknown.status_code == 200
        assert foreign.json() == unknown.json()
        assert all(bucket["results"] == [] for bucket in foreign.json()["data"])


def test_pages_limits_and_cursor(two_tenants):
    client = two_tenants["acme"]["client"]
    start = ts(utc(2026, 3, 1))
    first = client.get(COMPLETIONS, {"start_time": start, "end_time": ts(utc(2026, 4, 1))}).json()
    assert len(first["data"]) == 7 and first["has_more"] is True and first["next_page"].startswith("page_")
    second = client.get(COMPLETIONS, {"start_time": start, "end_time": ts(utc(2026, 4, 1)), "page": first["next_page"]})
    assert second.json()["data"][0]["start_time"] == ts(utc(2026, 3, 8))
    whole = client.get(COMPLETIONS, {"start_time": start, "end_time": ts(utc(2026, 4, 1)), "limit": 31}).json()
    assert len(whole["data"]) == 31 and whole["has_more"] is False and whole["next_page"] is None
    for width, default, maximum in (("1d", 7, 31), ("1h", 24, 168), ("1m", 60, 1440)):
        params = {"start_time": start, "end_time": ts(utc(2026, 5, 1)), "bucket_width": width}
        assert len(client.get(COMPLETIONS, params).json()["data"]) == default
        assert len(client.get(COMPLETIONS, {**params, "limit": maximum}).json()["data"]) == maximum
        assert client.get(COMPLETIONS, {**params, "limit": maximum + 1}).status_code == 400
    assert (
        len(client.get(COSTS, {"start_time": start, "end_time": ts(utc(2026, 12, 1)), "limit": 180}).json()["data"])
        == 180
    )


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({}, "start_time"),
        ({"start_time": "soon"}, "start_time"),
        ({"start_time": 1773100800, "bucket_width": "1w"}, "bucket_width"),
        ({"start_time": 1773100800, "group_by": "colour"}, "group_by"),
        ({"start_time": 1773100800, "limit": 0}, "limit"),
        ({"start_time": 1773100800, "page": "garbage"}, "page"),
        ({"start_time": 1773100800, "end_time": 1773100000}, "end_time"),
        ({"start_time": 1773100800, "x_timezone": "Mars/Olympus"}, "x_timezone"),
    ],
)
def test_errors_in_openai_shape(tenant, params, param):
    _token, client = token_and_client(tenant)
    response = client.get(COMPLETIONS, params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param


def test_costs_only_take_daily_buckets_and_no_token_is_a_401(tenant, client):
    _token, token_client = token_and_client(tenant)
    assert token_client.get(COSTS, {"start_time": 1773100800, "bucket_width": "1h"}).status_code == 400
    for url in (COMPLETIONS, COSTS):
        response = client.get(url, {"start_time": 1773100800})
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
        bad = client.get(url, {"start_time": 1773100800}, headers={"Authorization": "Bearer uat_nope"})
        assert bad.status_code == 401 and "error" in bad.json()


# --- the official openai package against a live server ---------------------------------------


@pytest.fixture
def short_lived_connections():
    """The live server's request threads close their connections, so the test database can be dropped."""
    from django.db import connections

    previous = connections.settings["default"]["CONN_MAX_AGE"]
    connections.settings["default"]["CONN_MAX_AGE"] = 0
    yield
    connections.settings["default"]["CONN_MAX_AGE"] = previous


@pytest.fixture
def live_world(transactional_db, live_server, short_lived_connections):
    tenant = account_services.tenant_create(slug="acme", name="Acme", timezone_name="Europe/Berlin")
    key, _ = account_services.api_key_create(tenant=tenant, name="web")
    model = Model.objects.create(name="public/alpha")
    price(model, dt.date(2026, 1, 1), "1", "2", cached="0.5")
    specs = [
        {
            "api_key": key,
            "model": model,
            "occurred_at": utc(2026, 3, 10, 6) + dt.timedelta(minutes=37 * n),
            "input_tokens": 1000 + n,
            "output_tokens": 10 * n,
            "cached_input_tokens": 100,
        }
        for n in range(40)
    ]
    make_calls(tenant, specs)
    # Globex (Asia/Kolkata): calls at the same instants on the same model, other sizes.
    globex = account_services.tenant_create(slug="globex", name="Globex", timezone_name="Asia/Kolkata")
    their_key, _ = account_services.api_key_create(tenant=globex, name="theirs")
    make_calls(globex, [{**spec, "api_key": their_key, "input_tokens": 7 * spec["input_tokens"]} for spec in specs])
    _token, secret = account_services.access_token_create(tenant=tenant, name="openai-client")
    client = openai.OpenAI(api_key="unused", admin_api_key=secret, base_url=f"{live_server.url}/api/openai/v1")
    _token, their_secret = account_services.access_token_create(tenant=globex, name="openai-client")
    theirs = openai.OpenAI(api_key="unused", admin_api_key=their_secret, base_url=f"{live_server.url}/api/openai/v1")
    return tenant, key, client, specs, (their_key, theirs)


def test_the_openai_package_reads_usage_and_costs(live_world):
    _tenant, key, client, specs, (their_key, theirs) = live_world
    start, end = utc(2026, 3, 10), utc(2026, 3, 12)
    their_usage = theirs.admin.organization.usage.completions(
        start_time=ts(start), end_time=ts(end), bucket_width="1d", group_by=["api_key_id"]
    )
    their_results = [result for bucket in their_usage.data for result in bucket.results]
    assert {r.api_key_id for r in their_results} == {their_key.public_id}
    assert sum(r.num_model_requests for r in their_results) == len(specs)
    assert sum(r.input_tokens for r in their_results) == 7 * sum(s["input_tokens"] for s in specs)
    usage = client.admin.organization.usage.completions(
        start_time=ts(start), end_time=ts(end), bucket_width="1h", group_by=["api_key_id", "model"], limit=48
    )
    assert usage.object == "page" and len(usage.data) == 48 and usage.has_more is False
    results = [result for bucket in usage.data for result in bucket.results]
    assert sum(r.num_model_requests for r in results) == len(specs)
    assert sum(r.input_tokens for r in results) == sum(s["input_tokens"] for s in specs)
    assert sum(r.input_cached_tokens for r in results) == 100 * len(specs)
    assert {(r.api_key_id, r.model) for r in results} == {(key.public_id, "public/alpha")}
    costs = client.admin.organization.usage.costs(start_time=ts(start), end_time=ts(end), group_by=["line_item"])
    total = sum(Decimal(str(r.amount.value)) for bucket in costs.data for r in bucket.results)
    expected = sum(
        (Decimal(s["input_tokens"] - 100) * 1 + Decimal(100) * Decimal("0.5") + Decimal(s["output_tokens"]) * 2) / 1000
        for s in specs
    )
    # Each local day's line is rounded to the cent: the total is within a cent per day of the exact sum.
    assert abs(total - expected) <= Decimal("0.02") and costs.data[0].results[0].amount.currency == "usd"
    first = client.admin.organization.usage.completions(start_time=ts(start), end_time=ts(end), bucket_width="1h")
    assert first.has_more is True and len(first.data) == 24
    rest = client.admin.organization.usage.completions(
        start_time=ts(start), end_time=ts(end), bucket_width="1h", page=first.next_page
    )
    assert rest.has_more is False and rest.data[0].start_time == first.data[-1].end_time
    with pytest.raises(openai.BadRequestError) as raised:
        client.admin.organization.usage.completions(start_time=ts(start), limit=1000)
    assert raised.value.param == "limit"
    # A filter this product cannot honour is an error the package raises, not all usage.
    for unsupported in ({"project_ids": ["proj_abc"]}, {"batch": True}, {"user_ids": ["user-abc"]}):
        with pytest.raises(openai.BadRequestError) as raised:
            client.admin.organization.usage.completions(start_time=ts(start), end_time=ts(end), **unsupported)
        assert raised.value.code == "unsupported_parameter" and raised.value.param == next(iter(unsupported))
    # Counts not reported are absent: the package reads them as None; the extension only on request.
    [bucket] = client.admin.organization.usage.completions(
        start_time=ts(start), end_time=ts(start) + 86400, group_by=["api_source"]
    ).data
    [result] = bucket.results
    assert result.input_audio_tokens is None and result.api_source == "unlabeled"
    assert "x_usage_statistics" not in result.model_dump()

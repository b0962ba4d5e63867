import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts import services
from accounts.models import Membership
from usage.models import Model, ModelPrice

from .api_helpers import csv_body, token_and_client, token_client
from .factories import make_calls, utc

NOW = utc(2026, 11, 28, 12)
RANGE = {"start": "2026-11-01", "end": "2026-11-28"}
THEIR_MODEL = "globex/tuned-llm"
# Globex's summary of RANGE in ``usage``: its own calls, nothing of Acme's (llm at 0.5 / 2 per 1K
# with no cached price: 1000 x 0.5 / 1K + 100 x 2 / 1K = 0.70; its private model has no price).
THEIRS = {
    "start": "2026-11-01",
    "end": "2026-11-28",
    "timezone": "Asia/Kolkata",
    "calls": 2,
    "input_tokens": 1070,
    "output_tokens": 130,
    "total_tokens": 1200,
    "cached_input_tokens": 400,
    "reasoning_tokens": None,
    "cache_creation_input_tokens": None,
    "cache_creation_1h_input_tokens": None,
    "cost": [{"amount": "0.70", "currency": "USD", "unpriced_tokens": 100}],
    "unpriced_models": [THEIR_MODEL],
    "unpriced_calls": 1,  # the one call on its private model
}


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    cache.clear()


@pytest.fixture
def usage(tenant, api_key, llm, other_tenant, other_api_key):
    """Acme's calls on Nov 20 and 21 (UTC); Globex (Asia/Kolkata) has calls on the same days, one
    on a model private to it (``THEIRS``). Returns Acme's second model."""
    other_model = Model.objects.create(name="public/qwen3")
    their_model = Model.objects.create(name=THEIR_MODEL, tenant=other_tenant)
    make_calls(
        other_tenant,
        [
            {"api_key": other_api_key, "model": llm, "occurred_at": utc(2026, 11, 20, 9), "input_tokens": 1000,
             "output_tokens": 100, "cached_input_tokens": 400},
            {"api_key": other_api_key, "model": their_model, "occurred_at": utc(2026, 11, 21, 23), "input_tokens": 70,
             "output_tokens": 30},  # Nov 22, 04:30 in Kolkata
        ],
    )  # fmt: skip
    make_calls(
        tenant,
        [
            {"api_key": api_key, "model": llm, "occurred_at": utc(2026, 11, 20, 9), "input_tokens": 100,
             "output_tokens": 10, "cached_input_tokens": 40},
            {"api_key": api_key, "model": llm, "occurred_at": utc(2026, 11, 20, 10), "input_tokens": 50,
             "output_tokens": 5},
            {"api_key": api_key, "model": other_model, "occurred_at": utc(2026, 11, 21, 23), "input_tokens": 7,
             "output_tokens": 3},
        ],
    )  # fmt: skip
    return other_model


@pytest.fixture
def priced(llm):
    """A price for llm only: its line of 2026-11-20 costs 150 x 0.5/1K + 15 x 2/1K = 0.105, exactly."""
    return ModelPrice.objects.create(
        model=llm, input_per_1k=Decimal("0.5"), output_per_1k=Decimal("2"), effective_from=dt.date(2026, 1, 1)
    )


def test_summary_totals_with_a_token(tenant, other_tenant, usage, priced):
    response = token_client(tenant).get("/api/v1/usage/summary", RANGE)
    assert response.status_code == 200
    assert response.json() == {
        "start": "2026-11-01",
        "end": "2026-11-28",
        "timezone": "UTC",
        "calls": 3,
        "input_tokens": 157,
        "output_tokens": 18,
        "total_tokens": 175,
        "cached_input_tokens": 40,
        "reasoning_tokens": None,
        "cache_creation_input_tokens": None,
        "cache_creation_1h_input_tokens": None,
        "cost": [{"amount": "0.105", "currency": "USD", "unpriced_tokens": 10}],  # qwen3 has no price
        "unpriced_models": ["public/qwen3"],
        "unpriced_calls": 1,
    }
    assert token_client(other_tenant).get("/api/v1/usage/summary", RANGE).json() == THEIRS


def test_no_token_is_401_problem(db):
    response = Client().get("/api/v1/usage/summary")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 401


def test_revoked_token_is_401(tenant):
    token, client = token_and_client(tenant)
    services.credential_revoke(token)
    assert client.get("/api/v1/usage/summary").status_code == 401


def test_foreign_api_key_is_400_naming_the_parameter(tenant, other_api_key):
    response = token_client(tenant).get("/api/v1/usage/summary", {"api_key": other_api_key.public_id})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert [error["field"] for error in response.json()["errors"]] == ["api_key"]


def test_unknown_model_is_400_naming_the_parameter(tenant):
    response = token_client(tenant).get("/api/v1/usage/breakdown", {"model": "no/such-model"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "model"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2026-11-10", "end": "2026-11-01"}, "end"),
        ({"start": "2025-01-01", "end": "2026-11-01"}, "end"),
        ({"start": "11/01/2026"}, "start"),
        ({"start": "0001-01-01"}, "start"),
        ({"preset": "forever"}, "preset"),
    ],
)
def test_bad_dates_are_400_naming_the_parameter(tenant, params, field):
    response = token_client(tenant).get("/api/v1/usage/summary", params)
    assert response.status_code == 400
    assert field in [error["field"] for error in response.json()["errors"]]


def test_a_token_sees_exactly_its_own_tenants_usage(tenant, other_tenant, other_api_key, llm, usage, priced):
    client = token_client(other_tenant)
    assert client.get("/api/v1/usage/summary", RANGE).json() == THEIRS
    assert [key["public_id"] for key in client.get("/api/v1/api-keys").json()["results"]] == [other_api_key.public_id]
    calls = client.get("/api/v1/calls", RANGE).json()["results"]
    assert [(call["model"], call["input_tokens"]) for call in calls] == [(THEIR_MODEL, 70), (llm.name, 1000)]
    rows = client.get("/api/v1/usage/breakdown", RANGE).json()["results"]
    assert [(row["model"], row["calls"], row["total_tokens"]) for row in rows] == [
        (llm.name, 1, 1100),
        (THEIR_MODEL, 1, 100),
    ]
    # Its own days in its own zone: the call at 23:00 UTC on Nov 21 is on Nov 22 in Kolkata.
    series = client.get("/api/v1/usage/timeseries", {"start": "2026-11-20", "end": "2026-11-22"}).json()["series"]
    assert {s["model"]: [p["total_tokens"] for p in s["points"]] for s in series} == {
        llm.name: [1100, 0, 0],
        THEIR_MODEL: [0, 0, 100],
    }


def test_the_model_list_names_the_tenants_used_and_private_models_only(tenant, other_tenant, llm, usage):
    """Globex used its private model (a per-model rollup row of Globex's): Acme's list leaves it out."""
    mine = token_client(tenant).get("/api/v1/models").json()["results"]
    assert mine == [{"name": llm.name, "private": False}, {"name": usage.name, "private": False}]
    theirs = token_client(other_tenant).get("/api/v1/models").json()["results"]
    assert theirs == [{"name": THEIR_MODEL, "private": True}, {"name": llm.name, "private": False}]


def test_a_token_naming_another_tenant_gets_404(tenant, other_tenant):
    response = token_client(other_tenant).get("/api/v1/usage/summary", {"tenant": tenant.slug})
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


def test_session_of_a_single_tenant_member_needs_no_tenant_parameter(owner_client, usage):
    assert owner_client.get("/api/v1/usage/summary", RANGE).json()["calls"] == 3


def test_session_outsider_naming_a_tenant_gets_404(outsider_client, tenant, usage):
    assert outsider_client.get("/api/v1/usage/summary", {"tenant": tenant.slug}).status_code == 404


def test_session_member_of_two_tenants_must_name_one(owner, owner_client, other_tenant, usage):
    Membership.objects.create(user=owner, tenant=other_tenant, role=Membership.Role.VIEWER)
    response = owner_client.get("/api/v1/usage/summary", RANGE)
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "tenant"
    assert owner_client.get("/api/v1/usage/summary", {**RANGE, "tenant": "acme"}).json()["calls"] == 3


def test_throttled_per_token_with_retry_after(tenant, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"access_token": "2/min"}}
    client = token_client(tenant)
    assert [client.get("/api/v1/models").status_code for _ in range(2)] == [200, 200]
    response = client.get("/api/v1/models")
    assert response.status_code == 429
    assert response["Content-Type"] == "application/problem+json"
    assert int(response["Retry-After"]) > 0
    assert token_client(tenant, name="another").get("/api/v1/models").status_code == 200


def test_timeseries_by_day_is_gap_filled_per_model(tenant, llm, usage):
    response = token_client(tenant).get("/api/v1/usage/timeseries", {"start": "2026-11-19", "end": "2026-11-22"})
    body = response.json()
    assert body["buckets"] == ["2026-11-19", "2026-11-20", "2026-11-21", "2026-11-22"]
    assert [series["model"] for series in body["series"]] == [llm.name, usage.name]
    assert [point["total_tokens"] for point in body["series"][0]["points"]] == [0, 165, 0, 0]


def test_timeseries_by_hour_in_a_half_hour_zone(other_tenant, other_api_key, llm):
    make_calls(other_tenant, [{"api_key": other_api_key, "model": llm, "occurred_at": utc(2026, 11, 20, 0, 30)}])
    params = {"start": "2026-11-20", "bucket": "hour", "group_by": "none"}
    body = token_client(other_tenant).get("/api/v1/usage/timeseries", params).json()
    assert len(body["buckets"]) == 24 and body["buckets"][0] == "2026-11-20T00:00:00+05:30"
    assert [p["calls"] for p in body["series"][0]["points"]][:7] == [0, 0, 0, 0, 0, 0, 1]
    assert "model" not in body["series"][0]


def test_hourly_timeseries_over_a_long_range_is_400(tenant):
    response = token_client(tenant).get("/api/v1/usage/timeseries", {**RANGE, "bucket": "hour"})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "bucket"


def test_breakdown_by_api_key_names_the_public_id(tenant, api_key, usage):
    body = token_client(tenant).get("/api/v1/usage/breakdown", {**RANGE, "by": "api_key"}).json()
    assert body["results"] == [
        {
            "api_key": api_key.public_id,
            "api_key_name": "production",
            "calls": 3,
            "input_tokens": 157,
            "output_tokens": 18,
            "total_tokens": 175,
            "cached_input_tokens": 40,
            "reasoning_tokens": None,
            "cache_creation_input_tokens": None,
            "cache_creation_1h_input_tokens": None,
            "share": 1.0,
            "cost": [{"amount": "0.00", "currency": "USD", "unpriced_tokens": 175}],
            "cache_hit_rate": 40 / 157,
            "cache_savings": None,  # told per model
            "unpriced_calls": None,  # told per model
            "cost_by_class": [],  # nothing priced
        }
    ]


def test_breakdown_by_model_costs_each_row(tenant, llm, usage, priced):
    body = token_client(tenant).get("/api/v1/usage/breakdown", RANGE).json()
    assert [(row["model"], row["cost"]) for row in body["results"]] == [
        (llm.name, [{"amount": "0.105", "currency": "USD", "unpriced_tokens": 0}]),
        (usage.name, [{"amount": "0.00", "currency": "USD", "unpriced_tokens": 10}]),
    ]


def test_daily_points_have_a_cost_per_model(tenant, llm, usage, priced):
    params = {"start": "2026-11-20", "end": "2026-11-21", "group_by": "model"}
    body = token_client(tenant).get("/api/v1/usage/timeseries", params).json()
    costs = {series["model"]: [point["cost"][0]["amount"] for point in series["points"]] for series in body["series"]}
    assert costs == {llm.name: ["0.105", "0.00"], usage.name: ["0.00", "0.00"]}
    assert body["series"][1]["points"][1]["cost"][0]["unpriced_tokens"] == 10


def test_hourly_points_have_no_cost(tenant, usage, priced):
    params = {"start": "2026-11-20", "bucket": "hour", "group_by": "none"}
    body = token_client(tenant).get("/api/v1/usage/timeseries", params).json()
    assert {point["cost"] for point in body["series"][0]["points"]} == {None}


def _query_count(client, path, params):
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path, params).status_code == 200
    return len(queries)


@pytest.mark.parametrize("group_by", ["model", "api_key", "none"])
def test_timeseries_costs_take_no_query_per_point(
    tenant, api_key, llm, priced, group_by, django_assert_max_num_queries
):
    client, params = token_client(tenant), {**RANGE, "group_by": group_by}
    make_calls(tenant, [{"api_key": api_key, "model": llm, "occurred_at": utc(2026, 11, 2, 9), "input_tokens": 1}])
    one_point = _query_count(client, "/api/v1/usage/timeseries", params)
    models = [llm] + [Model.objects.create(name=f"public/m-{n}") for n in range(3)]
    keys = [api_key] + [services.api_key_create(tenant=tenant, name=f"k-{n}")[0] for n in range(2)]
    calls = [
        {"api_key": key, "model": model, "occurred_at": utc(2026, 11, day, 9), "input_tokens": day}
        for day in range(3, 28, 2)
        for model in models
        for key in keys
    ]
    make_calls(tenant, calls)
    with django_assert_max_num_queries(one_point):
        body = client.get("/api/v1/usage/timeseries", params).json()
    assert sum(len(series["points"]) for series in body["series"]) >= 28
    assert any(point["cost"][0]["amount"] != "0.00" for series in body["series"] for point in series["points"])


def test_calls_newest_first_with_cursor_pages(tenant, usage):
    client = token_client(tenant)
    first = client.get("/api/v1/calls", {**RANGE, "page_size": 2}).json()
    assert [call["occurred_at"] for call in first["results"]] == ["2026-11-21T23:00:00Z", "2026-11-20T10:00:00Z"]
    second = client.get(first["next"]).json()
    assert [call["input_tokens"] for call in second["results"]] == [100]
    assert second["next"] is None


@pytest.mark.parametrize(("params", "field"), [({"page_size": "0"}, "page_size"), ({"cursor": "junk"}, "cursor")])
def test_calls_bad_paging_is_400(tenant, params, field):
    response = token_client(tenant).get("/api/v1/calls", params)
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == field


def test_api_keys_and_models_lists(tenant, api_key, usage, llm):
    client = token_client(tenant)
    keys = client.get("/api/v1/api-keys").json()["results"]
    assert [(key["public_id"], key["status"]) for key in keys] == [(api_key.public_id, "active")]
    models = client.get("/api/v1/models").json()["results"]
    assert models == [{"name": llm.name, "private": False}, {"name": usage.name, "private": False}]


def _rows(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_export_csv_rows_per_day_key_model(tenant, api_key, llm, usage):
    response = token_client(tenant).get("/api/v1/usage/export.csv", RANGE)
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    text = csv_body(response)
    assert text.splitlines()[0] == (
        "date,api_key,api_key_name,model,calls,input_tokens,output_tokens,cached_input_tokens,reasoning_tokens,"
        "cache_creation_input_tokens,cache_creation_1h_input_tokens,cost,currency,"
        "cost_input,cost_cached_read,cost_cache_write,cost_output"
    )
    rows = _rows(text)
    assert [(row["date"], row["model"], row["calls"]) for row in rows] == [
        ("2026-11-20", llm.name, "2"),
        ("2026-11-21", usage.name, "1"),
    ]
    assert (rows[0]["cached_input_tokens"], rows[0]["reasoning_tokens"], rows[1]["cached_input_tokens"]) == (
        "40",
        "",
        "",
    )


def test_export_costs_each_row_and_leaves_unpriced_ones_empty(tenant, llm, usage, priced):
    rows = _rows(csv_body(token_client(tenant).get("/api/v1/usage/export.csv", RANGE)))
    assert [(row["model"], row["cost"], row["currency"]) for row in rows] == [
        (llm.name, "0.105", "USD"),
        (usage.name, "", ""),
    ]


def test_export_accepts_csv_and_errors_as_problem(tenant):
    client = token_client(tenant)
    assert client.get("/api/v1/usage/export.csv", RANGE, headers={"Accept": "text/csv"}).status_code == 200
    response = client.get("/api/v1/usage/export.csv", {"model": "nope"}, headers={"Accept": "text/csv"})
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"


def test_tenant_export_url_matches_the_api(owner_client, tenant, usage):
    page = csv_body(owner_client.get("/t/acme/usage/export.csv", RANGE))
    api = csv_body(token_client(tenant).get("/api/v1/usage/export.csv", RANGE))
    assert page == api and len(_rows(page)) == 2


def test_tenant_export_outsider_404_and_bad_filter_400(outsider_client, owner_client, tenant):
    assert outsider_client.get("/t/acme/usage/export.csv").status_code == 404
    response = owner_client.get("/t/acme/usage/export.csv", {"start": "2026-11-10", "end": "2026-11-01"})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "end"


def test_export_keeps_names_from_running_as_formulas(tenant, llm):
    key, _ = services.api_key_create(tenant=tenant, name="=HYPERLINK(1)")
    make_calls(tenant, [{"api_key": key, "model": llm, "occurred_at": utc(2026, 11, 20)}])
    rows = _rows(csv_body(token_client(tenant).get("/api/v1/usage/export.csv", RANGE)))
    assert rows[0]["api_key_name"] == "'=HYPERLINK(1)"


def test_schema_and_docs_are_served_without_a_cdn(client, db):
    schema = client.get("/api/v1/schema", headers={"Accept": "application/json"})
    assert schema.status_code == 200
    assert set(schema.json()["paths"]) >= {"/api/v1/usage/summary", "/api/v1/calls", "/api/v1/usage/export.csv"}
    docs = client.get("/api/v1/docs").content.decode()
    assert "swagger-ui" in docs and "cdn" not in docs.lower()


def test_export_starts_before_reading_any_usage(tenant, usage, django_assert_num_queries):
    response = token_client(tenant).get("/api/v1/usage/export.csv", RANGE)
    chunks = iter(response.streaming_content)
    with django_assert_num_queries(0):
        assert next(chunks).startswith(b"date,api_key,")


OUR_PATHS = ("/api/v1/usage/", "/api/v1/calls", "/api/v1/api-keys", "/api/v1/models", "/api/v1/reports/")


def _undescribed(schema, node, where, seen):
    """Names of properties under ``node`` (following $refs) that have no description."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        if name in seen:
            return []
        seen.add(name)
        return _undescribed(schema, schema["components"]["schemas"][name], name, seen)
    missing = []
    for prop, sub in node.get("properties", {}).items():
        if "description" not in sub and "$ref" not in sub:
            missing.append(f"{where}.{prop}")
        missing += _undescribed(schema, sub, f"{where}.{prop}", seen)
    subs = [node["items"]] if "items" in node else []
    subs += node.get("allOf", []) + node.get("anyOf", []) + node.get("oneOf", [])
    for sub in subs:
        missing += _undescribed(schema, sub, where, seen)
    return missing


def test_schema_describes_every_parameter_and_response_field(client, db):
    schema = client.get("/api/v1/schema", headers={"Accept": "application/json"}).json()
    missing = []
    for path, operations in schema["paths"].items():
        if not path.startswith(OUR_PATHS):
            continue
        for operation in operations.values():
            missing += [f"{path}?{p['name']}" for p in operation["parameters"] if not p.get("description")]
            for response in operation["responses"].values():
                for content in response.get("content", {}).values():
                    missing += _undescribed(schema, content["schema"], path, set())
    assert missing == []


@pytest.mark.parametrize(
    "params",
    [{"cursor": "cD1hYmM="}, {"cursor": "cD0yMDI2LTEzLTQw"}, {"page_size": "\u00b2"}],
)
def test_forged_cursors_and_odd_digits_are_400_not_500(tenant, params):
    response = token_client(tenant).get("/api/v1/calls", params)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert next(iter(params)) in {error["field"] for error in response.json()["errors"]}


def test_long_exports_read_a_week_per_query_not_a_day(tenant, api_key, llm, django_assert_max_num_queries):
    from usage.reporting.periods import Period
    from usage.reporting.selectors import UsageFilters, usage_rows

    make_calls(
        tenant,
        [
            {"api_key": api_key, "model": llm, "occurred_at": utc(2026, 8, d, 9), "input_tokens": d}
            for d in range(1, 32)
        ],
    )
    filters = UsageFilters(Period(dt.date(2026, 8, 1), dt.date(2026, 11, 1)))  # 93 days: 1 + 14 chunks
    with django_assert_max_num_queries(50):
        rows = list(usage_rows(tenant=tenant, filters=filters))
    assert [(day.day, totals.input_tokens) for day, _key, _model, totals in rows] == [(d, d) for d in range(1, 32)]

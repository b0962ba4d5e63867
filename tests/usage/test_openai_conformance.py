"""The OpenAI-compatible endpoints against OpenAI's published spec, and what they can not answer.

- Every answer validates against the JSON Schema written from the spec's facts
  (``tests/usage/openai_schema.py``), over every bucket width, zone, group_by combination,
  filter and page, for a UTC tenant and an Asia/Kolkata (+05:30) one with calls on the same days.
- Counts that were not reported are omitted (not null, not 0); the product's extras only on request.
- Filters the product can not honour are a 400, never all usage.
- After ``purge_calls``: buckets the rollups hold answer as before; the others are a 410.
- No query string makes a 5xx (Hypothesis), year 9999 included.

Calls are stored through the ingestion service (the gateway's write path).
"""

import datetime as dt
import itertools
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts import services as account_services
from tests.usage.api_helpers import token_and_client
from tests.usage.factories import price, utc
from tests.usage.openai_schema import violations
from usage.ingestion import services
from usage.ledger import retention
from usage.models import Model

COMPLETIONS = "/api/openai/v1/organization/usage/completions"
COSTS = "/api/openai/v1/organization/costs"
# The gateway reported these calls within its ingestion window of this instant.
INGESTED_AT = utc(2026, 3, 14)
COMPLETIONS_GROUPS = ["project_id", "user_id", "api_key_id", "model", "batch", "service_tier", "api_source"]
COSTS_GROUPS = ["project_id", "user_id", "line_item", "api_key_id", "api_source"]


@pytest.fixture(autouse=True)
def _no_throttle(settings):
    """Hundreds of requests a test: the access-token throttle (600/min) is tested elsewhere."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"access_token": "1000000/min"}}


def ts(instant):
    return int(instant.timestamp())


def ingest(items, now=INGESTED_AT):
    result = services.call_records_ingest(items=items, now=now)
    assert result.rejected == 0, result.as_dict()
    return result


def call(key, request_id, at, inp, out, cached=None, reasoning=None, model="public/alpha"):
    item = {
        "request_id": request_id,
        "api_key": key.public_id,
        "model": model,
        "occurred_at": at.isoformat(),
        "input_tokens": inp,
        "output_tokens": out,
    }
    if cached is not None:
        item["cached_input_tokens"] = cached
    if reasoning is not None:
        item["reasoning_tokens"] = reasoning
    return item


@pytest.fixture
def world(tenant, other_tenant):
    """Acme (UTC) and Globex (Asia/Kolkata): the same instants, other sizes. Model alpha's calls
    report cached tokens (one of them 0), beta's never do; two keys each."""
    alpha, beta = Model.objects.create(name="public/alpha"), Model.objects.create(name="public/beta")
    price(alpha, dt.date(2026, 1, 1), "1", "2", cached="0.5")
    price(beta, dt.date(2026, 1, 1), "0.3", "0.7", currency="EUR")
    tenants = {}
    for scale, owner in ((1, tenant), (10, other_tenant)):
        keys = [account_services.api_key_create(tenant=owner, name=f"k{i}")[0] for i in range(2)]
        items = []
        for n, minutes in enumerate(range(0, 3 * 24 * 60, 97)):
            at = utc(2026, 3, 9, 22, 1) + dt.timedelta(minutes=minutes)
            if n % 2:
                items.append(
                    call(keys[n % 4 // 2], f"{owner.slug}-{n}", at, scale * (50 + n), scale * n, model=beta.name)
                )
            else:
                cached = 0 if n % 8 == 0 else scale * 7
                items.append(
                    call(keys[n % 4 // 2], f"{owner.slug}-{n}", at, scale * (50 + n), scale * n, cached, n % 3)
                )
        ingest(items)
        _token, client = token_and_client(owner)
        tenants[owner.slug] = {"tenant": owner, "keys": keys, "items": items, "client": client}
    return tenants


def pages(client, url, params, *, check=True):
    """Every page of a query, each checked against the schema (unless ``check`` is False)."""
    answers, page = [], None
    extended = params.get("x_usage_statistics") == "true"
    endpoint = "completions" if url == COMPLETIONS else "costs"
    while True:
        response = client.get(url, {**params, **({"page": page} if page else {})})
        assert response.status_code == 200, (params, response.content)
        answer = response.json()
        assert not check or violations(endpoint, answer, extended=extended) == [], params
        answers.append(answer)
        if not answer["has_more"]:
            return answers
        page = answer["next_page"]


def results(answers):
    return [result for answer in answers for bucket in answer["data"] for result in bucket["results"]]


def subsets(members):
    return [list(chosen) for size in range(len(members) + 1) for chosen in itertools.combinations(members, size)]


# Windows with calls on two pages at least, per width (limit, start, end).
WINDOWS = {
    "1d": (2, utc(2026, 3, 9, 12), utc(2026, 3, 12, 18)),
    "1h": (7, utc(2026, 3, 10, 1), utc(2026, 3, 10, 14)),
    "1m": (90, utc(2026, 3, 10, 6, 0), utc(2026, 3, 10, 8, 30)),
}


def _filters(world_of_tenant):
    key = world_of_tenant["keys"][1].public_id
    return [{}, {"api_key_ids[]": [key]}, {"models": "public/beta"}, {"api_key_ids": key, "models[]": ["public/alpha"]}]


def test_every_completions_answer_validates_against_openais_spec(world):
    """Each of the 128 group_by combinations in one (tenant, width, zone) context, in turn, and in
    every context the groupings that split (none, key, model, both) under every filter; every page."""
    contexts = list(itertools.product(world, WINDOWS, ("utc", "tenant")))
    runs = [(contexts[n % len(contexts)], group_by, n) for n, group_by in enumerate(subsets(COMPLETIONS_GROUPS))]
    splits = [[], ["api_key_id"], ["model"], ["model", "api_key_id"]]
    runs += [(context, group_by, n) for context in contexts for n, group_by in enumerate(splits)]
    checked = 0
    for (slug, width, zone), group_by, n in runs:
        limit, start, end = WINDOWS[width]
        params = {"start_time": ts(start), "end_time": ts(end), "bucket_width": width, "limit": limit}
        params |= {"x_timezone": zone, "group_by[]": group_by, **_filters(world[slug])[n % 4]}
        if n % 3 == 0:
            params["x_usage_statistics"] = "true"
        answers = pages(world[slug]["client"], COMPLETIONS, params)
        assert len(answers) >= 2
        checked += len(answers)
    assert checked >= 2 * (128 + 12 * 4)


def test_every_costs_answer_validates_against_openais_spec(world):
    contexts = list(itertools.product(world, ("utc", "tenant")))
    runs = [(contexts[n % len(contexts)], group_by, n) for n, group_by in enumerate(subsets(COSTS_GROUPS))]
    splits = [[], ["api_key_id"], ["line_item"], ["line_item", "api_key_id"]]
    runs += [(context, group_by, n) for context in contexts for n, group_by in enumerate(splits)]
    for (slug, zone), group_by, n in runs:
        key = world[slug]["keys"][0].public_id
        filters = [{}, {"api_key_ids[]": [key]}, {"line_items": "public/beta"}, {"api_key_ids": key, "line_items": "x"}]
        params = {"start_time": ts(utc(2026, 3, 8)), "end_time": ts(utc(2026, 3, 13)), "limit": 2}
        params |= {"x_timezone": zone, "group_by": group_by, **filters[n % 4]}
        if n % 2:
            params["x_usage_statistics"] = "true"
        assert len(pages(world[slug]["client"], COSTS, params)) == 3


def test_a_count_not_reported_is_omitted_and_a_reported_zero_is_kept(world):
    acme = world["acme"]
    # 2026-03-09 has two calls: alpha's reported 0 cached tokens, beta's reported none.
    params = {"start_time": ts(utc(2026, 3, 9)), "end_time": ts(utc(2026, 3, 12)), "group_by": "model", "limit": 3}
    answer = acme["client"].get(COMPLETIONS, params).json()
    alpha, beta = answer["data"][0]["results"]
    assert (alpha["model"], alpha["input_tokens"], alpha["input_cached_tokens"], alpha["input_uncached_tokens"]) == (
        "public/alpha",
        50,
        0,
        50,
    )
    assert (beta["model"], beta["input_tokens"]) == ("public/beta", 51)
    assert "input_cached_tokens" not in beta and "input_uncached_tokens" not in beta  # not null, not 0
    for result in results([answer]):
        for member in ("input_audio_tokens", "output_audio_tokens", "input_cache_write_tokens", "input_text_tokens"):
            assert member not in result  # this product has no such counts


def test_no_extension_member_unless_asked_and_every_member_hashable(world):
    client = world["globex"]["client"]
    window = {"start_time": ts(utc(2026, 3, 9)), "end_time": ts(utc(2026, 3, 12))}
    for url, group_by in ((COMPLETIONS, "api_key_id,model"), (COSTS, "api_key_id,line_item")):
        params = {**window, "group_by": group_by}
        plain = results([client.get(url, params).json()])
        assert plain and all("x_usage_statistics" not in result for result in plain)
        # openai-admin-usage-mcp-server builds sets of a result's values (unhashable type: 'dict').
        assert all(hash(tuple(v for k, v in r.items() if k != "amount")) is not None for r in plain)
        extended = results([client.get(url, {**params, "x_usage_statistics": "true"}).json()])
        assert len(extended) == len(plain) and all("x_usage_statistics" in result for result in extended)
        stripped = [{k: v for k, v in result.items() if k != "x_usage_statistics"} for result in extended]
        assert stripped == plain


def test_reasoning_and_exact_amounts_are_in_the_opt_in_extension(world):
    acme = world["acme"]
    params = {"start_time": ts(utc(2026, 3, 10)), "end_time": ts(utc(2026, 3, 11)), "x_usage_statistics": "true"}
    [bucket] = acme["client"].get(COMPLETIONS, params).json()["data"]
    [result] = bucket["results"]
    chosen = [i for i in acme["items"] if "2026-03-10" in i["occurred_at"]]
    extra = result["x_usage_statistics"]
    assert extra["reasoning_tokens"] == sum(i.get("reasoning_tokens") or 0 for i in chosen)
    assert extra["total_tokens"] == sum(i["input_tokens"] + i["output_tokens"] for i in chosen)
    [cost_bucket] = acme["client"].get(COSTS, params).json()["data"]
    amounts = {
        r["x_usage_statistics"]["currency"]: Decimal(r["x_usage_statistics"]["amount"]) for r in cost_bucket["results"]
    }
    assert set(amounts) == {"EUR", "USD"}
    assert all(
        Decimal(str(r["amount"]["value"])) == amounts[r["amount"]["currency"].upper()] for r in cost_bucket["results"]
    )


@pytest.mark.parametrize(
    ("url", "params", "param"),
    [
        (COMPLETIONS, {"project_ids[]": ["proj_abc"]}, "project_ids"),
        (COMPLETIONS, {"project_ids": "proj_unknown"}, "project_ids"),
        (COMPLETIONS, {"user_ids[]": ["user-abc"]}, "user_ids"),
        (COMPLETIONS, {"batch": "true"}, "batch"),
        (COMPLETIONS, {"batch": "false"}, "batch"),
        (COMPLETIONS, {"model": "public/beta"}, "model"),  # a typo of models: not all usage
        (COMPLETIONS, {"api_key_id": "k"}, "api_key_id"),
        (COMPLETIONS, {"line_items": "public/beta"}, "line_items"),
        (COSTS, {"project_ids[]": ["proj_abc"]}, "project_ids"),
        (COSTS, {"models": "public/beta"}, "models"),
        (COSTS, {"user_ids": "user-abc"}, "user_ids"),
    ],
)
def test_filters_the_product_can_not_honour_are_a_400_never_all_usage(world, url, params, param):
    client = world["acme"]["client"]
    window = {"start_time": ts(utc(2026, 3, 9)), "end_time": ts(utc(2026, 3, 12))}
    response = client.get(url, {**window, **params})
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert error["code"] in ("unsupported_parameter", "unknown_parameter")
    # Empty values are no filter: the openai package leaves an empty list out, a raw client may not.
    assert client.get(url, {**window, "project_ids": ""}).status_code == 200


def test_groups_the_product_has_no_values_for_keep_the_sums(world):
    client = world["acme"]["client"]
    window = {"start_time": ts(utc(2026, 3, 9)), "end_time": ts(utc(2026, 3, 12)), "limit": 3}
    total = results([client.get(COMPLETIONS, window).json()])
    grouped = results(
        [client.get(COMPLETIONS, {**window, "group_by[]": [*COMPLETIONS_GROUPS[:2], "batch", "api_source"]}).json()]
    )
    assert [(r["num_model_requests"], r["input_tokens"]) for r in grouped] == [
        (r["num_model_requests"], r["input_tokens"]) for r in total
    ]
    assert {(r["project_id"], r["user_id"], r["batch"], r["api_source"]) for r in grouped} == {
        (None, None, None, "unlabeled")
    }
    assert {r["api_source"] for r in total} == {None}


# --- purged call detail ---------------------------------------------------------------------

PURGE_NOW = utc(2026, 6, 15, 12)  # purge_calls --older-than 2 then removes calls before 2026-04-01
ZONES = {"utc": "UTC", "ktm": "Asia/Kathmandu", "cha": "Pacific/Chatham", "kol": "Asia/Kolkata", "ber": "Europe/Berlin"}


@pytest.fixture
def zoned(db):
    """Five tenants (UTC, +05:45, +13:45, +05:30, +01:00) with calls on 2026-03-30..04-02, across
    the purge horizon (2026-04-01T00:00Z), and some in June."""
    tenants = {}
    for slug, zone in ZONES.items():
        tenant = account_services.tenant_create(slug=slug, name=slug, timezone_name=zone)
        key = account_services.api_key_create(tenant=tenant, name="k")[0]
        instants = [utc(2026, 3, 30) + dt.timedelta(minutes=53 * n) for n in range(0, 80)]
        items = [call(key, f"{slug}-{n}", at, 100 + n, n, cached=n % 5) for n, at in enumerate(instants)]
        ingest(items, now=utc(2026, 4, 3))
        ingest([call(key, f"{slug}-june", utc(2026, 6, 1, 9, 7), 5, 1)], now=PURGE_NOW)
        tenants[slug] = (tenant, token_and_client(tenant)[1], items)
    return tenants


def _window(width, zone):
    start, end = (
        (utc(2026, 3, 30, 3), utc(2026, 4, 2, 3)) if width != "1m" else (utc(2026, 3, 31, 21), utc(2026, 4, 1, 1))
    )
    limit = {"1d": 31, "1h": 168, "1m": 1440}[width]
    return {"start_time": ts(start), "end_time": ts(end), "bucket_width": width, "x_timezone": zone, "limit": limit}


def _whole_local_hours(tenant, width, zone):
    """Whether the buckets of (width, zone) are whole local hours or days of ``tenant``."""
    if width == "1m":
        return False
    return zone == "tenant" or tenant.timezone in ("UTC", "Europe/Berlin")


def test_after_a_purge_rollup_buckets_answer_as_before_and_the_others_are_a_410(zoned):
    before = {}
    for slug, (_tenant, client, _items) in zoned.items():
        for width, zone in itertools.product(("1d", "1h", "1m"), ("utc", "tenant")):
            before[slug, width, zone] = pages(client, COMPLETIONS, _window(width, zone), check=False)
        before[slug, "costs"] = pages(client, COSTS, {**_window("1d", "tenant"), "limit": 7}, check=False)
    summary = retention.calls_purge(older_than_months=2, now=PURGE_NOW)
    purged = [i for _t, _c, items in zoned.values() for i in items if i["occurred_at"] < "2026-04-01"]
    assert summary.before == utc(2026, 4, 1) and summary.calls == len(purged) == 5 * 55
    for slug, (tenant, client, _items) in zoned.items():
        for width, zone in itertools.product(("1d", "1h", "1m"), ("utc", "tenant")):
            params = _window(width, zone)
            if _whole_local_hours(tenant, width, zone):
                assert pages(client, COMPLETIONS, params, check=False) == before[slug, width, zone], (slug, width, zone)
                continue
            response = client.get(COMPLETIONS, params)
            assert response.status_code == 410, (slug, width, zone, response.content[:300])
            error = response.json()["error"]
            assert (error["param"], error["code"]) == ("start_time", "usage_detail_purged")
            assert str(ts(utc(2026, 4, 1))) in error["message"]
            # From the horizon on, the ledger answers as before.
            later = pages(client, COMPLETIONS, {**params, "start_time": ts(utc(2026, 4, 1))}, check=False)
            old = [
                b
                for answer in before[slug, width, zone]
                for b in answer["data"]
                if b["start_time"] >= ts(utc(2026, 4, 1))
            ]
            assert [b for answer in later for b in answer["data"]] == old
        assert pages(client, COSTS, {**_window("1d", "tenant"), "limit": 7}, check=False) == before[slug, "costs"]
    for key, answers in before.items():
        assert [violations("costs" if key[1] == "costs" else "completions", answer) for answer in answers] == [
            [] for _ in answers
        ]


def test_purged_hours_of_a_tenant_off_the_whole_hour_come_from_the_hourly_rollups(zoned):
    _tenant, client, items = zoned["ktm"]
    retention.calls_purge(older_than_months=2, now=PURGE_NOW)
    params = {**_window("1h", "tenant"), "group_by": "model"}
    buckets = [b for answer in pages(client, COMPLETIONS, params, check=False) for b in answer["data"]]
    assert buckets[0]["start_time"] % 3600 == 15 * 60  # Kathmandu's hours start at :15 UTC
    for bucket in buckets:
        chosen = [
            i
            for i in items
            if bucket["start_time"] <= ts(dt.datetime.fromisoformat(i["occurred_at"])) < bucket["end_time"]
        ]
        got = [(r["num_model_requests"], r["input_tokens"], r["input_cached_tokens"]) for r in bucket["results"]]
        expected = [
            (len(chosen), sum(i["input_tokens"] for i in chosen), sum(i["cached_input_tokens"] for i in chosen))
        ]
        assert got == (expected if chosen else [])


# --- no 5xx -------------------------------------------------------------------------------

INTS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["253402214400", "253402300799", "253402300800", "-62135596800", "0", "1e9", " 5", "٣", ""]),
    st.text(max_size=12),
)
# Where it matters: the present, the epoch, and the last days datetime can hold (where a bucket,
# a local date or the day after them overflows).
INSTANTS = st.sampled_from([1773100800, 0, 253370764800, 253402128000])
LISTS = st.lists(st.text(max_size=10), max_size=3)
OTHERS = st.fixed_dictionaries(
    {},
    optional={
        "limit": INTS,
        "bucket_width": st.sampled_from(["1m", "1h", "1d", "1D", "1w", ""]),
        "x_timezone": st.sampled_from(["utc", "tenant", "TENANT", "Mars"]),
        "group_by[]": st.lists(st.sampled_from([*COMPLETIONS_GROUPS, "line_item", "colour", ""]), max_size=4),
        "group_by": st.text(max_size=30),
        "api_key_ids[]": LISTS,
        "models": LISTS,
        "line_items": LISTS,
        "page": st.one_of(st.text(max_size=20), st.sampled_from(["page_djE6MjUzNDAyMjE0NDAw", "page_djE6LTE="])),
        "x_usage_statistics": st.sampled_from(["true", "false", "1", "yes"]),
        "project_ids": LISTS,
        "batch": st.sampled_from(["true", "false", ""]),
    },
)


@st.composite
def queries(draw):
    """A query string: times near an instant that matters (or anything), and any other parameters."""
    base = draw(INSTANTS)
    near = st.integers(min_value=-2 * 86400, max_value=2 * 86400 - 1).map(lambda seconds: str(base + seconds))
    times = st.one_of(near, near, INTS)
    query = {"start_time": draw(times)}
    if draw(st.booleans()):
        query["end_time"] = draw(times)
    return {**query, **draw(OTHERS)}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=queries(), url=st.sampled_from([COMPLETIONS, COSTS]))
def test_no_query_string_makes_a_5xx(world, query, url):
    response = world["globex"]["client"].get(url, query)
    assert response.status_code < 500, (query, response.content[:300])
    if response.status_code == 200:
        endpoint = "completions" if url == COMPLETIONS else "costs"
        assert violations(endpoint, response.json(), extended=query.get("x_usage_statistics") in ("true", "1")) == []
    else:
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize("zone", ["utc", "tenant"])
@pytest.mark.parametrize("width", ["1d", "1h", "1m"])
def test_year_9999_is_a_400_naming_the_parameter(other_tenant, width, zone):
    _token, client = token_and_client(other_tenant)  # +05:30: its local days run past the UTC one
    for url in (COMPLETIONS, COSTS) if width == "1d" else (COMPLETIONS,):
        for params in (
            {"start_time": 253402214400},
            {"start_time": 253402214400, "end_time": 253402300799},
            {"start_time": 253370764800 - 86400, "end_time": 253402300799},
        ):
            response = client.get(url, {**params, "bucket_width": width, "x_timezone": zone})
            assert response.status_code == 400, (url, params, response.content[:300])
            assert response.json()["error"]["param"] in ("start_time", "end_time")
        last = client.get(
            url,
            {"start_time": 253370764800 - 86400, "end_time": 253370764800, "bucket_width": width, "x_timezone": zone},
        )
        assert last.status_code == 200

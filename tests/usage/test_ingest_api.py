"""POST /api/v1/ingest/calls: the gateway's batches, item by item and as a whole."""

import datetime as dt
import json
import threading

import pytest
from django.db import connections
from django.test import Client
from django.utils import timezone

from accounts import services as account_services
from usage.models import MAX_TOKENS, CallRecord, DirtyDay, Model, UsageDaily, UsageDailyModel, UsageHourly

URL = "/api/v1/ingest/calls"
NOW = dt.datetime(2025, 3, 10, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def frozen_now(monkeypatch):
    """The server's clock, pinned so window edges are exact and the sample calls stay in the window."""
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    return NOW


@pytest.fixture
def api_key(tenant):
    """A key with no creator: the shared fixture's owner costs a password hash per test."""
    key, _secret = account_services.api_key_create(tenant=tenant, name="production")
    return key


@pytest.fixture
def gateway(db):
    _token, secret = account_services.service_token_create(name="gateway")
    return Client(headers={"Authorization": f"Bearer {secret}"})


def call(key, **fields):
    item = {
        "request_id": "req-1",
        "api_key": key.public_id,
        "model": "public/deepseek-r1",
        "occurred_at": "2025-03-10T11:00:00Z",
        "input_tokens": 1200,
        "output_tokens": 340,
    }
    item.update(fields)
    return item


def post(client, calls=None, *, body=None, content_type="application/json"):
    data = body if body is not None else json.dumps({"calls": calls})
    return client.post(URL, data=data, content_type=content_type)


def assert_problem(response, status):
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


# --- whole-request errors -------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer nonsense", "Basic dXNlcjpwdw==", "Bearer svc_abcdefghijkl_wrongsecret"],
)
def test_missing_or_bad_token_is_401(db, authorization, api_key):
    client = Client(headers={"Authorization": authorization} if authorization else {})
    response = post(client, [call(api_key)])
    assert_problem(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not CallRecord.objects.exists()


def test_api_key_secret_is_no_service_token(db, api_key, tenant):
    _key, secret = account_services.api_key_create(tenant=tenant, name="caller")
    response = post(Client(headers={"Authorization": f"Bearer {secret}"}), [call(api_key)])
    assert_problem(response, 401)


def test_revoked_service_token_is_401(db, api_key):
    token, secret = account_services.service_token_create(name="old gateway")
    account_services.credential_revoke(token)
    assert_problem(post(Client(headers={"Authorization": f"Bearer {secret}"}), [call(api_key)]), 401)


def test_expired_service_token_is_401(db, api_key):
    _token, secret = account_services.service_token_create(
        name="old gateway", expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    assert_problem(post(Client(headers={"Authorization": f"Bearer {secret}"}), [call(api_key)]), 401)


def test_get_is_405(gateway):
    response = gateway.get(URL)
    assert_problem(response, 405)
    assert response["Allow"] == "POST"


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1", ""]
)
def test_wrong_content_type_is_415(gateway, api_key, content_type):
    assert_problem(post(gateway, [call(api_key)], content_type=content_type), 415)
    assert not CallRecord.objects.exists()


def test_charset_utf8_is_accepted(gateway, api_key, llm):
    response = post(gateway, [call(api_key)], content_type="application/json; charset=UTF-8")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"not json",
        b"[]",
        b'"calls"',
        b"{}",
        b'{"calls": null}',
        b'{"calls": {"0": {}}}',
        b'{"calls": [NaN]}',
        b'{"calls": [Infinity]}',
        b"\xff\xfe\x00garbage",
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=lambda body: repr(body[:24]),
)
def test_malformed_body_is_400(gateway, body):
    assert_problem(post(gateway, body=body), 400)


def test_empty_body_is_400(gateway):
    response = gateway.post(URL, data=b"", content_type="application/json", CONTENT_TYPE="application/json")
    assert_problem(response, 400)


def test_too_many_items_is_413(gateway, api_key, settings):
    settings.INGEST_MAX_ITEMS = 2
    calls = [call(api_key, request_id=f"r{i}") for i in range(3)]
    assert_problem(post(gateway, calls), 413)
    assert not CallRecord.objects.exists()


def test_exactly_the_item_limit_is_fine(gateway, api_key, llm, settings):
    settings.INGEST_MAX_ITEMS = 2
    calls = [call(api_key, request_id=f"r{i}") for i in range(2)]
    assert post(gateway, calls).json()["accepted"] == 2


def test_too_large_body_is_413(gateway, api_key, settings):
    settings.INGEST_MAX_BODY_BYTES = 100
    assert_problem(post(gateway, [call(api_key, request_id="x" * 200)]), 413)
    assert not CallRecord.objects.exists()


def test_empty_batch_is_fine(gateway):
    response = post(gateway, [])
    assert response.json() == {"accepted": 0, "duplicates": 0, "rejected": 0, "errors": []}


# --- a valid call -----------------------------------------------------------------------


def test_valid_call_is_stored_exactly(gateway, api_key, llm, frozen_now):
    item = call(api_key, occurred_at="2025-03-10T16:30:00.1234567+05:30", cached_input_tokens=0, reasoning_tokens=99)
    response = post(gateway, [item])
    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": 0, "errors": []}
    record = CallRecord.objects.get()
    assert record.tenant_id == api_key.tenant_id and record.api_key == api_key and record.model == llm
    assert record.occurred_at == dt.datetime(2025, 3, 10, 11, 0, 0, 123456, tzinfo=dt.UTC)
    assert (record.input_tokens, record.output_tokens) == (1200, 340)
    assert (record.cached_input_tokens, record.reasoning_tokens) == (0, 99)
    assert record.received_at == frozen_now


def test_unreported_optional_counts_stay_null(gateway, api_key, llm):
    post(gateway, [call(api_key, request_id="a"), call(api_key, request_id="b", reasoning_tokens=None)])
    assert list(CallRecord.objects.values_list("cached_input_tokens", "reasoning_tokens")) == [(None, None)] * 2


def test_largest_count_is_accepted(gateway, api_key, llm):
    response = post(gateway, [call(api_key, input_tokens=MAX_TOKENS, output_tokens=0)])
    assert response.json()["accepted"] == 1
    assert CallRecord.objects.get().input_tokens == MAX_TOKENS


# --- the bad-input matrix, item by item -------------------------------------------------

LONG = "x" * 256
MATRIX = [
    # (fields changed, field named, code)
    ({"request_id": None}, "request_id", "required"),
    ({"request_id": ""}, "request_id", "blank"),
    ({"request_id": LONG}, "request_id", "too_long"),
    ({"request_id": 17}, "request_id", "not_a_string"),
    ({"request_id": "a\x00b"}, "request_id", "invalid_characters"),
    ({"request_id": "line\nbreak"}, "request_id", "invalid_characters"),
    ({"api_key": None}, "api_key", "required"),
    ({"api_key": ["k"]}, "api_key", "not_a_string"),
    ({"api_key": "nosuchkey123"}, "api_key", "unknown_api_key"),
    ({"model": None}, "model", "required"),
    ({"model": ""}, "model", "blank"),
    ({"model": LONG}, "model", "too_long"),
    ({"model": {"name": "m"}}, "model", "not_a_string"),
    ({"occurred_at": None}, "occurred_at", "required"),
    ({"occurred_at": "2025-03-10T11:00:00"}, "occurred_at", "invalid_datetime"),
    ({"occurred_at": "2025-03-10"}, "occurred_at", "invalid_datetime"),
    ({"occurred_at": "20250310T110000Z"}, "occurred_at", "invalid_datetime"),
    ({"occurred_at": "2025-02-30T11:00:00Z"}, "occurred_at", "invalid_datetime"),
    ({"occurred_at": "2025-03-10T24:00:00Z"}, "occurred_at", "invalid_datetime"),
    ({"occurred_at": "2016-12-31T23:59:60Z"}, "occurred_at", "invalid_datetime"),
    ({"occurred_at": "2025-03-10T11:00:00+24:00"}, "occurred_at", "invalid_datetime"),
    ({"occurred_at": "0001-01-01T00:00:00+01:00"}, "occurred_at", "invalid_datetime"),
    ({"occurred_at": "２０２５-03-10T11:00:00Z"}, "occurred_at", "invalid_datetime"),
    ({"occurred_at": 1741604400}, "occurred_at", "invalid_datetime"),
    ({"input_tokens": None}, "input_tokens", "required"),
    ({"input_tokens": -1}, "input_tokens", "out_of_range"),
    ({"input_tokens": MAX_TOKENS + 1}, "input_tokens", "out_of_range"),
    ({"input_tokens": 1.0}, "input_tokens", "not_an_integer"),
    ({"input_tokens": 1.5}, "input_tokens", "not_an_integer"),
    ({"input_tokens": "12"}, "input_tokens", "not_an_integer"),
    ({"input_tokens": True}, "input_tokens", "not_an_integer"),
    ({"input_tokens": [1]}, "input_tokens", "not_an_integer"),
    ({"output_tokens": None}, "output_tokens", "required"),
    ({"output_tokens": -5}, "output_tokens", "out_of_range"),
    ({"output_tokens": 2**64}, "output_tokens", "out_of_range"),
    ({"cached_input_tokens": -1}, "cached_input_tokens", "out_of_range"),
    ({"cached_input_tokens": "0"}, "cached_input_tokens", "not_an_integer"),
    ({"reasoning_tokens": 0.5}, "reasoning_tokens", "not_an_integer"),
    ({"reasoning_tokens": False}, "reasoning_tokens", "not_an_integer"),
    ({"input_token": 5}, "input_token", "unknown_field"),
]


@pytest.mark.parametrize(("fields", "field", "code"), MATRIX, ids=[f"{f}-{c}" for _, f, c in MATRIX])
def test_bad_item_is_rejected_and_named(gateway, api_key, llm, fields, field, code):
    good = call(api_key, request_id="good")
    bad = call(api_key, **{"request_id": "bad", **fields})
    response = post(gateway, [good, bad])
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 0, 1)
    [error] = body["errors"]
    assert error["index"] == 1 and error["field"] == field and error["code"] == code and error["detail"]
    expected_id = bad["request_id"] if isinstance(bad["request_id"], str) and len(bad["request_id"]) <= 255 else None
    assert error["request_id"] == expected_id
    assert list(CallRecord.objects.values_list("request_id", flat=True)) == ["good"]


@pytest.mark.parametrize(
    ("literal", "code"),
    [
        ("1" * 5000, "out_of_range"),
        ("1e3", "not_an_integer"),
        ("-0", None),
        ("1000000000", None),
        ("1000000001", "out_of_range"),
        ("9007199254740991", "out_of_range"),
        ("1E400", "not_an_integer"),
    ],
    ids=["5000-digits", "1e3", "minus-zero", "10^9", "10^9+1", "2^53-1", "1E400"],
)
def test_token_count_literals(gateway, api_key, llm, literal, code):
    item = json.dumps(call(api_key)).replace('"input_tokens": 1200', f'"input_tokens": {literal}')
    body = post(gateway, body='{"calls": [' + item + "]}").json()
    assert [error["code"] for error in body["errors"]] == ([code] if code else [])


def test_lone_surrogate_is_rejected_not_a_500(gateway, api_key, llm):
    item = json.dumps(call(api_key, request_id="REPLACE")).replace("REPLACE", "bad\\ud800id")
    body = post(gateway, body='{"calls": [' + item + "]}").json()
    assert [(e["field"], e["code"]) for e in body["errors"]] == [("request_id", "invalid_characters")]


@pytest.mark.parametrize("item", [5, "call", None, [], True])
def test_item_that_is_not_an_object_is_rejected(gateway, item):
    body = post(gateway, [item]).json()
    assert body["rejected"] == 1
    assert body["errors"] == [
        {"index": 0, "request_id": None, "field": None, "code": "not_an_object", "detail": body["errors"][0]["detail"]}
    ]


def test_every_bad_field_of_an_item_is_reported(gateway, api_key):
    body = post(gateway, [call(api_key, input_tokens=-1, output_tokens="x", occurred_at="yesterday")]).json()
    assert body["rejected"] == 1
    assert sorted((e["field"], e["code"]) for e in body["errors"]) == [
        ("input_tokens", "out_of_range"),
        ("occurred_at", "invalid_datetime"),
        ("output_tokens", "not_an_integer"),
    ]


def test_errors_come_in_item_order(gateway, api_key, llm):
    calls = [
        call(api_key, request_id="0", api_key="unknownkey12"),
        call(api_key, request_id="1", model=""),
        call(api_key, request_id="2"),
    ]
    calls.append(call(api_key, request_id="2", input_tokens=1))  # a conflict, found last
    body = post(gateway, calls).json()
    assert [e["index"] for e in body["errors"]] == [0, 1, 3]


# --- keys ----------------------------------------------------------------------------------


def test_key_revoked_after_the_call_still_counts(gateway, api_key, llm, frozen_now):
    api_key.revoked_at = dt.datetime(2025, 3, 10, 11, 0, 1, tzinfo=dt.UTC)
    api_key.save()
    assert post(gateway, [call(api_key)]).json()["accepted"] == 1


@pytest.mark.parametrize("revoked_at", ["2025-03-10T11:00:00Z", "2025-03-10T10:00:00Z"])
def test_key_revoked_at_or_before_the_call_is_rejected(gateway, api_key, llm, frozen_now, revoked_at):
    api_key.revoked_at = dt.datetime.fromisoformat(revoked_at)
    api_key.save()
    body = post(gateway, [call(api_key)]).json()
    assert [(e["field"], e["code"]) for e in body["errors"]] == [("api_key", "api_key_revoked")]
    assert not CallRecord.objects.exists()


def test_key_expired_at_the_call_is_rejected_before_it_counts(gateway, api_key, llm, frozen_now):
    api_key.expires_at = dt.datetime(2025, 3, 10, 11, 0, tzinfo=dt.UTC)
    api_key.save()
    calls = [
        call(api_key, request_id="before", occurred_at="2025-03-10T10:59:59.999999Z"),
        call(api_key, request_id="at", occurred_at="2025-03-10T11:00:00Z"),
    ]
    body = post(gateway, calls).json()
    assert body["accepted"] == 1
    assert [(e["request_id"], e["code"]) for e in body["errors"]] == [("at", "api_key_expired")]


def test_calls_of_many_tenants_in_one_batch(gateway, api_key, other_api_key, llm):
    body = post(gateway, [call(api_key), call(other_api_key)]).json()
    assert body["accepted"] == 2
    assert sorted(CallRecord.objects.values_list("tenant__slug", flat=True)) == ["acme", "globex"]


def test_key_last_used_moves_to_the_newest_call(gateway, api_key, llm, frozen_now):
    post(gateway, [call(api_key, request_id="a"), call(api_key, request_id="b", occurred_at="2025-03-10T11:30:00Z")])
    api_key.refresh_from_db()
    assert api_key.last_used_at == dt.datetime(2025, 3, 10, 11, 30, tzinfo=dt.UTC)


# --- models ------------------------------------------------------------------------------


def test_unknown_model_is_accepted_and_added_unlisted(gateway, api_key):
    body = post(gateway, [call(api_key, model="vendor/brand-new")]).json()
    assert body["accepted"] == 1
    model = Model.objects.get(name="vendor/brand-new")
    assert not model.listed and model.tenant is None
    assert CallRecord.objects.get().model == model


def test_rejected_call_adds_no_model(gateway, api_key):
    post(gateway, [call(api_key, api_key="nosuchkey123", model="vendor/ghost")])
    assert not Model.objects.filter(name="vendor/ghost").exists()


def test_conflict_naming_a_new_model_adds_no_model(gateway, api_key, llm):
    post(gateway, [call(api_key)])
    body = post(gateway, [call(api_key, model="vendor/typo")]).json()
    assert [(e["field"], e["code"]) for e in body["errors"]] == [("request_id", "conflict")]
    assert not Model.objects.filter(name="vendor/typo").exists()


def test_duplicate_naming_a_new_model_in_one_batch_is_stored_once(gateway, api_key):
    body = post(gateway, [call(api_key, model="vendor/new"), call(api_key, model="vendor/new")]).json()
    assert (body["accepted"], body["duplicates"]) == (1, 1)


def test_private_model_of_another_tenant_is_rejected(gateway, api_key, other_tenant):
    Model.objects.create(name="globex/secret-ft", tenant=other_tenant)
    body = post(gateway, [call(api_key, model="globex/secret-ft")]).json()
    assert [(e["field"], e["code"]) for e in body["errors"]] == [("model", "model_not_available")]


def test_private_model_of_the_same_tenant_is_fine(gateway, api_key, tenant):
    Model.objects.create(name="acme/fine-tune", tenant=tenant)
    assert post(gateway, [call(api_key, model="acme/fine-tune")]).json()["accepted"] == 1


# --- duplicates and conflicts ------------------------------------------------------------


def test_duplicate_in_one_batch_is_stored_once(gateway, api_key, llm):
    body = post(gateway, [call(api_key), call(api_key), call(api_key, occurred_at="2025-03-10T12:00:00+01:00")]).json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 2, 0)
    assert CallRecord.objects.count() == 1


def test_conflict_in_one_batch_rejects_the_later_item(gateway, api_key, llm):
    body = post(gateway, [call(api_key), call(api_key, output_tokens=1)]).json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 0, 1)
    assert [(e["index"], e["field"], e["code"]) for e in body["errors"]] == [(1, "request_id", "conflict")]
    assert CallRecord.objects.get().output_tokens == 340


def test_duplicate_across_batches_is_counted_not_stored(gateway, api_key, llm):
    post(gateway, [call(api_key)])
    body = post(gateway, [call(api_key), call(api_key, request_id="req-2")]).json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 1, 0)
    assert CallRecord.objects.count() == 2


@pytest.mark.parametrize(
    "change",
    [
        {"input_tokens": 1201},
        {"output_tokens": 0},
        {"cached_input_tokens": 0},
        {"reasoning_tokens": 5},
        {"occurred_at": "2025-03-10T11:00:00.000001Z"},
        {"model": "public/other"},
        "other key",
    ],
    ids=str,
)
def test_conflict_across_batches_leaves_the_stored_call_unchanged(gateway, api_key, llm, tenant, change):
    post(gateway, [call(api_key)])
    before = list(CallRecord.objects.values())
    if change == "other key":
        other, _ = account_services.api_key_create(tenant=tenant, name="second")
        change = {"api_key": other.public_id}
    body = post(gateway, [call(api_key, **change)]).json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (0, 0, 1)
    assert body["errors"][0]["code"] == "conflict"
    assert list(CallRecord.objects.values()) == before


def test_same_request_id_in_two_tenants_is_two_calls(gateway, api_key, other_api_key, llm):
    post(gateway, [call(api_key)])
    assert post(gateway, [call(other_api_key)]).json()["accepted"] == 1
    assert CallRecord.objects.count() == 2


def test_later_item_matching_the_stored_call_is_a_duplicate_despite_an_earlier_conflict(gateway, api_key, llm):
    post(gateway, [call(api_key)])
    body = post(gateway, [call(api_key, input_tokens=1), call(api_key)]).json()
    assert (body["duplicates"], body["rejected"]) == (1, 1)
    assert body["errors"][0]["index"] == 0


# --- the ingestion window ----------------------------------------------------------------


def _at(instant):
    return instant.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("offset", "code"),
    [
        (-dt.timedelta(days=35), None),
        (-dt.timedelta(days=35, microseconds=1), "too_old"),
        (dt.timedelta(seconds=300), None),
        (dt.timedelta(seconds=300, microseconds=1), "in_future"),
    ],
    ids=["35-days-ago", "just-older", "5-minutes-ahead", "just-later"],
)
def test_window_edges(gateway, api_key, llm, frozen_now, offset, code):
    body = post(gateway, [call(api_key, occurred_at=_at(frozen_now + offset))]).json()
    assert [(e["field"], e["code"]) for e in body["errors"]] == ([("occurred_at", code)] if code else [])
    assert body["accepted"] == (0 if code else 1)


def test_window_comes_from_settings(gateway, api_key, llm, frozen_now, settings):
    settings.INGEST_WINDOW_PAST_DAYS = 1
    settings.INGEST_WINDOW_FUTURE_SECONDS = 0
    calls = [
        call(api_key, request_id="old", occurred_at=_at(frozen_now - dt.timedelta(days=1, seconds=1))),
        call(api_key, request_id="ahead", occurred_at=_at(frozen_now + dt.timedelta(seconds=1))),
        call(api_key, request_id="now", occurred_at=_at(frozen_now)),
    ]
    body = post(gateway, calls).json()
    assert [(e["request_id"], e["code"]) for e in body["errors"]] == [("old", "too_old"), ("ahead", "in_future")]


# --- rollup marks --------------------------------------------------------------------------


def test_accepted_calls_are_added_to_their_local_buckets_in_the_same_transaction(
    gateway, other_api_key, llm, frozen_now, django_capture_on_commit_callbacks
):
    # Globex is on Asia/Kolkata (+05:30): 20:00 UTC on the 9th is already the 10th there.
    calls = [
        call(other_api_key, request_id="a", occurred_at="2025-03-09T20:00:00Z", input_tokens=1, output_tokens=2),
        call(other_api_key, request_id="b", occurred_at="2025-03-09T18:00:00Z", input_tokens=10, output_tokens=20),
        call(other_api_key, request_id="c", occurred_at="2025-03-09T18:29:59Z", input_tokens=100, output_tokens=200),
    ]
    with django_capture_on_commit_callbacks() as callbacks:
        post(gateway, calls)
    daily = sorted(UsageDaily.objects.values_list("tenant__slug", "day", "calls", "input_tokens", "output_tokens"))
    assert daily == [("globex", dt.date(2025, 3, 9), 2, 110, 220), ("globex", dt.date(2025, 3, 10), 1, 1, 2)]
    # Local hours of +05:30 start at :30 UTC: 18:00 and 18:29:59 share the hour from 17:30.
    hourly = sorted(UsageHourly.objects.values_list("hour", "calls", "input_tokens"))
    assert hourly == [
        (dt.datetime(2025, 3, 9, 17, 30, tzinfo=dt.UTC), 2, 110),
        (dt.datetime(2025, 3, 9, 19, 30, tzinfo=dt.UTC), 1, 1),
    ]
    assert not DirtyDay.objects.exists()
    assert callbacks == []  # nothing is enqueued: a broker outage cannot touch ingestion


def test_duplicates_and_rejects_add_nothing(gateway, api_key, llm, frozen_now):
    post(gateway, [call(api_key)])
    before = list(UsageHourly.objects.values_list("calls", "input_tokens", "output_tokens"))
    body = post(gateway, [call(api_key), call(api_key, input_tokens=-1, request_id="bad")]).json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (0, 1, 1)
    assert list(UsageHourly.objects.values_list("calls", "input_tokens", "output_tokens")) == before
    assert list(UsageDailyModel.objects.values_list("calls", "revision")) == [(1, 1)]
    assert not DirtyDay.objects.exists()


def test_service_token_records_its_last_use(db, api_key, llm):
    token, secret = account_services.service_token_create(name="gateway")
    post(Client(headers={"Authorization": f"Bearer {secret}"}), [])
    token.refresh_from_db()
    assert token.last_used_at is not None


# --- concurrency ---------------------------------------------------------------------------


def _post_concurrently(secret, batches):
    """Each batch from its own thread (and database connection), all released at once."""
    barrier = threading.Barrier(len(batches))
    results = [None] * len(batches)

    def worker(position):
        client = Client(headers={"Authorization": f"Bearer {secret}"})
        try:
            barrier.wait()
            response = post(client, batches[position])
            results[position] = (response.status_code, response.json())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_posts_of_the_same_batch_store_each_call_once(tenant):
    key, _ = account_services.api_key_create(tenant=tenant, name="k")
    _token, secret = account_services.service_token_create(name="gateway")
    now = timezone.now()
    batch = [
        call(key, request_id=f"r{i}", occurred_at=_at(now - dt.timedelta(minutes=i)), model="public/new")
        for i in range(200)
    ]
    results = _post_concurrently(secret, [batch] * 4)
    assert all(status == 200 for status, _ in results)
    assert sum(body["accepted"] for _, body in results) == 200
    assert sum(body["duplicates"] for _, body in results) == 600
    assert all(body["rejected"] == 0 for _, body in results)
    assert CallRecord.objects.count() == 200
    assert Model.objects.filter(name="public/new").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_posts_of_different_batches_all_land(tenant):
    key, _ = account_services.api_key_create(tenant=tenant, name="k")
    _token, secret = account_services.service_token_create(name="gateway")
    now = _at(timezone.now())
    batches = [[call(key, request_id=f"b{b}-{i}", occurred_at=now) for i in range(100)] for b in range(6)]
    results = _post_concurrently(secret, batches)
    assert [status for status, _ in results] == [200] * 6
    assert CallRecord.objects.count() == 600

"""What a call carries besides tokens (issue 27): duration, time to first token, status, error type,
HTTP status. Each intake path maps them; validation names each bad field; not reported stays null."""

import datetime as dt
import json

import pytest
from django.test import Client
from django.utils import timezone
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from accounts import services as account_services
from tests.usage.ledger_helpers import call_records_import
from tests.usage.test_otlp_api import Recorder, _as_otlp_json
from usage.ingestion import files as call_files
from usage.ingestion.errors import error_type_of
from usage.ingestion.services import call_records_ingest
from usage.ingestion.validation import MAX_DURATION_MS, validate_call
from usage.models import CallRecord, UsageHourly

NOW = dt.datetime(2025, 3, 10, 12, 0, tzinfo=dt.UTC)
PERFORMANCE = ("duration_ms", "time_to_first_token_ms", "status", "error_type", "http_status")


@pytest.fixture(autouse=True)
def frozen_now(monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: NOW)


@pytest.fixture
def api_key(tenant):
    return account_services.api_key_create(tenant=tenant, name="production")[0]


@pytest.fixture
def gateway(db):
    return Client(headers={"Authorization": f"Bearer {account_services.service_token_create(name='gw')[1]}"})


def item(key, request_id="req-1", **fields):
    return {
        "request_id": request_id,
        "api_key": key.public_id,
        "model": "public/deepseek-r1",
        "occurred_at": "2025-03-10T11:00:00Z",
        "input_tokens": 1200,
        "output_tokens": 340,
        **fields,
    }


def stored(request_id="req-1"):
    return CallRecord.objects.values_list(*PERFORMANCE).get(request_id=request_id)


# --- validation ---------------------------------------------------------------------------------


def test_fields_are_stored_and_unreported_ones_stay_null(gateway, api_key):
    calls = [
        item(api_key, "a", duration_ms=1800, time_to_first_token_ms=0, status="ok", http_status=200),
        item(api_key, "b"),
        item(api_key, "c", duration_ms=0, status="error", error_type="rate_limited", http_status=429),
    ]
    body = gateway.post("/api/v1/ingest/calls", {"calls": calls}, content_type="application/json").json()
    assert body["accepted"] == 3
    assert stored("a") == (1800, 0, "ok", None, 200)
    assert stored("b") == (None, None, None, None, None)
    assert stored("c") == (0, None, "error", "rate_limited", 429)


def test_error_type_alone_implies_status_error(api_key):
    call, errors = validate_call(item(api_key, error_type="timeout"))
    assert errors == () and (call.status, call.error_type) == ("error", "timeout")


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"duration_ms": 1.5}, "duration_ms", "not_an_integer"),
        ({"duration_ms": "100"}, "duration_ms", "not_an_integer"),
        ({"duration_ms": True}, "duration_ms", "not_an_integer"),
        ({"duration_ms": -1}, "duration_ms", "out_of_range"),
        ({"duration_ms": MAX_DURATION_MS + 1}, "duration_ms", "out_of_range"),
        ({"time_to_first_token_ms": -5}, "time_to_first_token_ms", "out_of_range"),
        ({"duration_ms": 100, "time_to_first_token_ms": 101}, "time_to_first_token_ms", "exceeds_duration"),
        ({"status": "failed"}, "status", "invalid_choice"),
        ({"status": "OK"}, "status", "invalid_choice"),
        ({"status": "error", "error_type": "boom"}, "error_type", "invalid_choice"),
        ({"status": "ok", "error_type": "timeout"}, "error_type", "requires_error"),
        ({"http_status": 99}, "http_status", "out_of_range"),
        ({"http_status": 600}, "http_status", "out_of_range"),
        ({"http_status": "429"}, "http_status", "not_an_integer"),
    ],
)
def test_bad_values_are_named(api_key, fields, field, code):
    call, errors = validate_call(item(api_key, **fields))
    assert call is None
    assert [(error["field"], error["code"]) for error in errors] == [(field, code)]


def test_bad_item_is_rejected_by_the_api_and_changes_nothing(gateway, api_key):
    calls = [item(api_key, "ok"), item(api_key, "bad", duration_ms=-3)]
    body = gateway.post("/api/v1/ingest/calls", {"calls": calls}, content_type="application/json").json()
    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert body["errors"][0] | {"detail": ""} == {
        "index": 1,
        "request_id": "bad",
        "field": "duration_ms",
        "code": "out_of_range",
        "detail": "",
    }
    assert not CallRecord.objects.filter(request_id="bad").exists()


# --- duplicates and conflicts ---------------------------------------------------------------------


def test_resent_call_with_other_performance_is_a_conflict_and_same_is_a_duplicate(api_key):
    first = item(api_key, duration_ms=900, status="ok")
    assert call_records_ingest(items=[first]).accepted == 1
    assert call_records_ingest(items=[dict(first)]).duplicates == 1
    for changed in ({"duration_ms": 901}, {"status": "error"}, {"http_status": 200}, {"duration_ms": None}):
        result = call_records_ingest(items=[{**first, **changed}])
        assert (result.accepted, result.rejected, result.errors[0]["code"]) == (0, 1, "conflict"), changed
    assert stored() == (900, None, "ok", None, None)


def test_import_path_judges_performance_conflicts_too(api_key):
    first = item(api_key, duration_ms=900, status="ok")
    assert call_records_ingest(items=[first]).accepted == 1
    calls = [(1, validate_call({**first, "status": "error"})[0]), (2, validate_call(first)[0])]
    result = call_records_import(calls=calls)
    assert (result.accepted, result.duplicates, result.rejected) == (0, 1, 1)


# --- a failed call is a call ----------------------------------------------------------------------


def test_failed_call_counts_in_calls_and_tokens(api_key, tenant, other_tenant):
    other_key = account_services.api_key_create(tenant=other_tenant, name="other")[0]
    result = call_records_ingest(
        items=[
            item(api_key, "ok"),
            item(api_key, "failed", status="error", error_type="server_error", input_tokens=50, output_tokens=0),
            item(other_key, "theirs", status="error"),
        ]
    )
    assert result.accepted == 3
    hourly = UsageHourly.objects.get(tenant=tenant)
    assert (hourly.calls, hourly.input_tokens, hourly.output_tokens) == (2, 1250, 340)
    assert UsageHourly.objects.get(tenant=other_tenant).calls == 1


# --- files ------------------------------------------------------------------------------------------


def test_jsonl_and_csv_files_carry_the_fields(tmp_path, api_key, tenant):
    jsonl = tmp_path / "calls.jsonl"
    jsonl.write_text(json.dumps(item(api_key, "j", duration_ms=1234, status="error", error_type="timeout")) + "\n")
    csv_file = tmp_path / "calls.csv"
    header = "request_id,api_key,model,occurred_at,input_tokens,output_tokens,duration_ms,time_to_first_token_ms,"
    csv_file.write_text(
        header + "status,error_type,http_status\n"
        f"c,{api_key.public_id},public/deepseek-r1,2025-03-10T11:00:00Z,10,5,700,150,ok,,200\n"
        f"d,{api_key.public_id},public/deepseek-r1,2025-03-10T11:00:00Z,10,5,,,,,\n"
    )
    for path, reader in ((jsonl, call_files.read_jsonl), (csv_file, call_files.read_csv)):
        with open(path) as source:
            calls = [(entry.line, validate_call(entry.item)[0]) for entry in reader(source)]
        assert call_records_import(calls=calls, tenant=tenant).accepted == len(calls)
    assert stored("j") == (1234, None, "error", "timeout", None)
    assert stored("c") == (700, 150, "ok", None, 200)
    assert stored("d") == (None, None, None, None, None)


# --- OTLP ---------------------------------------------------------------------------------------------


def otlp_spans(api_key):
    recorder = Recorder()
    provider = TracerProvider(resource=Resource.create({"usage_statistics.api_key": api_key.public_id}))
    provider.add_span_processor(SimpleSpanProcessor(recorder))
    tracer = provider.get_tracer("gateway")
    start = int(NOW.timestamp() * 1e9) - 60 * 10**9
    usage = {"gen_ai.request.model": "public/alpha", "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 4}
    span = tracer.start_span("chat ok", start_time=start, attributes={**usage, "gen_ai.response.id": "s-ok"})
    span.set_attribute("gen_ai.response.time_to_first_chunk", 0.25)
    span.end(end_time=start + 1_500_000_000)
    failed = tracer.start_span("chat failed", start_time=start, attributes={**usage, "gen_ai.response.id": "s-err"})
    failed.set_attributes({"error.type": "RateLimitError", "http.response.status_code": 429})
    failed.set_status(Status(StatusCode.ERROR, "slow down"))
    failed.end(end_time=start + 80_000_000)
    vercel = tracer.start_span("ai.streamText", start_time=start, attributes={**usage, "gen_ai.response.id": "s-v"})
    vercel.set_attributes({"ai.response.msToFirstChunk": 420.4, "error.type": "504"})
    vercel.set_status(Status(StatusCode.ERROR))
    vercel.end(end_time=start + 3_000_000_000)
    return recorder.spans


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_otlp_spans_carry_duration_ttft_status_and_error(db, api_key, encoding):
    message = encode_spans(otlp_spans(api_key))
    secret = account_services.service_token_create(name="collector")[1]
    client = Client(headers={"Authorization": f"Bearer {secret}"})
    if encoding == "protobuf":
        body, media = message.SerializeToString(), "application/x-protobuf"
    else:
        body, media = json.dumps(_as_otlp_json(otlp_spans(api_key))), "application/json"
    response = client.post("/api/v1/otlp/v1/traces", body, content_type=media)
    assert response.status_code == 200, response.content
    assert stored("s-ok") == (1500, 250, "ok", None, None)
    assert stored("s-err") == (80, None, "error", "rate_limited", 429)
    assert stored("s-v") == (3000, 420, "error", "timeout", None)


def test_otlp_json_status_as_its_number(db, api_key):
    """The OTLP/JSON spec writes enums as numbers (protobuf's own JSON writes their names)."""
    message = _as_otlp_json(otlp_spans(api_key))
    for scope in message["resourceSpans"][0]["scopeSpans"]:
        for span in scope["spans"]:
            if span.get("status", {}).get("code") in (2, "STATUS_CODE_ERROR"):
                span["status"]["code"] = 2
    secret = account_services.service_token_create(name="collector")[1]
    client = Client(headers={"Authorization": f"Bearer {secret}"})
    client.post("/api/v1/otlp/v1/traces", json.dumps(message), content_type="application/json")
    assert stored("s-err")[2:4] == ("error", "rate_limited")


# --- error classes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "http_status", "expected"),
    [
        ("RateLimitError", None, "rate_limited"),
        ("Timeout", None, "timeout"),
        ("APITimeoutError", None, "timeout"),
        ("ContentPolicyViolationError", None, "content_filter"),
        ("InternalServerError", None, "server_error"),
        ("ServiceUnavailableError", 503, "server_error"),
        ("BadRequestError", 400, "client_error"),
        ("ContextWindowExceededError", None, "client_error"),
        ("asyncio.CancelledError", None, "cancelled"),
        ("APIError", 502, "server_error"),
        ("SomethingNew", 429, "rate_limited"),
        ("429", None, "rate_limited"),
        ("_OTHER", None, "other"),
        (None, None, "other"),
    ],
)
def test_error_types_from_names_and_statuses(name, http_status, expected):
    assert error_type_of(name, http_status) == expected


# --- the calls API --------------------------------------------------------------------------------


def test_calls_api_shows_the_fields(tenant, other_tenant, api_key):
    from tests.usage.api_helpers import token_client

    other_key = account_services.api_key_create(tenant=other_tenant, name="other")[0]
    call_records_ingest(
        items=[
            item(api_key, "shown", duration_ms=2100, time_to_first_token_ms=300, status="error", error_type="timeout"),
            item(api_key, "bare", occurred_at="2025-03-10T10:00:00Z"),
            item(other_key, "theirs", duration_ms=5),
        ]
    )
    body = token_client(tenant).get("/api/v1/calls", {"start": "2025-03-10", "end": "2025-03-10"}).json()
    got = [(row["request_id"], *(row[name] for name in PERFORMANCE)) for row in body["results"]]
    assert got == [("shown", 2100, 300, "error", "timeout", None), ("bare", None, None, None, None, None)]

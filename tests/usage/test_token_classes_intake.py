"""Token classes (issue 26): cache writes and their one-hour part reach the ledger and every
rollup from each intake path; a report whose reads plus writes exceed its input is refused."""

import datetime as dt
import json

import pytest
from django.test import Client
from litellm.types.utils import CacheCreationTokenDetails, PromptTokensDetailsWrapper, Usage
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from accounts import services as account_services
from tests.usage.test_litellm_logs import mock, recorded_payloads
from tests.usage.test_otlp_api import Recorder, genai
from usage.integrations.litellm_callback import UsageStatisticsLogger
from usage.models import CallRecord, UsageDaily, UsageDailyModel, UsageHourly

# Within the ingestion window of the real clock: the OTLP and LiteLLM tests send real spans and payloads.
AN_HOUR_AGO = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).replace(microsecond=0)
CLASSES = ("input_tokens", "cached_input_tokens", "cache_creation_input_tokens", "cache_creation_1h_input_tokens")


@pytest.fixture
def api_key(tenant):
    return account_services.api_key_create(tenant=tenant, name="gateway")[0]


@pytest.fixture
def gateway(db):
    return Client(headers={"Authorization": f"Bearer {account_services.service_token_create(name='gw')[1]}"})


def item(key, request_id="r1", **fields):
    return {
        "request_id": request_id,
        "api_key": key.public_id,
        "model": "public/alpha",
        "occurred_at": AN_HOUR_AGO.isoformat(),
        "input_tokens": 1000,
        "output_tokens": 50,
        **fields,
    }


def stored(request_id):
    return tuple(CallRecord.objects.filter(request_id=request_id).values_list(*CLASSES).get())


def rollup_sums():
    columns = ("calls", *CLASSES)
    return [sorted(table.objects.values_list(*columns)) for table in (UsageHourly, UsageDaily, UsageDailyModel)]


def test_json_api_stores_the_classes_and_keeps_null_apart_from_zero(gateway, api_key):
    calls = [
        item(api_key, "full", cached_input_tokens=300, cache_creation_input_tokens=500,
             cache_creation_1h_input_tokens=200),
        item(api_key, "zero", cache_creation_input_tokens=0, cache_creation_1h_input_tokens=0),
        item(api_key, "none"),
        item(api_key, "all-writes", cache_creation_input_tokens=1000),
    ]  # fmt: skip
    response = gateway.post("/api/v1/ingest/calls", json.dumps({"calls": calls}), content_type="application/json")
    assert response.json()["accepted"] == 4, response.json()
    assert stored("full") == (1000, 300, 500, 200)
    assert stored("zero") == (1000, None, 0, 0)
    assert stored("none") == (1000, None, None, None)
    assert stored("all-writes") == (1000, None, 1000, None)
    for table in rollup_sums():
        assert table == [(4, 4000, 300, 1500, 200)]


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"cached_input_tokens": 600, "cache_creation_input_tokens": 401}, "cache_creation_input_tokens",
         "exceeds_input"),
        ({"cache_creation_input_tokens": 1001}, "cache_creation_input_tokens", "exceeds_input"),
        ({"cache_creation_input_tokens": 10, "cache_creation_1h_input_tokens": 11}, "cache_creation_1h_input_tokens",
         "exceeds_cache_creation"),
        ({"cache_creation_1h_input_tokens": 1}, "cache_creation_1h_input_tokens", "exceeds_cache_creation"),
        ({"cache_creation_input_tokens": -1}, "cache_creation_input_tokens", "out_of_range"),
        ({"cache_creation_1h_input_tokens": 1.0, "cache_creation_input_tokens": 5}, "cache_creation_1h_input_tokens",
         "not_an_integer"),
    ],
)  # fmt: skip
def test_refusals_name_the_field_and_change_nothing(gateway, api_key, fields, field, code):
    before = gateway.post(
        "/api/v1/ingest/calls", json.dumps({"calls": [item(api_key, "ok")]}), content_type="application/json"
    )
    assert before.json()["accepted"] == 1
    sums = rollup_sums()
    body = json.dumps({"calls": [item(api_key, "bad", **fields)]})
    answer = gateway.post("/api/v1/ingest/calls", body, content_type="application/json").json()
    assert answer["accepted"] == 0 and answer["rejected"] == 1
    assert [(e["field"], e["code"]) for e in answer["errors"]] == [(field, code)]
    assert not CallRecord.objects.filter(request_id="bad").exists()
    assert rollup_sums() == sums


def test_import_files_carry_the_classes(tmp_path, api_key):
    from django.core.management import call_command

    jsonl = tmp_path / "calls.jsonl"
    jsonl.write_text(
        json.dumps(item(api_key, "j1", cached_input_tokens=100, cache_creation_input_tokens=700,
                        cache_creation_1h_input_tokens=300)) + "\n"
        + json.dumps(item(api_key, "j2", cached_input_tokens=400, cache_creation_input_tokens=601)) + "\n"
    )  # fmt: skip
    csv = tmp_path / "calls.csv"
    csv.write_text(
        "request_id,api_key,model,occurred_at,input_tokens,output_tokens,cached_input_tokens,"
        "cache_creation_input_tokens,cache_creation_1h_input_tokens\n"
        f"c1,{api_key.public_id},public/alpha,2025-03-01T10:00:00Z,900,5,,900,899\n"
        f"c2,{api_key.public_id},public/alpha,2025-03-01T10:00:00Z,900,5,,,\n"
        f"c3,{api_key.public_id},public/alpha,2025-03-01T10:00:00Z,900,5,,3,4\n"
    )
    rejects = tmp_path / "rejects.jsonl"
    for path in (jsonl, csv):
        call_command("import_calls", str(path), "--no-progress", "--json", "--rejects", str(rejects))
    assert stored("j1") == (1000, 100, 700, 300)
    assert stored("c1") == (900, None, 900, 899)
    assert stored("c2") == (900, None, None, None)
    assert not CallRecord.objects.filter(request_id__in=["j2", "c3"]).exists()
    codes = [
        [(e["field"], e["code"]) for e in line["errors"]] for line in map(json.loads, rejects.read_text().splitlines())
    ]
    assert codes == [[("cache_creation_1h_input_tokens", "exceeds_cache_creation")]]  # the last run's file


def test_otlp_spans_carry_the_classes_as_the_conventions_count_them(gateway, api_key):
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    recorder = Recorder()
    provider = TracerProvider(resource=Resource.create({"usage_statistics.api_key": api_key.public_id}))
    provider.add_span_processor(SimpleSpanProcessor(recorder))
    tracer = provider.get_tracer("gateway")
    counts = {"gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 20}
    genai(
        tracer,
        **counts,
        **{
            "gen_ai.response.id": "o1",
            "gen_ai.usage.cache_read.input_tokens": 100,
            "gen_ai.usage.cache_creation.input_tokens": 800,
            "usage_statistics.cache_creation_1h.input_tokens": 500,
        },
    )
    genai(tracer, **counts, **{"gen_ai.response.id": "o2", "gen_ai.usage.cache_creation_input_tokens": 10})
    genai(tracer, **counts, **{"gen_ai.response.id": "o3", "llm.token_count.prompt_details.cache_write": 7})
    genai(tracer, **counts, **{"gen_ai.response.id": "o4", "gen_ai.usage.cache_read.input_tokens": 500,
          "gen_ai.usage.cache_creation.input_tokens": 501})  # fmt: skip
    body = encode_spans(recorder.spans).SerializeToString()
    response = gateway.post("/api/v1/otlp/v1/traces", data=body, content_type="application/x-protobuf")
    assert response.status_code == 200
    # The input is stored as sent: the conventions count reads and writes inside it.
    assert stored("o1") == (1000, 100, 800, 500)
    assert stored("o2") == (1000, None, 10, None)
    assert stored("o3") == (1000, None, 7, None)
    assert not CallRecord.objects.filter(request_id="o4").exists()  # 500 + 501 > 1000: refused


def _cached_usage(prompt, cached, writes, writes_1h):
    details = PromptTokensDetailsWrapper(
        cached_tokens=cached,
        cache_creation_tokens=writes,
        cache_creation_token_details=CacheCreationTokenDetails(
            ephemeral_5m_input_tokens=writes - writes_1h, ephemeral_1h_input_tokens=writes_1h
        ),
    )
    return Usage(prompt_tokens=prompt, completion_tokens=9, total_tokens=prompt + 9, prompt_tokens_details=details)


def test_litellm_logs_carry_the_classes_and_add_up_an_anthropic_report(gateway, api_key):
    response = mock("chatcmpl-c", 1000, 9)
    response.usage = _cached_usage(1000, 200, 600, 250)
    payloads = recorded_payloads(api_key.public_id, [response])
    anthropic = {
        **payloads[0],
        "id": "msg-anthropic",
        "prompt_tokens": None,
        "metadata": {
            **payloads[0]["metadata"],
            "usage_object": {
                "input_tokens": 40, "output_tokens": 9, "cache_read_input_tokens": 300,
                "cache_creation_input_tokens": 500, "cache_creation": {"ephemeral_1h_input_tokens": 120},
            },
        },
    }  # fmt: skip
    answer = gateway.post("/api/v1/litellm/logs", json.dumps([payloads[0], anthropic]), content_type="application/json")
    assert answer.json()["accepted"] == 2, answer.json()
    assert stored("chatcmpl-c") == (1000, 200, 600, 250)
    # Anthropic's input_tokens leave the cache out: 40 + 300 read + 500 written.
    assert stored("msg-anthropic") == (840, 300, 500, 120)


def test_the_litellm_callback_forwards_the_classes(gateway, api_key):
    response = mock("chatcmpl-cb", 1000, 9)
    response.usage = _cached_usage(1000, 0, 1000, 1000)
    payload = recorded_payloads(api_key.public_id, [response])[0]
    logger = UsageStatisticsLogger(url="http://product.invalid", service_token="svc_t", flush_seconds=3600)
    try:
        sent = logger.trimmed(payload)  # what the callback posts: prompt and answer cut, usage kept
    finally:
        logger.close(timeout=0)
    assert (
        gateway.post("/api/v1/litellm/logs", json.dumps([sent]), content_type="application/json").json()["accepted"]
        == 1
    )
    assert stored("chatcmpl-cb") == (1000, 0, 1000, 1000)

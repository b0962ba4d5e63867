"""Issue 24 items 2, 3, 4 and 6: what an OTLP span says is read, whoever instrumented the call.

Input-only spans (embeddings), the deprecated GenAI names, OpenInference and Traceloop
(OpenLLMetry) attributes, model aliases in the catalog, a log line for every span answered 200
but not stored, and OTLP/JSON shapes that used to answer 500.
"""

import datetime as dt
import json
import logging

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from accounts import services as account_services
from tests.usage.test_otlp_api import Recorder, _as_otlp_json, answer, post_protobuf
from usage.api import dropped
from usage.ingestion.services import call_records_ingest
from usage.models import CallRecord, Model, ModelAlias

URL = "/api/v1/otlp/v1/traces"


@pytest.fixture
def api_key(tenant):
    return account_services.api_key_create(tenant=tenant, name="gateway-key")[0]


@pytest.fixture
def gateway(db):
    secret = account_services.service_token_create(name="collector")[1]
    return Client(headers={"Authorization": f"Bearer {secret}"})


def spans_with(api_key, *attribute_sets):
    """One span per attribute set, the key as a resource attribute, ``gen_ai.response.id`` = ``call-<n>``."""
    recorder = Recorder()
    provider = TracerProvider(resource=Resource.create({"usage_statistics.api_key": api_key.public_id}))
    provider.add_span_processor(SimpleSpanProcessor(recorder))
    tracer = provider.get_tracer("instrumentation")
    for n, attributes in enumerate(attribute_sets):
        with tracer.start_as_current_span(f"span {n}") as span:
            span.set_attributes({"gen_ai.response.id": f"call-{n}", **attributes})
    return recorder.spans


def stored():
    rows = CallRecord.objects.select_related("model").order_by("request_id")
    return [
        (r.request_id, r.model.name, r.input_tokens, r.output_tokens, r.cached_input_tokens, r.reasoning_tokens)
        for r in rows
    ]


# --- item 2: embeddings ----------------------------------------------------------------------


def test_an_embeddings_span_with_input_only_is_stored_with_output_zero(gateway, api_key):
    spans = spans_with(
        api_key,
        {
            "gen_ai.operation.name": "embeddings",
            "gen_ai.request.model": "public/embed-3",
            "gen_ai.usage.input_tokens": 42,
        },
    )
    response = post_protobuf(gateway, spans)
    assert response.status_code == 200
    assert answer(response).partial_success.rejected_spans == 0
    assert stored() == [("call-0", "public/embed-3", 42, 0, None, None)]


def test_a_span_with_output_only_is_still_rejected_naming_input_tokens(gateway, api_key):
    spans = spans_with(api_key, {"gen_ai.request.model": "public/x", "gen_ai.usage.output_tokens": 5})
    partial = answer(post_protobuf(gateway, spans)).partial_success
    assert partial.rejected_spans == 1 and "input_tokens: required" in partial.error_message
    assert CallRecord.objects.count() == 0


# --- item 3: dialects ------------------------------------------------------------------------


def test_the_deprecated_prompt_and_completion_names_are_read(gateway, api_key):
    spans = spans_with(
        api_key,
        {"gen_ai.request.model": "public/x", "gen_ai.usage.prompt_tokens": 120, "gen_ai.usage.completion_tokens": 30},
    )
    post_protobuf(gateway, spans)
    assert stored() == [("call-0", "public/x", 120, 30, None, None)]


def test_openinference_spans_are_read(gateway, api_key):
    spans = spans_with(
        api_key,
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "public/oi-model",
            "llm.token_count.prompt": 200,
            "llm.token_count.completion": 50,
            "llm.token_count.total": 250,
            "llm.token_count.prompt_details.cache_read": 80,
            "llm.token_count.completion_details.reasoning": 20,
        },
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "public/oi-model",
            "llm.token_count.prompt": 10,
            "llm.token_count.total": 14,
        },
    )
    response = post_protobuf(gateway, spans)
    assert answer(response).partial_success.rejected_spans == 0
    assert stored() == [
        ("call-0", "public/oi-model", 200, 50, 80, 20),
        ("call-1", "public/oi-model", 10, 4, None, None),  # output: the total minus the prompt
    ]


def test_traceloop_cache_and_reasoning_attributes_are_read(gateway, api_key):
    spans = spans_with(
        api_key,
        {
            "gen_ai.system": "Anthropic",
            "gen_ai.request.model": "public/claude",
            # OpenLLMetry counts cache reads and writes inside the input, as the ledger does.
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 300,
            "gen_ai.usage.cache_read_input_tokens": 600,
            "gen_ai.usage.cache_creation_input_tokens": 250,
            "gen_ai.usage.reasoning_tokens": 120,
            "llm.usage.total_tokens": 1300,
        },
        {
            "gen_ai.request.model": "public/claude",
            "gen_ai.usage.prompt_tokens": 10,
            "gen_ai.usage.completion_tokens": 9,
            "llm.usage.reasoning_tokens": 7,
        },
    )
    post_protobuf(gateway, spans)
    assert stored() == [
        ("call-0", "public/claude", 1000, 300, 600, 120),
        ("call-1", "public/claude", 10, 9, None, 7),
    ]


def test_the_current_names_win_over_the_older_ones(gateway, api_key):
    spans = spans_with(
        api_key,
        {
            "gen_ai.request.model": "public/x",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.prompt_tokens": 999,
            "gen_ai.usage.output_tokens": 10,
            "gen_ai.usage.completion_tokens": 999,
        },
    )
    post_protobuf(gateway, spans)
    assert stored() == [("call-0", "public/x", 100, 10, None, None)]


# --- item 3: model aliases --------------------------------------------------------------------


@pytest.fixture
def deepseek(db):
    model = Model.objects.create(name="public/deepseek-r1")
    ModelAlias.objects.create(name="together_ai/deepseek-ai/DeepSeek-R1", model=model)
    return model


def test_a_response_model_unknown_to_the_catalog_falls_back_to_the_requested_catalog_model(gateway, api_key, deepseek):
    spans = spans_with(
        api_key,
        {
            "gen_ai.request.model": "public/deepseek-r1",
            "gen_ai.response.model": "deepseek-r1",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 2,
        },
    )
    post_protobuf(gateway, spans)
    assert stored() == [("call-0", "public/deepseek-r1", 10, 2, None, None)]
    assert not Model.objects.filter(name="deepseek-r1").exists()  # no new unpriced model


def test_an_alias_maps_a_provider_prefixed_name_onto_the_catalog_model(gateway, api_key, deepseek):
    spans = spans_with(
        api_key,
        {
            "gen_ai.request.model": "deepseek-r1",
            "gen_ai.response.model": "together_ai/deepseek-ai/DeepSeek-R1",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 2,
        },
    )
    post_protobuf(gateway, spans)
    assert stored() == [("call-0", "public/deepseek-r1", 10, 2, None, None)]
    assert Model.objects.count() == 1


def test_a_name_neither_in_the_catalog_nor_an_alias_still_becomes_an_unlisted_model(gateway, api_key, deepseek):
    spans = spans_with(
        api_key,
        {
            "gen_ai.request.model": "brand-new",
            "gen_ai.response.model": "brand-new-2026",
            "gen_ai.usage.input_tokens": 1,
            "gen_ai.usage.output_tokens": 1,
        },
    )
    post_protobuf(gateway, spans)
    assert stored()[0][1] == "brand-new-2026"
    assert Model.objects.get(name="brand-new-2026").listed is False


def test_ingest_calls_resolves_aliases_in_the_ingestion_service(api_key, deepseek):
    result = call_records_ingest(
        items=[
            {
                "request_id": "alias-1",
                "api_key": api_key.public_id,
                "model": "together_ai/deepseek-ai/DeepSeek-R1",
                "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
                "input_tokens": 5,
                "output_tokens": 1,
            }
        ]
    )
    assert result.accepted == 1
    assert stored() == [("alias-1", "public/deepseek-r1", 5, 1, None, None)]


def test_an_alias_may_not_name_another_model(deepseek):
    Model.objects.create(name="public/other")
    with pytest.raises(ValidationError):
        ModelAlias(name="public/other", model=deepseek).full_clean()
    with pytest.raises(ValidationError):
        Model(name="together_ai/deepseek-ai/DeepSeek-R1").full_clean()


def test_an_alias_of_a_private_model_is_not_available_to_another_tenant(gateway, api_key, other_tenant):
    private = Model.objects.create(name="acme-other/tuned", tenant=other_tenant)
    ModelAlias.objects.create(name="tuned", model=private)
    spans = spans_with(
        api_key, {"gen_ai.request.model": "tuned", "gen_ai.usage.input_tokens": 1, "gen_ai.usage.output_tokens": 1}
    )
    partial = answer(post_protobuf(gateway, spans)).partial_success
    assert partial.rejected_spans == 1 and "model: model_not_available" in partial.error_message
    assert CallRecord.objects.count() == 0


# --- item 4 (OTLP): every span answered 200 but not stored is logged, rate-limited -------------


@pytest.fixture
def fresh_log_state(monkeypatch):
    monkeypatch.setattr(dropped, "_last_logged", {})
    monkeypatch.setattr(dropped, "_suppressed", dropped.Counter())


def test_rejected_and_ignored_spans_are_logged_once_per_reason_per_interval(
    gateway, api_key, caplog, fresh_log_state, monkeypatch
):
    clock = [1000.0]
    monkeypatch.setattr(dropped.time, "monotonic", lambda: clock[0])
    bad = {"gen_ai.request.model": "public/x", "gen_ai.usage.input_tokens": "many", "gen_ai.usage.output_tokens": 1}
    spans = spans_with(api_key, bad, bad, {"http.route": "/health"})
    with caplog.at_level(logging.WARNING, logger="usage.gateway.dropped"):
        post_protobuf(gateway, spans)
        post_protobuf(gateway, spans)  # within the minute: no new lines
        clock[0] += dropped.INTERVAL
        post_protobuf(gateway, spans)
    lines = [record.getMessage() for record in caplog.records if record.name == "usage.gateway.dropped"]
    assert len(lines) == 4, lines
    rejected = [line for line in lines if "input_tokens: not_an_integer" in line]
    ignored = [line for line in lines if "not a GenAI span" in line]
    assert len(rejected) == 2 and len(ignored) == 2
    assert "did not store 2 item(s)" in rejected[0]
    assert f"{spans[0].context.trace_id:032x}/{spans[0].context.span_id:016x}" in rejected[0]
    assert "2 more since the last line" in rejected[1]  # the two suppressed in between
    assert "1 more since the last line" in ignored[1]


def test_litellm_ignored_and_rejected_payloads_are_logged(db, caplog, fresh_log_state, api_key):
    secret = account_services.service_token_create(name="proxy")[1]
    client = Client(headers={"Authorization": f"Bearer {secret}"})
    payloads = [{"id": "x", "status": "failure"}, {"id": "y", "status": "success", "model": "m"}]
    with caplog.at_level(logging.WARNING, logger="usage.gateway.dropped"):
        client.post("/api/v1/litellm/logs", data=json.dumps(payloads), content_type="application/json")
    text = "\n".join(record.getMessage() for record in caplog.records)
    # A failure is a call now (issue 27): judged like the success, not ignored.
    assert "ignored" not in text
    assert "did not store 2 item(s)" in text and "rejected api_key: required" in text


# --- item 6 (OTLP/JSON): inputs that answered 500 -----------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {"resourceSpans": [{"resource": [1]}]},
        {"resourceSpans": [{"resource": "x"}]},
        {"resourceSpans": [{"resource": {"attributes": [{"key": ["a"], "value": {"intValue": 1}}]}}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [{"key": {"a": 1}, "value": {}}]}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [{"key": "k", "value": [1]}]}]}]}]},
        {
            "resourceSpans": [
                {
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "attributes": [
                                        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": 1}},
                                        {"key": "gen_ai.request.model", "value": {"stringValue": [1]}},
                                    ]
                                }
                            ]
                        }
                    ]
                }
            ]
        },
    ],
)
def test_otlp_json_of_a_wrong_shape_is_a_400_not_a_500(gateway, payload):
    response = gateway.post(URL, data=json.dumps(payload), content_type="application/json")
    assert response.status_code == 400
    assert CallRecord.objects.count() == 0


def test_json_and_protobuf_read_the_same_dialects(gateway, api_key):
    spans = spans_with(
        api_key,
        {"llm.model_name": "public/oi", "llm.token_count.prompt": 7, "llm.token_count.completion": 3},
    )
    response = gateway.post(URL, data=json.dumps(_as_otlp_json(spans)), content_type="application/json")
    assert response.status_code == 200
    assert stored() == [("call-0", "public/oi", 7, 3, None, None)]

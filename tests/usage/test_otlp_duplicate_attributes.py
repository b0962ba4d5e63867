"""Review of issue 24 item 4 for OTLP: a span that names one of the attributes read for the call
twice with different values is rejected (duplicate_field), as a JSON object naming a member twice
is; the last value no longer silently wins. OpenTelemetry requires unique keys; the SDKs never
send duplicates, so only a broken or hostile exporter does."""

import json

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from tests.usage.test_otlp_api import _as_otlp_json, answer
from tests.usage.test_otlp_dialects import URL, api_key, gateway, spans_with, stored  # noqa: F401 (fixtures)
from usage.models import CallRecord

USAGE = {"gen_ai.request.model": "public/x", "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 2}


def _protobuf_with(spans, key, value):
    message = encode_spans(spans)
    extra = message.resource_spans[0].scope_spans[0].spans[0].attributes.add()
    extra.key = key
    extra.value.int_value = value
    return message.SerializeToString()


def _json_with(spans, key, value):
    payload = _as_otlp_json(spans)
    payload["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"].append(
        {"key": key, "value": {"intValue": str(value)}}
    )
    return json.dumps(payload)


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_a_token_count_named_twice_with_different_values_is_rejected(gateway, api_key, encoding):  # noqa: F811
    spans = spans_with(api_key, USAGE, USAGE)
    if encoding == "protobuf":
        body = _protobuf_with(spans, "gen_ai.usage.input_tokens", 999999)
        response = gateway.post(URL, data=body, content_type="application/x-protobuf")
        partial = answer(response).partial_success
        rejected, message = partial.rejected_spans, partial.error_message
    else:
        response = gateway.post(
            URL, data=_json_with(spans, "gen_ai.usage.input_tokens", 999999), content_type="application/json"
        )
        partial = response.json()["partialSuccess"]
        rejected, message = int(partial["rejectedSpans"]), partial["errorMessage"]
    assert response.status_code == 200
    assert rejected == 1
    assert "gen_ai.usage.input_tokens: duplicate_field" in message
    assert [row[:4] for row in stored()] == [("call-1", "public/x", 10, 2)]  # the other span is stored
    assert not CallRecord.objects.filter(input_tokens=999999).exists()


def test_the_same_value_twice_is_not_ambiguous(gateway, api_key):  # noqa: F811
    body = _protobuf_with(spans_with(api_key, USAGE), "gen_ai.usage.input_tokens", 10)
    response = gateway.post(URL, data=body, content_type="application/x-protobuf")
    assert answer(response).partial_success.rejected_spans == 0
    assert [row[:4] for row in stored()] == [("call-0", "public/x", 10, 2)]

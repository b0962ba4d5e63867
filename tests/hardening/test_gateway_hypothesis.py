"""Issue 24 item 6: generated OTLP/JSON, OTLP protobuf and LiteLLM bodies never answer 5xx,
and a refused request stores nothing.

The bodies are of the right shape at some depths and anything at others: the GenAI attribute
names with values of every type, ids of any length, instants from far past to far future, and
a real key often enough that some calls are stored.
"""

import json
import os
import time

import pytest
from django.test import Client
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from accounts import services as account_services
from usage.api.otlp import ATTRIBUTES, MODEL_ATTRIBUTES, TOTAL_TOKENS
from usage.models import CallRecord

OTLP = "/api/v1/otlp/v1/traces"
LITELLM = "/api/v1/litellm/logs"
EXAMPLES = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same examples on every run: CI failures are reproducible
)
KEY_ID = "KEY"  # replaced by the fixture key's public id in the bodies

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
any_json = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
NAMES = [*(name for names in ATTRIBUTES.values() for name in names), *MODEL_ATTRIBUTES, TOTAL_TOKENS]
NAMES += ["gen_ai.response.id", "usage_statistics.api_key", "gen_ai.usage.cache_creation_input_tokens"]
attribute_name = st.sampled_from(NAMES) | st.text(max_size=10)
token_count = st.integers(min_value=-5, max_value=2**64) | st.sampled_from([0, 10, 10**9, 10**9 + 1])
now_nanos = int(time.time() * 1e9)
instant_nanos = st.sampled_from([now_nanos, now_nanos - 10**9, 0]) | st.integers(min_value=0, max_value=2**64 - 1)


def _maybe(shaped):
    """Mostly the right shape, sometimes any JSON at all."""
    return st.one_of(shaped, shaped, shaped, any_json)


json_attribute_value = st.one_of(
    st.fixed_dictionaries({"intValue": token_count | st.text(max_size=22)}),
    st.fixed_dictionaries({"intValue": token_count.map(str)}),
    st.fixed_dictionaries({"stringValue": st.sampled_from(["public/m", "KEY", "r-1"]) | st.text(max_size=8)}),
    st.fixed_dictionaries({"doubleValue": st.floats(allow_nan=False, allow_infinity=False)}),
    st.fixed_dictionaries({"boolValue": st.booleans()}),
    st.fixed_dictionaries({"arrayValue": any_json}),
    st.dictionaries(st.sampled_from(["stringValue", "intValue", "doubleValue", "boolValue"]), any_json, min_size=1),
    any_json,
)
json_attribute = _maybe(st.fixed_dictionaries({"key": _maybe(attribute_name), "value": json_attribute_value}))
clean_attribute = st.fixed_dictionaries(
    {
        "key": attribute_name,
        "value": st.one_of(
            st.fixed_dictionaries({"intValue": token_count}),
            st.fixed_dictionaries({"stringValue": st.text(max_size=8)}),
            st.fixed_dictionaries({"doubleValue": st.floats(allow_nan=False, allow_infinity=False)}),
            st.fixed_dictionaries({"boolValue": st.booleans()}),
        ),
    }
)
# A GenAI name with a value of any JSON type in any member: what the mapping reads must be a scalar.
json_genai_attribute = st.fixed_dictionaries(
    {
        "key": st.sampled_from(NAMES),
        "value": st.dictionaries(st.sampled_from(["stringValue", "intValue", "doubleValue"]), any_json, min_size=1),
    }
)


def hex_id(size):
    """Mostly a valid id (so that the span reaches the mapping), sometimes any length or text."""
    valid = st.binary(min_size=size, max_size=size).map(bytes.hex)
    return st.one_of(valid, valid, valid, st.binary(max_size=17).map(bytes.hex) | st.text(max_size=34))


small_count = st.integers(min_value=0, max_value=5000)
request_ids = st.text(alphabet="abc-123", min_size=1, max_size=6)


def _shaped_otlp_json(spans):
    """Every level of the right shape down to the spans (which may be anything ``spans`` draws)."""
    scope = st.fixed_dictionaries({"spans": st.lists(spans, min_size=1, max_size=4)})
    resource = st.fixed_dictionaries(
        {"resource": st.fixed_dictionaries({"attributes": st.lists(clean_attribute, max_size=2)})},
    )
    resource_spans = st.tuples(resource, st.lists(scope, min_size=1, max_size=2)).map(
        lambda parts: {**parts[0], "scopeSpans": parts[1]}
    )
    return st.fixed_dictionaries({"resourceSpans": st.lists(resource_spans, min_size=1, max_size=2)})


def _json_attr(key, kind, values):
    return values.map(lambda value: {"key": key, "value": {kind: value}})


# A model call that can be stored (the key, now, plain counts), with a few well-formed extra attributes.
json_call_span = st.fixed_dictionaries(
    {
        "traceId": hex_id(16),
        "spanId": hex_id(8),
        "endTimeUnixNano": st.just(str(now_nanos)),
        "attributes": st.tuples(
            _json_attr("usage_statistics.api_key", "stringValue", st.just(KEY_ID)),
            _json_attr("gen_ai.response.id", "stringValue", request_ids),
            _json_attr("gen_ai.request.model", "stringValue", st.sampled_from(["public/m", "public/n"])),
            _json_attr("gen_ai.usage.input_tokens", "intValue", small_count),
            st.lists(clean_attribute, max_size=3),
        ).map(lambda parts: [*parts[:4], *parts[4]]),
    }
)
json_span = st.one_of(
    json_call_span,
    json_call_span,
    _maybe(
        st.fixed_dictionaries(
            {},
            optional={
                "traceId": hex_id(16),
                "spanId": hex_id(8),
                "endTimeUnixNano": instant_nanos.map(str) | instant_nanos | any_json,
                "attributes": _maybe(st.lists(json_attribute | json_genai_attribute, max_size=8)),
            },
        )
    ),
)
otlp_json_body = (
    st.fixed_dictionaries(
        {},
        optional={
            "resourceSpans": _maybe(
                st.lists(
                    _maybe(
                        st.fixed_dictionaries(
                            {},
                            optional={
                                "resource": _maybe(
                                    st.fixed_dictionaries({"attributes": _maybe(st.lists(json_attribute))})
                                ),
                                "scopeSpans": _maybe(
                                    st.lists(
                                        _maybe(
                                            st.fixed_dictionaries({"spans": _maybe(st.lists(json_span, max_size=4))})
                                        )
                                    )
                                ),
                            },
                        )
                    ),
                    max_size=3,
                )
            )
        },
    )
    | any_json
)


def _any_value(value):
    message = AnyValue()
    if isinstance(value, bool):
        message.bool_value = value
    elif isinstance(value, int):
        message.int_value = max(min(value, 2**63 - 1), -(2**63))
    elif isinstance(value, float):
        message.double_value = value
    elif isinstance(value, str):
        message.string_value = value
    return message


proto_value = st.one_of(
    token_count, st.floats(), st.booleans(), st.sampled_from(["public/m", KEY_ID, "r-1"]) | st.text(max_size=8)
)


@st.composite
def otlp_protobuf_body(draw):
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        resource_spans = request.resource_spans.add()
        for name, value in draw(st.lists(st.tuples(attribute_name, proto_value), max_size=3)):
            resource_spans.resource.attributes.append(KeyValue(key=name, value=_any_value(value)))
        for _ in range(draw(st.integers(0, 2))):
            scope = resource_spans.scope_spans.add()
            for _ in range(draw(st.integers(0, 3))):
                span = scope.spans.add()
                span.trace_id = draw(st.binary(max_size=17))
                span.span_id = draw(st.binary(max_size=9))
                span.end_time_unix_nano = draw(instant_nanos)
                if draw(st.booleans()):  # a model call that can be stored, as in json_call_span
                    span.trace_id, span.span_id, span.end_time_unix_nano = os.urandom(16), os.urandom(8), now_nanos
                    for name, value in [
                        ("usage_statistics.api_key", KEY_ID),
                        ("gen_ai.response.id", draw(request_ids)),
                        ("gen_ai.request.model", draw(st.sampled_from(["public/m", "public/n"]))),
                        ("gen_ai.usage.input_tokens", draw(small_count)),
                    ]:
                        span.attributes.append(KeyValue(key=name, value=_any_value(value)))
                for name, value in draw(st.lists(st.tuples(attribute_name, proto_value), max_size=8)):
                    span.attributes.append(KeyValue(key=name, value=_any_value(value)))
    return request


def _with_key(request, public_id):
    """The request with the key marker's string values replaced by the key's public id."""
    for resource_spans in request.resource_spans:
        pairs = list(resource_spans.resource.attributes)
        pairs += [kv for scope in resource_spans.scope_spans for span in scope.spans for kv in span.attributes]
        for pair in pairs:
            if pair.value.WhichOneof("value") == "string_value" and pair.value.string_value == KEY_ID:
                pair.value.string_value = public_id
    return request.SerializeToString()


litellm_payload = _maybe(
    st.fixed_dictionaries(
        {},
        optional={
            "id": st.sampled_from(["r-1", "r-2"]) | any_json,
            "litellm_call_id": any_json,
            "status": st.sampled_from(["success", "failure"]) | any_json,
            "model_group": st.sampled_from(["public/m"]) | any_json,
            "model": any_json,
            "endTime": st.sampled_from([time.time()]) | st.floats(allow_nan=False, allow_infinity=False) | any_json,
            "prompt_tokens": token_count | any_json,
            "completion_tokens": token_count | any_json,
            "metadata": _maybe(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "user_api_key_alias": st.just(KEY_ID) | any_json,
                        "usage_object": any_json,
                        "spend_logs_metadata": any_json,
                    },
                )
            ),
        },
    )
)
litellm_call = st.fixed_dictionaries(
    {
        "id": request_ids,
        "status": st.just("success"),
        "model_group": st.sampled_from(["public/m", "public/n"]),
        "endTime": st.just(time.time()),
        "prompt_tokens": small_count,
        "completion_tokens": small_count,
        "metadata": st.one_of(*[st.just({"user_api_key_alias": KEY_ID})] * 3, any_json),
    }
)
litellm_body = st.lists(litellm_call | litellm_payload, max_size=4) | litellm_payload


@pytest.fixture
def setup(tenant):
    key = account_services.api_key_create(tenant=tenant, name="gateway-key")[0]
    secret = account_services.service_token_create(name="collector")[1]
    return key, Client(headers={"Authorization": f"Bearer {secret}"})


def _post(client, path, body, media):
    before = CallRecord.objects.count()
    response = client.post(path, data=body, content_type=media)
    assert response.status_code < 500, response.content[:500]
    stored = CallRecord.objects.count() - before
    event(f"status {response.status_code}, {'some' if stored else 'no'} calls stored")
    if response.status_code != 200:
        assert CallRecord.objects.count() == before, "a refused request stored calls"
    return response


@EXAMPLES
@given(payload=otlp_json_body | _shaped_otlp_json(json_span) | _shaped_otlp_json(json_call_span))
def test_otlp_json_bodies(setup, payload):
    key, client = setup
    _post(client, OTLP, json.dumps(payload).replace(KEY_ID, key.public_id), "application/json")


@EXAMPLES
@given(body=otlp_protobuf_body() | st.binary(max_size=200))
def test_otlp_protobuf_bodies(setup, body):
    key, client = setup
    data = body if isinstance(body, bytes) else _with_key(body, key.public_id)
    _post(client, OTLP, data, "application/x-protobuf")


@EXAMPLES
@given(payload=litellm_body)
def test_litellm_bodies(setup, payload):
    key, client = setup
    _post(client, LITELLM, json.dumps(payload).replace(KEY_ID, key.public_id), "application/json")

"""POST /api/v1/otlp/v1/traces: GenAI spans from the OpenTelemetry SDK become calls.

The real SDK (``opentelemetry-sdk``) and its OTLP/HTTP exporter
(``opentelemetry-exporter-otlp-proto-http``), pinned in requirements-dev.txt, export to a live
server; the partial-success answers are checked with bodies the same SDK encodes.
"""

import base64
import datetime as dt
import gzip
import json

import pytest
from django.db.models import Sum
from django.test import Client
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from accounts import services as account_services
from tests.usage.api_helpers import token_client
from usage.models import CallRecord, CallRequest

URL = "/api/v1/otlp/v1/traces"


class Recorder(SpanExporter):
    """Keeps the finished spans, to encode them as the OTLP exporter does."""

    def __init__(self):
        self.spans = []

    def export(self, spans):
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def genai(tracer, name="chat", **attributes):
    with tracer.start_as_current_span(f"{name} model") as span:
        span.set_attributes({"gen_ai.operation.name": name, "gen_ai.request.model": "public/alpha", **attributes})
    return span


def make_spans(api_key):
    """Three GenAI spans (one of them bad), one plain HTTP span; the key as a resource attribute."""
    recorder = Recorder()
    provider = TracerProvider(resource=Resource.create({"usage_statistics.api_key": api_key.public_id}))
    provider.add_span_processor(SimpleSpanProcessor(recorder))
    tracer = provider.get_tracer("gateway")
    genai(
        tracer,
        **{
            "gen_ai.response.id": "chatcmpl-1",
            "gen_ai.response.model": "public/alpha-2026",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 200,
            "gen_ai.usage.cache_read.input_tokens": 600,
            "gen_ai.usage.reasoning.output_tokens": 50,
        },
    )
    genai(tracer, **{"gen_ai.usage.input_tokens": 30, "gen_ai.usage.output_tokens": 4})
    genai(tracer, **{"gen_ai.usage.input_tokens": "many", "gen_ai.usage.output_tokens": 4})
    with tracer.start_as_current_span("GET /health"):
        pass
    return recorder.spans


@pytest.fixture
def api_key(tenant):
    return account_services.api_key_create(tenant=tenant, name="gateway-key")[0]


@pytest.fixture
def service_secret(db):
    return account_services.service_token_create(name="collector")[1]


@pytest.fixture
def gateway(service_secret):
    return Client(headers={"Authorization": f"Bearer {service_secret}"})


def post_protobuf(client, spans, **headers):
    body = encode_spans(spans).SerializeToString()
    if headers.get("Content-Encoding") == "gzip":
        body = gzip.compress(body)
    return client.post(URL, data=body, content_type="application/x-protobuf", headers=headers)


def answer(response):
    message = ExportTraceServiceResponse()
    message.ParseFromString(response.content)
    return message


def test_genai_spans_become_calls_with_a_partial_success_answer(gateway, api_key):
    spans = make_spans(api_key)
    response = post_protobuf(gateway, spans)
    assert response.status_code == 200 and response["Content-Type"] == "application/x-protobuf"
    partial = answer(response).partial_success
    assert partial.rejected_spans == 1
    assert partial.error_message.startswith("accepted 2, duplicates 0, rejected 1; ignored 1 non-GenAI span;")
    bad = spans[2]
    assert f"span {bad.context.trace_id:032x}/{bad.context.span_id:016x}: input_tokens: not_an_integer" in (
        partial.error_message
    )
    first = CallRecord.objects.select_related("model", "api_key").get(request_id="chatcmpl-1")
    assert (first.api_key, first.model.name) == (api_key, "public/alpha-2026")  # the response model wins
    assert (first.input_tokens, first.output_tokens, first.cached_input_tokens, first.reasoning_tokens) == (
        1000,
        200,
        600,
        50,
    )
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    assert first.occurred_at == epoch + dt.timedelta(microseconds=spans[0].end_time // 1000)  # the end time
    second = CallRecord.objects.get(request_id=f"{spans[1].context.trace_id:032x}-{spans[1].context.span_id:016x}")
    assert (second.model.name, second.cached_input_tokens, second.reasoning_tokens) == ("public/alpha", None, None)
    # The same export again: stored once, the duplicates counted.
    again = answer(post_protobuf(gateway, spans, **{"Content-Encoding": "gzip"})).partial_success
    assert again.error_message.startswith("accepted 0, duplicates 2, rejected 1;")
    assert CallRecord.objects.count() == 2


def test_json_encoding_with_hex_ids(gateway, api_key):
    spans = make_spans(api_key)[:2]
    payload = json_format.MessageToDict(encode_spans(spans))
    for resource_spans in payload["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for name in ("traceId", "spanId", "parentSpanId"):
                    if name in span:
                        span[name] = base64.b64decode(span[name]).hex()
    payload["unknownFutureField"] = True  # receivers ignore unknown fields
    response = gateway.post(URL, data=json.dumps(payload), content_type="application/json")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response.json() == {}  # everything stored, nothing ignored: no partial success
    expected = f"{spans[1].context.trace_id:032x}-{spans[1].context.span_id:016x}"
    assert set(CallRecord.objects.values_list("request_id", flat=True)) == {"chatcmpl-1", expected}


def test_the_calls_are_in_the_summary(gateway, api_key, tenant):
    post_protobuf(gateway, make_spans(api_key))
    summary = token_client(tenant).get("/api/v1/usage/summary", {"preset": "today"}).json()
    totals = CallRecord.objects.aggregate(i=Sum("input_tokens"), o=Sum("output_tokens"))
    assert (summary["calls"], summary["input_tokens"], summary["output_tokens"]) == (2, totals["i"], totals["o"])


def test_same_limits_as_the_json_api(gateway, api_key, settings):
    settings.INGEST_MAX_ITEMS = 1
    response = post_protobuf(gateway, make_spans(api_key))
    assert response.status_code == 413 and "At most 1 GenAI spans" in response.content.decode(errors="replace")
    settings.INGEST_MAX_BODY_BYTES = 10
    assert post_protobuf(gateway, make_spans(api_key)).status_code == 413
    assert CallRecord.objects.count() == 0


def test_unknown_key_and_model_limits_are_the_ingestion_services(gateway, tenant):
    other = account_services.tenant_create(slug="other", name="Other")
    stranger = account_services.api_key_create(tenant=other, name="k")[0]
    stranger.public_id = "key_unknown"
    partial = answer(post_protobuf(gateway, make_spans(stranger)[:1])).partial_success
    assert partial.rejected_spans == 1 and "api_key" in partial.error_message


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer svc_wrong"}, 401),
    ],
)
def test_a_service_token_is_required(db, headers, status, tenant):
    client = Client(headers=headers)
    assert post_protobuf(client, []).status_code == status
    reader = token_client(tenant)  # a tenant's read token is not a service token
    assert post_protobuf(reader, []).status_code == 401
    assert reader.get(URL).status_code == 405


def test_bad_bodies(gateway):
    assert gateway.post(URL, data=b"\xff\x00garbage", content_type="application/x-protobuf").status_code == 400
    assert gateway.post(URL, data="{not json", content_type="application/json").status_code == 400
    bad_id = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}
    assert gateway.post(URL, data=json.dumps(bad_id), content_type="application/json").status_code == 400
    assert gateway.post(URL, data="x", content_type="text/plain").status_code == 415
    response = gateway.post(URL, data=b"x", content_type="application/x-protobuf", headers={"Content-Encoding": "br"})
    assert response.status_code == 415


# --- the real exporter against a live server ----------------------------------------------------


@pytest.fixture
def short_lived_connections():
    from django.db import connections

    previous = connections.settings["default"]["CONN_MAX_AGE"]
    connections.settings["default"]["CONN_MAX_AGE"] = 0
    yield
    connections.settings["default"]["CONN_MAX_AGE"] = previous


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_the_sdks_otlp_http_exporter_reports_calls(transactional_db, live_server, short_lived_connections, compression):
    from opentelemetry.exporter.otlp.proto.http import Compression

    tenant = account_services.tenant_create(slug="acme", name="Acme")
    key = account_services.api_key_create(tenant=tenant, name="gateway-key")[0]
    secret = account_services.service_token_create(name="collector")[1]
    exporter = OTLPSpanExporter(
        endpoint=f"{live_server.url}{URL}",
        headers={"Authorization": f"Bearer {secret}"},
        compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression,
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "gateway"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("gateway")
    for n in range(5):
        genai(
            tracer,
            **{
                "usage_statistics.api_key": key.public_id,  # on the span this time
                "gen_ai.response.id": f"resp-{n}",
                "gen_ai.usage.input_tokens": 100 + n,
                "gen_ai.usage.output_tokens": n,
            },
        )
    with tracer.start_as_current_span("not a model call"):
        pass
    provider.shutdown()
    assert sorted(CallRecord.objects.values_list("request_id", flat=True)) == [f"resp-{n}" for n in range(5)]
    assert CallRecord.objects.aggregate(s=Sum("input_tokens"))["s"] == 510


def _as_otlp_json(spans):
    payload = json_format.MessageToDict(encode_spans(spans))
    for resource_spans in payload["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for name in ("traceId", "spanId", "parentSpanId"):
                    if name in span:
                        span[name] = base64.b64decode(span[name]).hex()
    return payload


def test_json_and_protobuf_give_the_same_calls_and_answer(gateway, api_key):
    spans = make_spans(api_key)
    columns = ("request_id", "api_key_id", "model__name", "occurred_at", "input_tokens", "output_tokens")
    columns += ("cached_input_tokens", "reasoning_tokens")
    proto = answer(post_protobuf(gateway, spans)).partial_success
    stored = sorted(CallRecord.objects.values_list(*columns))
    CallRecord.objects.all().delete()
    CallRequest.objects.all().delete()  # and their request-id claims: the same spans are new again
    response = gateway.post(URL, data=json.dumps(_as_otlp_json(spans)), content_type="application/json")
    assert response.json()["partialSuccess"] == {"rejectedSpans": "1", "errorMessage": proto.error_message}
    assert sorted(CallRecord.objects.values_list(*columns)) == stored and len(stored) == 2


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"resourceSpans": {}},
        {"resourceSpans": [{"scopeSpans": [{"spans": ["x"]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "abc"}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"endTimeUnixNano": "soon"}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [{"key": "a", "value": {"intValue": "x"}}]}]}]}]},
    ],
)
def test_json_of_another_shape_is_a_400(gateway, payload):
    response = gateway.post(URL, data=json.dumps(payload), content_type="application/json")
    assert response.status_code == 400 and "message" in response.json()

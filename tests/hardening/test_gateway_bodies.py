"""Issue 24 item 1: one body reader for every gateway endpoint.

Chunked bodies through a real gunicorn (the repository's gunicorn.conf.py, raw HTTP/1.1 over a
socket so that the body really goes out as ``Transfer-Encoding: chunked``) are stored for
``/ingest/calls``, OTLP (protobuf and JSON) and LiteLLM, each call checked against what was
sent; gzip and deflate bodies are read on every endpoint, within the size limit once
decompressed; and one JSON reader refuses an object that names a member twice.
"""

import datetime as dt
import gzip
import json
import time
import zlib

import pytest
from django.test import Client
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from accounts import services as account_services
from tests.hardening.test_chunked_gunicorn import _chunked, _send, server  # noqa: F401 (a fixture)
from tests.usage.test_otlp_api import _as_otlp_json
from usage.models import CallRecord

OTLP = "/api/v1/otlp/v1/traces"
LITELLM = "/api/v1/litellm/logs"
INGEST = "/api/v1/ingest/calls"


class _Recorder(SpanExporter):
    def __init__(self):
        self.spans = []

    def export(self, spans):
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def genai_spans(key, n, prefix="span"):
    """``n`` chat spans of ``key`` with 100+i input and i+1 output tokens, ids ``<prefix>-<i>``."""
    recorder = _Recorder()
    provider = TracerProvider(resource=Resource.create({"usage_statistics.api_key": key.public_id}))
    provider.add_span_processor(SimpleSpanProcessor(recorder))
    tracer = provider.get_tracer("gateway")
    for i in range(n):
        with tracer.start_as_current_span("chat public/deepseek-r1") as span:
            span.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "public/deepseek-r1",
                    "gen_ai.response.id": f"{prefix}-{i}",
                    "gen_ai.usage.input_tokens": 100 + i,
                    "gen_ai.usage.output_tokens": i + 1,
                }
            )
    return recorder.spans


def otlp_protobuf(key, n, prefix="span"):
    return encode_spans(genai_spans(key, n, prefix)).SerializeToString()


def otlp_json(key, n, prefix="span"):
    return json.dumps(_as_otlp_json(genai_spans(key, n, prefix))).encode()


def litellm_payloads(key, n, prefix="litellm"):
    end = time.time()
    return json.dumps(
        [
            {
                "id": f"{prefix}-{i}",
                "status": "success",
                "model_group": "public/deepseek-r1",
                "endTime": end,
                "prompt_tokens": 100 + i,
                "completion_tokens": i + 1,
                "metadata": {"user_api_key_alias": key.public_id},
            }
            for i in range(n)
        ]
    ).encode()


def ingest_batch(key, n, prefix="ingest"):
    return json.dumps(
        {
            "calls": [
                {
                    "request_id": f"{prefix}-{i}",
                    "api_key": key.public_id,
                    "model": "public/deepseek-r1",
                    "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
                    "input_tokens": 100 + i,
                    "output_tokens": i + 1,
                }
                for i in range(n)
            ]
        }
    ).encode()


def stored(prefix):
    rows = CallRecord.objects.filter(request_id__startswith=f"{prefix}-").select_related("model")
    return sorted((r.request_id, r.model.name, r.input_tokens, r.output_tokens) for r in rows)


def expected(prefix, n):
    return sorted((f"{prefix}-{i}", "public/deepseek-r1", 100 + i, i + 1) for i in range(n))


def _head(port, secret, path, media, extra=""):
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {secret}\r\n"
        f"Content-Type: {media}\r\n{extra}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )


BODIES = {
    "otlp-protobuf": (OTLP, "application/x-protobuf", otlp_protobuf),
    "otlp-json": (OTLP, "application/json", otlp_json),
    "litellm": (LITELLM, "application/json", litellm_payloads),
    "ingest": (INGEST, "application/json", ingest_batch),
}


@pytest.mark.parametrize("kind", BODIES)
@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_a_chunked_body_through_gunicorn_is_stored_as_sent(server, tenant, kind, encoding):  # noqa: F811
    key, _ = account_services.api_key_create(tenant=tenant, name="production")
    _token, secret = account_services.service_token_create(name="gateway")
    path, media, make = BODIES[kind]
    body = make(key, 7, prefix=kind)
    extra = ""
    if encoding == "gzip":
        body, extra = gzip.compress(body), "Content-Encoding: gzip\r\n"
    status, _headers, answer = _send(server, _head(server, secret, path, media, extra), _chunked(body, size=50))
    assert status == 200, answer
    if path == OTLP:
        message = ExportTraceServiceResponse()
        if media == "application/json":
            json_format.Parse(answer, message)
        else:
            message.ParseFromString(answer)
        assert message.partial_success.rejected_spans == 0
    else:
        assert json.loads(answer)["accepted"] == 7
    assert stored(kind) == expected(kind, 7)


@pytest.mark.parametrize("kind", BODIES)
def test_a_chunked_body_over_the_limit_is_413_through_gunicorn(server, tenant, kind):  # noqa: F811
    key, _ = account_services.api_key_create(tenant=tenant, name="production")
    _token, secret = account_services.service_token_create(name="gateway")
    path, media, make = BODIES[kind]
    body = make(key, 150, prefix=kind)
    assert len(body) > 20000  # the server fixture's INGEST_MAX_BODY_BYTES
    status, _headers, _answer = _send(server, _head(server, secret, path, media), _chunked(body, size=1000))
    assert status == 413
    assert CallRecord.objects.count() == 0


# --- the same reader through Django's test client ---------------------------------------------


@pytest.fixture
def key(tenant):
    return account_services.api_key_create(tenant=tenant, name="production")[0]


@pytest.fixture
def gateway(db):
    secret = account_services.service_token_create(name="gateway")[1]
    return Client(headers={"Authorization": f"Bearer {secret}"})


def _deflate(data):
    return zlib.compress(data)


def _raw_deflate(data):
    compressor = zlib.compressobj(wbits=-15)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize("kind", ["otlp-json", "litellm", "ingest"])
@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw deflate"])
def test_compressed_bodies_are_read_on_every_endpoint(gateway, key, kind, encoding):
    path, media, make = BODIES[kind]
    compress = {"gzip": gzip.compress, "deflate": _deflate, "raw deflate": _raw_deflate}[encoding]
    header = encoding.split()[-1]
    response = gateway.post(
        path, data=compress(make(key, 3, prefix=kind)), content_type=media, headers={"Content-Encoding": header}
    )
    assert response.status_code == 200, response.content
    assert stored(kind) == expected(kind, 3)


@pytest.mark.parametrize("kind", BODIES)
def test_a_body_over_the_limit_once_decompressed_is_413(gateway, key, kind, settings):
    settings.INGEST_MAX_BODY_BYTES = 20000
    path, media, make = BODIES[kind]
    body = make(key, 150, prefix=kind)
    packed = gzip.compress(body)
    assert len(packed) < 20000 < len(body)
    response = gateway.post(path, data=packed, content_type=media, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert CallRecord.objects.count() == 0


@pytest.mark.parametrize("kind", BODIES)
def test_a_zip_bomb_is_413_without_inflating_it(gateway, key, kind, settings):
    settings.INGEST_MAX_BODY_BYTES = 100_000
    path, media, _make = BODIES[kind]
    bomb = gzip.compress(b" " * 50_000_000)  # 50 MB of spaces, ~50 KB packed
    response = gateway.post(path, data=bomb, content_type=media, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413


@pytest.mark.parametrize("kind", BODIES)
@pytest.mark.parametrize(
    ("encoding", "body", "status"),
    [("gzip", b"not gzip at all", 400), ("br", b"{}", 415), ("gzip", None, 400)],
    ids=["broken", "unknown", "truncated"],
)
def test_bad_encodings_are_clear_errors(gateway, key, kind, encoding, body, status):
    path, media, make = BODIES[kind]
    if body is None:
        body = gzip.compress(make(key, 3, prefix=kind))[:-12]
    response = gateway.post(path, data=body, content_type=media, headers={"Content-Encoding": encoding})
    assert response.status_code == status
    assert CallRecord.objects.count() == 0


@pytest.mark.parametrize("path", [OTLP, LITELLM, INGEST])
def test_chunked_without_a_server_that_decodes_it_is_411_everywhere(gateway, path):
    """The Django test client (like runserver) does not set wsgi.input_terminated."""
    response = gateway.generic(
        "POST", path, b"", "application/json", headers={"Transfer-Encoding": "chunked"}, CONTENT_TYPE="application/json"
    )
    assert response.status_code == 411


# --- duplicate members (issue 24 item 4, second half) -----------------------------------------


def test_litellm_payload_naming_prompt_tokens_twice_is_rejected_not_stored_with_the_last(gateway, key):
    payload = json.loads(litellm_payloads(key, 2, prefix="dup"))
    first = json.dumps(payload[0])
    twice = first[:-1] + ', "prompt_tokens": 999999}'  # prompt_tokens 100, then 999999
    body = "[" + twice + ", " + json.dumps(payload[1]) + "]"
    response = gateway.post(LITELLM, data=body, content_type="application/json")
    assert response.status_code == 200
    answer = response.json()
    assert (answer["accepted"], answer["rejected"]) == (1, 1)
    assert [(e["index"], e["field"], e["code"]) for e in answer["errors"]] == [(0, "prompt_tokens", "duplicate_field")]
    assert stored("dup") == [("dup-1", "public/deepseek-r1", 101, 2)]


def test_litellm_duplicates_deep_inside_a_payload_are_rejected_too(gateway, key):
    payload = json.loads(litellm_payloads(key, 1, prefix="deep"))[0]
    payload["metadata"]["usage_object"] = {"prompt_tokens_details": {"cached_tokens": 10}}
    text = json.dumps(payload).replace('"cached_tokens": 10', '"cached_tokens": 10, "cached_tokens": 90')
    answer = gateway.post(LITELLM, data=text, content_type="application/json").json()
    assert [(e["field"], e["code"]) for e in answer["errors"]] == [("cached_tokens", "duplicate_field")]
    assert CallRecord.objects.count() == 0


def test_litellm_ndjson_duplicates_are_rejected_per_line(gateway, key):
    payloads = json.loads(litellm_payloads(key, 2, prefix="nd"))
    lines = [json.dumps(payloads[0])[:-1] + ', "completion_tokens": 5}', json.dumps(payloads[1])]
    answer = gateway.post(LITELLM, data="\n".join(lines), content_type="application/x-ndjson").json()
    assert (answer["accepted"], answer["rejected"]) == (1, 1)
    assert stored("nd") == [("nd-1", "public/deepseek-r1", 101, 2)]


def test_otlp_json_naming_a_member_twice_is_400_and_stores_nothing(gateway, key):
    body = otlp_json(key, 2, prefix="otlpdup").decode()
    twice = body.replace('"intValue": "100"', '"intValue": "100", "intValue": "999999"', 1)
    assert twice != body
    response = gateway.post(OTLP, data=twice, content_type="application/json")
    assert response.status_code == 400
    assert "more than once" in response.json()["message"]
    assert CallRecord.objects.count() == 0


def test_a_null_litellm_payload_is_rejected_not_ignored(gateway, key):
    answer = gateway.post(LITELLM, data="[null]", content_type="application/json").json()
    assert (answer["rejected"], answer["ignored"]) == (1, 0)
    assert [(e["index"], e["code"]) for e in answer["errors"]] == [(0, "not_an_object")]

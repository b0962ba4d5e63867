"""``POST /api/v1/otlp/v1/traces``: OTLP/HTTP trace export (protobuf or JSON) from a gateway.

Each span carrying the OpenTelemetry GenAI usage attributes becomes a reported call, handed to
the same ingestion service as ``POST /api/v1/ingest/calls`` (``services.call_records_ingest``):
the same validation, deduplication by request id, window and limits. Other spans are ignored
and counted. The answer is an ``ExportTraceServiceResponse`` in the request's encoding; spans
that could not be stored are counted in its ``partial_success`` with the reasons.

Mapping of a span (docs/ingestion.md, "OpenTelemetry"):

==========================  ============================================================
``request_id``              ``gen_ai.response.id``; without it ``<trace id>-<span id>`` (hex)
``api_key``                 ``usage_statistics.api_key`` of the span, else of its resource
``model``                   ``gen_ai.response.model``, else ``gen_ai.request.model``
``occurred_at``             the span's end time
``input_tokens``            ``gen_ai.usage.input_tokens`` (which, as here, includes cached ones)
``output_tokens``           ``gen_ai.usage.output_tokens``
``cached_input_tokens``     ``gen_ai.usage.cache_read.input_tokens``
``reasoning_tokens``        ``gen_ai.usage.reasoning.output_tokens``
==========================  ============================================================

A span is a GenAI call when it has ``gen_ai.usage.input_tokens`` or ``gen_ai.usage.output_tokens``.
"""

import datetime as dt
import json
import zlib

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from usage.api.ingest import RequestProblem, _authenticate
from usage.ingestion import services
from usageproject import metrics

API_KEY_ATTRIBUTE = "usage_statistics.api_key"
ATTRIBUTES = {
    "input_tokens": "gen_ai.usage.input_tokens",
    "output_tokens": "gen_ai.usage.output_tokens",
    "cached_input_tokens": "gen_ai.usage.cache_read.input_tokens",
    "reasoning_tokens": "gen_ai.usage.reasoning.output_tokens",
}
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_MAX_ERRORS_LISTED = 20


def _value(any_value):
    """The Python value of an OTLP AnyValue (int, float, str, bool; None when unset or complex)."""
    kind = any_value.WhichOneof("value")
    if kind in ("int_value", "double_value", "string_value", "bool_value"):
        return getattr(any_value, kind)
    return None


def _attributes(key_values):
    return {item.key: _value(item.value) for item in key_values}


class _Bad(ValueError):
    """The OTLP/JSON body does not have the shape of an ExportTraceServiceRequest."""


def _list_of(value, where):
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Bad(f"{where} must be a list")
    return value


def _object(value, where):
    if not isinstance(value, dict):
        raise _Bad(f"{where} must be an object")
    return value


def _json_int(value, where):
    """An OTLP/JSON 64-bit integer: a number or, as the protobuf JSON mapping writes it, a string."""
    if type(value) is int:
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit() and len(value) <= 20:
        return int(value)
    raise _Bad(f"{where} must be an integer")


def _json_value(value):
    value = _object(value, "an attribute value")
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return _json_int(value["intValue"], "intValue")
    if "doubleValue" in value:
        return value["doubleValue"]
    if "boolValue" in value:
        return value["boolValue"]
    return None


def _json_attributes(items):
    return {
        _object(item, "an attribute").get("key"): _json_value(item.get("value") or {})
        for item in _list_of(items, "attributes")
    }


def _hex_id(value, name, size):
    if not value:
        return b""
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else None
    except ValueError:
        raw = None
    if raw is None or len(raw) != size:
        raise _Bad(f"{name} must be {2 * size} hex digits")
    return raw


class _JsonSpan:
    """What ``span_call`` reads of a span, from OTLP/JSON (faster than protobuf's ParseDict)."""

    __slots__ = ("attributes", "trace_id", "span_id", "end_time_unix_nano")

    def __init__(self, span):
        span = _object(span, "a span")
        self.attributes = _json_attributes(span.get("attributes"))
        self.trace_id = _hex_id(span.get("traceId"), "traceId", 16)
        self.span_id = _hex_id(span.get("spanId"), "spanId", 8)
        end = span.get("endTimeUnixNano")
        self.end_time_unix_nano = _json_int(end, "endTimeUnixNano") if end not in (None, "") else 0


def _json_spans(payload):
    """[(span, resource attributes)] of an OTLP/JSON export request."""
    spans = []
    for resource_spans in _list_of(_object(payload, "the body").get("resourceSpans"), "resourceSpans"):
        resource_spans = _object(resource_spans, "resourceSpans")
        resource = _json_attributes((resource_spans.get("resource") or {}).get("attributes"))
        for scope_spans in _list_of(resource_spans.get("scopeSpans"), "scopeSpans"):
            for span in _list_of(_object(scope_spans, "scopeSpans").get("spans"), "spans"):
                spans.append((_JsonSpan(span), resource))
    return spans


def _body(request):
    limit = settings.INGEST_MAX_BODY_BYTES
    too_large = RequestProblem(413, "Content too large", f"The body may be at most {limit} bytes.")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise too_large
    data = request.read(limit + 1)
    if len(data) > limit:
        raise too_large
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding in ("gzip", "deflate"):
        decompressor = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
        try:
            data = decompressor.decompress(data, limit + 1)
        except zlib.error as exc:
            raise RequestProblem(400, "Invalid request", f"The body is not valid {encoding}.") from exc
        if len(data) > limit or decompressor.unconsumed_tail:
            raise too_large
    elif encoding != "identity":
        raise RequestProblem(415, "Unsupported media type", "Content-Encoding may be gzip, deflate or identity.")
    return data


def _decode(request):
    """([(span, resource attributes)], media type of the answer)."""
    media = (request.content_type or "").lower()
    if media not in (PROTOBUF, JSON):
        raise RequestProblem(415, "Unsupported media type", f"Send {PROTOBUF} or {JSON}.")
    data = _body(request)
    try:
        if media == JSON:
            return _json_spans(json.loads(data.decode("utf-8"))), media
        message = ExportTraceServiceRequest()
        message.ParseFromString(data)
    except (DecodeError, ValueError, RecursionError) as exc:  # _Bad and UnicodeDecodeError are ValueErrors
        raise RequestProblem(400, "Invalid request", f"The body is not an OTLP trace export: {str(exc)[:200]}") from exc
    spans = []
    for resource_spans in message.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            spans.extend((span, resource) for span in scope_spans.spans)
    return spans, media


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _instant(unix_nano):
    """The UTC instant of a span time (nanoseconds, cut to microseconds); None when unset or absurd."""
    try:
        return _EPOCH + dt.timedelta(microseconds=unix_nano // 1000) if unix_nano else None
    except OverflowError:
        return None


def span_call(span, resource_attributes):
    """The reported call (a raw item of the ingestion contract) of a span, or None for a non-GenAI span."""
    attributes = span.attributes if isinstance(span.attributes, dict) else _attributes(span.attributes)
    if ATTRIBUTES["input_tokens"] not in attributes and ATTRIBUTES["output_tokens"] not in attributes:
        return None
    request_id = attributes.get("gen_ai.response.id") or f"{span.trace_id.hex()}-{span.span_id.hex()}"
    end = _instant(span.end_time_unix_nano)
    call = {
        "request_id": request_id,
        "api_key": attributes.get(API_KEY_ATTRIBUTE, resource_attributes.get(API_KEY_ATTRIBUTE)),
        "model": attributes.get("gen_ai.response.model") or attributes.get("gen_ai.request.model"),
        "occurred_at": end.isoformat() if end else None,
    }
    for field, name in ATTRIBUTES.items():
        if attributes.get(name) is not None:
            call[field] = attributes[name]
    return call


def spans_to_calls(spans):
    """([raw call], [span label], ignored span count) of [(span, resource attributes)]."""
    calls, labels, ignored = [], [], 0
    for span, resource_attributes in spans:
        call = span_call(span, resource_attributes)
        if call is None:
            ignored += 1
        else:
            calls.append(call)
            labels.append(f"{span.trace_id.hex()}/{span.span_id.hex()}")
    return calls, labels, ignored


def _answer(response_message, media, status=200):
    if media == JSON:
        body = json.dumps(json_format.MessageToDict(response_message))
    else:
        body = response_message.SerializeToString()
    return HttpResponse(body, status=status, content_type=media)


def _status_answer(problem, media):
    """A whole-request error as OTLP wants it: a google.rpc.Status in the request's encoding."""
    response = _answer(Status(code=_RPC_CODES.get(problem.status, 2), message=problem.detail), media, problem.status)
    for name, value in problem.headers.items():
        response[name] = value
    return response


# HTTP status -> google.rpc.Code
_RPC_CODES = {400: 3, 401: 16, 405: 12, 413: 8, 415: 3, 429: 8, 503: 14}


def summary_message(result, ignored, labels):
    """The partial-success text: the counts, then the reason of each rejected span."""
    parts = [f"accepted {result.accepted}, duplicates {result.duplicates}, rejected {result.rejected}"]
    parts.append(f"ignored {ignored} non-GenAI span{'s' if ignored != 1 else ''}")
    text = "; ".join(parts)
    for item in result.errors[:_MAX_ERRORS_LISTED]:
        text += f"; span {labels[item['index']]}: {item['field'] or 'span'}: {item['code']}"
    if len(result.errors) > _MAX_ERRORS_LISTED:
        text += f"; and {len(result.errors) - _MAX_ERRORS_LISTED} more errors"
    return text


@csrf_exempt
def traces(request):
    media = JSON if (request.content_type or "").lower() == JSON else PROTOBUF
    try:
        if request.method != "POST":
            raise RequestProblem(405, "Method not allowed", "Use POST.", {"Allow": "POST"})
        request.service_token = _authenticate(request)
        spans, media = _decode(request)
        calls, labels, ignored = spans_to_calls(spans)
        limit = settings.INGEST_MAX_ITEMS
        if len(calls) > limit:
            raise RequestProblem(
                413, "Content too large", f"At most {limit} GenAI spans per request, got {len(calls)}."
            )
        result = services.call_records_ingest(items=calls) if calls else services.IngestResult()
    except RequestProblem as problem:
        return _status_answer(problem, media)
    metrics.ingest_counted("otlp", result, ignored=ignored)
    answer = ExportTraceServiceResponse()
    if result.rejected or ignored:
        answer.partial_success.rejected_spans = result.rejected
        answer.partial_success.error_message = summary_message(result, ignored, labels)
    response = _answer(answer, media)
    response["X-Usage-Accepted"] = str(result.accepted)
    response["X-Usage-Duplicates"] = str(result.duplicates)
    response["X-Usage-Rejected"] = str(result.rejected)
    response["X-Usage-Ignored"] = str(ignored)
    return response

"""``POST /api/v1/otlp/v1/traces``: OTLP/HTTP trace export (protobuf or JSON) from a gateway.

Each span carrying the OpenTelemetry GenAI usage attributes becomes a reported call, handed to
the same ingestion service as ``POST /api/v1/ingest/calls`` (``services.call_records_ingest``):
the same validation, deduplication by request id, window and limits. Other spans are ignored
and counted. The answer is an ``ExportTraceServiceResponse`` in the request's encoding; spans
that could not be stored are counted in its ``partial_success`` with the reasons.

Mapping of a span (docs/ingestion.md, "OpenTelemetry"); of each row the first attribute the span
has wins: the current GenAI conventions, their deprecated names, Traceloop's (OpenLLMetry) and
OpenInference's names.

==========================  ============================================================
``request_id``              ``gen_ai.response.id``; without it ``<trace id>-<span id>`` (hex)
``api_key``                 ``usage_statistics.api_key`` of the span, else of its resource
``model``                   the first of ``gen_ai.response.model``, ``llm.model_name``,
                            ``gen_ai.request.model`` that the catalog knows (by name or
                            alias) as a model the key's tenant may use
                            (``usage.ingestion.services.model_names_choose``); else the
                            first of them, which is added to the catalog unlisted
``occurred_at``             the span's end time
``input_tokens``            ``gen_ai.usage.input_tokens``, ``gen_ai.usage.prompt_tokens``,
                            ``llm.token_count.prompt`` (cached reads and cache writes included)
``output_tokens``           ``gen_ai.usage.output_tokens``, ``gen_ai.usage.completion_tokens``,
                            ``llm.token_count.completion``; else ``llm.token_count.total`` minus
                            the input; else 0 when the span reports input only (embeddings)
``cached_input_tokens``     ``gen_ai.usage.cache_read.input_tokens``,
                            ``gen_ai.usage.cache_read_input_tokens``,
                            ``llm.token_count.prompt_details.cache_read``
``reasoning_tokens``        ``gen_ai.usage.reasoning.output_tokens``,
                            ``gen_ai.usage.reasoning_tokens``, ``llm.usage.reasoning_tokens``,
                            ``llm.token_count.completion_details.reasoning``
``cache_creation_``         ``gen_ai.usage.cache_creation.input_tokens``,
``input_tokens``            ``gen_ai.usage.cache_creation_input_tokens``,
                            ``llm.token_count.prompt_details.cache_write``
``cache_creation_1h_``      ``usage_statistics.cache_creation_1h.input_tokens`` (the conventions
``input_tokens``            have no name for the one-hour part of the writes)
``duration_ms``             the span's end time minus its start time
``time_to_first_token_ms``  ``gen_ai.response.time_to_first_chunk`` (seconds, the current
                            conventions), ``gen_ai.server.time_to_first_token`` (seconds, the
                            conventions' metric name, set on spans by some servers),
                            ``ai.response.msToFirstChunk`` / ``ai.stream.msToFirstChunk``
                            (milliseconds, the Vercel AI SDK)
``status``                  ``error`` when the span's status is ERROR, else ``ok`` (the
                            conventions leave a successful call's status UNSET)
``error_type``              from ``error.type`` and the HTTP status (``usage.ingestion.errors``)
``http_status``             ``http.response.status_code`` (or the older ``http.status_code``)
``service_tier``            ``openai.response.service_tier`` (the tier billed), else
                            ``openai.request.service_tier``, else their older
                            ``gen_ai.openai.*`` names; ``default`` is ``standard``, ``auto``
                            is not reported (``validation.service_tier_of``)
==========================  ============================================================

A span is a GenAI call when it has one of the input or output attributes (or OpenInference's
total). The GenAI conventions count cached reads and cache writes inside
``gen_ai.usage.input_tokens`` (its definition: it SHOULD include all input tokens, cached ones
included; ``cache_read`` and ``cache_creation`` SHOULD be included in it), as do Traceloop's and
OpenInference's prompt counts: the input is stored as sent, never added up, and a span whose
reads plus writes exceed it is rejected (``exceeds_input``).
"""

import datetime as dt
import json
import math

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

from usage.api.body import RequestProblem, duplicate_names, parse_json, read_body, refuse_duplicates
from usage.api.dropped import log_dropped, reasons_of
from usage.api.ingest import _authenticate
from usage.ingestion import errors, services
from usage.ingestion import validation as ingest_fields
from usage.ingestion.validation import DuplicateMembers, service_tier_of
from usageproject import metrics

API_KEY_ATTRIBUTE = "usage_statistics.api_key"
# Per field, the names the dialects give it, the current GenAI convention's first.
ATTRIBUTES = {
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"),
    "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion"),
    "cached_input_tokens": (
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_read_input_tokens",
        "llm.token_count.prompt_details.cache_read",
    ),
    "reasoning_tokens": (
        "gen_ai.usage.reasoning.output_tokens",
        "gen_ai.usage.reasoning_tokens",
        "llm.usage.reasoning_tokens",
        "llm.token_count.completion_details.reasoning",
    ),
    "cache_creation_input_tokens": (
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
        "llm.token_count.prompt_details.cache_write",
    ),
    "cache_creation_1h_input_tokens": ("usage_statistics.cache_creation_1h.input_tokens",),
}
TOTAL_TOKENS = "llm.token_count.total"
MODEL_ATTRIBUTES = ("gen_ai.response.model", "llm.model_name", "gen_ai.request.model")
SERVICE_TIER_ATTRIBUTES = (
    "openai.response.service_tier",
    "gen_ai.openai.response.service_tier",
    "openai.request.service_tier",
    "gen_ai.openai.request.service_tier",
)
_GENAI_MARKERS = (*ATTRIBUTES["input_tokens"], *ATTRIBUTES["output_tokens"], TOTAL_TOKENS)
_READ = frozenset(
    {*(name for names in ATTRIBUTES.values() for name in names), TOTAL_TOKENS, *MODEL_ATTRIBUTES}
    | {API_KEY_ATTRIBUTE, "gen_ai.response.id"}
)
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


# The protobuf JSON mapping of each scalar AnyValue member: anything else is not OTLP/JSON
# (and a list or object would otherwise reach the mapping as an unhashable "model name").
_JSON_SCALARS = (
    ("stringValue", (str,), "a string"),
    ("doubleValue", (int, float, str), "a number"),  # "NaN", "Infinity" are strings in that mapping
    ("boolValue", (bool,), "true or false"),
)


def _json_value(value):
    value = _object(value, "an attribute value")
    if "intValue" in value:
        return _json_int(value["intValue"], "intValue")
    for member, kinds, description in _JSON_SCALARS:
        if member in value:
            if not isinstance(value[member], kinds):
                raise _Bad(f"{member} must be {description}")
            return value[member]
    return None


def _json_pairs(items):
    pairs = []
    for item in _list_of(items, "attributes"):
        key = _object(item, "an attribute").get("key")
        if not isinstance(key, str):
            raise _Bad("an attribute's key must be a string")
        pairs.append((key, _json_value(item.get("value") or {})))
    return pairs


def _json_attributes(items):
    return dict(_json_pairs(items))


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

    __slots__ = (
        "attributes",
        "pairs",
        "trace_id",
        "span_id",
        "start_time_unix_nano",
        "end_time_unix_nano",
        "status_code",
    )

    def __init__(self, span):
        span = _object(span, "a span")
        self.pairs = _json_pairs(span.get("attributes"))
        self.attributes = dict(self.pairs)
        self.trace_id = _hex_id(span.get("traceId"), "traceId", 16)
        self.span_id = _hex_id(span.get("spanId"), "spanId", 8)
        start, end = span.get("startTimeUnixNano"), span.get("endTimeUnixNano")
        self.start_time_unix_nano = _json_int(start, "startTimeUnixNano") if start not in (None, "") else 0
        self.end_time_unix_nano = _json_int(end, "endTimeUnixNano") if end not in (None, "") else 0
        self.status_code = _json_status_code(span.get("status"))


# The protobuf JSON mapping writes an enum as its number or, from some encoders, its name.
_STATUS_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
STATUS_ERROR = 2


def _json_status_code(status):
    code = _object(status, "a span's status").get("code", 0) if status is not None else 0
    if type(code) is int:
        return code
    if isinstance(code, str) and code in _STATUS_CODES:
        return _STATUS_CODES[code]
    raise _Bad("a span's status code must be a number or a STATUS_CODE_ name")


def _json_spans(payload):
    """[(span, resource attributes)] of an OTLP/JSON export request."""
    spans = []
    for resource_spans in _list_of(_object(payload, "the body").get("resourceSpans"), "resourceSpans"):
        resource_spans = _object(resource_spans, "resourceSpans")
        resource = _json_attributes(_object(resource_spans.get("resource") or {}, "resource").get("attributes"))
        for scope_spans in _list_of(resource_spans.get("scopeSpans"), "scopeSpans"):
            for span in _list_of(_object(scope_spans, "scopeSpans").get("spans"), "spans"):
                spans.append((_JsonSpan(span), resource))
    return spans


def _decode(request):
    """([(span, resource attributes)], media type of the answer)."""
    media = (request.content_type or "").lower()
    if media not in (PROTOBUF, JSON):
        raise RequestProblem(415, "Unsupported media type", f"Send {PROTOBUF} or {JSON}.")
    data = read_body(request)
    if media == JSON:
        payload = parse_json(data)
        refuse_duplicates(duplicate_names(payload))
    try:
        if media == JSON:
            return _json_spans(payload), media
        message = ExportTraceServiceRequest()
        message.ParseFromString(data)
    except (DecodeError, ValueError, RecursionError) as exc:  # _Bad and UnicodeDecodeError are ValueErrors
        raise RequestProblem(400, "Invalid request", f"The body is not an OTLP trace export: {str(exc)[:200]}") from exc
    spans: list[tuple[object, dict[str, object]]] = []
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


def _first(attributes, names):
    return next((attributes[name] for name in names if attributes.get(name) is not None), None)


def _output_tokens(attributes, input_tokens):
    output = _first(attributes, ATTRIBUTES["output_tokens"])
    if output is not None:
        return output
    total = attributes.get(TOTAL_TOKENS)
    if type(total) is int and type(input_tokens) is int and total >= input_tokens:
        return total - input_tokens
    # Input only, as the conventions give embeddings: nothing was generated. (With no input
    # either, the service rejects the call naming input_tokens.)
    return 0 if input_tokens is not None else None


def span_call(span, resource_attributes):
    """The reported call (a raw item of the ingestion contract) of a span, or None for a non-GenAI span.

    ``model`` is a tuple of candidate names here; ``resolve_models`` picks one.
    """
    pairs = span.pairs if isinstance(span, _JsonSpan) else [(item.key, _value(item.value)) for item in span.attributes]
    attributes = dict(pairs)
    if not any(attributes.get(name) is not None for name in _GENAI_MARKERS):
        return None
    request_id = attributes.get("gen_ai.response.id") or f"{span.trace_id.hex()}-{span.span_id.hex()}"
    end = _instant(span.end_time_unix_nano)
    input_tokens = _first(attributes, ATTRIBUTES["input_tokens"])
    call = {
        "request_id": request_id,
        "api_key": attributes.get(API_KEY_ATTRIBUTE, resource_attributes.get(API_KEY_ATTRIBUTE)),
        "model": tuple(dict.fromkeys(attributes[name] for name in MODEL_ATTRIBUTES if attributes.get(name))),
        "occurred_at": end.isoformat() if end else None,
        "input_tokens": input_tokens,
        "output_tokens": _output_tokens(attributes, input_tokens),
    }
    for field in ("cached_input_tokens", "reasoning_tokens", *ingest_fields.CACHE_WRITE_FIELDS):
        value = _first(attributes, ATTRIBUTES[field])
        if value is not None:
            call[field] = value
    call.update(_performance(span, attributes))
    tier = next(
        (tier for name in SERVICE_TIER_ATTRIBUTES if (tier := service_tier_of(attributes.get(name))) is not None), None
    )
    if tier is not None:
        call["service_tier"] = tier
    conflicts = _conflicting(pairs)
    if conflicts:  # rejected by the service as duplicate_field, as a JSON member named twice is
        call = DuplicateMembers(call)
        call.duplicates = conflicts
    return call


def _conflicting(pairs):
    """The attributes read for the call that the span names twice with different values: which
    one was meant is unknown (OpenTelemetry requires unique keys)."""
    first: dict[str, object] = {}
    conflicts: dict[str, object] = {}
    for key, value in pairs:
        if key in _READ and repr(first.setdefault(key, value)) != repr(value):  # repr: NaN equals itself
            conflicts[key] = None
    return tuple(conflicts)


# Where instrumentations put the time to the first token, and its unit (milliseconds per unit).
TTFT_ATTRIBUTES = (
    ("gen_ai.response.time_to_first_chunk", 1000),
    ("gen_ai.server.time_to_first_token", 1000),
    ("ai.response.msToFirstChunk", 1),
    ("ai.stream.msToFirstChunk", 1),
)


def _performance(span, attributes):
    """Duration, time to first token, status and error of a GenAI span (only what it reports)."""
    found = {}
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if start and end:
        found["duration_ms"] = round((end - start) / 1_000_000)
    ttft = _time_to_first_token(attributes)
    if ttft is not None:
        duration = found.get("duration_ms")
        # Two roundings (the span's times and the attribute's) may put it a millisecond past the end.
        found["time_to_first_token_ms"] = duration if type(ttft) is int and duration == ttft - 1 else ttft
    http_status = errors.http_status_of(_first(attributes, ("http.response.status_code", "http.status_code")))
    if http_status is not None:
        found["http_status"] = http_status
    code = span.status_code if isinstance(span, _JsonSpan) else span.status.code
    found["status"] = "error" if code == STATUS_ERROR else "ok"
    if found["status"] == "error":
        found["error_type"] = errors.error_type_of(attributes.get("error.type"), http_status)
    return found


def _time_to_first_token(attributes):
    """Whole milliseconds; a value that is no number is handed on for validation to name."""
    for name, scale in TTFT_ATTRIBUTES:
        value = attributes.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return value
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return round(value * scale)
        return str(value)
    return None


def resolve_models(calls):
    """Each call's model: the first candidate the catalog knows by name or alias as a model its key's
    tenant may use, else the first one (``services.model_names_choose``).

    A gateway names the deployment it answered with (``deepseek-r1``) where the client asked for
    the catalog's model (``public/deepseek-r1``): trying both keeps the call on the priced model.
    """
    chosen = services.model_names_choose([(call["api_key"], call["model"]) for call in calls]) if calls else []
    for call, model in zip(calls, chosen, strict=True):
        call["model"] = model
    return calls


def spans_to_calls(spans):
    """([raw call], [span label], [(reason, span label)] of the ignored spans) of [(span, resource attributes)]."""
    calls, labels, ignored = [], [], []
    for span, resource_attributes in spans:
        call = span_call(span, resource_attributes)
        label = f"{span.trace_id.hex()}/{span.span_id.hex()}"
        if call is None:
            ignored.append(("ignored: not a GenAI span (no token usage attributes)", label))
        else:
            calls.append(call)
            labels.append(label)
    return resolve_models(calls), labels, ignored


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
        calls, labels, ignored_spans = spans_to_calls(spans)
        ignored = len(ignored_spans)
        limit = settings.INGEST_MAX_ITEMS
        if len(calls) > limit:
            raise RequestProblem(
                413, "Content too large", f"At most {limit} GenAI spans per request, got {len(calls)}."
            )
        result = services.call_records_ingest(items=calls) if calls else services.IngestResult()
    except RequestProblem as problem:
        return _status_answer(problem, media)
    log_dropped("OTLP traces", [*reasons_of(result, labels), *ignored_spans])
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

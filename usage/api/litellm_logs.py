"""``POST /api/v1/litellm/logs``: LiteLLM proxy's standard logging payloads become calls.

LiteLLM's ``generic_api`` callback posts its ``StandardLoggingPayload`` objects as a JSON array
(``log_format: json_array``, its default), one object (``single``) or NDJSON (``ndjson``). Each
one becomes a reported call, handed to the same ingestion service as
``POST /api/v1/ingest/calls``: the same validation, deduplication, window and limits. A failed
call (``status`` other than ``success``) is a call too: stored with ``status`` ``error``, its
error type and its tokens if the provider billed any (0 when LiteLLM reports none). The answer
is the ingestion API's (``accepted``, ``duplicates``, ``rejected``, ``errors`` by index) plus
``ignored`` (always 0 since failures are stored; kept for clients that read it).

Mapping (docs/ingestion.md, "LiteLLM"):

=======================  =================================================================
``request_id``           ``id`` (the provider's response id); else ``litellm_call_id``
``api_key``              ``metadata.spend_logs_metadata.usage_statistics_api_key``, else
                         ``metadata.user_api_key_alias``, else ``metadata.user_api_key_hash``:
                         it must be this product's key public id (give the virtual key that alias)
``model``                ``model_group`` (the name clients asked the proxy for), else ``model``
``occurred_at``          ``endTime`` (Unix seconds)
``input_tokens``         ``prompt_tokens`` (which, as here, include cached reads and cache
                         writes); an Anthropic-style usage object (``input_tokens`` without
                         ``prompt_tokens``: the input *outside* the cache) is added up:
                         ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens``
``output_tokens``        ``completion_tokens``
``cached_input_tokens``  ``metadata.usage_object.prompt_tokens_details.cached_tokens``, else
                         ``metadata.usage_object.cache_read_input_tokens``
``reasoning_tokens``     ``metadata.usage_object.completion_tokens_details.reasoning_tokens``
``cache_creation_``      ``metadata.usage_object.prompt_tokens_details.cache_creation_tokens``,
``input_tokens``         else ``metadata.usage_object.cache_creation_input_tokens``
``cache_creation_1h_``   ``...prompt_tokens_details.cache_creation_token_details``
``input_tokens``         ``.ephemeral_1h_input_tokens``, else ``metadata.usage_object``
                         ``.cache_creation.ephemeral_1h_input_tokens`` (Anthropic's own form)
``duration_ms``          ``endTime - startTime``
``time_to_first_token``  ``completionStartTime - startTime`` (for a call that did not stream,
``_ms``                  LiteLLM sets it to ``endTime``: the whole answer is the first token)
``status``               ``ok`` for ``success``, else ``error``
``error_type``           from ``error_information.error_class``, else its ``error_code`` (the
                         HTTP status) (``usage.ingestion.errors``)
``http_status``          ``error_information.error_code`` when it is an HTTP status
``service_tier``         ``cost_breakdown.service_tier`` (the tier LiteLLM priced the call at;
                         ``default`` is ``standard``, ``auto`` not reported)
=======================  =================================================================
"""

import datetime as dt
from typing import Any

from django.conf import settings
from django.http import JsonResponse

from usage.api.body import RequestProblem, duplicate_names, parse_json, read_body
from usage.api.dropped import log_dropped, reasons_of
from usage.api.ingest import service_endpoint
from usage.ingestion import errors, services
from usage.ingestion import validation as ingest
from usageproject import metrics

MEDIA_TYPES = ("application/json", "application/x-ndjson", "application/jsonl", "text/plain", "")


def _body(request):
    media = (request.content_type or "").lower()
    if media not in MEDIA_TYPES:
        raise RequestProblem(415, "Unsupported media type", "Send JSON (an array or one object) or NDJSON.")
    data = read_body(request)
    try:
        payload = ingest.loads(data)
    except (ValueError, RecursionError):
        payload = [parse_json(line, "JSON nor NDJSON") for line in data.splitlines() if line.strip()]
    return payload if isinstance(payload, list) else [payload]


def _get(mapping, *path):
    for name in path:
        mapping = mapping.get(name) if isinstance(mapping, dict) else None
    return mapping


def _instant(seconds):
    if type(seconds) not in (int, float):
        return seconds  # the ingestion service rejects it, naming occurred_at
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return "out of range"


def payload_call(payload: Any) -> Any:
    """The reported call (an item of the ingestion contract) of one payload that is not ignored."""
    if not isinstance(payload, dict):
        return payload  # rejected by the service as not_an_object (null included)
    metadata: Any = payload.get("metadata") if isinstance(payload.get("metadata"), dict) else {}
    usage = metadata.get("usage_object") if isinstance(metadata.get("usage_object"), dict) else {}
    call = {
        "request_id": payload.get("id") or payload.get("litellm_call_id"),
        "api_key": _get(metadata, "spend_logs_metadata", "usage_statistics_api_key")
        or metadata.get("user_api_key_alias")
        or metadata.get("user_api_key_hash"),
        "model": payload.get("model_group") or payload.get("model"),
        "occurred_at": _instant(payload.get("endTime")),
        # A failure the provider billed nothing for is logged with no counts: 0 tokens, not a rejection.
        "input_tokens": _tokens(payload, "prompt_tokens"),
        "output_tokens": _tokens(payload, "completion_tokens"),
    }
    call.update(_performance(payload))
    call.update(_token_classes(usage))
    if _anthropic_style(payload, usage):
        call["input_tokens"] = _added_up(usage, call)
    breakdown = payload.get("cost_breakdown")
    tier = ingest.service_tier_of(breakdown.get("service_tier")) if isinstance(breakdown, dict) else None
    if tier is not None:
        call["service_tier"] = tier
    duplicates = duplicate_names(payload)
    return _duplicated(call, duplicates) if duplicates else call


def _first(*values):
    return next((value for value in values if value is not None), None)


def _token_classes(usage):
    """The usage object's cached reads, reasoning, cache writes and one-hour writes, where reported."""
    found = {
        "cached_input_tokens": _first(
            _get(usage, "prompt_tokens_details", "cached_tokens"), usage.get("cache_read_input_tokens")
        ),
        "reasoning_tokens": _get(usage, "completion_tokens_details", "reasoning_tokens"),
        "cache_creation_input_tokens": _first(
            _get(usage, "prompt_tokens_details", "cache_creation_tokens"), usage.get("cache_creation_input_tokens")
        ),
        "cache_creation_1h_input_tokens": _first(
            _get(usage, "prompt_tokens_details", "cache_creation_token_details", "ephemeral_1h_input_tokens"),
            _get(usage, "cache_creation", "ephemeral_1h_input_tokens"),
        ),
    }
    return {field: value for field, value in found.items() if value is not None}


def _anthropic_style(payload, usage):
    """A usage object as Anthropic reports it: ``input_tokens`` counts only the input outside the
    cache, and no ``prompt_tokens`` (LiteLLM's total, cache included) is given anywhere."""
    return payload.get("prompt_tokens") is None and "prompt_tokens" not in usage and "input_tokens" in usage


def _added_up(usage, call):
    """Every input token: Anthropic's uncached input plus cache reads plus cache writes. A value
    that is not a whole number is passed on as sent, for the service to reject by name."""
    parts = [usage.get("input_tokens"), call.get("cached_input_tokens", 0), call.get("cache_creation_input_tokens", 0)]
    if all(type(part) is int and part >= 0 for part in parts):
        return sum(parts)
    return usage.get("input_tokens")


def _tokens(payload, name):
    value = payload.get(name)
    return 0 if value is None and _failed(payload) else value


def _milliseconds(start, end):
    """Whole milliseconds from ``start`` to ``end`` (Unix seconds); None unless both are numbers."""
    if type(start) not in (int, float) or type(end) not in (int, float):
        return None
    try:
        return round((end - start) * 1000)
    except (OverflowError, ValueError):  # inf or nan reach here only from a non-JSON body; be safe
        return None


def _performance(payload):
    """The call's performance fields: durations, and for a failure its status, type and HTTP status."""
    start = payload.get("startTime")
    found = {
        "duration_ms": _milliseconds(start, payload.get("endTime")),
        "time_to_first_token_ms": _milliseconds(start, payload.get("completionStartTime")),
        "status": "ok",
    }
    if _failed(payload):
        information = payload.get("error_information") if isinstance(payload.get("error_information"), dict) else {}
        http_status = errors.http_status_of(information.get("error_code"))
        name = information.get("error_class") or information.get("error_code")
        found.update(status="error", error_type=errors.error_type_of(name, http_status), http_status=http_status)
    return {field: value for field, value in found.items() if value is not None}


def _duplicated(call, names):
    """``call`` marked so that the service rejects it with ``duplicate_field`` naming each member the
    payload named twice (anywhere in it): JSON leaves which value wins undefined."""
    marked = ingest.DuplicateMembers(call)
    marked.duplicates = tuple(names)
    return marked


@service_endpoint
def logs(request):
    payloads = _body(request)
    limit = settings.INGEST_MAX_ITEMS
    if len(payloads) > limit:
        raise RequestProblem(413, "Content too large", f"At most {limit} payloads per request, got {len(payloads)}.")
    calls = [payload_call(payload) for payload in payloads]
    result = services.call_records_ingest(items=calls) if calls else services.IngestResult()
    labels = [_label(payload, index) for index, payload in enumerate(payloads)]
    log_dropped("LiteLLM logs", reasons_of(result, labels))
    metrics.ingest_counted("litellm", result)
    return JsonResponse({**result.as_dict(), "ignored": 0})


def _failed(payload):
    """A failed call: LiteLLM logs it with its error (and usage only if the provider billed some)."""
    return payload.get("status", "success") != "success"


def _label(payload, index):
    """How a log line names a payload: its position and, when it has a usable one, its id."""
    ident = payload.get("id") if isinstance(payload, dict) else None
    return f"payload {index}" + (f" ({ident[:80]})" if isinstance(ident, str) else "")

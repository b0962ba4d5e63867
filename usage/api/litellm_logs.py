"""``POST /api/v1/litellm/logs``: LiteLLM proxy's standard logging payloads become calls.

LiteLLM's ``generic_api`` callback posts its ``StandardLoggingPayload`` objects as a JSON array
(``log_format: json_array``, its default), one object (``single``) or NDJSON (``ndjson``). Each
successful one becomes a reported call, handed to the same ingestion service as
``POST /api/v1/ingest/calls``: the same validation, deduplication, window and limits. Failed calls
(``status`` other than ``success``) carry no usage and are ignored and counted. The answer is the
ingestion API's (``accepted``, ``duplicates``, ``rejected``, ``errors`` by index) plus ``ignored``.

Mapping (docs/ingestion.md, "LiteLLM"):

=======================  =================================================================
``request_id``           ``id`` (the provider's response id); else ``litellm_call_id``
``api_key``              ``metadata.spend_logs_metadata.usage_statistics_api_key``, else
                         ``metadata.user_api_key_alias``, else ``metadata.user_api_key_hash``:
                         it must be this product's key public id (give the virtual key that alias)
``model``                ``model_group`` (the name clients asked the proxy for), else ``model``
``occurred_at``          ``endTime`` (Unix seconds)
``input_tokens``         ``prompt_tokens`` (which, as here, include cached tokens)
``output_tokens``        ``completion_tokens``
``cached_input_tokens``  ``metadata.usage_object.prompt_tokens_details.cached_tokens``
``reasoning_tokens``     ``metadata.usage_object.completion_tokens_details.reasoning_tokens``
=======================  =================================================================
"""

import datetime as dt

from django.conf import settings
from django.http import JsonResponse

from usage.api.body import RequestProblem, duplicate_names, parse_json, read_body
from usage.api.dropped import log_dropped, reasons_of
from usage.api.ingest import service_endpoint
from usage.ingestion import services
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


def payload_call(payload):
    """The reported call (an item of the ingestion contract) of one payload that is not ignored."""
    if not isinstance(payload, dict):
        return payload  # rejected by the service as not_an_object (null included)
    metadata = payload.get("metadata") if isinstance(payload.get("metadata"), dict) else {}
    usage = metadata.get("usage_object") if isinstance(metadata.get("usage_object"), dict) else {}
    call = {
        "request_id": payload.get("id") or payload.get("litellm_call_id"),
        "api_key": _get(metadata, "spend_logs_metadata", "usage_statistics_api_key")
        or metadata.get("user_api_key_alias")
        or metadata.get("user_api_key_hash"),
        "model": payload.get("model_group") or payload.get("model"),
        "occurred_at": _instant(payload.get("endTime")),
        "input_tokens": payload.get("prompt_tokens"),
        "output_tokens": payload.get("completion_tokens"),
    }
    cached = _get(usage, "prompt_tokens_details", "cached_tokens")
    reasoning = _get(usage, "completion_tokens_details", "reasoning_tokens")
    if cached is not None:
        call["cached_input_tokens"] = cached
    if reasoning is not None:
        call["reasoning_tokens"] = reasoning
    duplicates = duplicate_names(payload)
    return _duplicated(call, duplicates) if duplicates else call


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
    calls, positions, ignored = [], [], []
    for index, payload in enumerate(payloads):
        if _failed(payload):
            ignored.append((f"ignored: status {str(payload.get('status'))[:40]}", _label(payload, index)))
        else:
            calls.append(payload_call(payload))
            positions.append(index)
    result = services.call_records_ingest(items=calls) if calls else services.IngestResult()
    labels = [_label(payloads[index], index) for index in positions]
    log_dropped("LiteLLM logs", [*reasons_of(result, labels), *ignored])
    metrics.ingest_counted("litellm", result, ignored=len(ignored))
    answer = result.as_dict()
    for error in answer["errors"]:
        error["index"] = positions[error["index"]]  # the payload's position in the request
    return JsonResponse({**answer, "ignored": len(ignored)})


def _failed(payload):
    """A failed call: LiteLLM logs it with no usage."""
    return isinstance(payload, dict) and payload.get("status", "success") != "success"


def _label(payload, index):
    """How a log line names a payload: its position and, when it has a usable one, its id."""
    ident = payload.get("id") if isinstance(payload, dict) else None
    return f"payload {index}" + (f" ({ident[:80]})" if isinstance(ident, str) else "")

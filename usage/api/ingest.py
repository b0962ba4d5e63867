"""The gateway's endpoints: report calls, verify keys. Service tokens only, no cookies, no CSRF.

Whole-request errors are RFC 9457 problems; per-item errors of an ingested batch are part of
its 200 answer. Nothing a client sends may end in a 500: every parse step is guarded here,
and ``usage.ingestion.validation`` rejects per item whatever the database could not store.
"""

import functools

from django.conf import settings
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from accounts.models import ServiceToken
from accounts.selectors import api_key_by_secret
from accounts.services import credential_touch
from usage.api.body import RequestProblem, parse_json, read_body, refuse_duplicates
from usage.budgets.services import budget_state_for_key
from usage.ingestion import services
from usage.ingestion import validation as ingest
from usageproject import metrics


def service_endpoint(view):
    """POST only, ``Authorization: Bearer svc_...``, and problems rendered as problem+json."""

    @csrf_exempt
    @functools.wraps(view)
    def wrapper(request):
        try:
            if request.method != "POST":
                raise RequestProblem(405, "Method not allowed", "Use POST.", {"Allow": "POST"})
            request.service_token = _authenticate(request)
            return view(request)
        except RequestProblem as problem:
            return problem.response()

    return wrapper


def _authenticate(request):
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    token = ServiceToken.find_by_secret(secret.strip()) if scheme.lower() == "bearer" else None
    now = timezone.now()
    if token is None or token.status_at(now) != "active":
        raise RequestProblem(
            401,
            "Authentication required",
            "Send 'Authorization: Bearer <service token>' with an active service token.",
            {"WWW-Authenticate": 'Bearer realm="usage-ingest"'},
        )
    credential_touch(token, at=now)
    return token


def _json_body(request):
    """The parsed JSON body, of the right media type, read by the gateway's one body reader."""
    content_type = request.content_type or ""
    charset = request.content_params.get("charset", "utf-8").lower()
    if content_type.lower() != "application/json" or charset not in ("utf-8", "utf8"):
        raise RequestProblem(415, "Unsupported media type", "Send 'Content-Type: application/json' (UTF-8).")
    return parse_json(read_body(request))


def _json_member(request, name, kind, description):
    """Member ``name`` of the JSON object in the body, which must be of type ``kind``."""
    body = _json_body(request)
    if isinstance(body, ingest.DuplicateMembers):
        # Only the top level here: a call naming a field twice is rejected on its own (duplicate_field).
        refuse_duplicates(list(body.duplicates))
    value = body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, kind):
        raise RequestProblem(400, "Invalid request", f"The body must be a JSON object with {description}.")
    return value


@service_endpoint
def ingest_calls(request):
    """``POST /api/v1/ingest/calls`` ``{"calls": [...]}`` -> accepted / duplicates / rejected + errors."""
    calls = _json_member(request, "calls", list, 'a list "calls"')
    limit = settings.INGEST_MAX_ITEMS
    if len(calls) > limit:
        raise RequestProblem(413, "Content too large", f"At most {limit} calls per request, got {len(calls)}.")
    result = services.call_records_ingest(items=calls)
    metrics.ingest_counted("calls", result)
    return JsonResponse(result.as_dict())


@service_endpoint
def verify_key(request):
    """``POST /api/v1/keys/verify`` ``{"key": "sk_..."}`` -> the key's public id, tenant and status."""
    secret = _json_member(request, "key", str, 'a string "key"')
    key = api_key_by_secret(secret)
    if key is None:
        return JsonResponse({"public_id": None, "tenant": None, "status": "unknown"})
    answer = {"public_id": key.public_id, "tenant": key.tenant.slug, "status": key.status}
    budget = budget_state_for_key(key=key)  # only when an enforcing budget applies (README "Budgets")
    if budget is not None:
        answer["budget"] = budget
    return JsonResponse(answer)

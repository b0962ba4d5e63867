"""OpenAPI pieces drf-spectacular cannot infer: the bearer scheme and the error responses."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse

from usage.api.serializers import ProblemSerializer

PROBLEM = "application/problem+json"


class AccessTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.AccessTokenAuthentication"
    name = "accessToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A tenant's access token (uat_...), from the Access Tokens page or "
            "`manage.py create_access_token`.",
        }


def problem(description):
    return OpenApiResponse(ProblemSerializer, description=description)


ERRORS = {
    (400, PROBLEM): problem("A parameter is invalid: an unknown or foreign api_key or model, a bad date range."),
    (401, PROBLEM): problem("No, an invalid, a revoked or an expired access token."),
    (404, PROBLEM): problem("The tenant parameter names a tenant you cannot read."),
    (429, PROBLEM): problem("Too many requests for this token; retry after Retry-After seconds."),
}


def responses(ok):
    """The success response plus the problem responses every endpoint can give."""
    return {200: ok, **ERRORS}


# --- The gateway's endpoints -------------------------------------------------------------
# They are plain Django views (service tokens, no DRF), so drf-spectacular cannot see them;
# this hook adds them as they are (usage.api.ingest, usage.ingestion.validation).


def _int(description, *, nullable=False):
    from usage.models import MAX_TOKENS

    schema = {"type": "integer", "minimum": 0, "maximum": MAX_TOKENS, "description": description}
    return {**schema, "nullable": True} if nullable else schema


def _gateway_components(max_items):
    from usage.ingestion.validation import TEXT_MAX_LENGTH

    call = {
        "type": "object",
        "required": ["request_id", "api_key", "model", "occurred_at", "input_tokens", "output_tokens"],
        "properties": {
            "request_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": TEXT_MAX_LENGTH,
                "description": "The gateway's id of the request; a call already stored under it is a duplicate.",
            },
            "api_key": {
                "type": "string",
                "minLength": 1,
                "maxLength": TEXT_MAX_LENGTH,
                "description": "Public id of the API key the call was made with; the call is the key's tenant's.",
            },
            "model": {
                "type": "string",
                "minLength": 1,
                "maxLength": TEXT_MAX_LENGTH,
                "description": "Model name; outer whitespace is trimmed, a blank name is rejected.",
            },
            "occurred_at": {
                "type": "string",
                "format": "date-time",
                "description": "RFC 3339 with an offset; within INGEST_WINDOW_PAST_DAYS before now and "
                "INGEST_WINDOW_FUTURE_SECONDS after.",
            },
            "input_tokens": _int("Input tokens, cached reads and cache writes included."),
            "output_tokens": _int("Output tokens, reasoning ones included."),
            "cached_input_tokens": _int("At most input_tokens (exceeds_input); null: not reported.", nullable=True),
            "reasoning_tokens": _int("At most output_tokens (exceeds_output); null: not reported.", nullable=True),
            "service_tier": {
                "type": "string",
                "enum": ["standard", "batch", "flex", "priority"],
                "nullable": True,
                "description": "The provider's service tier the call ran at; null or absent: not reported (priced as"
                " standard).",
            },
            "cache_creation_input_tokens": _int(
                "Cache writes (5-minute and one-hour); cached_input_tokens plus these at most input_tokens "
                "(exceeds_input); null: not reported.",
                nullable=True,
            ),
            "cache_creation_1h_input_tokens": _int(
                "The one-hour part of the cache writes, at most cache_creation_input_tokens "
                "(exceeds_cache_creation); null: not reported.",
                nullable=True,
            ),
        },
    }
    item_error = {
        "type": "object",
        "properties": {
            "index": {"type": "integer", "description": "Position of the call in the batch."},
            "request_id": {"type": "string", "nullable": True},
            "field": {"type": "string", "nullable": True, "description": "The member at fault."},
            "code": {
                "type": "string",
                "description": "e.g. required, invalid_type, out_of_range, unknown_api_key, revoked_api_key, "
                "outside_window, exceeds_input, exceeds_output, duplicate_field, conflict.",
            },
            "detail": {"type": "string"},
        },
    }
    return {
        "GatewayCall": call,
        "IngestRequest": {
            "type": "object",
            "required": ["calls"],
            "properties": {
                "calls": {
                    "type": "array",
                    # Not a constraint of the request: each call is checked on its own, and one that
                    # breaks a GatewayCall rule is rejected in the 200 answer (errors), not with a 4xx.
                    "items": {"description": "A call as GatewayCall describes it."},
                    "description": f"At most {max_items} calls (more: 413).",
                }
            },
            "description": "Members may be named once only (duplicate_member). Each call is checked on its own "
            "against the rules of GatewayCall: a bad one is rejected in the 200 answer, the others are stored.",
        },
        "IngestResult": {
            "type": "object",
            "required": ["accepted", "duplicates", "rejected", "errors"],
            "properties": {
                "accepted": {"type": "integer", "description": "Calls stored."},
                "duplicates": {"type": "integer", "description": "Calls already stored with the same content."},
                "rejected": {"type": "integer", "description": "Calls refused; each has items in errors."},
                "errors": {"type": "array", "items": item_error},
            },
        },
        "VerifyRequest": {
            "type": "object",
            "required": ["key"],
            "properties": {"key": {"type": "string", "description": "The API key's secret (sk_...)."}},
        },
        "VerifyResult": {
            "type": "object",
            "required": ["public_id", "tenant", "status"],
            "properties": {
                "public_id": {"type": "string", "nullable": True, "description": "null for an unknown key."},
                "tenant": {"type": "string", "nullable": True, "description": "The key's tenant slug."},
                "status": {"type": "string", "enum": ["active", "revoked", "expired", "unknown"]},
                "budget": {
                    "type": "object",
                    "description": "Only when an enforcing budget applies (README 'Budgets').",
                },
            },
        },
    }


def _gateway_operation(summary, request, result, description):
    def problem_ref(text):
        return {"description": text, "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}}

    return {
        "post": {
            "operationId": summary.lower().replace(" ", "_"),
            "summary": summary,
            "description": description,
            "tags": ["gateway"],
            "security": [{"serviceToken": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{request}"}}},
            },
            "responses": {
                "200": {
                    "description": "Done.",
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{result}"}}},
                },
                "400": problem_ref("Malformed JSON, a body of the wrong shape, or a member named twice."),
                "401": problem_ref("No, an unknown, a revoked or an expired service token."),
                "405": problem_ref("Only POST."),
                "411": problem_ref("A chunked body on a server that cannot read it: send a Content-Length."),
                "413": problem_ref("A body over INGEST_MAX_BODY_BYTES, or more than INGEST_MAX_ITEMS calls."),
                "415": problem_ref("Not application/json in UTF-8."),
            },
        }
    }


def gateway_paths(result, generator, request, public):
    """drf-spectacular postprocessing hook: the ingestion and key-verification endpoints."""
    from django.conf import settings

    components = result.setdefault("components", {})
    components.setdefault("schemas", {}).update(_gateway_components(settings.INGEST_MAX_ITEMS))
    components.setdefault("securitySchemes", {})["serviceToken"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "The platform gateway's service token (svc_...), from `manage.py create_service_token`.",
    }
    paths = result.setdefault("paths", {})
    paths["/api/v1/ingest/calls"] = _gateway_operation(
        "Report calls",
        "IngestRequest",
        "IngestResult",
        f"Up to {settings.INGEST_MAX_ITEMS} calls a request; duplicates (same request_id and content) are "
        "counted, not stored again. The API key and model must belong to the key's tenant (a private model "
        "of another tenant is rejected).",
    )
    paths["/api/v1/keys/verify"] = _gateway_operation(
        "Verify key",
        "VerifyRequest",
        "VerifyResult",
        "The key's public id, tenant and status; status unknown (200) for a secret that is no key.",
    )
    return result

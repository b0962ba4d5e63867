"""JSON Schemas of OpenAI's organization Usage (completions) and Costs pages, written here by hand.

Facts taken from OpenAI's published OpenAPI spec (github.com/openai/openai-openapi, openapi.json
at commit f85dbe2; components ``UsageResponse``, ``UsageTimeBucket``, ``UsageCompletionsResult``,
``CostsResult``): member names, types, which members are required, which may be null. Members
the ``openai`` package 3.51.0 knows from OpenAI's newer spec and the published one does not yet
have are added as optional, with the types that package gives them: ``api_source``
("agents_api" or "unlabeled", null when not grouped by it), the costs result's ``user_id``, and
the 30-minute and 12-hour cache-write counts.

Stricter than the spec in one way, on purpose: no member outside the spec's
(``additionalProperties: false``) unless ``extension`` names one, so that an answer can not grow
a member a consumer does not expect (a nested ``x_usage_statistics`` by default broke one).
"""

from typing import Any

import jsonschema

DIALECT = "https://json-schema.org/draft/2020-12/schema"
INTEGER = {"type": "integer"}
NULLABLE_STRING = {"type": ["string", "null"]}
API_SOURCE = {"enum": ["agents_api", "unlabeled", None]}

# UsageCompletionsResult: every count is an integer (never null); only four members are required.
COMPLETIONS_COUNTS = (
    "input_tokens",
    "input_cached_tokens",
    "input_cache_write_tokens",
    "input_cache_write_30m_tokens",
    "input_cache_write_12h_tokens",
    "input_uncached_tokens",
    "output_tokens",
    "input_text_tokens",
    "output_text_tokens",
    "input_cached_text_tokens",
    "input_audio_tokens",
    "input_cached_audio_tokens",
    "output_audio_tokens",
    "input_image_tokens",
    "input_cached_image_tokens",
    "output_image_tokens",
    "num_model_requests",
)
COMPLETIONS_RESULT = {
    "type": "object",
    "properties": {
        "object": {"const": "organization.usage.completions.result"},
        **dict.fromkeys(COMPLETIONS_COUNTS, INTEGER),
        "project_id": NULLABLE_STRING,
        "user_id": NULLABLE_STRING,
        "api_key_id": NULLABLE_STRING,
        "model": NULLABLE_STRING,
        "batch": {"type": ["boolean", "null"]},
        "service_tier": NULLABLE_STRING,
        "api_source": API_SOURCE,
    },
    "required": ["object", "input_tokens", "output_tokens", "num_model_requests"],
}

# CostsResult: only ``object`` is required; the amount's currency is lower-case ISO 4217.
QUANTITY_UNITS = [
    "tokens",
    "1000_tokens",
    "duration_seconds",
    "duration_minutes",
    "duration_hours",
    "gibibyte_hours",
    "images",
    "characters",
]
COSTS_RESULT = {
    "type": "object",
    "properties": {
        "object": {"const": "organization.costs.result"},
        "amount": {
            "type": "object",
            "properties": {"value": {"type": "number"}, "currency": {"type": "string", "pattern": "^[a-z]{3}$"}},
            "additionalProperties": False,
        },
        "line_item": NULLABLE_STRING,
        "project_id": NULLABLE_STRING,
        "user_id": NULLABLE_STRING,
        "api_key_id": NULLABLE_STRING,
        "api_source": API_SOURCE,
        "quantity": {"type": ["number", "null"]},
        "quantity_unit": {"anyOf": [{"type": "string"}, {"enum": QUANTITY_UNITS}, {"type": "null"}]},
    },
    "required": ["object"],
}


def _closed(result: dict[str, Any], extension: dict[str, Any] | None) -> dict[str, Any]:
    properties = dict(result["properties"])
    if extension is not None:
        properties["x_usage_statistics"] = extension
    return {**result, "properties": properties, "additionalProperties": False}


def page_schema(result: dict[str, Any], extension: dict[str, Any] | None = None) -> dict[str, Any]:
    """UsageResponse whose buckets (UsageTimeBucket) hold ``result`` objects."""
    bucket = {
        "type": "object",
        "properties": {
            "object": {"const": "bucket"},
            "start_time": INTEGER,
            "end_time": INTEGER,
            "results": {"type": "array", "items": _closed(result, extension)},
        },
        "required": ["object", "start_time", "end_time", "results"],
        "additionalProperties": False,
    }
    return {
        "$schema": DIALECT,
        "type": "object",
        "properties": {
            "object": {"const": "page"},
            "data": {"type": "array", "items": bucket},
            "has_more": {"type": "boolean"},
            "next_page": NULLABLE_STRING,
        },
        "required": ["object", "data", "has_more", "next_page"],
        "additionalProperties": False,
    }


# The opt-in extension (x_usage_statistics=true): this product's own members, documented in
# docs/openai-compatible-api.md.
COMPLETIONS_EXTENSION = {
    "type": "object",
    "properties": {
        "reasoning_tokens": {"type": ["integer", "null"]},
        "total_tokens": INTEGER,
        "api_key_name": NULLABLE_STRING,
    },
    "required": ["reasoning_tokens", "total_tokens", "api_key_name"],
    "additionalProperties": False,
}
COSTS_EXTENSION = {
    "type": "object",
    "properties": {
        "amount": {"type": "string", "pattern": r"^-?\d+(\.\d+)?$"},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "unpriced_tokens": INTEGER,
        "unpriced_models": {"type": "array", "items": {"type": "string"}},
        "api_key_name": NULLABLE_STRING,
    },
    "required": ["amount", "currency", "unpriced_tokens", "unpriced_models", "api_key_name"],
    "additionalProperties": False,
}

SCHEMAS = {
    ("completions", False): page_schema(COMPLETIONS_RESULT),
    ("completions", True): page_schema(COMPLETIONS_RESULT, COMPLETIONS_EXTENSION),
    ("costs", False): page_schema(COSTS_RESULT),
    ("costs", True): page_schema(COSTS_RESULT, COSTS_EXTENSION),
}
for _schema in SCHEMAS.values():
    jsonschema.Draft202012Validator.check_schema(_schema)
VALIDATORS = {name: jsonschema.Draft202012Validator(schema) for name, schema in SCHEMAS.items()}


def violations(endpoint: str, answer: Any, *, extended: bool = False) -> list[str]:
    """Every way ``answer`` breaks the schema of ``endpoint`` ("completions" or "costs")."""
    validator = VALIDATORS[endpoint, extended]
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(answer)]

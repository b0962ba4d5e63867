"""Shapes of the API's responses: what the views return and what the OpenAPI schema describes."""

from rest_framework import serializers

from accounts.models import ApiKey
from usage.models import CallRecord


class TotalsSerializer(serializers.Serializer):
    calls = serializers.IntegerField(help_text="Number of calls.")
    input_tokens = serializers.IntegerField(help_text="Input (prompt) tokens.")
    output_tokens = serializers.IntegerField(help_text="Output (completion) tokens.")
    total_tokens = serializers.IntegerField(help_text="input_tokens + output_tokens.")
    cached_input_tokens = serializers.IntegerField(
        allow_null=True, help_text="Input tokens served from cache; null when no call reported them."
    )
    reasoning_tokens = serializers.IntegerField(
        allow_null=True, help_text="Reasoning tokens (part of the output); null when no call reported them."
    )
    cache_creation_input_tokens = serializers.IntegerField(
        allow_null=True,
        help_text="Input tokens written to the cache (part of the input, apart from the cached reads); "
        "null when no call reported them.",
    )
    cache_creation_1h_input_tokens = serializers.IntegerField(
        allow_null=True,
        help_text="The part of cache_creation_input_tokens written for one hour; null when no call reported them.",
    )


class PeriodSerializer(serializers.Serializer):
    start = serializers.DateField(help_text="First local date of the range, inclusive.")
    end = serializers.DateField(help_text="Last local date of the range, inclusive.")
    timezone = serializers.CharField(help_text="The tenant's IANA time zone the dates are local to.")


class CostSerializer(serializers.Serializer):
    """One currency's amount; every ``cost`` list of the API holds objects of this shape."""

    amount = serializers.CharField(
        help_text="The exact amount as a plain decimal string (no exponent), with at least the currency's minor "
        'digits and more only when the amount has them, e.g. "12.30", "0.3164304". Never rounded.'
    )
    currency = serializers.CharField(help_text="ISO 4217 code of the amount.")
    unpriced_tokens = serializers.IntegerField(
        help_text="Tokens with no price in force, in none of the amounts; the same on every object of a list."
    )


COST_RULE = (
    "One object per currency (amounts in different currencies are never added), by code; with nothing "
    "priced, one object with amount 0. Exact: each local day x API key x model line is tokens x rate, "
    "and totals are exact sums of lines; nothing is rounded (round half-even to the minor unit to show it)."
)


def cost_list(help_text, **kwargs):
    return CostSerializer(many=True, help_text=f"{help_text} {COST_RULE}", **kwargs)


class SummarySerializer(PeriodSerializer, TotalsSerializer):
    cost = cost_list("Cost of the filtered usage at the prices in force on each local day.")
    unpriced_calls = serializers.IntegerField(
        help_text="Calls of a model with no price in force on their local day: not in the amounts "
        "(their tokens are the cost's unpriced_tokens)."
    )
    unpriced_models = serializers.ListField(
        child=serializers.CharField(), help_text="Models with tokens that had no price in force (cost is partial)."
    )


class GroupSerializer(serializers.Serializer):
    """Names the group of a row or series: a model, or an API key."""

    model = serializers.CharField(required=False, help_text="Model name (when grouped by model).")
    api_key = serializers.CharField(required=False, help_text="API key public id (when grouped by api_key).")
    api_key_name = serializers.CharField(required=False, help_text="API key name (when grouped by api_key).")


class PointSerializer(TotalsSerializer):
    bucket = serializers.CharField(
        help_text="The bucket: a local date (YYYY-MM-DD) by day, the local hour's start with its UTC offset by hour."
    )
    cost = cost_list(
        "Cost of the point's usage with bucket=day; null with bucket=hour, since prices apply per local day.",
        allow_null=True,
    )


class SeriesSerializer(GroupSerializer):
    points = PointSerializer(many=True, help_text="One point per bucket, zeros where there was no usage.")


class TimeseriesSerializer(PeriodSerializer):
    bucket = serializers.ChoiceField(choices=["hour", "day"], help_text="The bucket size asked for.")
    group_by = serializers.ChoiceField(
        choices=["model", "api_key", "none"], help_text="What each series is for: a model, an API key, or all."
    )
    buckets = serializers.ListField(
        child=serializers.CharField(), help_text="Every bucket of the range, in order (gap-filled)."
    )
    series = SeriesSerializer(many=True, help_text="One series per group, most tokens first; one series for none.")


class SavingSerializer(serializers.Serializer):
    amount = serializers.CharField(help_text="The exact amount as a plain decimal string, never rounded.")
    currency = serializers.CharField(help_text="ISO 4217 code of the amount.")


class ClassCostSerializer(serializers.Serializer):
    currency = serializers.CharField(help_text="ISO 4217 code of the amounts.")
    input = serializers.CharField(help_text="Exact cost of the uncached input tokens (input - cached - cache writes).")
    cached_read = serializers.CharField(help_text="Exact cost of the cached reads.")
    cache_write = serializers.CharField(help_text="Exact cost of the cache writes (5-minute and one-hour).")
    output = serializers.CharField(help_text="Exact cost of the output tokens, reasoning included.")


class BreakdownRowSerializer(GroupSerializer, TotalsSerializer):
    share = serializers.FloatField(help_text="This row's share of the total tokens of the range, 0 to 1.")
    cost = cost_list("Cost of the row's usage; the rows' costs add up to the summary's.")
    unpriced_calls = serializers.IntegerField(
        allow_null=True,
        help_text="Calls of this model with no price in force on their local day (per model: null by api_key).",
    )
    cache_hit_rate = serializers.FloatField(
        allow_null=True,
        help_text="Cached input tokens / input tokens, 0 to 1 (exact: the two token counts); null without input.",
    )
    cache_savings = SavingSerializer(
        many=True,
        allow_null=True,
        help_text="What cached reads saved against the input price: cached x (input - cached input price) / 1000 "
        "at the price in force on each local day, exact, one object per currency; empty when nothing was saved "
        "(no cached reads, no cached input price, or unpriced). Per model: null in a breakdown by api_key.",
    )
    cost_by_class = ClassCostSerializer(
        many=True,
        help_text="The row's priced cost per token class, one object per currency (exact decimal strings); the "
        "classes of a currency add up to its cost amount exactly. Empty when nothing is priced.",
    )


class BreakdownSerializer(PeriodSerializer):
    by = serializers.ChoiceField(choices=["model", "api_key"], help_text="What each row is for.")
    results = BreakdownRowSerializer(many=True, help_text="One row per group with usage, most tokens first.")


class ApiKeySerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(
        choices=["active", "revoked", "expired"], read_only=True, help_text="Whether the key works now."
    )

    class Meta:
        model = ApiKey
        fields = ["public_id", "name", "status", "created_at", "last_used_at", "expires_at", "revoked_at"]
        read_only_fields = fields
        extra_kwargs = {
            "public_id": {"help_text": "The key's public id: the api_key filter and the CSV's api_key column."},
            "name": {"help_text": "The key's name; a revoked key keeps it in reports."},
            "created_at": {"help_text": "When the key was created."},
            "last_used_at": {"help_text": "When the gateway last verified the key; null if never."},
            "expires_at": {"help_text": "When the key stops working; null if it does not expire."},
            "revoked_at": {"help_text": "When the key was revoked; null if it is not."},
        }


class ModelSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The model's name, used by the model filter.")
    private = serializers.BooleanField(help_text="True for the tenant's own model, false for a platform model.")


def list_of(item_serializer, name):
    """A ``{"results": [...]}`` envelope, so lists can gain fields later without breaking clients."""
    results = item_serializer(many=True, help_text="All of them, in name order.")
    return type(name, (serializers.Serializer,), {"results": results})


class CallSerializer(serializers.ModelSerializer):
    api_key = serializers.CharField(source="api_key.public_id", help_text="Public id of the API key.")
    api_key_name = serializers.CharField(source="api_key.name", help_text="Name of the API key.")
    model = serializers.CharField(source="model.name", help_text="Name of the model.")
    total_tokens = serializers.IntegerField(help_text="input_tokens + output_tokens.")
    occurred_at = serializers.DateTimeField(help_text="When the call happened, in the tenant's time zone.")

    class Meta:
        model = CallRecord
        fields = [
            "request_id",
            "occurred_at",
            "api_key",
            "api_key_name",
            "model",
            "input_tokens",
            "output_tokens",
            "total_tokens",
            "cached_input_tokens",
            "reasoning_tokens",
            "cache_creation_input_tokens",
            "cache_creation_1h_input_tokens",
            "duration_ms",
            "time_to_first_token_ms",
            "status",
            "error_type",
            "http_status",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "request_id": {"help_text": "The gateway's id of the request; unique within the tenant."},
            "input_tokens": {"help_text": "Input (prompt) tokens."},
            "output_tokens": {"help_text": "Output (completion) tokens."},
            "cached_input_tokens": {"help_text": "Input tokens served from cache; null when not reported."},
            "reasoning_tokens": {"help_text": "Reasoning tokens; null when not reported."},
            "cache_creation_input_tokens": {"help_text": "Input tokens written to the cache; null when not reported."},
            "cache_creation_1h_input_tokens": {
                "help_text": "The one-hour part of the cache writes; null: not reported."
            },
            "duration_ms": {"help_text": "Request to last byte, in milliseconds; null when not reported."},
            "time_to_first_token_ms": {"help_text": "Time to the first token, in ms; null when not reported."},
            "status": {"help_text": "ok or error; null when not reported."},
            "error_type": {"help_text": "Why a failed call failed; null when not reported or not failed."},
            "http_status": {"help_text": "The HTTP status of the answer; null when not reported."},
        }


class TimeseriesParams(serializers.Serializer):
    bucket = serializers.ChoiceField(
        choices=["hour", "day"],
        default="day",
        allow_blank=True,
        help_text="Bucket size. hour only for ranges of at most 2 local days; a longer range is a 400.",
    )
    group_by = serializers.ChoiceField(
        choices=["model", "api_key", "none"],
        default="model",
        allow_blank=True,
        help_text="One series per model, per key, or one.",
    )


class BreakdownParams(serializers.Serializer):
    by = serializers.ChoiceField(
        choices=["model", "api_key"], default="model", allow_blank=True, help_text="One row per model or key."
    )


class ProblemItemSerializer(serializers.Serializer):
    field = serializers.CharField(allow_null=True, help_text="The parameter the error is about.")
    detail = serializers.CharField(help_text="What is wrong with it.")


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details."""

    type = serializers.CharField(help_text="Always about:blank: the status code says what happened.")
    title = serializers.CharField(help_text="Short summary of the status.")
    status = serializers.IntegerField(help_text="The HTTP status code.")
    detail = serializers.CharField(required=False, help_text="What went wrong, naming the parameters.")
    errors = ProblemItemSerializer(many=True, required=False, help_text="One item per invalid parameter.")


# --- Performance (issue 27) ------------------------------------------------------------------------

_PERCENTILE_NOTE = (
    "Nearest-rank percentile of the calls that reported it (not marked as errors), from fixed histogram "
    "buckets: within 4.9% relative of the exact value (see the README, Performance); null when none reported it."
)


class PercentilesSerializer(serializers.Serializer):
    p50 = serializers.FloatField(allow_null=True, help_text=f"Median. {_PERCENTILE_NOTE}")
    p95 = serializers.FloatField(allow_null=True, help_text="95th percentile.")
    p99 = serializers.FloatField(allow_null=True, help_text="99th percentile.")
    calls = serializers.IntegerField(help_text="Calls the percentiles are of.")


class MedianSerializer(serializers.Serializer):
    p50 = serializers.FloatField(allow_null=True, help_text=f"Median. {_PERCENTILE_NOTE}")
    calls = serializers.IntegerField(help_text="Calls that reported both durations (generation time above 0).")


class ErrorsSerializer(serializers.Serializer):
    total = serializers.IntegerField(help_text="Calls whose status is error.")
    rate_limited = serializers.IntegerField(help_text="Failed calls of type rate_limited (HTTP 429 and the like).")
    timeout = serializers.IntegerField(help_text="Failed calls of type timeout.")
    server_error = serializers.IntegerField(help_text="Failed calls of type server_error (the provider's 5xx).")
    client_error = serializers.IntegerField(help_text="Failed calls of type client_error (a refused request, 4xx).")
    cancelled = serializers.IntegerField(help_text="Failed calls of type cancelled (the client went away).")
    content_filter = serializers.IntegerField(help_text="Failed calls of type content_filter.")
    other = serializers.IntegerField(help_text="Failed calls of type other.")
    unspecified = serializers.IntegerField(help_text="Failed calls that named no error type.")


class PerformanceStatsSerializer(serializers.Serializer):
    calls = serializers.IntegerField(help_text="Every call, failed ones included (the usage endpoints' calls).")
    errors = ErrorsSerializer(help_text="Failed calls, in total and by error type.")
    error_rate = serializers.FloatField(
        allow_null=True,
        help_text="errors.total / calls (a call that reported no status is not counted as failed); null for no calls.",
    )
    latency_ms = PercentilesSerializer(help_text="Duration, request to last byte, in milliseconds.")
    time_to_first_token_ms = PercentilesSerializer(help_text="Time to the first token, in milliseconds.")
    output_tokens_per_second = MedianSerializer(
        help_text="Output tokens per second of generation: output_tokens / ((duration - time to first token) / 1000)."
    )


class PerformancePointSerializer(PerformanceStatsSerializer):
    bucket = serializers.CharField(
        help_text="The bucket: a local date (YYYY-MM-DD) by day, the local hour's start with its UTC offset by hour."
    )


class PerformanceSeriesSerializer(GroupSerializer):
    total = PerformanceStatsSerializer(help_text="The group over the whole range.")
    points = PerformancePointSerializer(many=True, help_text="One point per bucket (gap-filled: no calls, nulls).")


class PerformanceSerializer(PeriodSerializer):
    bucket = serializers.ChoiceField(choices=["hour", "day"], help_text="The bucket size asked for.")
    group_by = serializers.ChoiceField(
        choices=["model", "api_key", "none"], help_text="What each series is for: a model, an API key, or all."
    )
    buckets = serializers.ListField(child=serializers.CharField(), help_text="Every bucket of the range, in order.")
    total = PerformanceStatsSerializer(help_text="All the filtered calls of the range, merged (never averaged).")
    series = PerformanceSeriesSerializer(many=True, help_text="One series per group, most calls first.")

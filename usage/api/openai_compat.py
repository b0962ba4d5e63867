"""OpenAI-compatible reads: ``/api/openai/v1/organization/usage/completions`` and ``.../costs``.

Shaped as OpenAI's organization Usage and Costs APIs so that existing clients (the official
``openai`` package's ``client.admin.organization.usage``) and scripts work unchanged, and
computed from the same query layer as ``/api/v1`` (``UsageQuery``, ``query_usage``, the
``CostEngine``), so their sums equal the product's summary to the token and the cent.

Mapping (see docs/openai-compatible-api.md):

- ``input_tokens``: this product's ``input_tokens``, which, as OpenAI's, *include* the cached
  input tokens; ``input_cached_tokens``: ``cached_input_tokens`` (null while no call of the
  group reported it); ``input_uncached_tokens``: their difference (null likewise);
  ``num_model_requests``: calls. Audio, image and cache-write counts are null: this product has none.
- The product's extras are under ``x_usage_statistics``: reasoning tokens, total tokens, the
  key's name; for costs the exact decimal amount and the unpriced tokens.
- Buckets are UTC by default; ``x_timezone=tenant`` makes them the tenant's local hours and days.
  Every bucket of the range is returned, an empty one with ``results: []``.
"""

import base64
import binascii
import datetime as dt
from collections import defaultdict

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiKey
from usage import localtime
from usage.api.scope import api_tenant
from usage.api.throttling import AccessTokenThrottle
from usage.models import Model
from usage.reporting.costs import DEFAULT_CURRENCY, CostEngine, CostSummary
from usage.reporting.periods import Period
from usage.reporting.query import UsageQuery
from usage.reporting.selectors import Totals, query_usage

EXTENSION = "x_usage_statistics"
# bucket width -> (seconds, default limit, maximum limit), as OpenAI's reference gives them.
WIDTHS = {"1m": (60, 60, 1440), "1h": (3600, 24, 168), "1d": (86400, 7, 31)}
COSTS_LIMITS = (7, 180)
COMPLETIONS_GROUPS = ("project_id", "user_id", "api_key_id", "model", "batch", "service_tier", "api_source")
COSTS_GROUPS = ("project_id", "user_id", "line_item", "api_key_id", "api_source")
ZONES = ("utc", "tenant")


class OpenAIError(Exception):
    """An error answered as OpenAI does: ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(self, status, message, *, param=None, code=None, kind="invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def response(self):
        body = {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}
        return Response({"error": body}, status=self.status)


def _as_openai_error(exc):
    if isinstance(exc, OpenAIError):
        return exc
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return OpenAIError(401, str(exc.detail), code="invalid_api_key")
    if isinstance(exc, exceptions.Throttled):
        return OpenAIError(429, str(exc.detail), code="rate_limit_exceeded", kind="requests")
    if isinstance(exc, exceptions.NotFound):
        return OpenAIError(404, str(exc.detail), code="not_found")
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"": exc.detail}
        param, messages = next(iter(detail.items()))
        message = messages[0] if isinstance(messages, list) else messages
        return OpenAIError(400, str(message), param=param or None)
    if isinstance(exc, exceptions.APIException):
        return OpenAIError(exc.status_code, str(exc.detail))
    return None


@extend_schema(exclude=True)  # OpenAI's own reference describes these; see docs/openai-compatible-api.md
class OpenAICompatView(APIView):
    throttle_classes = [AccessTokenThrottle]

    def handle_exception(self, exc):
        error = _as_openai_error(exc)
        if error is None:
            return super().handle_exception(exc)
        response = error.response()
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            response["Retry-After"] = str(int(exc.wait) + 1)
        if error.status == 401:
            response["WWW-Authenticate"] = "Bearer"
        return response


# --- Parameters ---------------------------------------------------------------------------


def _list(params, name):
    """Both ``name=a&name=b`` and ``name[]=a`` (the openai package's form), in order, unique."""
    values = []
    for value in [*params.getlist(name), *params.getlist(f"{name}[]")]:
        for part in value.split(",") if name == "group_by" else [value]:
            if part and part not in values:
                values.append(part)
    return values


def _int(params, name, *, required=False, default=None):
    raw = params.get(name)
    if raw in (None, ""):
        if required:
            raise OpenAIError(
                400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
            )
        return default
    try:
        return int(raw)
    except ValueError:
        raise OpenAIError(400, f"Invalid '{name}': expected an integer, got {raw[:40]!r}.", param=name) from None


def _choice(params, name, choices, default):
    value = params.get(name) or default
    if value.lower() not in choices:
        raise OpenAIError(400, f"Invalid '{name}': {value[:40]!r}; choose one of {', '.join(choices)}.", param=name)
    return value.lower()


def _groups(params, allowed):
    groups = _list(params, "group_by")
    for group in groups:
        if group not in allowed:
            raise OpenAIError(
                400, f"Invalid 'group_by' value {group[:40]!r}; supported: {', '.join(allowed)}.", param="group_by"
            )
    return groups


class Buckets:
    """The buckets of a request: aligned to the width in the chosen zone, paged by ``limit``."""

    def __init__(self, *, tenant, params, width, limits, now=None):
        self.width = width
        self.zone = tenant.tz if _choice(params, "x_timezone", ZONES, "utc") == "tenant" else dt.UTC
        start = _int(params, "start_time", required=True)
        end = _int(params, "end_time", default=int((now or timezone.now()).timestamp()))
        default_limit, max_limit = limits
        self.limit = _int(params, "limit", default=default_limit)
        if not 1 <= self.limit <= max_limit:
            raise OpenAIError(
                400, f"Invalid 'limit': must be between 1 and {max_limit} for this bucket_width.", param="limit"
            )
        try:
            self.start = self.floor(dt.datetime.fromtimestamp(start, dt.UTC))
            self.end = dt.datetime.fromtimestamp(end, dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise OpenAIError(400, "Invalid 'start_time' or 'end_time': out of range.", param="start_time") from None
        if self.end <= self.start:
            raise OpenAIError(400, "Invalid 'end_time': must be after 'start_time'.", param="end_time")
        first = self._page_start(params.get("page"))
        self.starts = [first]
        while len(self.starts) < self.limit and self.next(self.starts[-1]) < self.end:
            self.starts.append(self.next(self.starts[-1]))
        after = self.next(self.starts[-1])
        self.next_page = _cursor(after) if after < self.end else None
        self.span = (self.starts[0], after)

    def floor(self, instant):
        local = instant.astimezone(self.zone)
        if self.width == "1d":
            return dt.datetime.combine(local.date(), dt.time.min, tzinfo=self.zone).astimezone(dt.UTC)
        seconds = WIDTHS[self.width][0]
        # Hours and minutes: local ones (zones offset by :30 or :45 start hours off the UTC hour).
        offset = local.utcoffset().total_seconds()
        stamp = instant.timestamp() + offset
        return dt.datetime.fromtimestamp(stamp - stamp % seconds - offset, dt.UTC)

    def next(self, start):
        if self.width == "1d":
            day = start.astimezone(self.zone).date() + dt.timedelta(days=1)
            return dt.datetime.combine(day, dt.time.min, tzinfo=self.zone).astimezone(dt.UTC)
        return start + dt.timedelta(seconds=WIDTHS[self.width][0])

    def _page_start(self, page):
        if not page:
            return self.start
        try:
            text = base64.urlsafe_b64decode(page.removeprefix("page_").encode() + b"==").decode()
            instant = dt.datetime.fromtimestamp(int(text.removeprefix("v1:")), dt.UTC)
        except (ValueError, binascii.Error, OverflowError, OSError, UnicodeDecodeError):
            instant = None
        if instant is None or not self.start <= instant < self.end or self.floor(instant) != instant:
            raise OpenAIError(400, "Invalid 'page': use the next_page of a previous answer.", param="page")
        return instant

    def period(self, tenant):
        """The tenant's local dates covering the page."""
        first = self.span[0].astimezone(tenant.tz).date()
        last = (self.span[1] - dt.timedelta(microseconds=1)).astimezone(tenant.tz).date()
        return Period(first, last)

    def index(self, instant):
        """Position of the bucket holding ``instant`` (None outside the page)."""
        if not self.span[0] <= instant < self.span[1]:
            return None
        low, high = 0, len(self.starts)
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if self.starts[middle] <= instant else (low, middle)
        return low

    def data(self, results_per_bucket):
        return {
            "object": "page",
            "data": [
                {
                    "object": "bucket",
                    "start_time": int(start.timestamp()),
                    "end_time": int(self.next(start).timestamp()),
                    "results": results_per_bucket[index],
                }
                for index, start in enumerate(self.starts)
            ],
            "has_more": self.next_page is not None,
            "next_page": self.next_page,
        }


def _cursor(instant):
    return "page_" + base64.urlsafe_b64encode(f"v1:{int(instant.timestamp())}".encode()).decode().rstrip("=")


# --- Usage --------------------------------------------------------------------------------


def _whole_hours_apart(tenant, span):
    """True when every local hour of the tenant in ``span`` starts on a UTC hour."""
    start, end = span
    return (
        all(
            (start + dt.timedelta(hours=h)).astimezone(tenant.tz).utcoffset().total_seconds() % 3600 == 0
            for h in range(0, int((end - start).total_seconds() // 3600) + 1, 6)
        )
        and end.astimezone(tenant.tz).utcoffset().total_seconds() % 3600 == 0
    )


def _usage_cells(tenant, buckets):
    """{(bucket index, key id, model id): Totals} of the page, from the product's selectors.

    Local days in the tenant's zone come from the daily rollups; hours (and UTC days of a tenant
    whose local hours start on UTC hours) from the hourly rollups; minutes, and UTC hours of a
    tenant in a :30 or :45 zone, straight from the ledger.
    """
    query = UsageQuery(tenant, buckets.period(tenant))
    cells = defaultdict(Totals)
    if buckets.width == "1d" and (buckets.zone is not dt.UTC or tenant.timezone == "UTC"):
        grouped = query_usage(query, bucket="day", dims=("api_key", "model"))
        for (day, key_id, model_id), totals in grouped.items():
            index = buckets.index(localtime.local_midnight(tenant, day).astimezone(dt.UTC))
            if index is not None:
                cells[index, key_id, model_id] += totals
        return cells
    if buckets.width != "1m" and _whole_hours_apart(tenant, buckets.span):
        grouped = query_usage(query, bucket="hour", dims=("api_key", "model"))
        for (hour, key_id, model_id), totals in grouped.items():
            index = buckets.index(hour)
            if index is not None:
                cells[index, key_id, model_id] += totals
        return cells
    rows = query.calls().filter(occurred_at__gte=buckets.span[0], occurred_at__lt=buckets.span[1])
    columns = ("occurred_at", "api_key_id", "model_id", "input_tokens", "output_tokens")
    for at, key_id, model_id, inp, out, cached, reasoning in rows.values_list(
        *columns, "cached_input_tokens", "reasoning_tokens"
    ).iterator(chunk_size=5000):
        cells[buckets.index(at), key_id, model_id] += Totals(1, inp, out, cached, reasoning)
    return cells


def _names(cells):
    keys = ApiKey.objects.in_bulk({key_id for _i, key_id, _m in cells})
    models = Model.objects.in_bulk({model_id for _i, _k, model_id in cells})
    return keys, models


def _filtered(cells, keys, models, api_key_ids, model_names):
    """Cells of the named keys and models only. Ids of keys the tenant does not have match nothing."""
    for (index, key_id, model_id), totals in cells.items():
        if api_key_ids and keys[key_id].public_id not in api_key_ids:
            continue
        if model_names and models[model_id].name not in model_names:
            continue
        yield index, keys[key_id], models[model_id], totals


def _completions_result(group, totals):
    key, model = group
    cached = totals.cached_input_tokens
    return {
        "object": "organization.usage.completions.result",
        "input_tokens": totals.input_tokens,
        "output_tokens": totals.output_tokens,
        "input_cached_tokens": cached,
        "input_uncached_tokens": None if cached is None else totals.input_tokens - min(cached, totals.input_tokens),
        "input_audio_tokens": None,
        "output_audio_tokens": None,
        "num_model_requests": totals.calls,
        "project_id": None,
        "user_id": None,
        "api_key_id": key.public_id if key else None,
        "model": model.name if model else None,
        "batch": None,
        "service_tier": None,
        "api_source": None,
        EXTENSION: {
            "reasoning_tokens": totals.reasoning_tokens,
            "total_tokens": totals.total_tokens,
            "api_key_name": key.name if key else None,
        },
    }


def _sort_key(group):
    key, model = group
    return (key.public_id if key else "", model.name if model else "")


class CompletionsView(OpenAICompatView):
    """``GET /api/openai/v1/organization/usage/completions``."""

    def get(self, request):
        tenant = api_tenant(request)
        params = request.query_params
        width = _choice(params, "bucket_width", tuple(WIDTHS), "1d")
        groups = _groups(params, COMPLETIONS_GROUPS)
        buckets = Buckets(tenant=tenant, params=params, width=width, limits=WIDTHS[width][1:])
        cells = _usage_cells(tenant, buckets)
        keys, models = _names(cells)
        per_bucket = [defaultdict(Totals) for _ in buckets.starts]
        for index, key, model, totals in _filtered(
            cells, keys, models, _list(params, "api_key_ids"), _list(params, "models")
        ):
            group = (key if "api_key_id" in groups else None, model if "model" in groups else None)
            per_bucket[index][group] += totals
        results = [
            [
                _completions_result(group, totals)
                for group, totals in sorted(bucket.items(), key=lambda i: _sort_key(i[0]))
            ]
            for bucket in per_bucket
        ]
        return Response(buckets.data(results))


# --- Costs --------------------------------------------------------------------------------


def _fallback_currency(summaries):
    currencies = sorted({currency for summary in summaries for currency in summary.amounts})
    return currencies[0] if currencies else DEFAULT_CURRENCY


def _costs_results(group, summary, fallback):
    key, model = group
    currencies = summary.currencies or [fallback]
    return [
        {
            "object": "organization.costs.result",
            "amount": {"value": float(summary.formatted(currency)), "currency": currency.lower()},
            "line_item": model.name if model else None,
            "project_id": None,
            "api_key_id": key.public_id if key else None,
            "api_source": None,
            "quantity": None,
            "quantity_unit": None,
            EXTENSION: {
                "amount": summary.formatted(currency),
                "currency": currency,
                "unpriced_tokens": summary.unpriced_tokens,
                "unpriced_models": list(summary.unpriced_models),
                "api_key_name": key.name if key else None,
            },
        }
        for currency in currencies
    ]


class CostsView(OpenAICompatView):
    """``GET /api/openai/v1/organization/costs``: bucket_width 1d, one bucket per local day's cost.

    Prices apply per tenant-local day, so a bucket holds the cost of the tenant's local day of
    the same date (with ``x_timezone=tenant`` the bucket is exactly that day).
    """

    def get(self, request):
        tenant = api_tenant(request)
        params = request.query_params
        _choice(params, "bucket_width", ("1d",), "1d")
        groups = _groups(params, COSTS_GROUPS)
        buckets = Buckets(tenant=tenant, params=params, width="1d", limits=COSTS_LIMITS)
        dates = {start.astimezone(buckets.zone).date(): index for index, start in enumerate(buckets.starts)}
        period = Period(min(dates), max(dates))
        query = UsageQuery(tenant, period)
        costs = CostEngine.for_query(query).summaries(query, ("day", "api_key", "model"))
        cells = {(dates[day], key_id, model_id): summary for (day, key_id, model_id), summary in costs.items()}
        keys, models = _names(cells)
        per_bucket = [defaultdict(CostSummary) for _ in buckets.starts]
        line_items = _list(params, "line_items")
        for index, key, model, summary in _filtered(cells, keys, models, _list(params, "api_key_ids"), line_items):
            group = (key if "api_key_id" in groups else None, model if "line_item" in groups else None)
            per_bucket[index][group].merge(summary)
        fallback = _fallback_currency(costs.values())
        results = [
            [
                result
                for group, summary in sorted(bucket.items(), key=lambda i: _sort_key(i[0]))
                for result in _costs_results(group, summary, fallback)
            ]
            for bucket in per_bucket
        ]
        return Response(buckets.data(results))

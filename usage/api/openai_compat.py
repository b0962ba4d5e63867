"""OpenAI-compatible reads: ``/api/openai/v1/organization/usage/completions`` and ``.../costs``.

Shaped as OpenAI's organization Usage and Costs APIs (its published OpenAPI spec,
``openai/openai-openapi``: ``UsageResponse``, ``UsageTimeBucket``, ``UsageCompletionsResult``,
``CostsResult``) so that existing clients (the official ``openai`` package's
``client.admin.organization.usage``) and scripts work unchanged, and computed from the same
query layer as ``/api/v1`` (``UsageQuery``, ``query_usage``, the ``CostEngine``), so their sums
equal the product's summary to the token and the cent.

Mapping (see docs/openai-compatible-api.md):

- ``input_tokens``: this product's ``input_tokens``, which, as OpenAI's, *include* the cached
  input tokens; ``input_cached_tokens``: ``cached_input_tokens``; ``input_uncached_tokens``:
  their difference; ``num_model_requests``: calls. A count this product has no figure for (no
  call of the group reported cached tokens; audio, image, cache writes) is *omitted*: the spec
  makes them optional integers, so omission, not null and not 0, says "not reported".
- Filters and groups the product cannot honour are never answered with all usage: the
  ``project_ids``, ``user_ids`` and ``batch`` filters are a 400 (the product records no projects,
  users or batch jobs); grouping by them answers one group with the member null, so sums stay
  right. Unknown parameters are a 400 too (a mistyped filter would otherwise return everything).
- The product's extras (reasoning and total tokens, the key's name; for costs the exact decimal
  amount and the unpriced tokens) only with ``x_usage_statistics=true``, under that member: a
  consumer that did not ask never sees a member the spec does not have.
- Buckets are UTC by default; ``x_timezone=tenant`` makes them the tenant's local hours and days.
  Every bucket of the range is returned, an empty one with ``results: []``.
- Sources: the rollups wherever the buckets are whole tenant-local days or hours (they keep every
  day after ``purge_calls``), the ledger otherwise (minutes; hours and UTC days of a tenant in a
  zone off the whole hour); a page that needs the ledger before the purge horizon is a 410.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from django.db.models import Q
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiKey, Tenant
from usage import localtime
from usage.api.scope import api_tenant
from usage.api.throttling import AccessTokenThrottle
from usage.ledger.retention import purge_horizon
from usage.models import Model
from usage.reporting.costs import (
    DEFAULT_CURRENCY,
    TOKEN_CLASS_LABELS,
    TOKEN_CLASSES,
    ClassCosts,
    CostEngine,
    CostSummary,
)
from usage.reporting.periods import Period
from usage.reporting.query import UsageQuery
from usage.reporting.selectors import Totals, query_usage

EXTENSION = "x_usage_statistics"
# bucket width -> (seconds, default limit, maximum limit), as OpenAI's reference gives them.
WIDTHS = {"1m": (60, 60, 1440), "1h": (3600, 24, 168), "1d": (86400, 7, 31)}
COSTS_LIMITS = (7, 180)
# The spec's group_by values (and api_source, of the openai package's newer spec).
COMPLETIONS_GROUPS = ("project_id", "user_id", "api_key_id", "model", "batch", "service_tier", "api_source")
COSTS_GROUPS = ("project_id", "user_id", "line_item", "api_key_id", "api_source")
ZONES = ("utc", "tenant")
# Filters of the spec this product cannot honour: it records no projects, users or batch jobs.
# Answering them with all usage would make a tool that splits by them count everything per value.
UNSUPPORTED_FILTERS = {
    "project_ids": "this product records no projects",
    "user_ids": "this product records no users of calls",
    "batch": "this product does not record which calls were batch jobs",
}
COMMON_PARAMS = (
    *("start_time", "end_time", "bucket_width", "limit", "page", "group_by", "api_key_ids"),
    *("x_timezone", EXTENSION, "tenant", "format"),
)
COMPLETIONS_PARAMS = (*COMMON_PARAMS, "models")
COSTS_PARAMS = (*COMMON_PARAMS, "line_items")
# Unix seconds accepted for start_time and end_time: 1970-01-01 to 9998-12-31, so that a bucket,
# a local date or a day after them never passes datetime's year 9999.
EARLIEST, LATEST = 0, 253370764800
TRUE, FALSE = ("true", "1"), ("false", "0", "")
# Group members of a result the product has no value for (one group, null), besides api_key_id,
# the model's member (model, line_item) and api_source.
COMPLETIONS_UNGROUPED = ("project_id", "user_id", "batch", "service_tier")
COSTS_UNGROUPED = ("project_id", "user_id")


class OpenAIError(Exception):
    """An error answered as OpenAI does: ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def response(self) -> Response:
        body = {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}
        return Response({"error": body}, status=self.status)


def _as_openai_error(exc: Exception) -> OpenAIError | None:
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

    def handle_exception(self, exc: Exception) -> Response:
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

Params = Mapping[str, Any]  # a QueryDict: .get and .getlist


def _getlist(params: Params, name: str) -> list[str]:
    return list(params.getlist(name))  # type: ignore[attr-defined]


def _list(params: Params, name: str) -> list[str]:
    """Both ``name=a&name=b`` and ``name[]=a`` (the openai package's form), in order, unique."""
    values: list[str] = []
    for value in [*_getlist(params, name), *_getlist(params, f"{name}[]")]:
        for part in value.split(",") if name == "group_by" else [value]:
            if part and part not in values:
                values.append(part)
    return values


def _known(params: Params, allowed: Sequence[str]) -> None:
    """A 400 for a parameter this endpoint does not know or cannot honour, naming it."""
    for raw in params:
        name = raw.removesuffix("[]")
        if name in UNSUPPORTED_FILTERS:
            if any(value != "" for value in _getlist(params, raw)):
                reason = UNSUPPORTED_FILTERS[name]
                message = f"'{name}' is not supported: {reason}, so no usage could be filtered by it."
                raise OpenAIError(400, message, param=name, code="unsupported_parameter")
        elif name not in allowed:
            message = f"Unknown parameter: '{name[:40]}'. Supported: {', '.join(allowed)}."
            raise OpenAIError(400, message, param=name[:40], code="unknown_parameter")


def _int(params: Params, name: str, *, required: bool = False, default: int | None = None) -> int | None:
    raw = str(params.get(name) or "")
    if not raw:
        if required:
            raise OpenAIError(
                400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
            )
        return default
    try:
        return int(raw)
    except ValueError:
        raise OpenAIError(400, f"Invalid '{name}': expected an integer, got {raw[:40]!r}.", param=name) from None


def _time(params: Params, name: str, *, required: bool = False, default: int | None = None) -> dt.datetime:
    value = _int(params, name, required=required, default=default)
    if value is None or not EARLIEST <= value <= LATEST:
        raise OpenAIError(
            400, f"Invalid '{name}': Unix seconds between {EARLIEST} and {LATEST} (9998-12-31).", param=name
        )
    return dt.datetime.fromtimestamp(value, dt.UTC)


def _choice(params: Params, name: str, choices: Sequence[str], default: str) -> str:
    value = params.get(name) or default
    if value.lower() not in choices:
        raise OpenAIError(400, f"Invalid '{name}': {value[:40]!r}; choose one of {', '.join(choices)}.", param=name)
    return value.lower()


def _flag(params: Params, name: str) -> bool:
    value = (params.get(name) or "").lower()
    if value not in TRUE + FALSE:
        raise OpenAIError(400, f"Invalid '{name}': {value[:40]!r}; use true or false.", param=name)
    return value in TRUE


def _groups(params: Params, allowed: Sequence[str]) -> list[str]:
    groups = _list(params, "group_by")
    for group in groups:
        if group not in allowed:
            raise OpenAIError(
                400, f"Invalid 'group_by' value {group[:40]!r}; supported: {', '.join(allowed)}.", param="group_by"
            )
    return groups


class Buckets:
    """The buckets of a request: aligned to the width in the chosen zone, paged by ``limit``."""

    def __init__(
        self, *, tenant: Tenant, params: Params, width: str, limits: tuple[int, int], now: dt.datetime | None = None
    ) -> None:
        self.width = width
        self.zone: dt.tzinfo = tenant.tz if _choice(params, "x_timezone", ZONES, "utc") == "tenant" else dt.UTC
        start = _time(params, "start_time", required=True)
        self.end = _time(params, "end_time", default=int((now or timezone.now()).timestamp()))
        default_limit, max_limit = limits
        self.limit = _int(params, "limit", default=default_limit) or 0
        if not 1 <= self.limit <= max_limit:
            raise OpenAIError(
                400, f"Invalid 'limit': must be between 1 and {max_limit} for this bucket_width.", param="limit"
            )
        self.start = self.floor(start)
        if self.end <= self.start:
            raise OpenAIError(400, "Invalid 'end_time': must be after 'start_time'.", param="end_time")
        first = self._page_start(params.get("page"))
        self.starts = [first]
        while len(self.starts) < self.limit and self.next(self.starts[-1]) < self.end:
            self.starts.append(self.next(self.starts[-1]))
        after = self.next(self.starts[-1])
        self.next_page = _cursor(after) if after < self.end else None
        self.span = (self.starts[0], after)

    def floor(self, instant: dt.datetime) -> dt.datetime:
        local = instant.astimezone(self.zone)
        if self.width == "1d":
            return dt.datetime.combine(local.date(), dt.time.min, tzinfo=self.zone).astimezone(dt.UTC)
        seconds = WIDTHS[self.width][0]
        # Hours and minutes: local ones (zones offset by :30 or :45 start hours off the UTC hour).
        offset = local.utcoffset() or dt.timedelta()
        stamp = instant.timestamp() + offset.total_seconds()
        return dt.datetime.fromtimestamp(stamp - stamp % seconds - offset.total_seconds(), dt.UTC)

    def next(self, start: dt.datetime) -> dt.datetime:
        if self.width == "1d":
            day = start.astimezone(self.zone).date() + dt.timedelta(days=1)
            return dt.datetime.combine(day, dt.time.min, tzinfo=self.zone).astimezone(dt.UTC)
        return start + dt.timedelta(seconds=WIDTHS[self.width][0])

    @property
    def bounds(self) -> list[dt.datetime]:
        """Every bucket's start, and the last one's end."""
        return [*self.starts, self.span[1]]

    def _page_start(self, page: str | None) -> dt.datetime:
        if not page:
            return self.start
        try:
            text = base64.urlsafe_b64decode(page.removeprefix("page_").encode() + b"==").decode()
            instant: dt.datetime | None = dt.datetime.fromtimestamp(int(text.removeprefix("v1:")), dt.UTC)
        except (ValueError, binascii.Error, OverflowError, OSError, UnicodeDecodeError):
            instant = None
        if instant is None or not self.start <= instant < self.end or self.floor(instant) != instant:
            raise OpenAIError(400, "Invalid 'page': use the next_page of a previous answer.", param="page")
        return instant

    def period(self, tenant: Tenant) -> Period:
        """The tenant's local dates covering the page."""
        first = self.span[0].astimezone(tenant.tz).date()
        last = (self.span[1] - dt.timedelta(microseconds=1)).astimezone(tenant.tz).date()
        return Period(first, last)

    def index(self, instant: dt.datetime) -> int | None:
        """Position of the bucket holding ``instant`` (None outside the page)."""
        if not self.span[0] <= instant < self.span[1]:
            return None
        low, high = 0, len(self.starts)
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if self.starts[middle] <= instant else (low, middle)
        return low

    def data(self, results_per_bucket: Sequence[list[dict[str, Any]]]) -> dict[str, Any]:
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


def _cursor(instant: dt.datetime) -> str:
    return "page_" + base64.urlsafe_b64encode(f"v1:{int(instant.timestamp())}".encode()).decode().rstrip("=")


# --- Usage --------------------------------------------------------------------------------

Cell = tuple[int, int, int]  # (bucket index, key id, model id)


def _on_local_hours(tenant: Tenant, bounds: Sequence[dt.datetime]) -> list[bool]:
    """Per bucket: whether it starts and ends where local hours of the tenant start, so that the
    hourly rollups hold it exactly (not so for UTC hours of a +05:30 or +05:45 tenant)."""
    starts_hour = [localtime.local_hour_start(instant, tenant.tz) == instant for instant in bounds]
    return [starts_hour[i] and starts_hour[i + 1] for i in range(len(bounds) - 1)]


def _on_local_days(tenant: Tenant, bounds: Sequence[dt.datetime]) -> bool:
    return all(localtime.local_midnight(tenant, localtime.local_day(tenant, instant)) == instant for instant in bounds)


def _usage_cells(tenant: Tenant, buckets: Buckets) -> dict[Cell, Totals]:
    """{(bucket index, key id, model id): Totals} of the page, from the product's selectors.

    Buckets that are whole local days of the tenant come from the daily rollups; those that are
    whole local hours from the hourly rollups (both keep every day after a purge); the others
    (minutes; hours and UTC days of a tenant in a zone off the whole hour) from the ledger.
    """
    query = UsageQuery(tenant, buckets.period(tenant))
    cells: dict[Cell, Totals] = defaultdict(Totals)
    if buckets.width == "1d" and _on_local_days(tenant, buckets.bounds):
        grouped = query_usage(query, bucket="day", dims=("api_key", "model"))
        for (day, key_id, model_id), totals in grouped.items():
            index = buckets.index(localtime.local_midnight(tenant, day).astimezone(dt.UTC))
            if index is not None:
                cells[index, key_id, model_id] += totals
        return cells
    hourly = [False] * len(buckets.starts) if buckets.width == "1m" else _on_local_hours(tenant, buckets.bounds)
    if any(hourly):
        for (hour, key_id, model_id), totals in query_usage(query, bucket="hour", dims=("api_key", "model")).items():
            index = buckets.index(hour)
            if index is not None and hourly[index]:
                cells[index, key_id, model_id] += totals
    ledger = [index for index, whole in enumerate(hourly) if not whole]
    if ledger:
        _ledger_cells(query, buckets, ledger, cells)
    return cells


def _ledger_cells(query: UsageQuery, buckets: Buckets, indexes: list[int], cells: dict[Cell, Totals]) -> None:
    """Add the calls of the buckets at ``indexes`` from the ledger; a 410 when some of them lie
    before the purge horizon (their calls are gone and no rollup holds such a bucket)."""
    _refuse_purged(buckets, buckets.starts[indexes[0]])
    spans = Q(pk__in=[])
    for first, last in _runs(indexes):  # consecutive buckets: one range each
        spans |= Q(occurred_at__gte=buckets.starts[first], occurred_at__lt=buckets.next(buckets.starts[last]))
    rows = query.calls().filter(spans)
    columns = ("occurred_at", "api_key_id", "model_id", "input_tokens", "output_tokens")
    optional = (
        "cached_input_tokens",
        "reasoning_tokens",
        "cache_creation_input_tokens",
        "cache_creation_1h_input_tokens",
    )
    for at, key_id, model_id, inp, out, *counts in rows.values_list(*columns, *optional).iterator(chunk_size=5000):
        position = buckets.index(at)
        if position is not None:
            cells[position, key_id, model_id] += Totals(1, inp, out, *counts)


def _runs(indexes: list[int]) -> list[tuple[int, int]]:
    """[0, 1, 2, 5] -> [(0, 2), (5, 5)]."""
    runs: list[tuple[int, int]] = []
    for index in indexes:
        if runs and runs[-1][1] == index - 1:
            runs[-1] = (runs[-1][0], index)
        else:
            runs.append((index, index))
    return runs


def _refuse_purged(buckets: Buckets, first: dt.datetime) -> None:
    horizon = purge_horizon()
    if horizon is None or first >= horizon:
        return
    kind = "Minute buckets" if buckets.width == "1m" else "Buckets that are not whole local hours of the tenant"
    raise OpenAIError(
        410,
        f"Call-level detail before {horizon:%Y-%m-%dT%H:%M:%SZ} was purged (retention). {kind} are "
        f"computed from it, so they are available from start_time={int(horizon.timestamp())}. Earlier "
        "usage is kept by local day and hour: ask for bucket_width=1h or 1d with x_timezone=tenant.",
        param="start_time",
        code="usage_detail_purged",
    )


Named = tuple[ApiKey | None, Model | None]


def _names(cells: Iterable[Cell]) -> tuple[dict[int, ApiKey], dict[int, Model]]:
    cells = list(cells)
    keys = ApiKey.objects.in_bulk({key_id for _i, key_id, _m in cells})
    models = Model.objects.in_bulk({model_id for _i, _k, model_id in cells})
    return keys, models


def _filtered(
    cells: Mapping[Cell, Any], api_key_ids: list[str], model_names: list[str]
) -> Iterator[tuple[int, ApiKey, Model, Any]]:
    """Cells of the named keys and models only. Ids of keys the tenant does not have match nothing."""
    keys, models = _names(cells)
    for (index, key_id, model_id), value in cells.items():
        if api_key_ids and keys[key_id].public_id not in api_key_ids:
            continue
        if model_names and models[model_id].name not in model_names:
            continue
        yield index, keys[key_id], models[model_id], value


def _group_members(group: Named, groups: list[str], model_member: str, ungrouped: Sequence[str]) -> dict[str, Any]:
    key, model = group
    return {
        **dict.fromkeys(ungrouped),
        "api_key_id": key.public_id if key else None,
        model_member: model.name if model else None,
        # OpenAI: "unlabeled" is all usage without source attribution, as all of this product's is.
        "api_source": "unlabeled" if "api_source" in groups else None,
    }


def _completions_result(group: Named, totals: Totals, groups: list[str], extended: bool) -> dict[str, Any]:
    result: dict[str, Any] = {
        "object": "organization.usage.completions.result",
        "input_tokens": totals.input_tokens,
        "output_tokens": totals.output_tokens,
        "num_model_requests": totals.calls,
    }
    cached = totals.cached_input_tokens
    if cached is not None:  # omitted, not null nor 0, when no call of the group reported it
        result["input_cached_tokens"] = cached
        result["input_uncached_tokens"] = totals.input_tokens - min(cached, totals.input_tokens)
    result |= _group_members(group, groups, "model", COMPLETIONS_UNGROUPED)
    if extended:
        key = group[0]
        result[EXTENSION] = {
            "reasoning_tokens": totals.reasoning_tokens,
            "total_tokens": totals.total_tokens,
            "api_key_name": key.name if key else None,
        }
    return result


def _sort_key(group: Named) -> tuple[str, str]:
    key, model = group
    return (key.public_id if key else "", model.name if model else "")


def _grouped(
    buckets: Buckets, cells: Iterator[tuple[int, ApiKey, Model, Any]], by_key: bool, by_model: bool, empty: type
) -> list[list[tuple[Named, Any]]]:
    """Per bucket, the (group, sum) pairs in a stable order."""
    per_bucket: list[dict[Named, Any]] = [defaultdict(empty) for _ in buckets.starts]
    for index, key, model, value in cells:
        group = (key if by_key else None, model if by_model else None)
        per_bucket[index][group] += value
    return [sorted(bucket.items(), key=lambda item: _sort_key(item[0])) for bucket in per_bucket]


class CompletionsView(OpenAICompatView):
    """``GET /api/openai/v1/organization/usage/completions``."""

    def get(self, request: Request) -> Response:
        tenant = api_tenant(request)
        params = request.query_params
        _known(params, COMPLETIONS_PARAMS)
        width = _choice(params, "bucket_width", tuple(WIDTHS), "1d")
        groups = _groups(params, COMPLETIONS_GROUPS)
        extended = _flag(params, EXTENSION)
        buckets = Buckets(tenant=tenant, params=params, width=width, limits=WIDTHS[width][1:])
        cells = _filtered(_usage_cells(tenant, buckets), _list(params, "api_key_ids"), _list(params, "models"))
        per_bucket = _grouped(buckets, cells, "api_key_id" in groups, "model" in groups, Totals)
        results = [
            [_completions_result(group, totals, groups, extended) for group, totals in bucket] for bucket in per_bucket
        ]
        return Response(buckets.data(results))


# --- Costs --------------------------------------------------------------------------------


def _fallback_currency(summaries: Iterable[CostSummary]) -> str:
    currencies = sorted({currency for summary in summaries for currency in summary.amounts})
    return currencies[0] if currencies else DEFAULT_CURRENCY


UNPRICED_ITEM = "unpriced"
# The cost of calls at a price that depends on the call (tiers, service tiers, windows, fees),
# which is not split by token class: one item, so the items still add up to the cost.
CALL_PRICED_ITEM = "priced per call"


class LineItemCosts:
    """A group's cost split into OpenAI-style line items, ``"<model>, <token class>"`` ("input",
    "cached input", "cache write", "output"), plus ``"<model>, unpriced"`` for tokens no price covers
    (amount 0, their count in the extension). The items' amounts add up to the group's cost exactly."""

    def __init__(self, parts: dict[str, CostSummary] | None = None) -> None:
        self.parts: dict[str, CostSummary] = parts or {}

    @classmethod
    def of(cls, summary: CostSummary, classes: dict[str, ClassCosts], wanted: set[str] | None) -> LineItemCosts:
        parts = {}
        for name in TOKEN_CLASSES:
            label = TOKEN_CLASS_LABELS[name]
            amounts = {currency: getattr(costs, name) for currency, costs in classes.items()}
            if amounts and (wanted is None or label in wanted):
                parts[label] = CostSummary(amounts)
        rest = {
            currency: amount - sum((getattr(classes.get(currency), name, 0) for name in TOKEN_CLASSES), Decimal(0))
            for currency, amount in summary.amounts.items()
        }
        rest = {currency: amount for currency, amount in rest.items() if amount}
        if rest and (wanted is None or CALL_PRICED_ITEM in wanted):
            parts[CALL_PRICED_ITEM] = CostSummary(rest)
        if summary.unpriced_tokens and (wanted is None or UNPRICED_ITEM in wanted):
            parts[UNPRICED_ITEM] = CostSummary({}, summary.unpriced_tokens, list(summary.unpriced_models))
        return cls(parts)

    def __add__(self, other: LineItemCosts) -> LineItemCosts:
        merged = {label: summary + CostSummary() for label, summary in self.parts.items()}
        for label, summary in other.parts.items():
            merged[label] = merged[label] + summary if label in merged else summary + CostSummary()
        return LineItemCosts(merged)

    @property
    def amounts(self) -> dict[str, Any]:
        return {currency: None for summary in self.parts.values() for currency in summary.amounts}

    def items(self) -> list[tuple[str, CostSummary]]:
        order = [TOKEN_CLASS_LABELS[name] for name in TOKEN_CLASSES] + [CALL_PRICED_ITEM, UNPRICED_ITEM]
        return sorted(self.parts.items(), key=lambda item: order.index(item[0]))


def _line_item_filter(names: list[str]) -> tuple[list[str], dict[str, set[str] | None]]:
    """(model names to keep, {model name: the items wanted, None for all}) of a ``line_items`` filter:
    a model name keeps all its items, ``"<model>, <class>"`` that one."""
    labels = {*TOKEN_CLASS_LABELS.values(), CALL_PRICED_ITEM, UNPRICED_ITEM}
    wanted: dict[str, set[str] | None] = {}
    for name in names:
        model, _, label = name.rpartition(", ")
        if model and label in labels:
            if wanted.get(model, set()) is not None:
                wanted.setdefault(model, set()).add(label)  # type: ignore[union-attr]
        else:
            wanted[name] = None
    return list(wanted), wanted


def _line_item_results(
    group: Named, items: LineItemCosts, fallback: str, groups: list[str], extended: bool
) -> list[dict[str, Any]]:
    model = group[1]
    results = []
    for label, summary in items.items():
        for result in _costs_results(group, summary, fallback, groups, extended):
            result["line_item"] = f"{model.name}, {label}" if model else label
            results.append(result)
    return results


def _costs_results(
    group: Named, summary: CostSummary, fallback: str, groups: list[str], extended: bool
) -> list[dict[str, Any]]:
    key = group[0]
    results = []
    for currency in summary.currencies or [fallback]:
        result: dict[str, Any] = {
            "object": "organization.costs.result",
            "amount": {"value": float(summary.formatted(currency)), "currency": currency.lower()},
            **_group_members(group, groups, "line_item", COSTS_UNGROUPED),
            "quantity": None,
            "quantity_unit": None,
        }
        if extended:
            result[EXTENSION] = {
                "amount": summary.formatted(currency),
                "currency": currency,
                "unpriced_tokens": summary.unpriced_tokens,
                "unpriced_models": list(summary.unpriced_models),
                "api_key_name": key.name if key else None,
            }
        results.append(result)
    return results


class CostsView(OpenAICompatView):
    """``GET /api/openai/v1/organization/costs``: bucket_width 1d, one bucket per local day's cost.

    Prices apply per tenant-local day, so a bucket holds the cost of the tenant's local day of
    the same date (with ``x_timezone=tenant`` the bucket is exactly that day). Costs come from the
    daily rollups, which keep every day after a purge.
    """

    def get(self, request: Request) -> Response:
        tenant = api_tenant(request)
        params = request.query_params
        _known(params, COSTS_PARAMS)
        _choice(params, "bucket_width", ("1d",), "1d")
        groups = _groups(params, COSTS_GROUPS)
        extended = _flag(params, EXTENSION)
        buckets = Buckets(tenant=tenant, params=params, width="1d", limits=COSTS_LIMITS)
        dates = {start.astimezone(buckets.zone).date(): index for index, start in enumerate(buckets.starts)}
        query = UsageQuery(tenant, Period(min(dates), max(dates)))
        engine = CostEngine.for_query(query, terms_only=True)
        costs = engine.summaries(query, ("day", "api_key", "model"))
        fallback = _fallback_currency(costs.values())
        models, wanted = _line_item_filter(_list(params, "line_items"))
        cells: dict[Cell, Any] = {
            (dates[day], key_id, model_id): summary for (day, key_id, model_id), summary in costs.items()
        }
        if "line_item" not in groups:
            chosen = _filtered(cells, _list(params, "api_key_ids"), models)
            per_bucket = _grouped(buckets, chosen, "api_key_id" in groups, False, CostSummary)
            results = [
                [r for group, summary in bucket for r in _costs_results(group, summary, fallback, groups, extended)]
                for bucket in per_bucket
            ]
            return Response(buckets.data(results))
        # By line item: each model's cost split by token class (the items add up to it exactly).
        classes = engine.class_summaries(query, ("day", "api_key", "model"))
        names = dict(Model.objects.filter(pk__in={cell[2] for cell in cells}).values_list("pk", "name"))
        for (day, key_id, model_id), summary in costs.items():
            found = classes.get((day, key_id, model_id), {})
            cells[(dates[day], key_id, model_id)] = LineItemCosts.of(summary, found, wanted.get(names[model_id]))
        chosen = _filtered(cells, _list(params, "api_key_ids"), models)
        per_bucket = _grouped(buckets, chosen, "api_key_id" in groups, True, LineItemCosts)
        results = [
            [r for group, items in bucket for r in _line_item_results(group, items, fallback, groups, extended)]
            for bucket in per_bucket
        ]
        return Response(buckets.data(results))

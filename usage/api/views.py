"""The read-only REST API: usage of the tenant of the access token (or browser session).

Every endpoint resolves the tenant first (``api_tenant``), builds the request's ``UsageQuery``
through the page's FilterSet and reads its answers (the page's grids), so their numbers agree.
"""

from collections.abc import Mapping
from typing import cast

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, generics
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiKey
from usage.api import serializers as s
from usage.api.pagination import CallCursorPagination
from usage.api.schema import ERRORS, PROBLEM, problem, responses
from usage.api.scope import CommonParams, TenantParams, api_tenant, usage_query, validated
from usage.api.throttling import AccessTokenThrottle
from usage.ledger.retention import detail_available_from
from usage.models import Model
from usage.reporting.cache_economics import CacheEconomics, cache_economics
from usage.reporting.costs import DEFAULT_CURRENCY, CostEngine, CostSummary, class_costs_as_api
from usage.reporting.export import export_response
from usage.reporting.focus import focus_response
from usage.reporting.performance import query_performance
from usage.reporting.query import InvalidQuery
from usage.reporting.selectors import Totals, breakdown_rows, tenant_models
from usage.reporting.unpriced import Unpriced, unpriced_total, unpriced_usage


class TenantAPIView(APIView):
    throttle_classes = [AccessTokenThrottle]

    def query(self, request, **options):
        """The ``UsageQuery`` of this request (``options``: its bucket and grouping)."""
        return usage_query(request, api_tenant(request), **options)

    def refined(self, query, **options):
        """``query`` with the endpoint's own bucket and grouping; an impossible one is a 400."""
        try:
            return query.using(**options)
        except InvalidQuery as invalid:
            raise exceptions.ValidationError(invalid.errors) from None


def _period(query):
    return {"start": query.period.start, "end": query.period.end, "timezone": query.tenant.timezone}


def _group_fields(group):
    if isinstance(group, ApiKey):
        return {"api_key": group.public_id, "api_key_name": group.name}
    if group is not None:
        return {"model": group.name}
    return {}


def _grid_series(grid, group_by):
    """[(group object or None, [Totals per bucket], [CostSummary per bucket] or None)], busiest first.

    Daily points carry their cost (prices apply per local day); hourly points have none.
    ``group_by`` None sums the grid's groups into one series.
    """
    buckets = range(len(grid.buckets))
    daily = grid.bucket == "day"
    usages = sorted(grid.models.items(), key=lambda item: item[0])
    if group_by is None:
        points = [sum((usage.point(i) for _pk, usage in usages), Totals()) for i in buckets]
        costs = [sum((usage.day_cost(i) for _pk, usage in usages), CostSummary()) for i in buckets] if daily else None
        return [(None, points, costs)]
    objects = (Model if group_by == "model" else ApiKey).objects.in_bulk([pk for pk, _usage in usages])
    series = [
        (objects[pk], [usage.point(i) for i in buckets], [usage.day_cost(i) for i in buckets] if daily else None)
        for pk, usage in usages
    ]
    series.sort(key=lambda entry: -sum(point.total_tokens for point in entry[1]))
    return series


def _series_item(group, points, labels, costs, fallback):
    items = []
    for index, (label, point) in enumerate(zip(labels, points, strict=True)):
        cost = None if costs is None else costs[index].as_api(fallback_currency=fallback)
        items.append({"bucket": label, **point.as_dict(), "cost": cost})
    return {**_group_fields(group), "points": items}


def _grid_fallback(grid):
    """The currency of a zero cost object: the range's first, so a tenant priced in EUR never sees USD 0."""
    currencies = sorted({currency for usage in grid.models.values() for currency in usage.cost})
    return currencies[0] if currencies else DEFAULT_CURRENCY


def _bucket_label(tenant, bucket):
    return bucket.astimezone(tenant.tz).isoformat() if hasattr(bucket, "hour") else bucket.isoformat()


@extend_schema(tags=["usage"], parameters=[CommonParams], responses=responses(s.SummarySerializer))
class SummaryView(TenantAPIView):
    """Totals and cost of the filtered calls."""

    def get(self, request):
        query = self.query(request)
        # The page's grids and their caches: the API's totals and the page's cards are one number.
        totals, cost = query.totals(), query.cost()
        unpriced = unpriced_total(query)
        data = {**_period(query), **totals.as_dict(), "cost": cost.as_api(), "unpriced_calls": unpriced.calls}
        return Response(s.SummarySerializer({**data, "unpriced_models": cost.unpriced_models}).data)


@extend_schema(
    tags=["usage"], parameters=[CommonParams, s.TimeseriesParams], responses=responses(s.TimeseriesSerializer)
)
class TimeseriesView(TenantAPIView):
    """Usage per hour or day, one gap-filled series per model, per API key, or in total.

    Daily points carry their cost; hourly points' cost is null, since prices apply per local day.
    """

    def get(self, request):
        # The tenant and the common filters first, then the endpoint's own parameters.
        query = self.query(request)
        params = validated(s.TimeseriesParams, request)
        group_by = None if params["group_by"] == "none" else params["group_by"]
        query = self.refined(query, bucket=params["bucket"], by=group_by or "model")
        # The page's grids and caches: a key's or model's series is the page's to the token.
        grid = query.grid()
        labels = [_bucket_label(query.tenant, bucket) for bucket in grid.buckets]
        fallback = _grid_fallback(grid)
        items = [
            _series_item(group, points, labels, costs, fallback)
            for group, points, costs in _grid_series(grid, group_by)
        ]
        data = {**_period(query), **params, "buckets": labels, "series": items}
        return Response(s.TimeseriesSerializer(data).data)


@extend_schema(
    tags=["usage"], parameters=[CommonParams, s.TimeseriesParams], responses=responses(s.PerformanceSerializer)
)
class PerformanceView(TenantAPIView):
    """Calls, errors by type, latency, time to first token and output tokens per second, per hour or day
    and per model or API key, and in total; percentiles merged from histograms, weighted by requests."""

    def get(self, request):
        query = self.query(request)
        params = validated(s.TimeseriesParams, request)
        group_by = None if params["group_by"] == "none" else params["group_by"]
        query = self.refined(query, bucket=params["bucket"], by=group_by or "model")
        report = query_performance(query, group_by=group_by)
        labels = [_bucket_label(query.tenant, bucket) for bucket in report.buckets]
        objects = (Model if group_by == "model" else ApiKey).objects.in_bulk([g for g in report.groups if g])
        series = []
        for group, points in report.groups.items():
            items = [{"bucket": label, **p.as_api()} for label, p in zip(labels, points, strict=True)]
            total = report.group_total(group)
            series.append({**_group_fields(objects.get(group)), "total": total.as_api(), "points": items})
        series.sort(key=lambda item: (-item["total"]["calls"], item.get("model") or item.get("api_key") or ""))
        data = {**_period(query), **params, "buckets": labels, "total": report.total.as_api(), "series": series}
        return Response(s.PerformanceSerializer(data).data)


@extend_schema(tags=["usage"], parameters=[CommonParams, s.BreakdownParams], responses=responses(s.BreakdownSerializer))
class BreakdownView(TenantAPIView):
    """One row per model or API key, most tokens first, with its share of the total tokens."""

    def get(self, request):
        query = self.query(request)
        by = validated(s.BreakdownParams, request)["by"]
        query = self.refined(query, by=by)
        grid = query.grid()
        objects: Mapping[int, Model | ApiKey] = (Model if by == "model" else ApiKey).objects.in_bulk(list(grid.models))
        rows = breakdown_rows((objects[pk], usage.totals) for pk, usage in grid.models.items())
        fallback = _grid_fallback(grid)
        economics = cache_economics(query, grid)
        unpriced = unpriced_usage(query, grid) if by == "model" else None
        by_class = CostEngine.for_query(query, terms_only=True).class_summaries(query, (by,))
        results = []
        for row in rows:
            group = cast("Model | ApiKey", row.group)  # the objects above
            usage = grid.models[group.pk]
            cost = usage.cost_summary(group.name).as_api(fallback_currency=fallback)
            cache = economics.get(group.pk, CacheEconomics()).as_api()
            cache["unpriced_calls"] = None if unpriced is None else unpriced.get(group.pk, Unpriced()).calls
            cache["cost_by_class"] = class_costs_as_api(by_class.get((group.pk,), {}))
            results.append({**_group_fields(group), **row.totals.as_dict(), "share": row.share, "cost": cost, **cache})
        data = {**_period(query), "by": by, "results": results}
        return Response(s.BreakdownSerializer(data).data)


@extend_schema(
    tags=["usage"],
    parameters=[CommonParams],
    responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="The CSV file."), **ERRORS},
    description="CSV, one row per local day x API key x model with usage: date, api_key, api_key_name, model, "
    "calls, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, cache_creation_input_tokens, "
    "cache_creation_1h_input_tokens (empty when not reported), cost and currency (the line's exact cost as a plain "
    "decimal string, e.g. 0.3164304, never rounded; both empty when no price is in force for the line), then "
    "cost_input, cost_cached_read, cost_cache_write, cost_output (the line's exact cost per token class; they add "
    "up to cost). UTF-8, a header row, no totals row, streamed.",
)
class ExportView(TenantAPIView):
    renderer_classes = [JSONRenderer]  # for errors; the CSV itself is streamed as is

    def perform_content_negotiation(self, request, force=False):
        # Accept: text/csv is welcome; errors still come as problem+json.
        return super().perform_content_negotiation(request, force=True)

    def get(self, request):
        return export_response(query=self.query(request))


@extend_schema(
    tags=["usage"],
    parameters=[CommonParams],
    responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="The FOCUS 1.2 CSV file."), **ERRORS},
    description="Cost and usage in FOCUS 1.2 (FinOps Open Cost and Usage Specification), CSV: one row per local "
    "day x API key x model x token class (input, cached_input, output) with BilledCost, EffectiveCost, ListCost, "
    "ContractedCost (exact decimals, no rounding: their sums equal the summary's cost), ChargePeriodStart/End, "
    "BillingPeriodStart/End, ResourceId (the key), SkuId/SkuPriceId, ConsumedQuantity (tokens), PricingQuantity "
    "(thousands of tokens) and the other mandatory columns. UTF-8, a header row, streamed.",
)
class FocusExportView(ExportView):
    def get(self, request):
        return focus_response(self.query(request))


@extend_schema(
    tags=["catalog"],
    parameters=[TenantParams],
    responses=responses(s.list_of(s.ApiKeySerializer, "ApiKeyList")),
)
class ApiKeyListView(TenantAPIView):
    """The tenant's API keys, revoked and expired ones included (their usage stays in reports)."""

    def get(self, request):
        tenant = api_tenant(request)
        keys = ApiKey.objects.filter(tenant=tenant).order_by("name", "public_id")
        return Response({"results": s.ApiKeySerializer(keys, many=True).data})


@extend_schema(
    tags=["catalog"], parameters=[TenantParams], responses=responses(s.list_of(s.ModelSerializer, "ModelList"))
)
class ModelListView(TenantAPIView):
    """The models the tenant can filter by: those it has used, and its private ones."""

    def get(self, request):
        models = tenant_models(tenant=api_tenant(request))
        results = [{"name": model.name, "private": model.tenant_id is not None} for model in models]
        return Response({"results": s.ModelSerializer(results, many=True).data})


class CallDetailPurged(exceptions.APIException):
    """A request for calls of days whose call-level detail was purged (``usage.ledger.retention``)."""

    status_code = 410
    default_code = "purged"

    def __init__(self, available_from):
        super().__init__(
            f"Call-level detail is available from {available_from:%Y-%m-%d}; earlier calls were purged by the "
            "retention policy. Start the range on or after that day; /api/v1/usage/summary, timeseries and "
            "breakdown keep every day's totals."
        )


@extend_schema(
    tags=["usage"],
    parameters=[CommonParams],
    responses=responses(s.CallSerializer(many=True))
    | {(410, PROBLEM): problem("The range starts before the day call-level detail is available from.")},
)
class CallListView(TenantAPIView, generics.ListAPIView):
    """The ledger: one item per call matching the filters, newest first, cursor-paginated."""

    serializer_class = s.CallSerializer
    pagination_class = CallCursorPagination

    def get_queryset(self):
        query = self.query(self.request)
        self.tenant = query.tenant
        available_from = detail_available_from(self.tenant)
        if available_from is not None and query.period.start < available_from:
            raise CallDetailPurged(available_from)
        return query.calls().select_related("api_key", "model")

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        # Times of calls read in the tenant's zone, like its dates.
        with timezone.override(self.tenant.tz):
            data = self.get_serializer(page, many=True).data
        return self.get_paginated_response(data)

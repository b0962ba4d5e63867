"""The read-only REST API: usage of the tenant of the access token (or browser session).

Every endpoint resolves the tenant first (``api_tenant``), reads the common filters through
the page's FilterSet and calls the same selectors as the page, so their numbers agree.
"""

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, generics
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiKey
from usage import rollups
from usage.export import export_response
from usage.models import CallRecord
from usage.selectors import MAX_HOURLY_DAYS, tenant_models, usage_breakdown, usage_series, usage_summary

from . import serializers as s
from .pagination import CallCursorPagination
from .schema import ERRORS, responses
from .scope import CommonParams, TenantParams, api_tenant, usage_filters, validated
from .throttling import AccessTokenThrottle


class TenantAPIView(APIView):
    throttle_classes = [AccessTokenThrottle]

    def scope(self, request):
        """(tenant, UsageFilters) of this request."""
        tenant = api_tenant(request)
        return tenant, usage_filters(request, tenant)


def _period(tenant, filters):
    return {"start": filters.period.start, "end": filters.period.end, "timezone": tenant.timezone}


def _group_fields(group):
    if isinstance(group, ApiKey):
        return {"api_key": group.public_id, "api_key_name": group.name}
    if group is not None:
        return {"model": group.name}
    return {}


def _series_item(group, labels, points):
    return {
        **_group_fields(group),
        "points": [{"bucket": label, **point.as_dict()} for label, point in zip(labels, points, strict=True)],
    }


def _bucket_label(tenant, bucket):
    return bucket.astimezone(tenant.tz).isoformat() if hasattr(bucket, "hour") else bucket.isoformat()


@extend_schema(tags=["usage"], parameters=[CommonParams], responses=responses(s.SummarySerializer))
class SummaryView(TenantAPIView):
    """Totals of the filtered calls."""

    def get(self, request):
        tenant, filters = self.scope(request)
        totals = usage_summary(tenant=tenant, filters=filters)
        return Response(s.SummarySerializer({**_period(tenant, filters), **totals.as_dict()}).data)


@extend_schema(
    tags=["usage"], parameters=[CommonParams, s.TimeseriesParams], responses=responses(s.TimeseriesSerializer)
)
class TimeseriesView(TenantAPIView):
    """Usage per hour or day, one gap-filled series per model, per API key, or in total."""

    def get(self, request):
        tenant, filters = self.scope(request)
        params = validated(s.TimeseriesParams, request)
        if params["bucket"] == "hour" and filters.period.days > MAX_HOURLY_DAYS:
            raise exceptions.ValidationError(
                {"bucket": f"Hourly buckets cover at most {MAX_HOURLY_DAYS} days; use bucket=day."}
            )
        group_by = None if params["group_by"] == "none" else params["group_by"]
        series = usage_series(tenant=tenant, filters=filters, bucket=params["bucket"], group_by=group_by)
        labels = [_bucket_label(tenant, bucket) for bucket in series.buckets]
        data = {
            **_period(tenant, filters),
            "bucket": params["bucket"],
            "group_by": params["group_by"],
            "buckets": labels,
            "series": [_series_item(group, labels, points) for group, points in series.groups],
        }
        return Response(s.TimeseriesSerializer(data).data)


@extend_schema(tags=["usage"], parameters=[CommonParams, s.BreakdownParams], responses=responses(s.BreakdownSerializer))
class BreakdownView(TenantAPIView):
    """One row per model or API key, most tokens first, with its share of the total tokens."""

    def get(self, request):
        tenant, filters = self.scope(request)
        by = validated(s.BreakdownParams, request)["by"]
        rows = usage_breakdown(tenant=tenant, filters=filters, by=by)
        results = [{**_group_fields(row.group), **row.totals.as_dict(), "share": row.share} for row in rows]
        data = {**_period(tenant, filters), "by": by, "results": results}
        return Response(s.BreakdownSerializer(data).data)


@extend_schema(
    tags=["usage"],
    parameters=[CommonParams],
    responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="The CSV file."), **ERRORS},
    description="CSV, one row per local day x API key x model with usage: date, api_key, api_key_name, model, "
    "calls, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens (empty when not reported). "
    "UTF-8, a header row, no totals row, streamed.",
)
class ExportView(TenantAPIView):
    renderer_classes = [JSONRenderer]  # for errors; the CSV itself is streamed as is

    def perform_content_negotiation(self, request, force=False):
        # Accept: text/csv is welcome; errors still come as problem+json.
        return super().perform_content_negotiation(request, force=True)

    def get(self, request):
        tenant, filters = self.scope(request)
        return export_response(tenant=tenant, filters=filters)


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


def ledger_calls(*, tenant, filters):
    """The calls on the filtered local days, unordered (the paginator orders them).

    A read of the ledger rather than the rollups; it belongs beside them in usage.selectors.
    """
    start, end = rollups.day_span(tenant, filters.period.start, filters.period.end)
    calls = CallRecord.objects.filter(tenant=tenant, occurred_at__gte=start, occurred_at__lt=end)
    if filters.api_key is not None:
        calls = calls.filter(api_key=filters.api_key)
    if filters.model is not None:
        calls = calls.filter(model=filters.model)
    return calls.select_related("api_key", "model")


@extend_schema(tags=["usage"], parameters=[CommonParams], responses=responses(s.CallSerializer(many=True)))
class CallListView(TenantAPIView, generics.ListAPIView):
    """The ledger: one item per call matching the filters, newest first, cursor-paginated."""

    serializer_class = s.CallSerializer
    pagination_class = CallCursorPagination

    def get_queryset(self):
        self.tenant, filters = self.scope(self.request)
        return ledger_calls(tenant=self.tenant, filters=filters)

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        # Times of calls read in the tenant's zone, like its dates.
        with timezone.override(self.tenant.tz):
            data = self.get_serializer(page, many=True).data
        return self.get_paginated_response(data)

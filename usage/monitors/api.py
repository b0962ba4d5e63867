"""``/api/v1/monitors``: a tenant's alert rules, their state and events.

Reads take an access token or a browser session, like every API view. Writes (POST, PUT, PATCH,
DELETE) take the browser session of an owner or admin of the tenant: a viewer's is a 403, and so
is an access token's, since access tokens are read-only (``accounts.authentication``). Input is
validated by the Monitors page's form (``usage.monitors.forms``), so both refuse the same things
with the same messages, and a refused request changes nothing.
"""

from decimal import Decimal

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from accounts.models import AccessToken, Membership
from usage.api.schema import ERRORS, problem
from usage.api.scope import TenantParams, api_tenant
from usage.api.views import TenantAPIView
from usage.models import Monitor, MonitorEvent
from usage.monitors import services
from usage.monitors.forms import MonitorForm
from usage.monitors.selectors import monitor_events, tenant_monitors

# API name -> the form's field; ``budget`` is the model's ``channels``.
INPUT_FIELDS = {name: name for name in MonitorForm.Meta.fields if name != "channels"} | {"budget": "channels"}
READ_ONLY = {"id", "state", "value", "evaluated_at", "created_at", "recent_events"}
DEFAULTS = {"window_minutes": 60, "min_calls": 50}

WRITE_ERRORS = {
    (400, "application/problem+json"): problem("A field is invalid or unknown; nothing was changed."),
    (401, "application/problem+json"): ERRORS[(401, "application/problem+json")],
    (403, "application/problem+json"): problem("A viewer, or an access token (read-only), cannot change monitors."),
    (404, "application/problem+json"): problem("No such monitor in this tenant."),
}


class MonitorEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=MonitorEvent.Kind.values, help_text="fired or resolved.")
    value = serializers.FloatField(allow_null=True, help_text="The rule's value when it fired or resolved.")
    calls = serializers.IntegerField(help_text="The calls the value is of.")
    window_start = serializers.DateTimeField()
    at = serializers.DateTimeField(source="created_at")


class MonitorSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    metric = serializers.ChoiceField(
        choices=Monitor.Metric.choices,
        help_text="error_rate (percent), latency_p95 (ms), usage_spike (calls over the same window a week before).",
    )
    threshold = serializers.CharField(help_text="Fires above it, as a plain decimal string.")
    window_minutes = serializers.IntegerField(
        help_text="A multiple of 60 up to 10080: the last N local hours, the current one included (rollups). "
        "Any other, 5 to 1440: the last M minutes, exactly (the ledger)."
    )
    min_calls = serializers.IntegerField(help_text="Fewer calls in the window: not judged.")
    model = serializers.CharField(allow_null=True, help_text="Model name; null for all models.")
    api_key = serializers.CharField(allow_null=True, help_text="Public id of the key; null for all keys.")
    budget = serializers.IntegerField(help_text="Id of the budget whose e-mails and webhook receive the alerts.")
    state = serializers.ChoiceField(choices=Monitor.State.values)
    value = serializers.FloatField(allow_null=True, help_text="The last evaluation's value.")
    evaluated_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    recent_events = MonitorEventSerializer(many=True, help_text="The last 5, newest first.")


class MonitorInputSerializer(serializers.Serializer):
    """What POST, PUT and PATCH take (the read-only fields of a monitor may be sent back; they are ignored)."""

    name = serializers.CharField(max_length=100)
    metric = serializers.ChoiceField(choices=Monitor.Metric.choices)
    threshold = serializers.DecimalField(max_digits=14, decimal_places=4, help_text="Greater than 0.")
    window_minutes = serializers.IntegerField(required=False, default=60)
    min_calls = serializers.IntegerField(required=False, default=50)
    model = serializers.CharField(required=False, allow_null=True, help_text="A platform model or the tenant's own.")
    api_key = serializers.CharField(required=False, allow_null=True, help_text="One of the tenant's keys.")
    budget = serializers.IntegerField(help_text="One of the tenant's budgets.")


class MonitorListSerializer(serializers.Serializer):
    results = MonitorSerializer(many=True)


def monitor_as_api(monitor: Monitor) -> dict:
    return {
        "id": monitor.pk,
        **_current(monitor),
        "threshold": format(Decimal(monitor.threshold).normalize(), "f"),
        "state": monitor.state,
        "value": monitor.value,
        "evaluated_at": monitor.evaluated_at,
        "created_at": monitor.created_at,
        "recent_events": MonitorEventSerializer(monitor_events(monitor=monitor), many=True).data,
    }


def _require_writer(request, tenant) -> None:
    if isinstance(request.auth, AccessToken):
        raise exceptions.PermissionDenied(
            "Access tokens are read-only: sign in as an owner or admin to change monitors."
        )
    membership = Membership.objects.filter(user_id=request.user.pk, tenant=tenant).first()
    if membership is None or not membership.can_manage:
        raise exceptions.PermissionDenied("Viewers cannot change monitors: ask an owner or admin.")


def _form_value(name, value):
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise exceptions.ValidationError({name: ["Enter a single value (a string or a number)."]})
    return str(value)


def _current(monitor: Monitor) -> dict:
    return {
        "name": monitor.name,
        "metric": monitor.metric,
        "threshold": monitor.threshold,
        "window_minutes": monitor.window_minutes,
        "min_calls": monitor.min_calls,
        "model": monitor.model.name if monitor.model else None,
        "api_key": monitor.api_key.public_id if monitor.api_key else None,
        "budget": monitor.channels_id,
    }


def _validated(request, tenant, *, base: dict, instance: Monitor | None) -> dict:
    """The form's cleaned fields of ``base`` updated with the body; a 400 naming each bad field."""
    body = request.data
    if not isinstance(body, dict):
        raise exceptions.ValidationError({"body": ["Send a JSON object."]})
    unknown = sorted(set(body) - set(INPUT_FIELDS) - READ_ONLY)
    if unknown:
        raise exceptions.ValidationError({name: ["Unknown field."] for name in unknown})
    values = {**base, **{name: body[name] for name in INPUT_FIELDS if name in body}}
    data = {INPUT_FIELDS[name]: _form_value(name, value) for name, value in values.items()}
    form = MonitorForm(data, instance=instance, tenant=tenant)
    if not form.is_valid():
        field_names = {form_name: name for name, form_name in INPUT_FIELDS.items()}
        errors = {field_names.get(field, field): list(messages) for field, messages in form.errors.items()}
        raise exceptions.ValidationError(errors)
    return form.monitor_data()


class MonitorEventPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True, help_text="The next (older) page; null on the last.")
    previous = serializers.URLField(allow_null=True, help_text="The previous (newer) page; null on the first.")
    results = MonitorEventSerializer(many=True, help_text="Newest first.")


class MonitorEventPagination(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 100


@extend_schema(tags=["monitors"], parameters=[TenantParams])
class MonitorListView(TenantAPIView):
    """The tenant's monitors with their state and last 5 events; POST creates one."""

    @extend_schema(operation_id="monitors_list", responses={200: MonitorListSerializer, **ERRORS})
    def get(self, request):
        tenant = api_tenant(request)
        return Response({"results": [monitor_as_api(m) for m in tenant_monitors(tenant=tenant)]})

    @extend_schema(
        operation_id="monitors_create",
        request=MonitorInputSerializer,
        responses={201: MonitorSerializer, **WRITE_ERRORS},
    )
    def post(self, request):
        tenant = api_tenant(request)
        _require_writer(request, tenant)
        data = _validated(request, tenant, base=dict(DEFAULTS), instance=None)
        monitor = services.monitor_create(tenant=tenant, data=data)
        return Response(monitor_as_api(monitor), status=status.HTTP_201_CREATED)


@extend_schema(tags=["monitors"], parameters=[TenantParams])
class MonitorDetailView(TenantAPIView):
    """One monitor; PUT replaces its rule (omitted optional fields take their defaults), PATCH
    changes the fields sent, DELETE removes it with its events."""

    def _monitor(self, request, pk):
        tenant = api_tenant(request)
        return tenant, get_object_or_404(tenant_monitors(tenant=tenant), pk=pk)

    @extend_schema(operation_id="monitors_retrieve", responses={200: MonitorSerializer, **ERRORS})
    def get(self, request, pk):
        return Response(monitor_as_api(self._monitor(request, pk)[1]))

    @extend_schema(request=MonitorInputSerializer, responses={200: MonitorSerializer, **WRITE_ERRORS})
    def put(self, request, pk):
        return self._write(request, pk, partial=False)

    @extend_schema(request=MonitorInputSerializer(partial=True), responses={200: MonitorSerializer, **WRITE_ERRORS})
    def patch(self, request, pk):
        return self._write(request, pk, partial=True)

    @extend_schema(responses={204: OpenApiResponse(description="Deleted."), **WRITE_ERRORS})
    def delete(self, request, pk):
        tenant, monitor = self._monitor(request, pk)
        _require_writer(request, tenant)
        monitor.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _write(self, request, pk, *, partial):
        tenant, monitor = self._monitor(request, pk)
        _require_writer(request, tenant)
        base = _current(monitor) if partial else dict(DEFAULTS)
        data = _validated(request, tenant, base=base, instance=monitor)
        return Response(monitor_as_api(services.monitor_update(monitor=monitor, data=data)))


@extend_schema(tags=["monitors"], parameters=[TenantParams], responses={200: MonitorEventPageSerializer, **ERRORS})
class MonitorEventListView(TenantAPIView):
    """Every event of one monitor, newest first, 100 a page with a cursor (``next``, ``previous``)."""

    pagination_class = MonitorEventPagination

    def get(self, request, pk):
        monitor = get_object_or_404(tenant_monitors(tenant=api_tenant(request)), pk=pk)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(monitor_events(monitor=monitor, limit=None), request, view=self)
        return paginator.get_paginated_response(MonitorEventSerializer(page, many=True).data)

"""The tenant's Usage Statistics page, the JSON endpoints its refresh and charts read, and its
CSV export: the views behind ``usage.dashboard.urls``. What they show is built by
``usage.dashboard.panel`` from the query layer (``usage.reporting``)."""

from functools import cached_property

from chartjs.views.lines import BaseLineChartView
from django.contrib.auth.decorators import login_required
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import JsonResponse
from django.shortcuts import render
from django.utils.html import json_script
from django.views.decorators.http import require_safe

from accounts.tenancy import tenant_for_request
from usage.budgets.selectors import budget_lines
from usage.dashboard.panel import (
    breakdown_rows,
    dashboard_panel,
    distribution_rows,
    json_data,
    line_colors,
    query_grid,
    trend_chart,
)
from usage.dashboard.performance import performance_panel
from usage.ledger.retention import detail_available_from
from usage.localtime import tenant_today
from usage.models import CallRecord
from usage.reporting.export import export_response
from usage.reporting.filters import CUSTOM, UsageFilterSet
from usage.reporting.focus import focus_response
from usage.reporting.periods import DEFAULT_PRESET, PRESETS
from usage.reporting.query import InvalidQuery, UsageQuery
from usageproject.problems import problem_response


def _key_label(key):
    """Revoked and expired keys stay choosable (their usage is history) but say so."""
    status = key.status
    return f"{key.name} ({key.public_id})" + ("" if status == "active" else f" — {status}")


def _day_text(day, today):
    return f"{day:%b %d}" if day.year == today.year else f"{day:%b %d, %Y}"


def range_picker(form, today):
    """What the range picker shows: the choices, the one in force and its dates as a button text.

    ``form`` is bound (``filtered`` fills in the preset); an invalid one still shows what was asked.
    """
    preset = form.data.get("preset")
    if preset not in PRESETS:
        preset = CUSTOM
    period = form.cleaned_data.get("period") if form.is_valid() else None
    start, end = form.data.get("start") or "", form.data.get("end") or ""
    text = "Choose a range"
    shown = ("", "")  # the days in force, offered as the custom span when Custom is picked
    if period is not None:
        shown = (period.start.isoformat(), period.end.isoformat())
        span = _day_text(period.start, today)
        if period.end != period.start:
            span += " – " + _day_text(period.end, today)
        text = span if preset == CUSTOM else f"{PRESETS[preset]} · {span}"
        start, end = shown if preset == CUSTOM else ("", "")
    return {
        "choices": [*PRESETS.items(), (CUSTOM, "Custom")],
        "preset": preset,
        "text": text,
        "single_day": preset == CUSTOM and bool(start) and end in ("", start),
        "start": start,
        "end": end,
        "shown_start": shown[0],
        "shown_end": shown[1],
    }


@login_required
def dashboard(request, slug):
    """The Usage Statistics page, rendered with its numbers so the first paint needs no request."""
    tenant, filterset = filtered(request, slug)
    filterset.form.fields["api_key"].label_from_instance = _key_label
    context = {"tenant": tenant, "nav": "usage", "filterset": filterset, "form": filterset.form, "data": None}
    context["range"] = range_picker(filterset.form, tenant_today(tenant))
    if not filterset.is_valid():
        return render(request, "usage/dashboard.html", context, status=400)
    # The model choices are the tenant's models: loaded once, for the filter bar and the charts.
    models = {model.pk: model for model in filterset.form.fields["model"].queryset}
    query = filterset.query()
    panel = dashboard_panel(query, request.GET, models)
    context.update(data=panel["data"], html=panel["html"], chart_json=panel["json"])
    context["budget_lines"] = budget_lines(tenant=tenant, api_key=query.api_key)  # usage.budgets
    # A tenant that never had a call gets told how calls arrive, not just "no usage".
    context["detail_available_from"] = detail_available_from(tenant)  # usage.ledger.retention
    context["no_calls_yet"] = panel["data"]["empty"] and not CallRecord.objects.filter(tenant=tenant).exists()
    context.update(_views(request, query))
    return render(request, "usage/dashboard.html", context)


def _views(request, query):
    """The Usage / Performance switch (``?view=performance``) and, when chosen, the Performance view."""
    params = request.GET.copy()
    params.pop("view", None)
    usage_url = "?" + params.urlencode()
    params["view"] = "performance"
    context = {"view": "usage", "usage_view_url": usage_url, "performance_view_url": "?" + params.urlencode()}
    if request.GET.get("view") == "performance":
        performance = performance_panel(query, request.GET)
        context.update(
            view="performance",
            performance=performance,
            performance_json=json_script(performance, "performance-data"),
        )
    return context


# --- Endpoints -------------------------------------------------------------------------------


def filtered(request, slug):
    """(tenant, filterset) of a request; tenant_for_request 404s an outsider first."""
    tenant = tenant_for_request(request, slug)
    data = request.GET.copy()
    if not data.get("preset"):
        # Say which preset applies, so the bound form shows it selected (dates alone mean custom).
        data["preset"] = CUSTOM if data.get("start") or data.get("end") else DEFAULT_PRESET
    return tenant, UsageFilterSet(data, tenant=tenant)


def form_errors_response(filterset):
    return JsonResponse({"errors": filterset.form.errors.get_json_data()}, status=400)


class TenantChartView(LoginRequiredMixin, BaseLineChartView):
    """A chart of the filtered usage of the URL's tenant; an invalid filter is a 400 with form errors.

    Of django-chartjs's hooks only ``get_labels`` and ``get_datasets`` are used: the datasets
    carry the models' own colours and the extra series the page switches between.
    """

    def get(self, request, slug):
        self.tenant, self.filterset = filtered(request, slug)
        if not self.filterset.is_valid():
            return form_errors_response(self.filterset)
        self.query = self.filterset.query()
        return self.render_to_response(self.get_context_data())

    def get_context_data(self, **kwargs):
        # Not super(): TemplateView would add the view object and the URL kwargs to the JSON.
        return {"labels": self.get_labels(), "datasets": self.get_datasets()}


class TrendChartView(TenantChartView):
    """Tokens per hour (ranges up to two days) or day, one line per model, gap-filled."""

    @cached_property
    def chart(self):
        grid, lines = query_grid(self.query)
        return trend_chart(self.tenant, grid, lines)

    def get_labels(self):
        return self.chart["labels"]

    def get_datasets(self):
        # Colours are the models' own, not django-chartjs's rotating palette.
        return self.chart["datasets"]

    def get_context_data(self, **kwargs):
        return {"bucket": self.chart["bucket"], **super().get_context_data()}


class DistributionChartView(TenantChartView):
    """Share of tokens per model, largest first (a doughnut: one dataset, one colour per slice)."""

    @cached_property
    def rows(self):
        _grid, lines = query_grid(self.query)
        return distribution_rows(breakdown_rows(lines), self.request.GET, colors=line_colors(lines))

    def get_labels(self):
        return [row["model"] for row in self.rows]

    def get_datasets(self):
        rows = self.rows
        return [
            {
                "label": "Tokens",
                "data": [row["tokens"] for row in rows],
                "backgroundColor": [row["color"] for row in rows],
                "calls": [row["calls"] for row in rows],
                "share": [row["share"] for row in rows],
                "urls": [row["url"] for row in rows],
            }
        ]


class DashboardDataView(TrendChartView):
    """Everything the page shows, for the refresh button: chart data plus the rendered cards and table."""

    @cached_property
    def panel(self):
        return dashboard_panel(self.query, self.request.GET)

    @cached_property
    def chart(self):
        return self.panel["data"]["trend"]

    def get_context_data(self, **kwargs):
        return {**json_data(self.panel["data"]), "html": self.panel["html"]}


def _export(request, slug, respond):
    tenant = tenant_for_request(request, slug)
    try:
        query = UsageQuery.from_params(tenant, request.GET)
    except InvalidQuery as invalid:
        items = [{"field": name, "detail": " ".join(messages)} for name, messages in invalid.errors.items()]
        detail = "; ".join(f"{item['field']}: {item['detail']}" for item in items)
        return problem_response(400, "Invalid request", detail, errors=items)
    return respond(query)


@login_required
@require_safe
def tenant_export(request, slug):
    """The page's Export button: exactly the filters in the page's URL."""
    return _export(request, slug, lambda query: export_response(query=query))


@login_required
@require_safe
def tenant_focus_export(request, slug):
    """The page's "FOCUS cost export" link: the same filters, as FOCUS 1.2 rows."""
    return _export(request, slug, focus_response)

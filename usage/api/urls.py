from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from usage.api import ingest, litellm_logs, otlp, reports, views
from usage.budgets import api as budgets_api
from usage.monitors import api as monitors_api

urlpatterns = [
    path("usage/summary", views.SummaryView.as_view(), name="api_usage_summary"),
    path("usage/timeseries", views.TimeseriesView.as_view(), name="api_usage_timeseries"),
    path("usage/performance", views.PerformanceView.as_view(), name="api_usage_performance"),
    path("usage/breakdown", views.BreakdownView.as_view(), name="api_usage_breakdown"),
    path("usage/export.csv", views.ExportView.as_view(), name="api_usage_export"),
    path("exports/focus", views.FocusExportView.as_view(), name="api_exports_focus"),
    path("api-keys", views.ApiKeyListView.as_view(), name="api_api_keys"),
    path("models", views.ModelListView.as_view(), name="api_models"),
    path("calls", views.CallListView.as_view(), name="api_calls"),
    path("ingest/calls", ingest.ingest_calls, name="api_ingest_calls"),
    path("keys/verify", ingest.verify_key, name="api_keys_verify"),
    path("otlp/v1/traces", otlp.traces, name="api_otlp_traces"),
    path("litellm/logs", litellm_logs.logs, name="api_litellm_logs"),
    path("reports/monthly", reports.MonthlyReportView.as_view(), name="api_reports_monthly"),
    path("budgets", budgets_api.BudgetListView.as_view(), name="api_budgets"),
    path("monitors", monitors_api.MonitorListView.as_view(), name="api_monitors"),
    path("monitors/<int:pk>", monitors_api.MonitorDetailView.as_view(), name="api_monitor"),
    path("monitors/<int:pk>/events", monitors_api.MonitorEventListView.as_view(), name="api_monitor_events"),
    path("schema", SpectacularAPIView.as_view(), name="api_schema"),
    # The split view serves its set-up script from ?script: no inline script under the CSP.
    path(
        "docs",
        SpectacularSwaggerSplitView.as_view(url_name="api_schema", template_name="api/swagger_ui.html"),
        name="api_docs",
    ),
]

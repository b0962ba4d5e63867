"""Every page URL of the usage app: the Usage Statistics page and its JSON endpoints, its CSV
export, and the finance and operations pages (Prices, the month-end report, Operations)."""

from django.templatetags.static import static
from django.urls import URLPattern, URLResolver, include, path
from django.views.generic import RedirectView

from usage.dashboard import calls, reports, views


class FaviconView(RedirectView):
    """Browsers ask for /favicon.ico whatever the page says; it is the static SVG icon."""

    permanent = True

    def get_redirect_url(self, *args, **kwargs):
        return static("favicon.svg")


app_name = "usage"

report_patterns = [
    path("t/<slug:slug>/prices/", reports.prices, name="prices"),
    path("t/<slug:slug>/reports/monthly/", reports.monthly_report, name="monthly"),
    path("t/<slug:slug>/reports/monthly.csv", reports.monthly_report_csv, name="monthly_csv"),
    path("t/<slug:slug>/operations/", reports.operations, name="operations"),
]

urlpatterns = [
    path("favicon.ico", FaviconView.as_view(), name="favicon"),
    path("t/<slug:slug>/usage/", views.dashboard, name="dashboard"),
    # JSON for the page's refresh and charts; each takes the page's own query string.
    path("t/<slug:slug>/calls/", calls.calls_explorer, name="calls"),
    path("t/<slug:slug>/usage/data/", views.DashboardDataView.as_view(), name="data"),
    path("t/<slug:slug>/usage/chart/trend/", views.TrendChartView.as_view(), name="chart_trend"),
    path("t/<slug:slug>/usage/chart/distribution/", views.DistributionChartView.as_view(), name="chart_distribution"),
]

# Outside the "usage" namespace, as they were first published: ``usage_export`` and ``reports:*``.
root_patterns: list[URLPattern | URLResolver] = [
    path("t/<slug:slug>/usage/export.csv", views.tenant_export, name="usage_export"),
    path("t/<slug:slug>/usage/export-focus.csv", views.tenant_focus_export, name="usage_export_focus"),
    path("", include((report_patterns, "reports"))),
]

from django.templatetags.static import static
from django.urls import path
from django.views.generic import RedirectView

from . import charts, views

app_name = "usage"


class FaviconView(RedirectView):
    """Browsers ask for /favicon.ico whatever the page says; it is the static SVG icon."""

    permanent = True

    def get_redirect_url(self, *args, **kwargs):
        return static("favicon.svg")


urlpatterns = [
    path("favicon.ico", FaviconView.as_view(), name="favicon"),
    path("t/<slug:slug>/usage/", views.dashboard, name="dashboard"),
    # JSON for the page's refresh and charts; each takes the page's own query string.
    path("t/<slug:slug>/usage/data/", charts.DashboardDataView.as_view(), name="data"),
    path("t/<slug:slug>/usage/chart/trend/", charts.TrendChartView.as_view(), name="chart_trend"),
    path("t/<slug:slug>/usage/chart/distribution/", charts.DistributionChartView.as_view(), name="chart_distribution"),
]

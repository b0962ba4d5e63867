from django.urls import path

from . import charts, views

app_name = "usage"

urlpatterns = [
    path("t/<slug:slug>/usage/", views.dashboard, name="dashboard"),
    # JSON for the page's refresh and charts; each takes the page's own query string.
    path("t/<slug:slug>/usage/data/", charts.DashboardDataView.as_view(), name="data"),
    path("t/<slug:slug>/usage/chart/trend/", charts.TrendChartView.as_view(), name="chart_trend"),
    path("t/<slug:slug>/usage/chart/distribution/", charts.DistributionChartView.as_view(), name="chart_distribution"),
]

"""Finance and operations pages of a tenant: Prices, the month-end expense report, Operations."""

from django.urls import path

from . import reports

app_name = "reports"

urlpatterns = [
    path("t/<slug:slug>/prices/", reports.prices, name="prices"),
    path("t/<slug:slug>/reports/monthly/", reports.monthly_report, name="monthly"),
    path("t/<slug:slug>/reports/monthly.csv", reports.monthly_report_csv, name="monthly_csv"),
    path("t/<slug:slug>/operations/", reports.operations, name="operations"),
]

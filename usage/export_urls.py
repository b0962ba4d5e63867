from django.urls import path

from . import export

urlpatterns = [
    path("t/<slug:slug>/usage/export.csv", export.tenant_export, name="usage_export"),
]

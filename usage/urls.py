from django.urls import path

from . import views

app_name = "usage"

urlpatterns = [
    path("t/<slug:slug>/usage/", views.dashboard, name="dashboard"),
]

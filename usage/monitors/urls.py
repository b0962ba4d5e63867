from django.urls import path

from usage.monitors import views

app_name = "monitors"

urlpatterns = [
    path("t/<slug:slug>/monitors/", views.monitors, name="list"),
    path("t/<slug:slug>/monitors/<int:pk>/", views.monitor_edit, name="edit"),
    path("t/<slug:slug>/monitors/<int:pk>/delete/", views.monitor_delete, name="delete"),
]

from django.urls import path

from usage.budgets import views

app_name = "budgets"

urlpatterns = [
    path("t/<slug:slug>/budgets/", views.budgets, name="list"),
    path("t/<slug:slug>/budgets/<int:pk>/", views.budget_edit, name="edit"),
    path("t/<slug:slug>/budgets/<int:pk>/delete/", views.budget_delete, name="delete"),
    path("t/<slug:slug>/budgets/<int:pk>/test/", views.budget_test, name="test"),
]

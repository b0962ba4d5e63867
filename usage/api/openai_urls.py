"""``/api/openai/v1/``: OpenAI-compatible reads of the tenant's usage (see usage.api.openai_compat)."""

from django.urls import path

from usage.api import openai_compat

urlpatterns = [
    path(
        "organization/usage/completions",
        openai_compat.CompletionsView.as_view(),
        name="openai_usage_completions",
    ),
    path("organization/costs", openai_compat.CostsView.as_view(), name="openai_costs"),
]

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from .budgets.selectors import budget_lines
from .charts import dashboard_panel, filtered
from .models import CallRecord
from .retention import detail_available_from


def _key_label(key):
    """Revoked and expired keys stay choosable (their usage is history) but say so."""
    status = key.status
    return f"{key.name} ({key.public_id})" + ("" if status == "active" else f" — {status}")


@login_required
def dashboard(request, slug):
    """The Usage Statistics page, rendered with its numbers so the first paint needs no request."""
    tenant, filterset = filtered(request, slug)
    filterset.form.fields["api_key"].label_from_instance = _key_label
    context = {"tenant": tenant, "nav": "usage", "filterset": filterset, "form": filterset.form, "data": None}
    if not filterset.is_valid():
        return render(request, "usage/dashboard.html", context, status=400)
    # The model choices are the tenant's models: loaded once, for the filter bar and the charts.
    models = {model.pk: model for model in filterset.form.fields["model"].queryset}
    panel = dashboard_panel(tenant, filterset.usage_filters(), request.GET, models)
    context.update(data=panel["data"], html=panel["html"], chart_json=panel["json"])
    context["budget_lines"] = budget_lines(tenant=tenant, api_key=filterset.usage_filters().api_key)  # usage.budgets
    # A tenant that never had a call gets told how calls arrive, not just "no usage".
    context["detail_available_from"] = detail_available_from(tenant)  # usage.retention
    context["no_calls_yet"] = panel["data"]["empty"] and not CallRecord.objects.filter(tenant=tenant).exists()
    return render(request, "usage/dashboard.html", context)

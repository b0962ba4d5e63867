from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from .budgets.selectors import budget_lines
from .charts import dashboard_panel, filtered
from .filters import CUSTOM
from .models import CallRecord
from .periods import PRESETS, tenant_today
from .retention import detail_available_from


def _key_label(key):
    """Revoked and expired keys stay choosable (their usage is history) but say so."""
    status = key.status
    return f"{key.name} ({key.public_id})" + ("" if status == "active" else f" — {status}")


def _day_text(day, today):
    return f"{day:%b %d}" if day.year == today.year else f"{day:%b %d, %Y}"


def range_picker(form, today):
    """What the range picker shows: the choices, the one in force and its dates as a button text.

    ``form`` is bound (``filtered`` fills in the preset); an invalid one still shows what was asked.
    """
    preset = form.data.get("preset")
    if preset not in PRESETS:
        preset = CUSTOM
    period = form.cleaned_data.get("period") if form.is_valid() else None
    start, end = form.data.get("start") or "", form.data.get("end") or ""
    text = "Choose a range"
    shown = ("", "")  # the days in force, offered as the custom span when Custom is picked
    if period is not None:
        shown = (period.start.isoformat(), period.end.isoformat())
        span = _day_text(period.start, today)
        if period.end != period.start:
            span += " – " + _day_text(period.end, today)
        text = span if preset == CUSTOM else f"{PRESETS[preset]} · {span}"
        start, end = shown if preset == CUSTOM else ("", "")
    return {
        "choices": [*PRESETS.items(), (CUSTOM, "Custom")],
        "preset": preset,
        "text": text,
        "single_day": preset == CUSTOM and bool(start) and end in ("", start),
        "start": start,
        "end": end,
        "shown_start": shown[0],
        "shown_end": shown[1],
    }


@login_required
def dashboard(request, slug):
    """The Usage Statistics page, rendered with its numbers so the first paint needs no request."""
    tenant, filterset = filtered(request, slug)
    filterset.form.fields["api_key"].label_from_instance = _key_label
    context = {"tenant": tenant, "nav": "usage", "filterset": filterset, "form": filterset.form, "data": None}
    context["range"] = range_picker(filterset.form, tenant_today(tenant))
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

"""The Monitors page: every member reads the rules, their state and recent events; owners and
admins create, edit and delete them."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.tenancy import tenant_for_request
from usage.models import Monitor
from usage.monitors import services
from usage.monitors.forms import MonitorForm
from usage.monitors.selectors import monitor_events, tenant_monitors


def _rows(tenant):
    return [(monitor, list(monitor_events(monitor=monitor))) for monitor in tenant_monitors(tenant=tenant)]


@login_required
def monitors(request, slug):
    tenant = tenant_for_request(request, slug, write=request.method == "POST")
    form = MonitorForm(request.POST if request.method == "POST" else None, tenant=tenant)
    if request.method == "POST" and form.is_valid():
        monitor = services.monitor_create(tenant=tenant, data=form.monitor_data())
        messages.success(request, f"Monitor “{monitor.name}” is created; it is evaluated every minute.")
        return redirect("monitors:list", slug=tenant.slug)
    context = {"tenant": tenant, "nav": "monitors", "rows": _rows(tenant), "form": form}
    return render(request, "usage/monitors.html", context, status=400 if form.errors else 200)


@login_required
def monitor_edit(request, slug, pk):
    tenant = tenant_for_request(request, slug, write=request.method == "POST")
    monitor = get_object_or_404(Monitor, tenant=tenant, pk=pk)
    if request.method == "POST":
        form = MonitorForm(request.POST, instance=monitor, tenant=tenant)
        if form.is_valid():
            services.monitor_update(monitor=monitor, data=form.monitor_data())
            messages.success(request, f"Monitor “{form.cleaned_data['name']}” is saved.")
            return redirect("monitors:list", slug=tenant.slug)
        monitor.refresh_from_db()  # the invalid values stay in the form, not in the page's heading
    else:
        form = MonitorForm(instance=monitor, tenant=tenant)
    context = {
        "tenant": tenant,
        "nav": "monitors",
        "monitor": monitor,
        "form": form,
        "events": monitor_events(monitor=monitor, limit=50),
    }
    return render(request, "usage/monitor_edit.html", context, status=400 if form.errors else 200)


@login_required
@require_POST
def monitor_delete(request, slug, pk):
    tenant = tenant_for_request(request, slug, write=True)
    monitor = get_object_or_404(Monitor, tenant=tenant, pk=pk)
    monitor.delete()
    messages.success(request, f"Monitor “{monitor.name}” is deleted.")
    return redirect("monitors:list", slug=tenant.slug)

"""The Budgets page: every member reads it; owners and admins create, edit, delete and test."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from accounts.tenancy import tenant_for_request
from usage.budgets import delivery, services
from usage.budgets.forms import BudgetForm
from usage.budgets.selectors import PROJECTION_METHOD, budget_status, tenant_budgets
from usage.models import AlertDelivery, Budget


def _rows(tenant):
    return [(budget, budget_status(budget=budget)) for budget in tenant_budgets(tenant=tenant)]


@login_required
def budgets(request, slug):
    tenant = tenant_for_request(request, slug, write=request.method == "POST")
    form = BudgetForm(request.POST if request.method == "POST" else None, tenant=tenant)
    if request.method == "POST" and form.is_valid():
        budget, secret = services.budget_create(tenant=tenant, data=form.budget_data())
        services.budget_evaluate(budget=budget)
        if secret:
            return _secret_page(request, tenant, budget, secret)
        messages.success(request, f"Budget “{budget.name}” is created.")
        return redirect("budgets:list", slug=tenant.slug)
    latest = AlertDelivery.objects.filter(budget__tenant=tenant).select_related("budget", "alert")[:20]
    recent = [(d, delivery.result_text(d)) for d in latest]
    context = {
        "tenant": tenant,
        "nav": "budgets",
        "rows": _rows(tenant),
        "form": form,
        "method": PROJECTION_METHOD,
        "deliveries": recent,
    }
    return render(request, "usage/budgets.html", context, status=400 if form.errors else 200)


def _secret_page(request, tenant, budget, secret):
    context = {
        "tenant": tenant,
        "nav": "budgets",
        "budget": budget,
        "secret": secret,
        "standard_secret": delivery.standard_webhook_secret(budget),
    }
    response = render(request, "usage/budget_secret.html", context, status=201)
    add_never_cache_headers(response)  # the only time the webhook secret is shown
    return response


@login_required
def budget_edit(request, slug, pk):
    tenant = tenant_for_request(request, slug, write=request.method == "POST")
    budget = get_object_or_404(Budget, tenant=tenant, pk=pk)
    if request.method == "POST":
        form = BudgetForm(request.POST, instance=budget, tenant=tenant)
        if form.is_valid():
            secret = services.budget_update(budget=budget, data=form.budget_data())
            services.budget_evaluate(budget=budget)
            if secret:
                return _secret_page(request, tenant, budget, secret)
            messages.success(request, f"Budget “{budget.name}” is saved.")
            return redirect("budgets:list", slug=tenant.slug)
    else:
        budget.refresh_from_db()
        form = BudgetForm(instance=budget, tenant=tenant)
    context = {"tenant": tenant, "nav": "budgets", "budget": budget, "form": form}
    return render(request, "usage/budget_edit.html", context, status=400 if form.errors else 200)


@login_required
@require_POST
def budget_delete(request, slug, pk):
    tenant = tenant_for_request(request, slug, write=True)
    budget = get_object_or_404(Budget, tenant=tenant, pk=pk)
    budget.delete()
    messages.success(request, f"Budget “{budget.name}” is deleted.")
    return redirect("budgets:list", slug=tenant.slug)


@login_required
@require_POST
def budget_test(request, slug, pk):
    """Queue a test message to each configured channel; a worker sends it, the page shows how it went."""
    tenant = tenant_for_request(request, slug, write=True)
    budget = get_object_or_404(Budget, tenant=tenant, pk=pk)
    channels = services.budget_channels(budget)
    if not channels:
        messages.error(request, f"Budget “{budget.name}” has no e-mail or webhook to test.")
    for channel in channels:
        queued = services.delivery_test_create(budget=budget, channel=channel)
        messages.info(
            request, f"Test {channel} queued (delivery id {queued.delivery_id}): its result shows under Recent alerts."
        )
    return redirect("budgets:list", slug=tenant.slug)

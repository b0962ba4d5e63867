from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from accounts.tenancy import tenant_for_request


@login_required
def dashboard(request, slug):
    tenant = tenant_for_request(request, slug)
    return render(request, "usage/dashboard.html", {"tenant": tenant, "nav": "usage"})

from django.contrib import admin
from django.urls import include, path

from accounts.signin import AdminLoginView
from usage.dashboard import urls as dashboard_urls
from usageproject import monitoring

urlpatterns = [
    path("healthz", monitoring.healthz, name="healthz"),
    path("readyz", monitoring.readyz, name="readyz"),
    path("metrics", monitoring.metrics, name="metrics"),
    # Ahead of the admin's own login: the same second factor and lockout as the product's.
    path("admin/login/", AdminLoginView.as_view(), name="admin_login"),
    path("admin/", admin.site.urls),
    path("", include("accounts.urls")),
    path("", include("usage.dashboard.urls")),
    path("", include(dashboard_urls.root_patterns)),
    path("", include("usage.budgets.urls")),
    path("", include("usage.monitors.urls")),
    path("api/v1/", include("usage.api.urls")),
    path("api/openai/v1/", include("usage.api.openai_urls")),
]

# Under /api/ every error is application/problem+json (usageproject/problems.py).
handler400 = "usageproject.problems.bad_request"
handler403 = "usageproject.problems.permission_denied"
handler404 = "usageproject.problems.page_not_found"
handler500 = "usageproject.problems.server_error"

"""Response headers beside Django's SecurityMiddleware and django-csp's Content-Security-Policy."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control


class PrivacyHeadersMiddleware:
    """``Permissions-Policy`` on every response, and ``Cache-Control: private, no-store`` on every
    answer to an authenticated request (a session, an access token, a service token): pages and
    API reads carry one tenant's numbers, which no shared cache may keep and no browser should
    store. Anonymous responses (the login page, static files) keep their own caching."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        # DRF copies the user and auth it authenticated onto the Django request.
        user = getattr(request, "user", None)
        if getattr(request, "auth", None) is not None or (user is not None and user.is_authenticated):
            if "public" in response.get("Cache-Control", ""):
                del response["Cache-Control"]
            patch_cache_control(response, private=True, no_store=True)
        return response

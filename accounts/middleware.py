from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode

from . import twofactor

# Pages a member who still has to enrol may see: enrolment itself, and the way out.
_OPEN_PREFIXES = ("/static/", "/accounts/")


class TwoFactorRequiredMiddleware:
    """Send a member of a tenant that requires two-factor to enrolment before any other page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or request.path.startswith(_OPEN_PREFIXES):
            return self.get_response(request)
        if twofactor.required_for(user) and not twofactor.is_enrolled(user):
            return self._refuse(request)
        return self.get_response(request)

    def _refuse(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/"):
            from usageproject.problems import problem_response

            return problem_response(403, "Two-factor sign-in required", "Set up two-factor sign-in first.")
        return redirect(reverse("two_factor_setup") + "?" + urlencode({"next": request.get_full_path()}))

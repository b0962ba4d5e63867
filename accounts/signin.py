"""Signing in: password then second factor, enrolment in two-factor, the owner's sign-in rules.

A user with a confirmed authenticator is not logged in by the password (or by single sign-on)
alone: the session only remembers who is half-way for a few minutes, and the login happens
once the code is right. Wrong codes count as failed logins for django-axes, so the lockout
that guards passwords guards codes too.
"""

import time
from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from . import twofactor
from .forms import (
    AdminEmailAuthenticationForm,
    EmailAuthenticationForm,
    EnrolmentForm,
    SecondFactorForm,
    TenantSignInForm,
)
from .models import Membership, User
from .tenancy import tenant_for_request

PENDING_KEY = "two_factor_pending"


def lockout_credentials(user: User) -> dict[str, str]:
    return {"username": user.email}


def refuse_if_locked_out(request: HttpRequest, user: User) -> HttpResponse | None:
    """The lockout page (via AxesMiddleware) when django-axes has locked this account here."""
    credentials = lockout_credentials(user)
    if not AxesProxyHandler.is_locked(request, credentials):
        return None
    request.axes_locked_out = True  # type: ignore[attr-defined]
    request.axes_credentials = credentials  # type: ignore[attr-defined]
    return HttpResponse(status=429)


def complete_login(request: HttpRequest, user: User, *, backend: str, next_url: str) -> HttpResponse:
    """Log in now, or first ask for the second factor of an enrolled user."""
    if not twofactor.is_enrolled(user):
        auth.login(request, user, backend=backend)
        return HttpResponseRedirect(next_url)
    # A new session key, as login() would give: a planted session id learns nothing.
    request.session.cycle_key()
    request.session[PENDING_KEY] = {"user": user.pk, "backend": backend, "next": next_url, "at": time.time()}
    return redirect("two_factor_verify")


class TwoStepLoginView(auth_views.LoginView):
    redirect_authenticated_user = True
    authentication_form: type[AuthenticationForm] = EmailAuthenticationForm

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), "oidc_enabled": settings.OIDC_ENABLED}

    def form_valid(self, form: Any) -> HttpResponse:
        user = form.get_user()
        return complete_login(self.request, user, backend=user.backend, next_url=self.get_success_url())


class AdminLoginView(TwoStepLoginView):
    """/admin/login/: staff only, and the same second factor and lockout as the product's login."""

    authentication_form = AdminEmailAuthenticationForm

    def get_default_redirect_url(self) -> str:
        return reverse("admin:index")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), "admin_login": True}


def _pending(request: HttpRequest) -> tuple[User, dict[str, Any]] | None:
    pending = request.session.get(PENDING_KEY)
    if not pending or time.time() - pending["at"] > settings.TWO_FACTOR_LOGIN_SECONDS:
        return None
    user = User.objects.filter(pk=pending["user"], is_active=True).first()
    return (user, pending) if user is not None else None


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def two_factor_verify(request: HttpRequest) -> HttpResponse:
    found = _pending(request)
    if found is None:
        request.session.pop(PENDING_KEY, None)
        messages.info(request, "Your sign-in took too long; please start again.")
        return redirect("login")
    user, pending = found
    locked = refuse_if_locked_out(request, user)
    if locked is not None:
        request.session.pop(PENDING_KEY, None)
        return locked
    form = SecondFactorForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        if twofactor.second_factor_check(user, form.cleaned_data["code"]):
            del request.session[PENDING_KEY]
            auth.login(request, user, backend=pending["backend"])
            return HttpResponseRedirect(pending["next"])
        user_login_failed.send(sender=__name__, credentials=lockout_credentials(user), request=request)
        form.add_error("code", "That code is not right, or was used already.")
    status = 400 if form.errors else 200
    return render(request, "registration/two_factor_verify.html", {"form": form}, status=status)


def _safe_next(request: HttpRequest) -> str:
    target = request.GET.get("next") or request.POST.get("next") or ""
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse("home")


@never_cache
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def two_factor_setup(request: HttpRequest) -> HttpResponse:
    """Enrol: the secret as a QR code and as text, confirmed by one code from the app."""
    device = twofactor.enrolment_start(request.user)  # type: ignore[arg-type]
    context: dict[str, Any] = {"next": _safe_next(request), "required": twofactor.required_for(request.user)}  # type: ignore[arg-type]
    if device.confirmed:
        return render(request, "accounts/two_factor_status.html", context)
    form = EnrolmentForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        codes = twofactor.enrolment_confirm(device, form.cleaned_data["code"])
        if codes is not None:
            response = render(request, "accounts/recovery_codes.html", {**context, "codes": codes}, status=201)
            add_never_cache_headers(response)
            return response
        form.add_error("code", "That code is not right. Check the time on your phone and try the next one.")
    uri = twofactor.provisioning_uri(device)
    context.update(form=form, secret=device.secret, uri=uri, qr_svg=twofactor.qr_svg(uri))
    return render(request, "accounts/two_factor_setup.html", context, status=400 if form.errors else 200)


@never_cache
@login_required
@require_http_methods(["POST"])
def recovery_codes_renew(request: HttpRequest) -> HttpResponse:
    """New recovery codes replace the old ones; asked with a current code, like a login."""
    user: User = request.user  # type: ignore[assignment]
    form = SecondFactorForm(request.POST)
    if not (
        form.is_valid()
        and twofactor.is_enrolled(user)
        and twofactor.second_factor_check(user, form.cleaned_data["code"])
    ):
        messages.error(request, "That code is not right; your recovery codes are unchanged.")
        return redirect("two_factor_setup")
    codes = twofactor.recovery_codes_renew(user)
    response = render(request, "accounts/recovery_codes.html", {"codes": codes, "next": reverse("home")}, status=201)
    add_never_cache_headers(response)
    return response


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def tenant_sign_in_settings(request: HttpRequest, slug: str) -> HttpResponse:
    """The owner's rules: two-factor for every member, the SSO domain and new members' role."""
    tenant = tenant_for_request(request, slug)
    if request.membership.role != Membership.Role.OWNER:  # type: ignore[attr-defined]
        raise PermissionDenied("Only an owner changes how members sign in")
    data = request.POST if request.method == "POST" else None
    enrolled = twofactor.is_enrolled(request.user)  # type: ignore[arg-type]
    form = TenantSignInForm(data, instance=tenant, owner_enrolled=enrolled)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Sign-in settings saved.")
        return redirect("tenant_sign_in", slug=tenant.slug)
    context = {"form": form, "nav": "sign_in", "oidc_enabled": settings.OIDC_ENABLED}
    return render(request, "accounts/tenant_sign_in.html", context, status=400 if form.errors else 200)

"""Single sign-on with OpenID Connect (mozilla-django-oidc), on the product's own rules.

- A person is matched to a user by a VERIFIED e-mail only (``email_verified`` true): an
  unverified address could be anyone's.
- A new person becomes a user only when the domain of that e-mail is the single sign-on
  domain an owner set on a tenant; they join that tenant with the role the owner chose.
  Nobody else gets an account, and a user without memberships sees no tenant's pages.
- The django-axes lockout and two-factor apply as to a password login.
"""

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from .models import Membership, Tenant, User
from .signin import complete_login, refuse_if_locked_out


def _verified_email(claims: dict[str, Any]) -> str | None:
    email = claims.get("email")
    verified = claims.get("email_verified")
    # Some providers send the boolean as a string.
    if not isinstance(email, str) or not (verified is True or verified == "true"):
        return None
    return User.objects.normalize_email(email.strip()).lower()


def tenant_for_new_sso_user(email: str) -> Tenant | None:
    domain = email.rsplit("@", 1)[-1]
    return Tenant.objects.filter(sso_email_domain=domain).first()


class OIDCBackend(OIDCAuthenticationBackend):
    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> User | None:
        # Never the answer to a password login, nor anything while single sign-on is off.
        if not settings.OIDC_ENABLED or "password" in kwargs:
            return None
        return super().authenticate(request, **kwargs)

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        return _verified_email(claims) is not None

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        email = _verified_email(claims)
        if email is None:
            return self.UserModel.objects.none()
        return self.UserModel.objects.filter(email__iexact=email)

    def create_user(self, claims: dict[str, Any]) -> User | None:
        email = _verified_email(claims)
        tenant = tenant_for_new_sso_user(email) if email else None
        if email is None or tenant is None:
            return None
        with transaction.atomic():
            user = User.objects.create_user(email)  # no usable password: they sign in through the provider
            Membership.objects.create(user=user, tenant=tenant, role=tenant.sso_default_role)
        return user


class SSOStartView(OIDCAuthenticationRequestView):
    def get(self, request: HttpRequest) -> HttpResponse:
        if not settings.OIDC_ENABLED:
            raise Http404("Single sign-on is not configured")
        return super().get(request)


class SSOCallbackView(OIDCAuthenticationCallbackView):
    def get(self, request: HttpRequest) -> HttpResponse:
        if not settings.OIDC_ENABLED:
            raise Http404("Single sign-on is not configured")
        return super().get(request)

    def login_failure(self) -> HttpResponse:
        messages.error(self.request, "Single sign-on did not sign you in: no account for a verified e-mail here.")
        return redirect("login")

    def login_success(self) -> HttpResponse:
        user: User = self.user
        locked = refuse_if_locked_out(self.request, user)
        if locked is not None:
            return locked
        return complete_login(self.request, user, backend=user.backend, next_url=self.success_url)  # type: ignore[attr-defined]

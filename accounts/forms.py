from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AdminUserCreationForm, AuthenticationForm, PasswordResetForm, UserChangeForm
from django.contrib.sites.shortcuts import get_current_site
from django.core.cache import cache
from django.http import HttpRequest
from django.utils import timezone
from kombu.exceptions import OperationalError

from .models import Tenant, User

logger = logging.getLogger(__name__)

# Far enough for any real expiry; near year 9999 the UTC form of a local time overflows.
MAX_EXPIRY_YEAR = 9000


class CredentialCreateForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="What uses it, e.g. “billing-service”.")
    expires_at = forms.DateTimeField(
        required=False,
        label="Expires",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Optional, in the tenant's time zone. Leave empty for a key that does not expire.",
    )

    def __init__(self, *args: Any, existing_names: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.existing_names = {name.lower() for name in existing_names}

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give it a name.")
        if name.lower() in self.existing_names:
            raise forms.ValidationError("A key or token with this name already exists.")
        return name

    def clean_expires_at(self) -> dt.datetime | None:
        value = self.cleaned_data.get("expires_at")
        if value is not None and value <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future.")
        if value is not None and value.year >= MAX_EXPIRY_YEAR:
            raise forms.ValidationError(f"Choose an expiry before {MAX_EXPIRY_YEAR}, or none.")
        return value


def _clean_user_email(form: forms.ModelForm[User]) -> str:
    """Lower-case, and unique whatever the case: logins and lookups compare lower-case emails."""
    email = User.objects.normalize_email(form.cleaned_data["email"]).lower()
    others = User.objects.filter(email__iexact=email).exclude(pk=form.instance.pk)
    if others.exists():
        raise forms.ValidationError("A user with this email address already exists.")
    return email


class UserAddForm(AdminUserCreationForm):
    """Django's admin form is built for a ``username``; ours log in by email."""

    class Meta:
        model = User
        fields = ("email",)

    def clean_email(self) -> str:
        return _clean_user_email(self)


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"

    def clean_email(self) -> str:
        return _clean_user_email(self)


class EmailAuthenticationForm(AuthenticationForm):
    """Log in whatever the case of the typed email: emails are stored lower-case."""

    def clean_username(self) -> str:
        return User.objects.normalize_email(self.cleaned_data["username"].strip()).lower()


class AdminEmailAuthenticationForm(AdminAuthenticationForm):
    """The admin's login (staff only), by email in any case like the product's."""

    def clean_username(self) -> str:
        return User.objects.normalize_email(self.cleaned_data["username"].strip()).lower()


class SecondFactorForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=20,
        help_text="The 6-digit code of your authenticator app, or one of your recovery codes.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
    )


class EnrolmentForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=20,
        help_text="The 6-digit code your authenticator app shows now.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


class TenantSignInForm(forms.ModelForm):
    """What an owner decides about signing in to the tenant."""

    class Meta:
        model = Tenant
        fields = ["require_two_factor", "sso_email_domain", "sso_default_role"]
        labels = {
            "require_two_factor": "Require two-factor sign-in",
            "sso_email_domain": "Single sign-on e-mail domain",
            "sso_default_role": "Role of new single sign-on members",
        }

    def __init__(self, *args: Any, owner_enrolled: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owner_enrolled = owner_enrolled

    def clean_require_two_factor(self) -> bool:
        required = self.cleaned_data["require_two_factor"]
        # Otherwise the owner's next click would land on enrolment instead of this page.
        if required and not self.instance.require_two_factor and not self.owner_enrolled:
            raise forms.ValidationError("Set up two-factor sign-in for yourself first.")
        return required

    def clean_sso_email_domain(self) -> str:
        domain = self.cleaned_data["sso_email_domain"].strip().lower().lstrip("@")
        if domain and ("." not in domain or "@" in domain or any(c.isspace() for c in domain)):
            raise forms.ValidationError("Enter a domain such as example.com.")
        others = Tenant.objects.filter(sso_email_domain=domain).exclude(pk=self.instance.pk)
        if domain and others.exists():
            raise forms.ValidationError("Another tenant already uses this domain.")
        return domain


class ThrottledPasswordResetForm(PasswordResetForm):
    """Django's reset form, whose lookup and e-mail happen on the worker, at most a few an hour.

    The request does the same work whatever the address (known, unknown, or over the limit):
    count it, hand it to a task, answer with the same page. So neither the page nor its timing
    tells who has an account, and the SMTP server's time stays out of the answer too.
    """

    def save(  # type: ignore[override]  # PasswordResetView passes these by keyword, and nothing else matters here
        self,
        domain_override: str | None = None,
        use_https: bool = False,
        request: HttpRequest | None = None,
        **kwargs: Any,
    ) -> None:
        email = self.cleaned_data["email"]
        if not password_reset_allowed(email):
            return
        domain = domain_override or get_current_site(request).domain
        message = {"email": email, "domain": domain, "use_https": use_https}
        from .tasks import send_password_reset

        try:
            send_password_reset.delay(**message)
        except OperationalError:
            # The broker is down: the person asking still gets the mail, only more slowly.
            logger.warning("Broker unreachable; sending the password reset e-mail in the request")
            send_password_reset.run(**message)


def password_reset_allowed(email: str) -> bool:
    """Count a reset request for this address; False past PASSWORD_RESET_MAX_PER_HOUR."""
    key = "password-reset:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()
    cache.add(key, 0, timeout=3600)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=3600)
        count = 1
    return count <= settings.PASSWORD_RESET_MAX_PER_HOUR

from collections.abc import Callable
from typing import Any, cast

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST

from . import services
from .forms import CredentialCreateForm
from .models import AccessToken, ApiKey, Tenant, User
from .tenancy import tenant_for_request


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Send a member to the Usage Statistics of their first tenant."""
    membership = cast(User, request.user).memberships.select_related("tenant").order_by("tenant__name").first()
    if membership is None:
        return render(request, "accounts/no_tenant.html", status=200)
    return redirect("usage:dashboard", slug=membership.tenant.slug)


class LogoutView(auth_views.LogoutView):
    """Log out by POST (Django 5 refuses GET: a link or a prefetch must not end a session); a GET,
    e.g. the address typed in, gets a page with the button, or the login page once logged out."""

    http_method_names = ["get", "post", "options"]

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect("login")
        return render(request, "registration/logout_confirm.html")


class CredentialPages:
    """The list / create / revoke pages shared by API keys and access tokens."""

    def __init__(
        self,
        *,
        model: type[ApiKey] | type[AccessToken],
        create: Callable[..., tuple[ApiKey | AccessToken, str]],
        url_name: str,
        revoke_url_name: str,
        title: str,
        noun: str,
        nav: str,
        template: str,
    ) -> None:
        self.model, self.create, self.url_name, self.revoke_url_name = model, create, url_name, revoke_url_name
        self.title, self.noun, self.nav, self.template = title, noun, nav, template

    def list_view(self, request: HttpRequest, slug: str) -> HttpResponse:
        tenant = tenant_for_request(request, slug, write=request.method == "POST")
        # Expiry typed in and dates shown are the tenant's local time, like its usage days.
        with timezone.override(tenant.tz):
            credentials = list(
                self.model.objects.filter(tenant=tenant).select_related("created_by").order_by("-created_at")
            )
            names = [c.name for c in credentials]
            data = request.POST if request.method == "POST" else None
            form = CredentialCreateForm(data, existing_names=names)
            if request.method == "POST" and form.is_valid():
                return self._created(request, tenant, form)
            context = self._context(credentials=credentials, form=form)
            return render(request, self.template, context, status=400 if form.errors else 200)

    def _created(self, request: HttpRequest, tenant: Tenant, form: CredentialCreateForm) -> HttpResponse:
        credential, secret = self.create(
            tenant=tenant,
            name=form.cleaned_data["name"],
            expires_at=form.cleaned_data["expires_at"],
            created_by=request.user,
        )
        back_url = reverse(self.url_name, kwargs={"slug": tenant.slug})
        context = self._context(credential=credential, secret=secret, back_url=back_url)
        response = render(request, "accounts/credential_created.html", context, status=201)
        # The only time the secret exists outside its holder: keep it out of every cache.
        add_never_cache_headers(response)
        return response

    def _context(self, **extra: Any) -> dict[str, Any]:
        base = {"title": self.title, "noun": self.noun, "nav": self.nav, "revoke_url_name": self.revoke_url_name}
        return {**base, **extra}

    def revoke_view(self, request: HttpRequest, slug: str, public_id: str) -> HttpResponse:
        tenant = tenant_for_request(request, slug, write=True)
        credential = get_object_or_404(self.model, tenant=tenant, public_id=public_id)
        services.credential_revoke(credential)
        messages.success(request, f"{self.noun.capitalize()} “{credential.name}” is revoked.")
        return redirect(self.url_name, slug=tenant.slug)


api_key_pages = CredentialPages(
    model=ApiKey,
    create=services.api_key_create,
    url_name="api_keys",
    revoke_url_name="api_key_revoke",
    title="API Keys",
    noun="API key",
    nav="api_keys",
    template="accounts/credentials.html",
)
access_token_pages = CredentialPages(
    model=AccessToken,
    create=services.access_token_create,
    url_name="access_tokens",
    revoke_url_name="access_token_revoke",
    title="Access Tokens",
    noun="access token",
    nav="access_tokens",
    template="accounts/credentials.html",
)

api_keys = login_required(require_http_methods(["GET", "HEAD", "POST"])(api_key_pages.list_view))
api_key_revoke = login_required(require_POST(api_key_pages.revoke_view))
access_tokens = login_required(require_http_methods(["GET", "HEAD", "POST"])(access_token_pages.list_view))
access_token_revoke = login_required(require_POST(access_token_pages.revoke_view))

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from . import services
from .forms import CredentialCreateForm
from .models import AccessToken, ApiKey
from .tenancy import tenant_for_request


@login_required
def home(request):
    """Send a member to the Usage Statistics of their first tenant."""
    membership = request.user.memberships.select_related("tenant").order_by("tenant__name").first()
    if membership is None:
        return render(request, "accounts/no_tenant.html", status=200)
    return redirect("usage:dashboard", slug=membership.tenant.slug)


class CredentialPages:
    """The list / create / revoke pages shared by API keys and access tokens."""

    def __init__(self, *, model, create, url_name, title, noun, template):
        self.model, self.create, self.url_name = model, create, url_name
        self.title, self.noun, self.template = title, noun, template

    def list_view(self, request, slug):
        tenant = tenant_for_request(request, slug)
        credentials = self.model.objects.filter(tenant=tenant).select_related("created_by").order_by("-created_at")
        form = CredentialCreateForm(existing_names=[c.name for c in credentials])
        if request.method == "POST":
            tenant_for_request(request, slug, write=True)
            form = CredentialCreateForm(request.POST, existing_names=[c.name for c in credentials])
            if form.is_valid():
                credential, secret = self.create(
                    tenant=tenant,
                    name=form.cleaned_data["name"],
                    expires_at=form.cleaned_data["expires_at"],
                    created_by=request.user,
                )
                context = {"credential": credential, "secret": secret, "title": self.title, "noun": self.noun}
                context["back_url"] = reverse(self.url_name, kwargs={"slug": tenant.slug})
                return render(request, "accounts/credential_created.html", context, status=201)
        context = {"credentials": credentials, "form": form, "title": self.title, "noun": self.noun}
        return render(request, self.template, context, status=400 if form.errors else 200)

    def revoke_view(self, request, slug, public_id):
        tenant = tenant_for_request(request, slug, write=True)
        credential = get_object_or_404(self.model, tenant=tenant, public_id=public_id)
        services.credential_revoke(credential)
        messages.success(request, f"{self.noun.capitalize()} “{credential.name}” is revoked.")
        return redirect(self.url_name, slug=tenant.slug)


api_key_pages = CredentialPages(
    model=ApiKey,
    create=services.api_key_create,
    url_name="api_keys",
    title="API Keys",
    noun="API key",
    template="accounts/credentials.html",
)
access_token_pages = CredentialPages(
    model=AccessToken,
    create=services.access_token_create,
    url_name="access_tokens",
    title="Access Tokens",
    noun="access token",
    template="accounts/credentials.html",
)

api_keys = login_required(api_key_pages.list_view)
api_key_revoke = login_required(require_POST(api_key_pages.revoke_view))
access_tokens = login_required(access_token_pages.list_view)
access_token_revoke = login_required(require_POST(access_token_pages.revoke_view))

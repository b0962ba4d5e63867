from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from .models import Membership

_SLUG = "--tenant--"


@dataclass(frozen=True)
class TenantLink:
    """One entry of the tenant switcher."""

    slug: str
    name: str
    role: str
    url: str


def tenancy(request: HttpRequest) -> dict[str, Any]:
    """The tenant being viewed (set by ``accounts.tenancy``) and the user's tenants for the switcher.

    Every page renders the switcher, so its entries are plain values and their URLs come from one
    ``reverse()`` (slugs are URL-safe by their validator), not one per tenant.
    """
    user = getattr(request, "user", None)
    # An API token's principal renders pages too (DRF's browsable API) but has no memberships.
    if user is None or not user.is_authenticated or not hasattr(user, "memberships"):
        return {}
    pattern = reverse("usage:dashboard", kwargs={"slug": _SLUG})
    roles = dict(Membership.Role.choices)
    rows = user.memberships.order_by("tenant__name", "tenant__slug").values_list("tenant__slug", "tenant__name", "role")
    return {
        "tenant": getattr(request, "tenant", None),
        "membership": getattr(request, "membership", None),
        "memberships": [TenantLink(slug, name, roles[role], pattern.replace(_SLUG, slug)) for slug, name, role in rows],
    }

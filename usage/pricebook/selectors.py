"""Reads of the price audit trail for a tenant's Prices page."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from accounts.models import Tenant
from usage.models import PriceChange

# The Prices page lists the latest changes; the admin holds the whole trail.
PAGE_CHANGES = 50


def price_changes_for(*, tenant: Tenant, limit: int = PAGE_CHANGES) -> QuerySet[PriceChange]:
    """Changes of the prices that apply to ``tenant``: the platform's (of models it may use) and its own."""
    changes = PriceChange.objects.filter(Q(tenant__isnull=True) | Q(tenant=tenant))
    changes = changes.filter(Q(model__tenant__isnull=True) | Q(model__tenant=tenant))
    return changes.select_related("model").order_by("-changed_at", "-pk")[:limit]

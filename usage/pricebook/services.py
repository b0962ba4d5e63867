"""Writes of prices: every add, change and delete of a ModelPrice goes through here and is audited.

The admin and ``import_prices`` call these services, so ``PriceChange`` holds every change
with who made it, when, and the terms before and after, written in the same transaction as
the price itself (a change that fails leaves no audit row, an audit row always a change).

Nothing else has to happen when a price changes: costs are computed when read, stored costs
of closed days carry the terms they were computed with and every cached answer is keyed by a
fingerprint of the prices (``usage.reporting.day_costs``, ``usage.reporting.costs``), so the
next read of any figure uses the new terms for every day they cover.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from usage.models import ModelPrice, PriceChange

TERM_FIELDS = (
    "currency", "input_per_1k", "output_per_1k", "cached_input_per_1k",
    "cache_write_per_1k", "cache_write_1h_per_1k", "reasoning_per_1k", "request_fee", "pricing_rules",
    "effective_from",
)  # fmt: skip


def price_terms(price: ModelPrice) -> dict[str, str | None]:
    """The audited terms of a price, as exact strings (a JSON column keeps no Decimal)."""
    terms: dict[str, str | None] = {}
    for name in TERM_FIELDS:
        value = getattr(price, name)
        if isinstance(value, Decimal):
            terms[name] = format(value.normalize(), "f")
        else:
            terms[name] = None if value is None else str(value)
    return terms


class Actor:
    """Who makes a change: a user (the admin) or a command, named in the audit trail."""

    def __init__(self, *, source: str, user: User | None = None, name: str = "") -> None:
        self.source = source
        self.user = user if user is not None and user.is_authenticated else None
        self.name = name or (self.user.get_username() if self.user is not None else source)


def _audit(price: ModelPrice, actor: Actor, action: str, old: Any, new: Any) -> PriceChange:
    return PriceChange.objects.create(
        price=price if action != PriceChange.Action.DELETED else None,
        model_id=price.model_id,
        tenant_id=price.tenant_id,
        action=action,
        old_terms=old,
        new_terms=new,
        changed_by=actor.user,
        actor=actor.name[:150],
        source=actor.source,
        changed_at=timezone.now(),
    )


@transaction.atomic
def price_save(*, price: ModelPrice, actor: Actor) -> PriceChange | None:
    """Save a new or edited price and audit it; an edit that changes no term saves nothing."""
    price.full_clean()
    old = None
    if price.pk is not None:
        stored = ModelPrice.objects.select_for_update().filter(pk=price.pk).first()
        old = None if stored is None else price_terms(stored)
    new = price_terms(price)
    if old == new:
        return None
    price.save()
    return _audit(price, actor, PriceChange.Action.ADDED if old is None else PriceChange.Action.CHANGED, old, new)


@transaction.atomic
def price_delete(*, price: ModelPrice, actor: Actor) -> PriceChange:
    """Delete a price and audit it (its terms are kept in the trail)."""
    change = _audit(price, actor, PriceChange.Action.DELETED, price_terms(price), None)
    price.delete()
    return change

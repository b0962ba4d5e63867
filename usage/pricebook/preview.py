"""What a price change would do to past costs, before it is saved: per tenant, month and model.

The old and the new cost are computed by the cost engine itself (``CostEngine.lines``: every
local day x key x model line, exact) over the same usage, once with the prices in force now and
once with the edited price in their place, so the preview equals what the pages will show
after saving, to the last digit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from accounts.models import Tenant
from usage.localtime import tenant_today
from usage.models import Model, ModelPrice, UsageDailyModel
from usage.reporting.costs import CostEngine, CostSummary, Price, PriceBook, prices_in_force
from usage.reporting.money import amount_text
from usage.reporting.periods import Period
from usage.reporting.query import UsageQuery
from usage.reporting.selectors import UsageFilters

# A platform price may touch every tenant: the preview names the first ones and says how many more.
MAX_TENANTS = 50


@dataclass
class PreviewRow:
    """One tenant's local month of one model: its cost before and after the change."""

    tenant: Tenant
    month: dt.date  # the first day of the tenant's local month
    model: Model
    old: CostSummary = field(default_factory=CostSummary)
    new: CostSummary = field(default_factory=CostSummary)

    @property
    def changed(self) -> bool:
        return self.old != self.new

    @staticmethod
    def _text(summary: CostSummary) -> str:
        parts = [f"{amount_text(summary.amounts[c], c)} {c}" for c in summary.currencies]
        if summary.unpriced_tokens:
            parts.append(f"{summary.unpriced_tokens:,} tokens unpriced")
        return " + ".join(parts) or "0"

    @property
    def old_text(self) -> str:
        return self._text(self.old)

    @property
    def new_text(self) -> str:
        return self._text(self.new)

    @property
    def difference_text(self) -> str:
        currencies = sorted(set(self.old.amounts) | set(self.new.amounts))
        parts = []
        for currency in currencies:
            change = self.new.amounts.get(currency, Decimal(0)) - self.old.amounts.get(currency, Decimal(0))
            parts.append(f"{'+' if change > 0 else ''}{amount_text(change, currency)} {currency}")
        return " / ".join(parts) or "0"


@dataclass
class Preview:
    rows: list[PreviewRow]
    first_day: dt.date | None  # the earliest day the change can touch
    more_tenants: int = 0  # tenants left out beyond MAX_TENANTS


def _tenants(model: Model, tenant_ids: set[int | None]) -> list[Tenant]:
    """The tenants whose costs the change can touch: the contract's, or every tenant using the model."""
    if None not in tenant_ids:
        return list(Tenant.objects.filter(pk__in=tenant_ids))
    used = UsageDailyModel.objects.filter(model=model).values("tenant_id").distinct()
    return list(Tenant.objects.filter(pk__in=used).order_by("slug"))


def _replaced(book: PriceBook, original: ModelPrice | None, new: ModelPrice | None, tenant: Tenant) -> PriceBook:
    prices: list[Price] = [p for p in book.prices() if original is None or p.pk != original.pk]
    if new is not None and new.tenant_id in (None, tenant.pk):
        prices.append(new)
    return PriceBook(prices, tenant=tenant)


def _tenant_rows(
    tenant: Tenant, model: Model, first: dt.date, original: ModelPrice | None, new: ModelPrice | None
) -> list[PreviewRow]:
    today = tenant_today(tenant)
    if first > today:
        return []
    query = UsageQuery.of(tenant, UsageFilters(Period(first, today), model=model))
    book = prices_in_force(tenant=tenant, model_ids=[model.pk])
    rows: dict[dt.date, PreviewRow] = {}
    for engine, side in ((CostEngine(book), "old"), (CostEngine(_replaced(book, original, new, tenant)), "new")):
        for line in engine.lines(query):
            row = rows.setdefault(line.day.replace(day=1), PreviewRow(tenant, line.day.replace(day=1), model))
            line.add_to(getattr(row, side))
    return [rows[month] for month in sorted(rows)]


def price_preview(*, original: ModelPrice | None, new: ModelPrice | None) -> Preview:
    """The preview of replacing ``original`` (None: adding) by ``new`` (None: deleting).

    Both are ModelPrice objects; ``new`` is not saved. Only rows whose cost changes are listed.
    """
    sides = [price for price in (original, new) if price is not None]
    if not sides:
        return Preview([], None)
    model = sides[-1].model
    first = min(price.effective_from for price in sides)
    tenants = _tenants(model, {price.tenant_id for price in sides})
    rows: list[PreviewRow] = []
    for tenant in tenants[:MAX_TENANTS]:
        rows += [row for row in _tenant_rows(tenant, model, first, original, new) if row.changed]
    return Preview(rows, first, max(0, len(tenants) - MAX_TENANTS))


def preview_of(rows: Iterable[PreviewRow]) -> list[tuple[str, str, str, str, str, str]]:
    """(tenant, month, model, old, new, difference) texts: the admin's table and the command's output."""
    return [
        (row.tenant.slug, row.month.strftime("%Y-%m"), row.model.name, row.old_text, row.new_text, row.difference_text)
        for row in rows
    ]

"""Cache economics per model: how much of the input was read from the provider's cache, and what
those cached reads saved against paying the input price for them.

- Hit rate: cached input tokens / input tokens (``input_tokens`` counts every input token,
  cached reads included); None without input tokens.
- Saved: for each local day and model, cached x (input price - cached input price) / 1000 at the
  price in force that day (the same prices and days as the cost engine), exact, summed per
  currency. A model whose price has no cached input price charges cached reads as input: it saves
  nothing. Unpriced days save nothing and are reported as unpriced by the cost.

Cached tokens never exceed input tokens (ingestion refuses it), so the sums per day and model
give the same amount as the cost engine's lines per day, key and model. Both come from the
query's grid, so they cost no read of their own and are cached with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import Any

from usage import localtime
from usage.reporting.costs import CostEngine, PriceBook
from usage.reporting.grid import UsageGrid
from usage.reporting.money import amount_text, money_text
from usage.reporting.query import UsageQuery

_THOUSAND = Decimal(1000)
_PRECISION = 60


@dataclass
class CacheEconomics:
    input_tokens: int = 0
    cached_input_tokens: int = 0
    # currency -> exact amount; None where it is not told (a row of several models)
    saved: dict[str, Decimal] | None = field(default_factory=dict)

    @property
    def hit_rate(self) -> float | None:
        return self.cached_input_tokens / self.input_tokens if self.input_tokens else None

    @property
    def hit_rate_text(self) -> str:
        rate = self.hit_rate
        return "—" if rate is None else f"{rate * 100:.1f}%"

    @property
    def saved_text(self) -> str | None:
        """The saving as a page shows it ("1.23 USD"), None when there is none."""
        shown = [f"{money_text(amount, c)} {c}" for c, amount in sorted((self.saved or {}).items()) if amount]
        return " + ".join(shown) or None

    def as_api(self) -> dict[str, Any]:
        return {
            "cache_hit_rate": self.hit_rate,
            "cache_savings": None
            if self.saved is None
            else [
                {"amount": amount_text(amount, currency), "currency": currency}
                for currency, amount in sorted(self.saved.items())
            ],
        }


def _saving(book: PriceBook, day: Any, model_id: int, cached: int) -> tuple[str, Decimal] | None:
    price = book.price_for(model_id, day)
    if price is None or price.cached_input_per_1k is None or not cached:
        return None
    with localcontext(prec=_PRECISION):
        return price.currency, cached * (price.input_per_1k - price.cached_input_per_1k) / _THOUSAND


def cache_economics(query: UsageQuery, grid: UsageGrid, *, book: PriceBook | None = None) -> dict[int, CacheEconomics]:
    """{group id: CacheEconomics} of a query's grid (``query.grid()``): no usage read of its own.

    A grid by model (the page's, the breakdown by model) has each model's cached and input
    tokens per day (or per hour, on a local day): both the hit rate and the saving come from it.
    A grid by API key mixes models in a bucket, so its rows carry the hit rate and no saving
    (``saved`` None): what cached reads saved is told per model.
    """
    book = book if book is not None else CostEngine.for_query(query, terms_only=True).book
    days = [bucket if grid.bucket == "day" else localtime.local_day(query.tenant, bucket) for bucket in grid.buckets]
    result: dict[int, CacheEconomics] = {}
    for group_id, usage in grid.models.items():
        entry = result[group_id] = CacheEconomics(sum(usage.input), sum(c or 0 for c in usage.cached))
        entry.saved = _saved(book, days, group_id, usage.cached) if grid.by == "model" else None
    return result


def _saved(book: PriceBook, days: list[Any], model_id: int, cached: list[int | None]) -> dict[str, Decimal]:
    saved: dict[str, Decimal] = {}
    for day, tokens in zip(days, cached, strict=True):
        saving = _saving(book, day, model_id, tokens or 0)
        if saving is not None:
            currency, amount = saving
            saved[currency] = saved.get(currency, Decimal(0)) + amount
    return saved

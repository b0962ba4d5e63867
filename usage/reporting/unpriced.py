"""Calls and tokens no price covers, per model: what the cost leaves out, never a silent zero.

A price is in force for a model on a tenant's local day or it is not (``PriceBook.price_for``),
so a model's calls on a day without one are unpriced, all of them, with their tokens. Both are
read from the query's grid by model (no usage read of its own): the page's cards, the API's
summary and breakdown and budgets report them beside the cost; the month-end report counts them
from its lines.
"""

from __future__ import annotations

from dataclasses import dataclass

from usage import localtime
from usage.reporting.costs import CostEngine, PriceBook
from usage.reporting.grid import UsageGrid
from usage.reporting.query import UsageQuery


@dataclass
class Unpriced:
    calls: int = 0
    tokens: int = 0

    def __add__(self, other: Unpriced) -> Unpriced:
        return Unpriced(self.calls + other.calls, self.tokens + other.tokens)


def unpriced_usage(query: UsageQuery, grid: UsageGrid, *, book: PriceBook | None = None) -> dict[int, Unpriced]:
    """{model id: Unpriced} of a grid by model; models fully priced are left out."""
    if grid.by != "model":
        raise ValueError("Unpriced calls are counted per model: give a grid by model")
    book = book if book is not None else CostEngine.for_query(query, terms_only=True).book
    days = [bucket if grid.bucket == "day" else localtime.local_day(query.tenant, bucket) for bucket in grid.buckets]
    result: dict[int, Unpriced] = {}
    for model_id, usage in grid.models.items():
        found = Unpriced()
        for index, day in enumerate(days):
            if usage.calls[index] and book.price_for(model_id, day) is None:
                found += Unpriced(usage.calls[index], usage.input[index] + usage.output[index])
        if found.calls:
            result[model_id] = found
    return result


def unpriced_total(query: UsageQuery) -> Unpriced:
    """Unpriced calls and tokens of the query (its grid by model: the one its cost reads)."""
    by_model = query if query.by == "model" else query.using(by="model")
    return sum(unpriced_usage(by_model, by_model.grid()).values(), Unpriced())

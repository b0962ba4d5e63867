"""The rate of each priced token class of a price, the empty ones resolved (``usage.reporting.costs``
states the rule): a leaf of the query layer, read by the Python and the SQL cost engines alike."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from usage.reporting.costs import Price


class Rates(NamedTuple):
    """A price's rate per 1K tokens of each priced class, the empty ones resolved (see the rule above)."""

    input: Decimal
    cached: Decimal
    write_5m: Decimal
    write_1h: Decimal
    output: Decimal
    reasoning: Decimal


def rates(price: Price) -> Rates:
    """The rate of every priced class: an empty cached or write rate is the input rate, an empty
    one-hour write rate the write rate, an empty reasoning rate the output rate."""
    cached = price.input_per_1k if price.cached_input_per_1k is None else price.cached_input_per_1k
    # A price-like object of the terms before issue 26 (no class rates) costs by the same rule.
    write_rate, write_1h_rate, reasoning_rate = (
        getattr(price, name, None) for name in ("cache_write_per_1k", "cache_write_1h_per_1k", "reasoning_per_1k")
    )
    write = price.input_per_1k if write_rate is None else write_rate
    write_1h = write if write_1h_rate is None else write_1h_rate
    reasoning = price.output_per_1k if reasoning_rate is None else reasoning_rate
    return Rates(price.input_per_1k, cached, write, write_1h, price.output_per_1k, reasoning)

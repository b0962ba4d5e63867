"""Cost and usage in FOCUS 1.2 (the FinOps Open Cost and Usage Specification), as CSV.

One row per local day x API key x model x token class (uncached input, cached input, output;
cache writes, one-hour cache writes and reasoning where the line has them and they are priced apart),
from the same lines as the usage CSV (``UsageQuery.rows``: the cost engine's ``line``). A line's
cost is split into its classes by costing each class alone with the same engine; whatever the
engine's rounding leaves over (nothing when it returns exact amounts) goes to the class with the
largest amount, so the classes of a line always add up to the line's cost exactly and the file's
``BilledCost`` sums equal the summary's cost. Amounts are written with every digit the engine
gives: no rounding here.

Lines no price covers still appear (nothing is dropped), with costs 0, no unit prices and
``ChargeDescription`` saying so. The column mapping is in the README ("Exports").
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

from django.conf import settings
from django.http import StreamingHttpResponse

from usage import localtime
from usage.reporting.costs import (
    DEFAULT_CURRENCY,
    CostedRow,
    CostEngine,
    PriceBook,
    class_tokens,
    line_cost,
    price_text,
    prices_in_force,
    rates,
)
from usage.reporting.export import _Echo, _text
from usage.reporting.selectors import Totals, usage_rows

if TYPE_CHECKING:
    from accounts.models import Tenant
    from usage.reporting.costs import Price
    from usage.reporting.query import UsageQuery

COLUMNS = [
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceId",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SkuId",
    "SkuMeter",
    "SkuPriceDetails",
    "SkuPriceId",
    "x_Model",
    "x_TokenClass",
]
_THOUSAND = Decimal(1000)


class TokenClass(NamedTuple):
    name: str  # the SkuId's suffix and x_TokenClass
    meter: str  # SkuMeter and the description's words
    tokens: int
    totals: Totals  # the line's tokens of this class alone, for the engine


def token_classes(totals: Totals, price: Price | None = None) -> list[TokenClass]:
    """The line's priced token classes, as the engine counts them (``costs.class_tokens``, each
    capped at what contains it): uncached input, cached input, cache writes (5-minute, one-hour)
    and output; reasoning is a class of its own only when ``price`` sets a reasoning rate (else it
    is output at the output rate). Each has one unit price, so a class's cost is tokens x rate;
    a class without tokens (and cost) gives no row."""
    split = class_tokens(totals)
    reasoning = split.reasoning if price is not None and price.reasoning_per_1k is not None else 0
    return [
        TokenClass("input", "Input tokens", split.uncached_input, Totals(input_tokens=split.uncached_input)),
        TokenClass(
            "cached_input", "Cached input tokens", split.cached,
            Totals(input_tokens=split.cached, cached_input_tokens=split.cached),
        ),
        TokenClass(
            "cache_write", "Cache write tokens", split.writes_5m,
            Totals(input_tokens=split.writes_5m, cache_creation_input_tokens=split.writes_5m),
        ),
        TokenClass(
            "cache_write_1h", "One-hour cache write tokens", split.writes_1h,
            Totals(input_tokens=split.writes_1h, cache_creation_input_tokens=split.writes_1h,
                   cache_creation_1h_input_tokens=split.writes_1h),
        ),
        TokenClass(
            "output", "Output tokens", totals.output_tokens - reasoning,
            Totals(output_tokens=totals.output_tokens - reasoning),
        ),
        TokenClass(
            "reasoning", "Reasoning tokens", reasoning, Totals(output_tokens=reasoning, reasoning_tokens=reasoning)
        ),
    ]  # fmt: skip


def split_amount(
    engine: CostEngine, day: dt.date, model_id: int, line_amount: Decimal, classes: list[TokenClass]
) -> list[Decimal]:
    """Each class's cost; they add up to ``line_amount`` exactly (see the module's docstring)."""
    # At the base rates: a call-priced line (tiers, service tiers, windows, fees) is split in the
    # same proportions, and the rest below puts its exact total back.
    price = engine.book.price_for(model_id, day)
    parts = [line_cost(price=price, totals=cls.totals) if price else Decimal(0) for cls in classes]
    rest = line_amount - sum(parts, Decimal(0))
    if rest:
        largest = max(range(len(parts)), key=lambda i: (parts[i], classes[i].tokens))
        parts[largest] += rest
    return parts


def class_unit_price(price: Price, name: str) -> Decimal:
    """The per-1K price of a class, an empty rate resolved by the cost rule (``costs.rates``)."""
    rate = rates(price)
    return {
        "input": rate.input, "cached_input": rate.cached, "cache_write": rate.write_5m,
        "cache_write_1h": rate.write_1h, "output": rate.output, "reasoning": rate.reasoning,
    }[name]  # fmt: skip


def decimal_text(value: Decimal) -> str:
    """A plain decimal string, every digit kept, never an exponent ("0.000150", "12")."""
    return format(value, "f")


def utc_text(instant: dt.datetime) -> str:
    return instant.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FocusContext:
    """What every row of one tenant's export shares: its engines, names and period bounds."""

    def __init__(self, tenant: Tenant, book: PriceBook) -> None:
        self.tenant = tenant
        self.engine = CostEngine(book)
        self.book = book
        self.provider = settings.FOCUS_PROVIDER_NAME
        self.service = settings.FOCUS_SERVICE_NAME

    def charge_period(self, day: dt.date) -> tuple[str, str]:
        start, end = localtime.day_span(self.tenant, day, day)
        return utc_text(start), utc_text(end)

    def billing_period(self, day: dt.date) -> tuple[str, str]:
        """The tenant's local calendar month of ``day``: its invoices are monthly."""
        first = day.replace(day=1)
        last = (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
        start, end = localtime.day_span(self.tenant, first, last)
        return utc_text(start), utc_text(end)


def _list_terms(
    ctx: FocusContext, row: CostedRow, price: Price, cls: TokenClass, contracted: Decimal
) -> tuple[str, str]:
    """(ListUnitPrice, ListCost): the platform price in force that day; a contract price with no
    platform price beside it (or one in another currency) is its own list price."""
    listed = ctx.book.platform_price_for(row.model.pk, row.day)
    if listed is None or listed.currency != price.currency or listed == price:
        return str(price_text(class_unit_price(price, cls.name))), decimal_text(contracted)
    unit = class_unit_price(listed, cls.name)
    return str(price_text(unit)), decimal_text(unit * cls.tokens / _THOUSAND)


def focus_rows(ctx: FocusContext, row: CostedRow) -> Iterator[list[object]]:
    """The FOCUS rows of one costed line: one per token class with tokens (or with cost)."""
    price = ctx.book.price_for(row.model.pk, row.day)
    classes = token_classes(row.totals, price)
    amounts = (
        split_amount(ctx.engine, row.day, row.model.pk, row.cost.amount, classes)
        if price is not None and row.cost.amount is not None
        else [Decimal(0)] * len(classes)
    )
    charge_start, charge_end = ctx.charge_period(row.day)
    billing_start, billing_end = ctx.billing_period(row.day)
    for cls, amount in zip(classes, amounts, strict=True):
        if not cls.tokens and not amount:
            continue
        cost = decimal_text(amount)
        if price is None:
            unit = list_unit = list_cost = None
            currency, price_id, details = DEFAULT_CURRENCY, None, None
            description = f"{row.model.name}: {cls.meter.lower()} (no price in force; not costed)"
        else:
            unit = price_text(class_unit_price(price, cls.name))
            list_unit, list_cost = _list_terms(ctx, row, price, cls, amount)
            currency, price_id = price.currency, f"{price.pk}:{cls.name}"
            details = json.dumps({"TokenClass": cls.name, "PricePer": "1000 Tokens"}, sort_keys=True)
            description = f"{row.model.name}: {cls.meter.lower()}"
        yield [
            cost,
            ctx.tenant.slug,
            _text(ctx.tenant.name),
            currency,
            billing_end,
            billing_start,
            "Usage",
            None,
            _text(description),
            "Usage-Based",
            charge_end,
            charge_start,
            cls.tokens,
            "Tokens",
            cost,
            unit,
            cost,
            f"{ctx.tenant.slug}-{row.day:%Y-%m}",  # the tenant's monthly statement (the billing period)
            ctx.provider,
            list_cost if list_cost is not None else cost,
            list_unit,
            "Standard" if price is not None else None,
            decimal_text(Decimal(cls.tokens) / _THOUSAND),
            "1000 Tokens",
            ctx.provider,
            ctx.provider,
            None,
            None,
            row.api_key.public_id,
            _text(row.api_key.name),
            "API Key",
            "AI and Machine Learning",
            ctx.service,
            "Generative AI",
            f"{row.model.name}:{cls.name}",
            cls.meter,
            details,
            price_id,
            _text(row.model.name),
            cls.name,
        ]


def tenant_rows(query: UsageQuery) -> Iterator[list[object]]:
    """Every FOCUS row of the query, by day, key name, model name and token class."""
    model_ids = None if query.model is None else [query.model.pk]
    ctx = FocusContext(query.tenant, prices_in_force(tenant=query.tenant, model_ids=model_ids, terms_only=True))
    for day, key, model, totals in usage_rows(query=query):
        yield from focus_rows(ctx, ctx.engine.costed_row(day, key, model, totals))


def csv_lines(queries: Iterator[UsageQuery] | list[UsageQuery], *, header: bool = True) -> Iterator[str]:
    """The CSV's lines: the header first (before any query), then each query's rows."""
    writer = csv.writer(_Echo(), lineterminator="\r\n")
    if header:
        yield writer.writerow(COLUMNS)
    for query in queries:
        for values in tenant_rows(query):
            yield writer.writerow(["" if value is None else value for value in values])


def focus_response(query: UsageQuery) -> StreamingHttpResponse:
    """The streamed FOCUS CSV of one tenant's query."""
    response = StreamingHttpResponse(
        (line.encode() for line in csv_lines([query])), content_type="text/csv; charset=utf-8"
    )
    name = f"focus-{query.tenant.slug}-{query.period.start}-{query.period.end}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "private, no-store"
    return response

"""Cost of usage, computed when it is read from the daily rollups and the prices in force.

Price in force. For a model on a local day of the tenant: the tenant's own (contract) price with
the latest ``effective_from`` on or before that day; without one, the platform price with the
latest ``effective_from`` on or before that day; without that either, the tokens are *unpriced*.
A contract price starts applying on its own date, so days before it keep the platform price.
A price added or changed in the admin changes history at once, and a range that spans a price
change is split at the day it takes effect.

Line. One local day x API key x model: the CSV's line and the unit everything is costed at.
Its cost is the sum of its token classes' costs (``class_costs``; every rate per 1K tokens):
    input        (input - cached - writes) x input_per_1k / 1000
    cached read  cached x (cached_input_per_1k, or input_per_1k when empty) / 1000
    cache write  (writes - writes_1h) x (cache_write_per_1k, or input_per_1k when empty) / 1000
                 + writes_1h x (cache_write_1h_per_1k, or the cache write rate when empty) / 1000
    output       (output - reasoning) x output_per_1k / 1000
                 + reasoning x (reasoning_per_1k, or output_per_1k when empty) / 1000
Cached reads and cache writes are part of the input tokens, one-hour writes part of the writes
and reasoning part of the output; rollups of validated calls never break that, and a line that
does is capped (cached at the input, writes at the input left, and so on).

Exact money. A line's cost is exact: integer tokens times rates of at most 8 decimals
(``ModelPrice``), divided by 1000, so it has at most ``AMOUNT_DECIMALS`` (11) decimals and is
computed in ``Decimal`` (never float) without rounding. Every total (per model, key, day,
month, report, budget) is the exact sum of its lines, so nothing is lost before a sum: a model
that costs 0.0001 per 1K tokens adds 0.3164304 for 3,164,304 tokens, whatever the days and keys
they are spread over (sums stay exact below 10**17 in a currency: Decimal's 28 digits). A
figure is rounded once, where it is shown (``usage.reporting.money``: half-even to the
currency's minor unit, 2 decimals except the currencies in ``MINOR_UNITS``; three significant
digits below ten minor units, "0.0139 USD", never "0.00"). The REST API and the CSVs carry the
exact amount as a plain decimal string (``money.amount_text``), so the CSV's lines add up to the
totals of the page and the API exactly.

Currencies are never added together: every amount is a {currency: Decimal} mapping.

Unpriced tokens (input + output of lines with no price in force) are counted and their models
named, so a cost is shown as partial instead of silently low.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from django.db.models import Q

from accounts.models import ApiKey
from usage import localtime, pricing_rules
from usage.models import Model, ModelPrice
from usage.reporting import call_costs, costs_sql
from usage.reporting.class_rates import rates
from usage.reporting.money import amount_text, money_text
from usage.reporting.periods import Period
from usage.reporting.query import UsageQuery, query_of
from usage.reporting.selectors import Totals, UsageFilters, query_usage, usage_versions
from usage.reporting.slots import slot_get, slot_set

if TYPE_CHECKING:
    from accounts.models import Tenant

# The currency of a cost object when nothing in it is priced (ModelPrice's default currency).
DEFAULT_CURRENCY = "USD"
_THOUSAND = Decimal(1000)
# The most decimals an exact line cost (and so any sum of lines) has: the rates' decimals plus
# three for "per 1K". Stored amounts keep this many (``UsageDailyModel.cost_amount``).
AMOUNT_DECIMALS = ModelPrice._meta.get_field("input_per_1k").decimal_places + 3
# Cached costs of closed days carry their own version, so this only bounds memory use.
CLOSED_DAYS_CACHE_SECONDS = 3600
# Tokens (up to 2**63) times prices (18 digits) need more than Decimal's default 28 digits.
_PRECISION = 60


def price_text(value: Decimal | None) -> str | None:
    """A per-1K price without trailing zeros or exponent: "0.5", "100"; None stays None."""
    return None if value is None else format(value.normalize(), "f")


# The token classes a cost is split into (issue 26), in the order they are shown.
TOKEN_CLASSES = ("input", "cached_read", "cache_write", "output")
TOKEN_CLASS_LABELS = {"input": "input", "cached_read": "cached input", "cache_write": "cache write", "output": "output"}


class ClassTokens(NamedTuple):
    """A line's tokens split into the classes that are priced apart (they add up to its tokens)."""

    uncached_input: int
    cached: int
    writes_5m: int
    writes_1h: int
    plain_output: int
    reasoning: int


class ClassCosts(NamedTuple):
    """A line's exact cost per token class; ``total`` is the line's cost."""

    input: Decimal
    cached_read: Decimal
    cache_write: Decimal
    output: Decimal

    @property
    def total(self) -> Decimal:
        with localcontext(prec=_PRECISION):
            return self.input + self.cached_read + self.cache_write + self.output

    def __add__(self, other: object) -> ClassCosts:
        if not isinstance(other, ClassCosts):
            return NotImplemented
        with localcontext(prec=_PRECISION):
            return ClassCosts(*(mine + theirs for mine, theirs in zip(self, other, strict=True)))


NO_CLASS_COSTS = ClassCosts(Decimal(0), Decimal(0), Decimal(0), Decimal(0))


def class_tokens(totals: Totals) -> ClassTokens:
    """The line's tokens by priced class, each part capped at what contains it."""
    cached = min(totals.cached_input_tokens or 0, totals.input_tokens)
    writes = min(totals.cache_creation_input_tokens or 0, totals.input_tokens - cached)
    writes_1h = min(totals.cache_creation_1h_input_tokens or 0, writes)
    reasoning = min(totals.reasoning_tokens or 0, totals.output_tokens)
    return ClassTokens(
        totals.input_tokens - cached - writes, cached, writes - writes_1h, writes_1h,
        totals.output_tokens - reasoning, reasoning,
    )  # fmt: skip


def class_costs(*, price: Price, totals: Totals) -> ClassCosts:
    """Exact cost of one line per token class at ``price``: never rounded."""
    tokens, rate = class_tokens(totals), rates(price)
    with localcontext(prec=_PRECISION):
        return ClassCosts(
            tokens.uncached_input * rate.input / _THOUSAND,
            tokens.cached * rate.cached / _THOUSAND,
            (tokens.writes_5m * rate.write_5m + tokens.writes_1h * rate.write_1h) / _THOUSAND,
            (tokens.plain_output * rate.output + tokens.reasoning * rate.reasoning) / _THOUSAND,
        )


def line_cost(*, price: Price, totals: Totals) -> Decimal:
    """Exact cost of one line (``Totals`` of a day x key x model) at ``price``: never rounded; the
    sum of its class costs."""
    return class_costs(price=price, totals=totals).total


# --- Price resolution -----------------------------------------------------------------------


class PriceTerms(NamedTuple):
    """A ModelPrice's terms without the model object: all costing reads, and cheap to load."""

    pk: int
    model_id: int
    tenant_id: int | None
    currency: str
    input_per_1k: Decimal
    output_per_1k: Decimal
    cached_input_per_1k: Decimal | None
    request_fee: Decimal | None
    pricing_rules: str
    effective_from: dt.date
    cache_write_per_1k: Decimal | None = None
    cache_write_1h_per_1k: Decimal | None = None
    reasoning_per_1k: Decimal | None = None


# What costing reads of a price: a ModelPrice, or its terms alone.
Price = ModelPrice | PriceTerms


class PriceBook:
    """The prices of some models for one tenant, answering "which price is in force on a day"."""

    def __init__(self, prices: Iterable[Price], *, tenant: Tenant | None = None) -> None:
        self.tenant = tenant  # whose calls a call-priced price is costed from (``call_costs``)
        self._dates: dict[tuple[int, bool], list[dt.date]] = {}  # (model_id, is_contract) -> sorted dates
        self._prices: dict[tuple[int, bool], list[Price]] = {}  # (model_id, is_contract) -> prices, same order
        for price in sorted(prices, key=lambda p: p.effective_from):
            key = (price.model_id, price.tenant_id is not None)
            self._dates.setdefault(key, []).append(price.effective_from)
            self._prices.setdefault(key, []).append(price)

    def _latest(self, model_id: int, contract: bool, day: dt.date) -> Price | None:
        dates = self._dates.get((model_id, contract), [])
        index = bisect.bisect_right(dates, day)
        return self._prices[(model_id, contract)][index - 1] if index else None

    def price_for(self, model_id: int, day: dt.date) -> Price | None:
        """The ModelPrice in force for the model on the local ``day``, or None."""
        return self._latest(model_id, True, day) or self._latest(model_id, False, day)

    def platform_price_for(self, model_id: int, day: dt.date) -> Price | None:
        return self._latest(model_id, False, day)

    def prices(self) -> list[Price]:
        """Every loaded price, by model then date."""
        return [price for prices in self._prices.values() for price in prices]


def price_fingerprint(book: PriceBook) -> str:
    """Every term of every price in ``book`` as one string: a cache key part that any change of a
    price (added, edited, deleted) changes. ModelPrice objects and PriceTerms give the same."""
    return repr(sorted(tuple(getattr(price, name) for name in PriceTerms._fields) for price in book.prices()))


def prices_in_force(
    *, tenant: Tenant, model_ids: Iterable[int] | None = None, period: Period | None = None, terms_only: bool = False
) -> PriceBook:
    """A PriceBook of the tenant's contract prices and the platform prices, in one query.

    ``model_ids`` None loads every model's prices (for a streaming export that does not know its
    models in advance); ``period`` None also loads prices that start in the future. A book of
    every price answers for any period. ``terms_only`` loads PriceTerms tuples instead of
    ModelPrice objects with their model (which only reports and the price sheet name).
    """
    prices = ModelPrice.objects.filter(Q(tenant__isnull=True) | Q(tenant=tenant))
    # Another tenant's private model is never priced (nor shown) for this one.
    prices = prices.filter(Q(model__tenant__isnull=True) | Q(model__tenant=tenant))
    if model_ids is not None:
        prices = prices.filter(model_id__in=list(model_ids))
    if period is not None:
        prices = prices.filter(effective_from__lte=period.end)
    if terms_only:
        return PriceBook((PriceTerms._make(row) for row in prices.values_list(*PriceTerms._fields)), tenant=tenant)
    return PriceBook(prices.select_related("model"), tenant=tenant)


def row_cost(resolver: PriceBook, day: dt.date, model_id: int, totals: Totals) -> LineCost:
    """(amount, currency) of one CSV line, or (None, None) when no price is in force (``CostEngine.line``)."""
    return CostEngine(resolver).line(day, model_id, totals)


# --- Summaries ------------------------------------------------------------------------------


@dataclass
class CostSummary:
    """Cost of a set of lines: an amount per currency, plus what could not be priced."""

    amounts: dict[str, Decimal] = field(default_factory=dict)  # currency -> exact sum of the lines
    unpriced_tokens: int = 0
    unpriced_models: list[str] = field(default_factory=list)  # names, sorted

    @property
    def partial(self) -> bool:
        return self.unpriced_tokens > 0

    @property
    def currencies(self) -> list[str]:
        return sorted(self.amounts)

    def add_line(
        self, *, amount: Decimal | None, currency: str | None, totals: Totals, model_name: str, unpriced: int = 0
    ) -> None:
        if unpriced:  # a call-priced line whose calls of some service tier have no price
            self.unpriced_tokens += unpriced
            if model_name not in self.unpriced_models:
                bisect.insort(self.unpriced_models, model_name)
        if currency is None:
            self.unpriced_tokens += totals.total_tokens
            if model_name not in self.unpriced_models:
                bisect.insort(self.unpriced_models, model_name)
            return
        self.amounts[currency] = self.amounts.get(currency, Decimal(0)) + (amount or Decimal(0))

    def __add__(self, other: CostSummary) -> CostSummary:
        return CostSummary(dict(self.amounts), self.unpriced_tokens, list(self.unpriced_models)).merge(other)

    def merge(self, other: CostSummary) -> CostSummary:
        """Add ``other`` into this summary in place (summing many summaries without copies)."""
        self.unpriced_tokens += other.unpriced_tokens
        for name in other.unpriced_models:
            if name not in self.unpriced_models:
                bisect.insort(self.unpriced_models, name)
        for currency, amount in other.amounts.items():
            self.amounts[currency] = self.amounts.get(currency, Decimal(0)) + amount
        return self

    @property
    def display(self) -> list[tuple[str, str]]:
        """[(figure as shown, currency)] of the priced currencies, for templates (``money_text``)."""
        return [(money_text(self.amounts[currency], currency), currency) for currency in self.currencies]

    def exact(self, currency: str) -> str:
        """The exact amount as a plain decimal string ("0.3164304", "12.30"): the API's and CSVs' form."""
        return amount_text(self.amounts.get(currency, Decimal(0)), currency)

    # The OpenAI-compatible costs (usage/api/openai_compat.py) call this name: they carry the
    # exact amount too, so their buckets add up to the summary to the last digit.
    formatted = exact

    def as_api(self, *, fallback_currency: str = DEFAULT_CURRENCY) -> list[dict[str, Any]]:
        """The API's ``cost``: one object per currency, sorted by currency code; never empty.

        ``amount`` is exact (``money.amount_text``). With nothing priced, one object with amount
        zero in ``fallback_currency``. Every object carries the same ``unpriced_tokens``: the
        tokens that none of the amounts covers.
        """
        currencies = self.currencies or [fallback_currency]
        return [
            {"amount": self.exact(currency), "currency": currency, "unpriced_tokens": self.unpriced_tokens}
            for currency in currencies
        ]


@dataclass(frozen=True)
class CostLine:
    """One local day x key x model with its price (None when unpriced) and exact cost."""

    day: dt.date
    api_key_id: int
    model: Model
    totals: Totals
    price: Price | None
    amount: Decimal | None
    unpriced: int = 0  # tokens of calls the call-priced price has no rate for
    # (rates named as "batch, >200,000", exact amount, tokens) of a call-priced line, for the report
    parts: tuple[tuple[str, Decimal | None, int], ...] = ()

    @property
    def currency(self) -> str | None:
        return self.price.currency if self.price else None

    @property
    def classes(self) -> ClassCosts | None:
        """The line's exact cost per token class; None when unpriced or call-priced."""
        if self.price is None or pricing_rules.is_call_priced(self.price):
            return None  # a call-priced line's detail is its rates (``parts``)
        return class_costs(price=self.price, totals=self.totals)

    def add_to(self, summary: CostSummary) -> CostSummary:
        summary.add_line(
            amount=self.amount,
            currency=self.currency,
            totals=self.totals,
            model_name=self.model.name,
            unpriced=self.unpriced,
        )
        return summary


# --- The engine -----------------------------------------------------------------------------


class LineCost(NamedTuple):
    """A line's exact cost and its currency; both None when no price is in force."""

    amount: Decimal | None
    currency: str | None

    @property
    def unpriced(self) -> int:
        """Tokens of a call-priced line's calls whose service tier has no price (not in ``amount``)."""
        return 0

    @property
    def parts(self) -> tuple[tuple[str, Decimal | None, int], ...]:
        """A call-priced line's cost by the rates applied: (rates, amount or None, tokens)."""
        return ()


class ClassLineCost(LineCost):
    """A call-priced line's ``LineCost`` (still equal to its (amount, currency) pair), with the
    tokens left unpriced and its parts by rates."""

    _unpriced: int
    _parts: tuple[tuple[str, Decimal | None, int], ...]

    @classmethod
    def of(
        cls, amount: Decimal, currency: str, unpriced: int, parts: tuple[tuple[str, Decimal | None, int], ...]
    ) -> ClassLineCost:
        cost = cls(amount, currency)
        cost._unpriced, cost._parts = unpriced, parts
        return cost

    @property
    def unpriced(self) -> int:
        return self._unpriced

    @property
    def parts(self) -> tuple[tuple[str, Decimal | None, int], ...]:
        return self._parts


class CostedRow(NamedTuple):
    """A CSV row: one local day x key x model, its usage and its cost."""

    day: dt.date
    api_key: ApiKey
    model: Model
    totals: Totals
    cost: LineCost
    classes: ClassCosts | None = None  # the cost per token class; None when unpriced


GroupName = str  # "day", "model" or "api_key"
Summaries = dict[tuple[Any, ...], "CostSummary"]
# {group key tuple: {currency: ClassCosts}}: the cost per token class of priced lines.
ClassSummaries = dict[tuple[Any, ...], dict[str, ClassCosts]]


def class_costs_as_api(per_currency: dict[str, ClassCosts]) -> list[dict[str, str]]:
    """The API's ``cost_by_class``: per currency (sorted) the exact amount of each token class
    (``TOKEN_CLASSES``) as a plain decimal string; they add up to the currency's ``cost`` amount."""
    return [
        {
            "currency": currency,
            **{name: amount_text(amount, currency) for name, amount in zip(TOKEN_CLASSES, costs, strict=True)},
        }
        for currency, costs in sorted(per_currency.items())
    ]


class CostEngine:
    """The one way a cost is computed: the prices in force (a ``PriceBook``) and the rule above.

    Every reader costs through it: a line (``line``: the CSV, the grid's ledger-read days, the
    comparison's cut day), all lines of a query (``lines``: the monthly report) or a query's
    cost per group (``summaries``: the grid, the API's costs). ``summaries`` costs and adds up
    the lines inside PostgreSQL when it can (``usage.reporting.costs_sql``: the same rule, digit
    for digit, a test holds them together) and line by line in Python otherwise.
    """

    def __init__(self, book: PriceBook) -> None:
        self.book = book
        self._class_days: dict[tuple[dt.date, int | None], call_costs.ClassIndex] = {}

    def call_priced_models(self, period: Period) -> set[int]:
        """Models with a call-priced price that may be in force within ``period``."""
        return {
            price.model_id
            for price in self.book.prices()
            if price.effective_from <= period.end and pricing_rules.is_call_priced(price)
        }

    def _day_classes(
        self,
        day: dt.date,
        model_id: int,
        api_key_id: int | None,
        until: dt.datetime | None,
        index: call_costs.ClassIndex | None = None,
    ) -> list[pricing_rules.PricingClass]:
        tenant = self.book.tenant
        if tenant is None:
            raise ValueError("A call-priced price is costed from a tenant's calls: load the book with its tenant")
        if index is None:
            cache_key = (day, api_key_id) if until is None else (day, -1)
            index = self._class_days.get(cache_key) if until is None else None
            if index is None:
                models = self.call_priced_models(Period(day, day))
                index = call_costs.class_index(
                    tenant=tenant, first=day, last=day, model_ids=models, api_key_id=api_key_id, until=until
                )
                if until is None:
                    self._class_days[cache_key] = index
        if api_key_id is not None:
            return index.get((day, api_key_id, model_id), [])
        return [cls for (d, _k, m), classes in index.items() if d == day and m == model_id for cls in classes]

    def _class_line(
        self,
        price: Price,
        day: dt.date,
        model_id: int,
        api_key_id: int | None,
        until: dt.datetime | None = None,
        index: call_costs.ClassIndex | None = None,
    ) -> LineCost:
        amount, unpriced = Decimal(0), 0
        parts: dict[str, tuple[Decimal | None, int]] = {}
        for cls in self._day_classes(day, model_id, api_key_id, until, index):
            cost = pricing_rules.class_cost(price, cls)
            name = pricing_rules.tier_name(price, cls)
            part = parts.get(name, (Decimal(0), 0))
            if cost is None:
                unpriced += cls.input_tokens + cls.output_tokens
                parts[name] = (None, part[1] + cls.input_tokens + cls.output_tokens)
                continue
            amount += cost
            parts[name] = ((part[0] or Decimal(0)) + cost, part[1] + cls.input_tokens + cls.output_tokens)
        return ClassLineCost.of(
            amount, price.currency, unpriced, tuple((n, a, t) for n, (a, t) in sorted(parts.items()))
        )

    @classmethod
    def for_query(cls, query: UsageQuery, *, terms_only: bool = False) -> CostEngine:
        """The engine with the prices the query can need (its model's, or every model's), in one query."""
        model_ids = None if query.model is None else [query.model.pk]
        return cls(
            prices_in_force(tenant=query.tenant, model_ids=model_ids, period=query.period, terms_only=terms_only)
        )

    @property
    def priced(self) -> bool:
        """Whether the tenant has any price at all (then a cost is shown, even if partial)."""
        return bool(self.book.prices())

    def fingerprint(self) -> str:
        return price_fingerprint(self.book)

    def line(
        self,
        day: dt.date,
        model_id: int,
        totals: Totals,
        *,
        api_key_id: int | None = None,
        until: dt.datetime | None = None,
    ) -> LineCost:
        """The cost of one local day x key x model line at the price in force that day.

        A call-priced price is costed from the line's pricing classes: ``api_key_id`` names the
        line's key (None: all keys of the day), ``until`` the instant a partial day ends at."""
        price = self.book.price_for(model_id, day)
        if price is None:
            return LineCost(None, None)
        if pricing_rules.is_call_priced(price):
            return self._class_line(price, day, model_id, api_key_id, until)
        return LineCost(line_cost(price=price, totals=totals), price.currency)

    def costed_row(self, day: dt.date, api_key: ApiKey, model: Model, totals: Totals) -> CostedRow:
        cost = self.line(day, model.pk, totals, api_key_id=api_key.pk)
        price = self.book.price_for(model.pk, day)
        # Per token class at a flat price; a call-priced line's detail is its rates (the report's).
        flat = price is not None and cost.amount is not None and not pricing_rules.is_call_priced(price)
        classes = class_costs(price=price, totals=totals) if flat and price is not None else None
        return CostedRow(day, api_key, model, totals, cost, classes)

    def preload(self, query: UsageQuery) -> call_costs.ClassIndex:
        """The pricing classes of the query's call-priced models, in one query."""
        models = self.call_priced_models(query.period)
        if query.model is not None:
            models &= {query.model.pk}
        if not models or self.book.tenant is None:
            return {}
        return call_costs.class_index(
            tenant=self.book.tenant,
            first=query.period.start,
            last=query.period.end,
            model_ids=models,
            api_key_id=query.api_key.pk if query.api_key is not None else None,
        )

    def lines(self, query: UsageQuery) -> list[CostLine]:
        """Every costed line of the query, from one usage query."""
        grouped = query_usage(query, bucket="day", dims=("api_key", "model"))
        models = Model.objects.in_bulk({model_id for _day, _key, model_id in grouped})
        index = self.preload(query)
        lines = []
        for (day, key_id, model_id), totals in sorted(grouped.items()):
            price = self.book.price_for(model_id, day)
            if price is not None and pricing_rules.is_call_priced(price):
                cost = self._class_line(price, day, model_id, key_id, index=index)
                lines.append(
                    CostLine(day, key_id, models[model_id], totals, price, cost.amount, cost.unpriced, cost.parts)
                )
                continue
            amount = line_cost(price=price, totals=totals) if price else None
            lines.append(CostLine(day, key_id, models[model_id], totals, price, amount))
        return lines

    def class_summaries(self, query: UsageQuery, groups: tuple[GroupName, ...]) -> ClassSummaries:
        """{group key tuple: {currency: ClassCosts}} of the query's priced lines by ``groups`` (as
        ``summaries``): each group's exact cost per token class, whose total is its amount.

        Cached under the range's ``usage_versions`` (every increment and recompute changes it) and
        the prices' fingerprint, as the grids are: a repeated read costs no query of the rollups."""
        version = usage_versions(query.tenant, [query.period])[0]
        key = query.cache_key("cost_by_class", groups, version, self.fingerprint())
        slot = query.cache_key("cost_by_class", groups)
        result = slot_get(slot, key)
        if result is None:
            result = self._class_summaries(query, groups)
            slot_set(slot, key, result, timeout=CLOSED_DAYS_CACHE_SECONDS)
        return result

    def _class_summaries(self, query: UsageQuery, groups: tuple[GroupName, ...]) -> ClassSummaries:
        for name in groups:
            if name not in _GROUP_KEYS:
                raise ValueError(f"Unknown cost group {name!r}; choose from {', '.join(_GROUP_KEYS)}")
        result: ClassSummaries = {}
        if costs_sql.applies(query=query):
            for key, currency, *amounts in costs_sql.class_cost_rows(query, book=self.book, groups=groups):
                result.setdefault(key, {})[currency] = ClassCosts(*amounts)
            return result
        for line in self.lines(query):
            if line.price is not None:
                per_currency = result.setdefault(tuple(_GROUP_KEYS[name](line) for name in groups), {})
                per_currency[line.price.currency] = per_currency.get(line.price.currency, NO_CLASS_COSTS) + class_costs(
                    price=line.price, totals=line.totals
                )
        return result

    def summaries(self, query: UsageQuery, groups: tuple[GroupName, ...]) -> Summaries:
        """{group key tuple: CostSummary} of the query by ``groups`` (any of "day", "model",
        "api_key", in that order in the keys); only groups with usage appear."""
        for name in groups:
            if name not in _GROUP_KEYS:
                raise ValueError(f"Unknown cost group {name!r}; choose from {', '.join(_GROUP_KEYS)}")
        if costs_sql.applies(query=query):
            return self._summaries_in_sql(query, groups)
        result: Summaries = {}
        for line in self.lines(query):
            line.add_to(result.setdefault(tuple(_GROUP_KEYS[name](line) for name in groups), CostSummary()))
        return result

    def _in_sql(self, query: UsageQuery, groups: tuple[GroupName, ...]) -> Summaries:
        """The SQL engine's sums of the flat-priced lines, plus the call-priced lines (which it
        leaves out) costed from their pricing classes."""
        rows = costs_sql.cost_rows(query, book=self.book, groups=groups)
        result = _summaries_from_rows(list(rows))
        if self.call_priced_models(query.period) and self.book.tenant is not None:
            self._add_call_priced(query, groups, result)
        return result

    def _add_call_priced(self, query: UsageQuery, groups: tuple[GroupName, ...], result: Summaries) -> None:
        index = self.preload(query)
        line_keys = sorted(index)
        names = costs_sql.model_names({model_id for _d, _k, model_id in line_keys})
        for day, key_id, model_id in line_keys:
            price = self.book.price_for(model_id, day)
            if price is None or not pricing_rules.is_call_priced(price):
                continue
            cost = self._class_line(price, day, model_id, key_id, index=index)
            values = {"day": day, "api_key": key_id, "model": model_id}
            summary = result.setdefault(tuple(values[name] for name in groups), CostSummary())
            if cost.unpriced:
                summary.unpriced_tokens += cost.unpriced
                if names[model_id] not in summary.unpriced_models:
                    bisect.insort(summary.unpriced_models, names[model_id])
            summary.amounts[price.currency] = summary.amounts.get(price.currency, Decimal(0)) + (cost.amount or 0)

    def _closed_days(self, query: UsageQuery, groups: tuple[GroupName, ...]) -> Summaries:
        """Like ``_in_sql`` for days before today, cached until those days or the prices change.

        The key holds those days' ``usage_versions`` (a recompute changes it) and a fingerprint of
        every price in the book, so a stale entry can never be read: it is never hit.
        """
        version = usage_versions(query.tenant, [query.period])[0]
        key = query.cache_key("cost", groups, version, self.fingerprint())
        slot = query.cache_key("cost", groups)
        result = slot_get(slot, key)
        if result is None:
            result = self._in_sql(query, groups)
            slot_set(slot, key, result, timeout=CLOSED_DAYS_CACHE_SECONDS)
        return result

    def _summaries_in_sql(self, query: UsageQuery, groups: tuple[GroupName, ...]) -> Summaries:
        """Days before the tenant's today rarely change, so their part comes from a cache; today is
        always costed afresh. The parts are merged into new summaries (cached ones stay untouched)."""
        period, today = query.period, localtime.tenant_today(query.tenant)
        parts = []
        if period.start < today:
            parts.append(
                self._closed_days(
                    query.over(Period(period.start, min(period.end, today - dt.timedelta(days=1)))), groups
                )
            )
        if period.end >= today:
            parts.append(self._in_sql(query.over(Period(max(period.start, today), period.end)), groups))
        result: Summaries = {}
        for part in parts:
            for key, summary in part.items():
                result.setdefault(key, CostSummary()).merge(summary)
        return result


def _summaries_from_rows(rows: list[tuple[Any, ...]]) -> Summaries:
    names = costs_sql.model_names({row[2] for row in rows})
    result: Summaries = {}
    for key, currency, unpriced_model, amount, tokens in rows:
        summary = result.setdefault(key, CostSummary())
        if currency is None:
            summary.unpriced_tokens += int(tokens)
            bisect.insort(summary.unpriced_models, names[unpriced_model])
        else:
            summary.amounts[currency] = summary.amounts.get(currency, Decimal(0)) + amount
    return result


_GROUP_KEYS: dict[str, Callable[[CostLine], Any]] = {
    "model": lambda line: line.model.pk,
    "api_key": lambda line: line.api_key_id,
    "day": lambda line: line.day,
}


# --- The same, for callers holding a tenant and UsageFilters --------------------------------


def usage_cost(*, tenant: Tenant, filters: UsageFilters) -> CostSummary:
    """CostSummary of the filtered usage (``UsageQuery.cost``: the page's card, the API summary)."""
    return UsageQuery.of(tenant, filters).cost()


def cost_by(
    *, tenant: Tenant, filters: UsageFilters, group: str | tuple[str, ...] = "model", book: PriceBook | None = None
) -> dict[Any, CostSummary]:
    """{model id | api key id | local date: CostSummary}; only groups with usage appear.

    ``group`` may also be a tuple of those names, such as ("day", "model"): the keys are then
    tuples in the same order (the API's per-model daily series), still from the same two queries.
    ``book``: a PriceBook already loaded for the tenant, to save its query.
    """
    query = UsageQuery.of(tenant, filters)
    engine = CostEngine(book) if book is not None else CostEngine.for_query(query)
    names = (group,) if isinstance(group, str) else tuple(group)
    summaries = engine.summaries(query, names)
    return {key[0] if isinstance(group, str) else key: summary for key, summary in summaries.items()}


class _PriceTexts:
    """Per-1K prices of ``self.price`` as display strings."""

    price: ModelPrice

    @property
    def input_text(self) -> str | None:
        return price_text(self.price.input_per_1k)

    @property
    def cached_text(self) -> str | None:
        return price_text(self.price.cached_input_per_1k)

    @property
    def output_text(self) -> str | None:
        return price_text(self.price.output_per_1k)

    @property
    def cache_write_text(self) -> str | None:
        return price_text(self.price.cache_write_per_1k)

    @property
    def cache_write_1h_text(self) -> str | None:
        return price_text(self.price.cache_write_1h_per_1k)

    @property
    def reasoning_text(self) -> str | None:
        return price_text(self.price.reasoning_per_1k)


# --- Month-end expense report ---------------------------------------------------------------


@dataclass
class ReportRow:
    """Key x model x currency (None: unpriced) of a report; one row per pair in most months."""

    api_key: ApiKey
    model: Model
    currency: str | None
    totals: Totals = field(default_factory=Totals)
    cost: CostSummary = field(default_factory=CostSummary)
    # A call-priced row's cost by the rates applied ("batch, >200,000"): [amount or None, tokens]
    rates: dict[str, list[Any]] = field(default_factory=dict)
    classes: ClassCosts = NO_CLASS_COSTS  # the exact cost per token class of flat-priced lines

    @property
    def rate_lines(self) -> list[tuple[str, str | None, int]]:
        """(rates, amount as shown or None when unpriced, tokens), by rates: the report's detail."""
        currency = self.currency or DEFAULT_CURRENCY
        return [
            (name, None if amount is None else money_text(amount, currency), tokens)
            for name, (amount, tokens) in sorted(self.rates.items())
        ]

    @property
    def class_amounts(self) -> list[str]:
        """The cost per token class as exact decimal strings (``TOKEN_CLASSES`` order); empty when unpriced."""
        return [] if self.currency is None else [amount_text(amount, self.currency) for amount in self.classes]


@dataclass
class KeySection:
    api_key: ApiKey
    rows: list[ReportRow]
    totals: Totals
    cost: CostSummary


@dataclass
class PriceUse(_PriceTexts):
    """A price the report applied, and the first and last local day it was applied to."""

    price: ModelPrice
    first_day: dt.date
    last_day: dt.date


@dataclass
class ExpenseReport:
    filters: UsageFilters
    sections: list[KeySection]  # by key name
    totals: Totals
    cost: CostSummary
    prices: list[PriceUse]  # by model name, then scope, then date

    @property
    def rows(self) -> list[ReportRow]:
        return [row for section in self.sections for row in section.rows]

    @property
    def unpriced_calls(self) -> int:
        """Calls with no price in force (their tokens are ``cost.unpriced_tokens``)."""
        return sum(row.totals.calls for row in self.rows if row.currency is None)

    @property
    def class_totals(self) -> dict[str, ClassCosts]:
        """{currency: exact cost per token class} of the whole report; each adds up to ``cost``'s amount."""
        totals: dict[str, ClassCosts] = {}
        for row in self.rows:
            if row.currency is not None:
                totals[row.currency] = totals.get(row.currency, NO_CLASS_COSTS) + row.classes
        return totals

    @property
    def class_total_rows(self) -> list[tuple[str, list[str], str]]:
        """[(currency, exact class amounts, exact total)] for the template, by currency."""
        return [
            (currency, [amount_text(amount, currency) for amount in costs], amount_text(costs.total, currency))
            for currency, costs in sorted(self.class_totals.items())
        ]


def _report_rows(lines: list[CostLine]) -> list[ReportRow]:
    """ReportRow per (key, model, currency), in report order."""
    keys = ApiKey.objects.in_bulk({line.api_key_id for line in lines})
    rows: dict[tuple[int, int, str | None], ReportRow] = {}
    for line in lines:
        key = (line.api_key_id, line.model.pk, line.currency)
        row = rows.setdefault(key, ReportRow(keys[line.api_key_id], line.model, line.currency))
        row.totals += line.totals
        line.add_to(row.cost)
        for name, amount, tokens in line.parts:
            part = row.rates.setdefault(name, [Decimal(0), 0])
            part[0] = None if amount is None or part[0] is None else part[0] + amount
            part[1] += tokens
        if line.classes is not None:
            row.classes += line.classes
    return sorted(
        rows.values(),
        key=lambda row: (row.api_key.name, row.api_key.public_id, row.model.name, row.currency or "~"),
    )


def _sections(rows: list[ReportRow]) -> list[KeySection]:
    sections: list[KeySection] = []
    for row in rows:
        if not sections or sections[-1].api_key != row.api_key:
            sections.append(KeySection(row.api_key, [], Totals(), CostSummary()))
        section = sections[-1]
        section.rows.append(row)
        section.totals += row.totals
        section.cost += row.cost
    return sections


def _price_uses(lines: list[CostLine]) -> list[PriceUse]:
    uses: dict[int, PriceUse] = {}
    for line in lines:
        if line.price is None:
            continue
        # The report's book is loaded with ModelPrice objects (not terms_only): they name their model.
        use = uses.setdefault(line.price.pk, PriceUse(cast(ModelPrice, line.price), line.day, line.day))
        use.first_day, use.last_day = min(use.first_day, line.day), max(use.last_day, line.day)
    return sorted(uses.values(), key=lambda u: (u.price.model.name, u.price.tenant_id is None, u.first_day))


def expense_report(
    *, tenant: Tenant | None = None, filters: UsageFilters | None = None, query: UsageQuery | None = None
) -> ExpenseReport:
    """The month-end report: key x model rows, subtotals per key, grand total, prices used.

    Totals are exact sums of the same exact lines ``usage_cost`` adds up, so the report, the
    dashboard and the API agree to the last digit for the same filters.
    """
    query = query_of(query, tenant, filters)
    filters = query.filters
    lines = query.lines()
    sections = _sections(_report_rows(lines))
    totals = sum((section.totals for section in sections), Totals())
    cost = sum((section.cost for section in sections), CostSummary())
    return ExpenseReport(filters, sections, totals, cost, _price_uses(lines))


# --- Price sheet ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceEntry(_PriceTexts):
    price: ModelPrice
    applies: bool  # False: a contract price of the tenant overrides this platform price


def _sheet_order(entry: PriceEntry) -> tuple[str, bool, dt.date]:
    return (entry.price.model.name, not entry.applies, entry.price.effective_from)


def price_sheet(*, tenant: Tenant, today: dt.date) -> tuple[list[PriceEntry], list[PriceEntry]]:
    """(in force today, starting after today) price entries for the tenant's Prices page.

    Today's list holds the price that applies to each model and, when a contract price
    applies, the platform price it overrides.
    """
    book = prices_in_force(tenant=tenant)
    current: list[PriceEntry] = []
    upcoming: list[PriceEntry] = []
    for price in cast(list[ModelPrice], book.prices()):  # not terms_only: ModelPrice objects
        day = max(price.effective_from, today)
        applies = book.price_for(price.model_id, day) == price
        if price.effective_from > today:
            upcoming.append(PriceEntry(price, applies))
        elif applies or book.platform_price_for(price.model_id, today) == price:
            current.append(PriceEntry(price, applies))
    upcoming.sort(key=lambda entry: (entry.price.effective_from, *_sheet_order(entry)))
    return sorted(current, key=_sheet_order), upcoming

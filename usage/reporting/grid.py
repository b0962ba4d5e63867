"""Per-model usage and cost of a filtered period: what the Usage Statistics page draws.

A grid holds, for each model, its calls and tokens per bucket (a local day, or an hour for short
ranges) and its cost per local day by the rule of ``usage.reporting.costs``. The page, its Refresh endpoint
and its chart endpoints all draw from grids, so they cannot disagree with each other.

Grids are cached with a key that holds everything their numbers depend on, so a stale grid is
never read (stored in a slot per segment asked, ``usage.reporting.slots``, so the cache does not
grow with each new call): the days' ``usage_versions`` (newest rollup id, row count and revisions, dirty
marks' tokens: a recompute or a new call is a new key), a fingerprint of the tenant's prices, its time zone and
the filters.

The version is read before the numbers: a grid computed from newer data than its key says is
harmless (the next reader's key differs), the other way round cannot happen. A period is cached
in two segments, the days before the tenant's today and the rest, so calls arriving today leave
the cached closed days alone and only today's segment (one day) is recomputed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from usage import localtime
from usage.reporting import day_costs
from usage.reporting.costs import CostEngine, CostSummary, PriceBook, prices_in_force
from usage.reporting.periods import Period
from usage.reporting.query import UsageQuery
from usage.reporting.selectors import (
    Grouped,
    Totals,
    UsageFilters,
    add_optional,
    bucket_values,
    query_usage,
    usage_versions,
)
from usage.reporting.slots import slot_set, slots_get

if TYPE_CHECKING:
    from accounts.models import Tenant

# A cached grid is checked against its version (usage.reporting.slots), so this only bounds how
# long unused entries stay.
GRID_CACHE_SECONDS = 3600


@dataclass
class ModelUsage:
    """One group's (a model's, or a key's in a grid ``by="api_key"``) calls and tokens per bucket,
    and its cost per local day (lists in the grid's order)."""

    calls: list
    input: list
    output: list
    # currency -> [Decimal per day, None on days without a line in that currency]
    cost: dict = field(default_factory=dict)
    unpriced: list = field(default_factory=list)  # tokens without a price, per day
    # Per bucket, None while no call of the bucket reported them (as the SQL sums).
    cached: list = field(default_factory=list)
    reasoning: list = field(default_factory=list)
    cache_writes: list = field(default_factory=list)
    cache_writes_1h: list = field(default_factory=list)

    @classmethod
    def empty(cls, buckets: int, days: int) -> ModelUsage:
        unreported = [None] * buckets
        return cls(
            [0] * buckets, [0] * buckets, [0] * buckets, {}, [0] * days,
            list(unreported), list(unreported), list(unreported), list(unreported),
        )  # fmt: skip

    @property
    def total(self) -> list[int]:
        return [inp + out for inp, out in zip(self.input, self.output, strict=True)]

    @property
    def unpriced_tokens(self) -> int:
        return sum(self.unpriced)

    def point(self, index: int) -> Totals:
        """Totals of one bucket."""
        return Totals(
            self.calls[index], self.input[index], self.output[index], self.cached[index], self.reasoning[index],
            self.cache_writes[index], self.cache_writes_1h[index],
        )  # fmt: skip

    @property
    def totals(self) -> Totals:
        return Totals(
            sum(self.calls),
            sum(self.input),
            sum(self.output),
            _optional_sum(self.cached),
            _optional_sum(self.reasoning),
            _optional_sum(self.cache_writes),
            _optional_sum(self.cache_writes_1h),
        )

    def cost_summary(self, model_name: str) -> CostSummary:
        summary = CostSummary(
            {currency: sum(filter(None, amounts), Decimal(0)) for currency, amounts in self.cost.items()}
        )
        if self.unpriced_tokens:
            summary.unpriced_tokens = self.unpriced_tokens
            summary.unpriced_models = [model_name]
        return summary

    def day_cost(self, index: int) -> CostSummary:
        """CostSummary of one local day (``grid.days[index]``): the currencies it has lines in."""
        amounts = {currency: amounts[index] for currency, amounts in self.cost.items() if amounts[index] is not None}
        return CostSummary(amounts, self.unpriced[index])


def _optional_sum(values: Iterable[int | None]) -> int | None:
    result = None
    for value in values:
        result = add_optional(result, value)
    return result


@dataclass
class UsageGrid:
    bucket: str  # "day" or "hour"
    buckets: list  # local dates, or the UTC instants local hours start at
    days: list  # the local dates that ``ModelUsage.cost`` lists follow
    priced: bool  # the tenant has prices: cost is shown, even if nothing in range is priced
    models: dict = field(default_factory=dict)  # group (model, or key: ``by``) id -> ModelUsage
    key: str = ""  # the cache key(s) it was read under: equal keys, equal grids
    by: str = "model"

    @property
    def totals(self) -> Totals:
        return sum((usage.totals for usage in self.models.values()), Totals())

    def cost_summary(self, names: Mapping[int, str]) -> CostSummary:
        """CostSummary of the whole grid; ``names`` maps model ids to names (for unpriced models)."""
        total = CostSummary()
        for model_id, usage in self.models.items():
            total.merge(usage.cost_summary(names[model_id]))
        return total

    def followed_by(self, later: UsageGrid) -> UsageGrid:
        """This grid and ``later`` (whose buckets and days come after this one's) as one grid."""
        combined = UsageGrid(
            self.bucket,
            self.buckets + later.buckets,
            self.days + later.days,
            self.priced or later.priced,
            key=f"{self.key}+{later.key}",
            by=self.by,
        )
        for model_id in {*self.models, *later.models}:
            first = self.models.get(model_id) or ModelUsage.empty(len(self.buckets), len(self.days))
            second = later.models.get(model_id) or ModelUsage.empty(len(later.buckets), len(later.days))
            cost = {}
            for currency in {*first.cost, *second.cost}:
                cost[currency] = first.cost.get(currency, [None] * len(self.days)) + second.cost.get(
                    currency, [None] * len(later.days)
                )
            combined.models[model_id] = ModelUsage(
                first.calls + second.calls,
                first.input + second.input,
                first.output + second.output,
                cost,
                first.unpriced + second.unpriced,
                first.cached + second.cached,
                first.reasoning + second.reasoning,
                first.cache_writes + second.cache_writes,
                first.cache_writes_1h + second.cache_writes_1h,
            )
        return combined


def _read(query: UsageQuery, engine: CostEngine, *, dirty: bool = False, closed: bool = False) -> UsageGrid:
    """The grid of ``query`` (its bucket, grouped ``by`` model or key) from the selectors and the
    cost engine (no cache).

    ``dirty``: some of its days are marked dirty, so their calls are read from the ledger. Then
    one query by bucket x key x model serves both the usage and the cost lines (``_read_lines``),
    instead of the ledger being aggregated twice. ``closed``: all its days are before the
    tenant's today, so their costs may come stored (``usage.reporting.day_costs``).
    """
    priced = engine.priced
    if dirty and priced:
        return _read_lines(query, engine)
    call_priced = bool(engine.call_priced_models(query.period))
    if priced and day_costs.applies(query, dirty=dirty, closed=closed, call_priced=call_priced):
        return _read_stored(query, engine)
    grouped = query_usage(query, bucket=query.bucket, dims=(query.by,))
    grid = _empty_grid(query, grouped, priced)
    position = {value: index for index, value in enumerate(grid.buckets)}
    day_index = {day: index for index, day in enumerate(grid.days)}
    for (value, group_id), totals in grouped.items():
        _add_usage(grid, group_id, position[value], totals)
        if not priced:  # a tenant without prices: every token is unpriced
            grid.models[group_id].unpriced[day_index[_day_of(query, value)]] += totals.total_tokens
    if priced:
        for (day, group_id), summary in engine.summaries(query, ("day", query.by)).items():
            usage, index = _group_usage(grid, group_id), day_index[day]
            for currency, amount in summary.amounts.items():
                usage.cost.setdefault(currency, [None] * len(grid.days))[index] = amount
            usage.unpriced[index] += summary.unpriced_tokens
    return grid


def _day_of(query: UsageQuery, bucket: Any) -> dt.date:
    """The local day of a bucket value (a date, or the instant an hour starts)."""
    return bucket if query.bucket == "day" else localtime.local_day(query.tenant, bucket)


def _read_stored(query: UsageQuery, engine: CostEngine) -> UsageGrid:
    """Like ``_read``, for closed days by model: one read of the per-model rows and their stored costs."""
    grid = UsageGrid("day", query.period.dates(), query.period.dates(), True)
    index = {day: position for position, day in enumerate(grid.days)}
    for row in day_costs.day_rows(query, engine.book):
        position = index[row.day]
        _add_usage(grid, row.model_id, position, Totals(*row.sums))
        usage = grid.models[row.model_id]
        if row.currency is not None:
            usage.cost.setdefault(row.currency, [None] * len(grid.days))[position] = row.amount
        usage.unpriced[position] += row.unpriced
    return grid


def _read_lines(query: UsageQuery, engine: CostEngine) -> UsageGrid:
    """Like ``_read``, from one bucket x key x model query, costed line by line by the engine."""
    grouped = query_usage(query, bucket=query.bucket, dims=("api_key", "model"))
    grid = _empty_grid(query, grouped, True)
    position = {value: index for index, value in enumerate(grid.buckets)}
    lines: dict[tuple[dt.date, int, int], Totals] = {}  # (local day, key, model) -> Totals: the costing unit
    for (value, key_id, model_id), totals in grouped.items():
        _add_usage(grid, model_id if query.by == "model" else key_id, position[value], totals)
        line = (_day_of(query, value), key_id, model_id)
        lines[line] = lines[line] + totals if line in lines else totals
    day_index = {day: index for index, day in enumerate(grid.days)}
    for (day, key_id, model_id), totals in lines.items():
        usage, index = grid.models[model_id if query.by == "model" else key_id], day_index[day]
        cost = engine.line(day, model_id, totals, api_key_id=key_id)
        usage.unpriced[index] += cost.unpriced
        if cost.currency is None:
            usage.unpriced[index] += totals.total_tokens
        else:
            amounts = usage.cost.setdefault(cost.currency, [None] * len(grid.days))
            amounts[index] = (amounts[index] or Decimal(0)) + (cost.amount or Decimal(0))
    return grid


def _empty_grid(query: UsageQuery, grouped: Grouped, priced: bool) -> UsageGrid:
    buckets = bucket_values(query.tenant, query.period, query.bucket, grouped)
    return UsageGrid(query.bucket, buckets, query.period.dates(), priced, by=query.by)


def _group_usage(grid: UsageGrid, group_id: int) -> ModelUsage:
    usage = grid.models.get(group_id)
    if usage is None:
        usage = grid.models[group_id] = ModelUsage.empty(len(grid.buckets), len(grid.days))
    return usage


def _add_usage(grid: UsageGrid, group_id: int, index: int, totals: Totals) -> None:
    usage = _group_usage(grid, group_id)
    usage.calls[index] += totals.calls
    usage.input[index] += totals.input_tokens
    usage.output[index] += totals.output_tokens
    usage.cached[index] = add_optional(usage.cached[index], totals.cached_input_tokens)
    usage.reasoning[index] = add_optional(usage.reasoning[index], totals.reasoning_tokens)
    usage.cache_writes[index] = add_optional(usage.cache_writes[index], totals.cache_creation_input_tokens)
    usage.cache_writes_1h[index] = add_optional(usage.cache_writes_1h[index], totals.cache_creation_1h_input_tokens)


def _segments(period: Period, today: dt.date) -> Iterator[Period]:
    """The period split into the days before ``today`` and the rest (either may be absent)."""
    if period.start < today:
        yield Period(period.start, min(period.end, today - dt.timedelta(days=1)))
    if period.end >= today:
        yield Period(max(period.start, today), period.end)


def query_grids(queries: Sequence[UsageQuery], *, book: PriceBook | None = None) -> list[UsageGrid]:
    """The UsageGrid of each query (all of one tenant), from the cache where it holds them.

    Several grids at once (the page wants its period and the previous one) cost one version
    query and one cache round trip. ``book``: the tenant's PriceBook of every price, if loaded.
    """
    tenant = queries[0].tenant
    if any(query.tenant.pk != tenant.pk for query in queries):
        raise ValueError("Grids are read for one tenant at a time")
    engine = CostEngine(book if book is not None else prices_in_force(tenant=tenant, terms_only=True))
    prices = engine.fingerprint()
    today = localtime.tenant_today(tenant)
    segments = [
        (index, query.over(segment))
        for index, query in enumerate(queries)
        for segment in _segments(query.period, today)
    ]
    versions = usage_versions(tenant, [segment.period for _index, segment in segments])
    keys = [
        segment.cache_key("grid", version, prices)
        for (_index, segment), version in zip(segments, versions, strict=True)
    ]
    slots = [segment.cache_key("grid") for _index, segment in segments]  # one entry per segment asked
    cached = slots_get(list(zip(slots, keys, strict=True)))
    grids: list[UsageGrid | None] = [None] * len(queries)
    for (index, segment), slot, key, version in zip(segments, slots, keys, versions, strict=True):
        grid = cached.get(key)
        if grid is None:
            grid = _read(segment, engine, dirty=version.has_dirty, closed=segment.period.end < today)
            grid.key = key
            slot_set(slot, key, grid, timeout=GRID_CACHE_SECONDS)
        previous = grids[index]
        grids[index] = grid if previous is None else previous.followed_by(grid)
    return [grid for grid in grids if grid is not None]


def usage_grids(
    *, tenant: Tenant, wanted: Sequence[tuple[UsageFilters, str]], book: PriceBook | None = None, by: str = "model"
) -> list[UsageGrid]:
    """``query_grids`` of (filters, bucket) pairs of a tenant, grouped ``by`` "model" or "api_key"."""
    if by not in ("model", "api_key"):
        raise ValueError(f"Unknown grid group {by!r}")
    return query_grids([UsageQuery.of(tenant, filters, bucket=bucket, by=by) for filters, bucket in wanted], book=book)


def usage_grid(
    *, tenant: Tenant, filters: UsageFilters, bucket: str = "day", book: PriceBook | None = None, by: str = "model"
) -> UsageGrid:
    """The UsageGrid of ``filters`` by ``bucket`` ("day" or "hour") and ``by`` ("model" or "api_key")."""
    return usage_grids(tenant=tenant, wanted=[(filters, bucket)], book=book, by=by)[0]

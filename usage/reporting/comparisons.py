"""The previous period the Usage Statistics page compares with, like for like.

``periods.comparison`` says which local dates, and for a period still running, the instant on the
last of them that matches "now". Whole days come from a grid (cached like the page's own); the
cut last day from its hourly rollups (``group_sums``) for the hours before the cutoff, plus
the ledger for the one hour the cutoff falls in. Costs of the cut day follow the rule of
``usage.reporting.costs``: one line per local day x key x model at the price in force that day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.core.cache import cache
from django.db.models import Min

from usage import localtime
from usage.models import UsageHourly
from usage.reporting.costs import CostEngine, CostSummary
from usage.reporting.periods import Comparison, Period
from usage.reporting.selectors import LEDGER_SUMS, ROLLUP_SUMS, Totals, group_sums

if TYPE_CHECKING:
    from accounts.models import Tenant
    from usage.reporting.grid import UsageGrid
    from usage.reporting.query import UsageQuery

HOUR = dt.timedelta(hours=1)
CUT_DAY_CACHE_SECONDS = 120


@dataclass
class PreviousUsage:
    """Quacks like the UsageGrid parts the page reads of its previous period."""

    key: str
    totals: Totals = field(default_factory=Totals)
    models: dict[int, CostSummary] = field(
        default_factory=dict
    )  # model id -> CostSummary (its cost; empty if unpriced)

    def cost_summary(self, names: object = None) -> CostSummary:
        total = CostSummary()
        for summary in self.models.values():
            total.merge(summary)
        return total


def on_record(compared: Comparison, tenant: Tenant, horizon: Callable[[dt.datetime], dt.datetime | None]) -> Comparison:
    """``compared`` as the records kept can answer it exactly. ``horizon(instant)``: the instant
    before which calls were purged if it may lie after ``instant``, else None.

    The minutes of the cut hour before the cutoff are only in the ledger; once ``purge_calls``
    removed that hour's calls, the hourly rollups still hold the hours before it, so the cut moves
    back to the start of its local hour and the caption says so. Reading the purged ledger
    instead would count the cut hour as empty.
    """
    cutoff = compared.cutoff
    if cutoff is None:
        return compared
    local = cutoff.astimezone(tenant.tz)
    # The local hour's start as an instant (zones with :30 and :45 offsets start hours off the UTC hour).
    hour = cutoff - dt.timedelta(minutes=local.minute, seconds=local.second, microseconds=local.microsecond)
    purged_before = horizon(hour) if hour < cutoff else None
    if purged_before is None or hour >= purged_before:
        return compared
    wall = f"{local:%H:%M}"
    caption = compared.caption.replace(f"until {wall} ", f"until {local:%H}:00 ", 1)
    caption += f" Calls before {purged_before:%b %d, %Y} (UTC) are kept by the hour only, so the cut is at the hour."
    return Comparison(compared.period, hour, caption)


def cut_day(query: UsageQuery, cutoff: dt.datetime, priced: bool) -> dict[int, tuple[Totals, CostSummary]]:
    """{model id: (Totals, CostSummary)} of the calls on the query's one local day before ``cutoff``.

    Cached per cutoff: the cutoff is a whole minute, so an entry serves one minute of page loads
    (a call arriving late for that past day, or a price edited, shows a minute later at most).
    """
    key = query.cache_key("cutday", cutoff, priced)
    result = cache.get(key)
    if result is None:
        result = _costed(query, _cut_day_lines(query, cutoff), priced, cutoff)
        cache.set(key, result, timeout=CUT_DAY_CACHE_SECONDS)
    return result


def _cut_day_lines(query: UsageQuery, cutoff: dt.datetime) -> dict[tuple[Any, ...], Totals]:
    """{(key id, model id): Totals} of the calls on the day before ``cutoff``, grouped in SQL: the
    hours that end by the cutoff from the hourly rollups, the rest from the ledger (all of it on
    a day marked dirty)."""
    start, end = localtime.day_span(query.tenant, query.period.start, query.period.end)
    end = min(end, cutoff)
    lines: dict[tuple[Any, ...], Totals] = {}
    partial = start
    if not query.dirty_days:
        hours = query.rollups(UsageHourly).filter(hour__lt=end)
        # Buckets that start before the cutoff but end after it are read from the ledger.
        partial = hours.filter(hour__gt=cutoff - HOUR).aggregate(first=Min("hour"))["first"] or end
        lines = dict(group_sums(hours.filter(hour__lt=partial), None, ("api_key", "model"), ROLLUP_SUMS))
    if partial < end:
        calls = query.calls().filter(occurred_at__gte=partial, occurred_at__lt=end)
        for line, totals in group_sums(calls, None, ("api_key", "model"), LEDGER_SUMS):
            lines[line] = lines.get(line, Totals()) + totals
    return lines


def _costed(
    query: UsageQuery, lines: dict[tuple[Any, ...], Totals], priced: bool, cutoff: dt.datetime | None = None
) -> dict[int, tuple[Totals, CostSummary]]:
    """Lines (key x model of one day) to {model id: (Totals, CostSummary)} by the cost engine."""
    engine = CostEngine.for_query(query, terms_only=True) if priced else None
    day = query.period.start
    result: dict[int, tuple[Totals, CostSummary]] = {}
    for (key_id, model_id), totals in lines.items():
        model_totals, summary = result.get(model_id, (Totals(), CostSummary()))
        if engine is not None:
            cost = engine.line(day, model_id, totals, api_key_id=key_id, until=cutoff)
            summary.unpriced_tokens += cost.unpriced
            if cost.currency is not None and cost.amount is not None:
                summary.merge(CostSummary({cost.currency: cost.amount}))
            else:
                summary.unpriced_tokens += totals.total_tokens
        result[model_id] = (model_totals + totals, summary)
    return result


def whole_days(comparison: Comparison) -> Period | None:
    """The whole local days of the comparison (a Period), or None when it is only a cut day."""
    period = comparison.period
    if comparison.cutoff is None:
        return period
    if period.days == 1:
        return None
    return Period(period.start, period.end - dt.timedelta(days=1))


def previous_usage(
    query: UsageQuery, comparison: Comparison, priced: bool, grid: UsageGrid | None = None
) -> PreviousUsage:
    """The previous period's totals and per-model cost, as ``comparison`` defines it.

    ``grid``: the daily grid of its ``whole_days``, if already read (the page reads it together
    with its own, in one round trip).
    """
    query = query.using(bucket="day", by="model", period=comparison.period)
    period, cutoff = comparison.period, comparison.cutoff
    whole = whole_days(comparison)
    previous = PreviousUsage(key=f"{comparison.period}|{cutoff}")
    if whole is not None:
        if grid is None:
            grid = query.over(whole).grid()
        previous.key += "|" + grid.key
        previous.totals = grid.totals
        for model_id, usage in grid.models.items():
            previous.models[model_id] = usage.cost_summary("") if grid.priced else CostSummary()
    if cutoff is None:
        return previous
    for model_id, (totals, summary) in cut_day(query.over(Period(period.end, period.end)), cutoff, priced).items():
        previous.totals = previous.totals + totals
        previous.models[model_id] = previous.models.get(model_id, CostSummary()) + summary
    return previous

"""The previous period the Usage Statistics page compares with, like for like.

``periods.comparison`` says which local dates, and for a period still running, the instant on the
last of them that matches "now". Whole days come from a grid (cached like the page's own); the
cut last day from its hourly rollups (``grouped_usage``) for the hours before the cutoff, plus
the ledger for the one hour the cutoff falls in. Costs of the cut day follow the rule of
``usage.reporting.costs``: one line per local day x key x model at the price in force that day.
"""

import datetime as dt
import hashlib
from dataclasses import dataclass, field, replace

from django.core.cache import cache
from django.db.models import Min

from usage import localtime
from usage.models import CallRecord, DirtyDay, UsageHourly
from usage.reporting.costs import CostSummary, line_cost, prices_in_force
from usage.reporting.grid import usage_grid
from usage.reporting.periods import Period
from usage.reporting.selectors import _LEDGER_SUMS, _SUMS, Totals, _group, _scoped

HOUR = dt.timedelta(hours=1)
CUT_DAY_CACHE_SECONDS = 120


@dataclass
class PreviousUsage:
    """Quacks like the UsageGrid parts the page reads of its previous period."""

    key: str
    totals: Totals = field(default_factory=Totals)
    models: dict = field(default_factory=dict)  # model id -> CostSummary (its cost; empty if unpriced)

    def cost_summary(self, names):
        total = CostSummary()
        for summary in self.models.values():
            total.merge(summary)
        return total


def cut_day(tenant, filters, day, cutoff, priced):
    """{model id: (Totals, CostSummary)} of the calls on local ``day`` before ``cutoff``.

    Cached per cutoff: the cutoff is a whole minute, so an entry serves one minute of page loads
    (a call arriving late for that past day, or a price edited, shows a minute later at most).
    """
    scope = (filters.api_key.pk if filters.api_key else None, filters.model.pk if filters.model else None)
    raw = repr((tenant.pk, tenant.timezone, scope, day, cutoff, priced))
    key = "cutday:" + hashlib.sha256(raw.encode()).hexdigest()
    result = cache.get(key)
    if result is None:
        result = _costed(_cut_day_lines(tenant, filters, day, cutoff), tenant, day, priced)
        cache.set(key, result, timeout=CUT_DAY_CACHE_SECONDS)
    return result


def _cut_day_lines(tenant, filters, day, cutoff):
    """{(key id, model id): Totals} of the calls on ``day`` before ``cutoff``, grouped in SQL: the
    hours that end by the cutoff from the hourly rollups, the rest from the ledger (all of it on
    a day marked dirty)."""
    start, end = localtime.day_span(tenant, day, day)
    end = min(end, cutoff)
    partial = end
    if not DirtyDay.objects.filter(tenant=tenant, day=day).exists():
        hours = _scoped(UsageHourly.objects.filter(tenant=tenant, hour__gte=start, hour__lt=end), filters)
        # Buckets that start before the cutoff but end after it are read from the ledger.
        partial = hours.filter(hour__gt=cutoff - HOUR).aggregate(first=Min("hour"))["first"] or end
        whole = hours.filter(hour__lt=partial)
        lines = dict(_group(whole, None, ("api_key", "model"), _SUMS))
    else:
        lines, partial = {}, start
    if partial < end:
        calls = CallRecord.objects.filter(tenant=tenant, occurred_at__gte=partial, occurred_at__lt=end)
        for line, totals in _group(_scoped(calls, filters), None, ("api_key", "model"), _LEDGER_SUMS):
            lines[line] = lines.get(line, Totals()) + totals
    return lines


def _costed(lines, tenant, day, priced):
    """Lines (key x model of one day) to {model id: (Totals, CostSummary)} by ``usage.reporting.costs``' rule."""
    book = prices_in_force(tenant=tenant, period=Period(day, day), terms_only=True) if priced else None
    result = {}
    for (_key_id, model_id), totals in lines.items():
        model_totals, summary = result.get(model_id, (Totals(), CostSummary()))
        price = book.price_for(model_id, day) if book else None
        if price is not None:
            summary.merge(CostSummary({price.currency: line_cost(price=price, totals=totals)}))
        elif book:
            summary.unpriced_tokens += totals.total_tokens
        result[model_id] = (model_totals + totals, summary)
    return result


def whole_days(comparison):
    """The whole local days of the comparison (a Period), or None when it is only a cut day."""
    period = comparison.period
    if comparison.cutoff is None:
        return period
    if period.days == 1:
        return None
    return Period(period.start, period.end - dt.timedelta(days=1))


def previous_usage(tenant, filters, comparison, priced, grid=None):
    """The previous period's totals and per-model cost, as ``comparison`` defines it.

    ``grid``: the daily grid of its ``whole_days``, if already read (the page reads it together
    with its own, in one round trip).
    """
    period, cutoff = comparison.period, comparison.cutoff
    whole = whole_days(comparison)
    previous = PreviousUsage(key=f"{comparison.period}|{cutoff}")
    if whole is not None:
        if grid is None:
            grid = usage_grid(tenant=tenant, filters=replace(filters, period=whole))
        previous.key += "|" + grid.key
        previous.totals = grid.totals
        for model_id, usage in grid.models.items():
            previous.models[model_id] = usage.cost_summary("") if grid.priced else CostSummary()
    if cutoff is None:
        return previous
    for model_id, (totals, summary) in cut_day(tenant, filters, period.end, cutoff, priced).items():
        previous.totals = previous.totals + totals
        previous.models[model_id] = previous.models.get(model_id, CostSummary()) + summary
    return previous

"""The query layer: one tenant-scoped question about usage, validated once, and its answers.

A ``UsageQuery`` is what every reader asks: the tenant, a range of its local dates, optionally
one API key and one model, the granularity (``bucket``: local days or hours) and the grouping
(``by``: model or API key). It is built once per request, from the page's URL or the API's
parameters (``from_params``, through the filter bar's FilterSet) or by code (the monthly report,
budgets, Operations), and then answers:

- ``grid()``: per-group usage and cost per bucket, cached (``usage.reporting.grid``); the
  page's cards, trend and distribution, its chart endpoints, the API's summary, timeseries and
  breakdown, and Operations read it;
- ``totals()`` and ``cost()``: the sums of that grid;
- ``lines()``: every costed local day x key x model line (the monthly report);
- ``rows()``: the same lines streamed a chunk of days at a time (the CSV export);
- ``calls()``: the ledger's calls (the calls API), the only read of single calls.

Everything it reads is scoped here, once: ``rollups()`` and ``calls()`` filter by the tenant,
the key and the model; ``sql_scope()`` is the same for the raw SQL of the cost engine;
``dirty_days`` is the one reading of the dirty marks; ``cache_key()`` the one cache key.
Costs come from one engine (``usage.reporting.costs.CostEngine``), exact until they are shown.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from django.db.models import Model as DjangoModel
from django.db.models import QuerySet

from usage import localtime
from usage.models import CallRecord, DirtyDay, UsageHourly
from usage.reporting.periods import Period

if TYPE_CHECKING:
    from accounts.models import ApiKey, Tenant
    from usage.models import Model
    from usage.reporting.costs import CostLine, CostSummary, PriceBook
    from usage.reporting.grid import UsageGrid
    from usage.reporting.selectors import Totals, UsageFilters

Bucket = Literal["day", "hour"]
Group = Literal["model", "api_key"]
BUCKETS = ("day", "hour")
GROUPS = ("model", "api_key")
# Hourly series are offered for short ranges only (the page switches to days beyond this).
MAX_HOURLY_DAYS = 2
# Part of every cache key: cached answers are pickles of this code's classes, so a release that
# moves or reshapes them (issue 17 moved usage.grid to usage.reporting.grid) bumps it, and a
# shared cache's entries of the previous release are never read (they expire on their own).
# 3: exact costs (no rounded line before a sum). 4: answers are stored in slots as (version key,
# answer) (usage.reporting.slots). 5: panels carry the unpriced calls and the cache columns.
# 6: Totals and grids carry cache writes (issue 26).
CACHE_FORMAT = 6


class InvalidQuery(ValueError):
    """A query that cannot be answered; ``errors`` maps each parameter to its messages."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors = {name: list(messages) for name, messages in errors.items()}
        super().__init__("; ".join(f"{name}: {' '.join(messages)}" for name, messages in self.errors.items()))


@dataclass(frozen=True)
class UsageQuery:
    tenant: Tenant
    period: Period
    api_key: ApiKey | None = None
    model: Model | None = None
    bucket: Bucket = "day"
    by: Group = "model"

    def __post_init__(self) -> None:
        if self.bucket not in BUCKETS:
            raise InvalidQuery({"bucket": [f"Choose one of {', '.join(BUCKETS)}."]})
        if self.by not in GROUPS:
            raise InvalidQuery({"group_by": [f"Choose one of {', '.join(GROUPS)}."]})
        if self.bucket == "hour" and self.period.days > MAX_HOURLY_DAYS:
            raise InvalidQuery({"bucket": [f"Hourly buckets cover at most {MAX_HOURLY_DAYS} days; use bucket=day."]})
        # Another tenant's key is never part of this tenant's question. (A model is: one made
        # private to another tenant after this one used it still filters this tenant's own calls.)
        if self.api_key is not None and self.api_key.tenant_id != self.tenant.pk:
            raise InvalidQuery({"api_key": ["Select a valid choice. That choice is not one of the available choices."]})

    # --- Building ------------------------------------------------------------------------------

    @classmethod
    def of(cls, tenant: Tenant, filters: UsageFilters, **options: Any) -> UsageQuery:
        return cls(tenant, filters.period, filters.api_key, filters.model, **options)

    @classmethod
    def from_params(cls, tenant: Tenant, params: Mapping[str, Any], **options: Any) -> UsageQuery:
        """The query of a page URL or API request (start, end, preset, api_key, model), checked
        by the filter bar's FilterSet: another tenant's key or model is an invalid choice."""
        from usage.reporting.filters import UsageFilterSet  # the form layer sits above this one

        filterset = UsageFilterSet(params, tenant=tenant)
        if not filterset.is_valid():
            raise InvalidQuery({name: [str(m) for m in messages] for name, messages in filterset.form.errors.items()})
        return filterset.query(**options)

    def over(self, period: Period) -> UsageQuery:
        """The same question about other days."""
        return replace(self, period=period)

    def using(self, **changes: Any) -> UsageQuery:
        """The same question with another ``bucket`` or ``by`` (or key, model)."""
        return replace(self, **changes)

    @property
    def filters(self) -> UsageFilters:
        from usage.reporting.selectors import UsageFilters

        return UsageFilters(self.period, self.api_key, self.model)

    # --- Scope: tenant, key and model, applied here only ------------------------------------

    @property
    def scope(self) -> tuple[int | None, int | None]:
        """(key id, model id) of the filters, None for All."""
        return (self.api_key.pk if self.api_key else None, self.model.pk if self.model else None)

    def narrowed(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """``queryset`` (of a table with tenant, api_key and model columns) of this tenant, key and model."""
        queryset = queryset.filter(tenant=self.tenant)
        if self.api_key is not None:
            queryset = queryset.filter(api_key=self.api_key)
        if self.model is not None:
            queryset = queryset.filter(model=self.model)
        return queryset

    def rollups(self, table: type[DjangoModel]) -> QuerySet[Any]:
        """The rows of a rollup table (hourly, daily, per-model daily) this query reads, all its days."""
        if table is UsageHourly:
            start, end = localtime.day_span(self.tenant, self.period.start, self.period.end)
            return self.narrowed(table._default_manager.filter(hour__gte=start, hour__lt=end))
        return self.narrowed(table._default_manager.filter(day__range=(self.period.start, self.period.end)))

    def calls(self, queryset: QuerySet[CallRecord] | None = None) -> QuerySet[CallRecord]:
        """The ledger's calls on the query's local days (of ``queryset``, by default all calls)."""
        start, end = localtime.day_span(self.tenant, self.period.start, self.period.end)
        calls = CallRecord.objects.all() if queryset is None else queryset
        return self.narrowed(calls.filter(occurred_at__gte=start, occurred_at__lt=end))

    def sql_scope(self, *, key: bool = True) -> tuple[str, list[int]]:
        """(" AND ..." , params) of the key and model filters for raw SQL over the rollups;
        ``key`` False leaves the key out (tables without one)."""
        sql, params = "", list[int]()
        if key and self.api_key is not None:
            sql, params = sql + " AND api_key_id = %s", [*params, self.api_key.pk]
        if self.model is not None:
            sql, params = sql + " AND model_id = %s", [*params, self.model.pk]
        return sql, params

    @cached_property
    def dirty_days(self) -> list:
        """The query's days marked dirty (a zone change or repair awaiting its recompute): their
        calls are read from the ledger, since their rollups may be stale. Read once per query."""
        days = DirtyDay.objects.filter(tenant=self.tenant, day__range=(self.period.start, self.period.end))
        return sorted(days.values_list("day", flat=True))

    def cache_key(self, kind: str, *parts: object) -> str:
        """The cache key of an answer of ``kind`` ("grid", "cost", "cutday", "panel") to this
        query, given ``parts`` that version it (usage versions, prices): equal keys, equal answers."""
        raw = repr((self.tenant.pk, self.tenant.timezone, self.period, self.scope, self.bucket, self.by, *parts))
        return f"{kind}:{CACHE_FORMAT}:" + hashlib.sha256(raw.encode()).hexdigest()

    # --- Answers -------------------------------------------------------------------------------

    def grid(self, book: PriceBook | None = None) -> UsageGrid:
        """The query's grid (read once per query object: totals and cost share it)."""
        if book is None:
            return self._grid
        from usage.reporting.grid import query_grids

        return query_grids([self], book=book)[0]

    @cached_property
    def _grid(self) -> UsageGrid:
        from usage.reporting.grid import query_grids

        return query_grids([self])[0]

    def totals(self) -> Totals:
        return self.grid().totals

    def cost(self) -> CostSummary:
        """The cost of the query's usage: the exact sum of its day x key x model lines, with
        the tokens and models no price covers (from the per-model grid; for a tenant without any
        price, every line of the engine, so that models with calls of no tokens are named too)."""
        if self.by != "model":
            return self.using(by="model").cost()
        grid = self.grid()
        if not grid.priced:
            from usage.reporting.costs import CostEngine, CostSummary

            return CostEngine.for_query(self).summaries(self, ()).get((), CostSummary())
        return grid.cost_summary(_model_names(grid))

    def lines(self) -> list[CostLine]:
        """Every costed local day x key x model line, by day, key and model."""
        from usage.reporting.costs import CostEngine

        return CostEngine.for_query(self).lines(self)

    def rows(self) -> Iterator[Any]:
        """The CSV's rows: ``CostedRow`` per local day x key x model, a chunk of days at a time."""
        from usage.reporting.costs import CostEngine
        from usage.reporting.selectors import usage_rows

        engine = CostEngine.for_query(self)
        for day, key, model, totals in usage_rows(query=self):
            yield engine.costed_row(day, key, model, totals)


def query_of(query: UsageQuery | None, tenant: Tenant | None, filters: UsageFilters | None) -> UsageQuery:
    """``query``, or the query of ``tenant`` and ``filters`` (the keyword API of the selectors)."""
    if query is not None:
        return query
    if tenant is None or filters is None:
        raise TypeError("Give a query, or a tenant and its filters")
    return UsageQuery.of(tenant, filters)


def _model_names(grid: UsageGrid) -> dict[int, str]:
    from usage.models import Model

    return dict(Model.objects.filter(pk__in=list(grid.models)).values_list("pk", "name"))

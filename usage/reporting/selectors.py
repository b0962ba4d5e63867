"""Reads of usage in SQL: the rollups for clean days, the ledger for dirty ones.

Every read takes a ``UsageQuery`` (``usage.reporting.query``), which holds the tenant and the
filters and scopes each queryset; the keyword functions at the end (``usage_summary``,
``usage_series``, ...) are the same reads for callers that hold a tenant and ``UsageFilters``.

Numbers come from the rollups, which ingestion keeps exact in the transaction that stores the
calls (``usage.rollups.increments``). Only days marked dirty (a time zone change or a repair awaiting
its recompute) are aggregated from the ledger instead. All grouping happens in SQL; Python only
merges the (small) grouped results.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.db.models import Aggregate, Count, DateField, DateTimeField, Q, QuerySet, Sum
from django.db.models.expressions import RawSQL

from accounts.models import ApiKey
from usage import localtime
from usage.models import CallRecord, DirtyDay, Model, UsageDaily, UsageDailyModel, UsageHourly
from usage.reporting.periods import Period
from usage.reporting.query import MAX_HOURLY_DAYS, UsageQuery, query_of

if TYPE_CHECKING:
    from accounts.models import Tenant

__all__ = ["MAX_HOURLY_DAYS"]  # where the API and the page have always imported it from

GROUPS = {"model": "model_id", "api_key": "api_key_id"}
# A grouped read: {(bucket?, *group ids): Totals}.
Grouped = dict[tuple[Any, ...], "Totals"]


@dataclass(frozen=True)
class UsageFilters:
    """What a reader asks for: a range of the tenant's local dates, optionally one key / model."""

    period: Period
    api_key: ApiKey | None = None
    model: Model | None = None


def add_optional(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


@dataclass
class Totals:
    """Sums of a set of calls. Cached, reasoning and cache write tokens stay None while no call
    reported them. Cached reads and cache writes are inside ``input_tokens``."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_creation_1h_input_tokens: int | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            self.calls + other.calls,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            add_optional(self.cached_input_tokens, other.cached_input_tokens),
            add_optional(self.reasoning_tokens, other.reasoning_tokens),
            add_optional(self.cache_creation_input_tokens, other.cache_creation_input_tokens),
            add_optional(self.cache_creation_1h_input_tokens, other.cache_creation_1h_input_tokens),
        )

    def as_dict(self) -> dict[str, int | None]:
        return {
            "calls": self.calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_creation_1h_input_tokens": self.cache_creation_1h_input_tokens,
        }


ROLLUP_SUMS: dict[str, Aggregate] = {
    "calls_sum": Sum("calls"),
    "input_sum": Sum("input_tokens"),
    "output_sum": Sum("output_tokens"),
    "cached_sum": Sum("cached_input_tokens"),
    "reasoning_sum": Sum("reasoning_tokens"),
    "write_sum": Sum("cache_creation_input_tokens"),
    "write_1h_sum": Sum("cache_creation_1h_input_tokens"),
}
LEDGER_SUMS = {**ROLLUP_SUMS, "calls_sum": Count("id")}


def _totals(row: dict[str, Any]) -> Totals:
    return Totals(
        int(row["calls_sum"] or 0),
        int(row["input_sum"] or 0),
        int(row["output_sum"] or 0),
        None if row["cached_sum"] is None else int(row["cached_sum"]),
        None if row["reasoning_sum"] is None else int(row["reasoning_sum"]),
        None if row["write_sum"] is None else int(row["write_sum"]),
        None if row["write_1h_sum"] is None else int(row["write_1h_sum"]),
    )


def _spans_q(tenant: Tenant, days: Iterable[dt.date], column: str) -> Q:
    """Q matching instants that fall on any of ``days`` (local dates)."""
    q = Q(pk__in=[])
    for first, last in localtime.consecutive_ranges(days):
        start, end = localtime.day_span(tenant, first, last)
        q |= Q(**{f"{column}__gte": start, f"{column}__lt": end})
    return q


def _rollup_source(query: UsageQuery, bucket: str | None, dims: tuple[str, ...]) -> tuple[QuerySet[Any], str | None]:
    """(queryset, bucket column or None) reading the clean days from the rollup tables.

    Reads that neither filter nor group by key use the per-model daily table (keys x fewer rows).
    """
    if bucket == "hour":
        hours = query.rollups(UsageHourly)
        return hours.exclude(_spans_q(query.tenant, query.dirty_days, "hour")), "hour"
    table = UsageDaily if query.api_key is not None or "api_key" in dims else UsageDailyModel
    days = query.rollups(table).exclude(day__in=query.dirty_days)
    return days, ("day" if bucket == "day" else None)


def _ledger_source(query: UsageQuery, bucket: str | None) -> tuple[QuerySet[Any], str | None]:
    """(queryset, bucket column or None) aggregating the dirty days straight from the ledger.

    The bucket SQL is ours and the zone name a bound parameter, so RawSQL is safe here.
    """
    tenant = query.tenant
    calls = query.narrowed(CallRecord.objects.filter(_spans_q(tenant, query.dirty_days, "occurred_at")))
    if bucket == "hour":
        sql, params = localtime.local_hour_sql("occurred_at", tenant.timezone)
        return calls.annotate(bucket=RawSQL(sql, params, output_field=DateTimeField())), "bucket"  # noqa: S611
    if bucket == "day":
        sql, params = localtime.local_date_sql("occurred_at", tenant.timezone)
        return calls.annotate(bucket=RawSQL(sql, params, output_field=DateField())), "bucket"  # noqa: S611
    return calls, None


def group_sums(
    queryset: QuerySet[Any], bucket_column: str | None, dims: Iterable[str], sums: dict[str, Any]
) -> Iterator[tuple[tuple[Any, ...], Totals]]:
    """(group key, Totals) of ``queryset`` grouped by the bucket column and ``dims`` in SQL."""
    columns = ([bucket_column] if bucket_column else []) + [GROUPS[dim] for dim in dims]
    rows = queryset.values(*columns).annotate(**sums).order_by() if columns else [queryset.aggregate(**sums)]
    for row in rows:
        key = tuple(row[column] for column in columns)
        yield key, _totals(row)


def query_usage(query: UsageQuery, *, bucket: str | None = None, dims: tuple[str, ...] = ()) -> Grouped:
    """{(bucket?, *dim ids): Totals} of the query; ``bucket`` is "day", "hour" or None."""
    sources = [(_rollup_source(query, bucket, dims), ROLLUP_SUMS)]
    if query.dirty_days:
        sources.append((_ledger_source(query, bucket), LEDGER_SUMS))
    result: Grouped = {}
    for (queryset, bucket_column), sums in sources:
        for key, totals in group_sums(queryset, bucket_column, dims, sums):
            if bucket == "hour":
                key = (key[0].astimezone(dt.UTC), *key[1:])
            result[key] = result[key] + totals if key in result else totals
    return result


# --- Public selectors ----------------------------------------------------------------------


def usage_summary(*, tenant: Tenant, filters: UsageFilters) -> Totals:
    """Totals of the filtered calls (``UsageQuery.totals``: the page's grid)."""
    return UsageQuery.of(tenant, filters).totals()


def hour_buckets(tenant: Tenant, period: Period) -> list[dt.datetime]:
    """Every local hour start (as UTC instants) of the period; 23 or 25 on DST days."""
    start, end = localtime.day_span(tenant, period.start, period.end)
    buckets, instant = [], start.astimezone(dt.UTC)
    while instant < end:
        local = instant.astimezone(tenant.tz)
        if local.minute == 0 and local.second == 0:
            buckets.append(instant)
        instant += dt.timedelta(minutes=15)
    return buckets


def bucket_values(tenant: Tenant, period: Period, bucket: str, grouped: Grouped) -> list[Any]:
    """The gap-filled buckets of ``period``: its local dates, or the UTC instants of its local
    hours together with those found in ``grouped`` (keyed by bucket first)."""
    if bucket != "hour":
        return period.dates()
    # Zones that shift by half an hour (Lord Howe) start some local hours at :30: keep them.
    return sorted({*hour_buckets(tenant, period), *(key[0] for key in grouped)})


@dataclass
class Series:
    bucket: str
    buckets: list
    # One entry per group: (ApiKey, Model or None for the total, [Totals per bucket]).
    groups: list = field(default_factory=list)


def usage_series(
    *, tenant: Tenant, filters: UsageFilters, bucket: str = "day", group_by: str | None = "model"
) -> Series:
    """Gap-filled series by ``bucket`` ("day"/"hour"), one per ``group_by`` ("model"/"api_key"/None),
    busiest first: the grid of the query, as points."""
    grid = UsageQuery.of(tenant, filters, bucket=bucket, by=group_by or "model").grid()
    series = Series(bucket=grid.bucket, buckets=grid.buckets)
    usages = sorted(grid.models.items())
    positions = range(len(grid.buckets))
    if group_by is None:
        series.groups.append((None, [sum((u.point(i) for _pk, u in usages), Totals()) for i in positions]))
        return series
    objects = group_objects(group_by, [pk for pk, _usage in usages])
    series.groups = [(objects[pk], [usage.point(i) for i in positions]) for pk, usage in usages]
    series.groups.sort(key=lambda entry: -sum(point.total_tokens for point in entry[1]))
    return series


def group_objects(group_by: str, ids: Iterable[int | None]) -> dict[int, Any]:
    """{id: Model or ApiKey} of a grid's groups."""
    wanted = [pk for pk in ids if pk is not None]
    if group_by == "model":
        return Model.objects.in_bulk(wanted)
    if group_by == "api_key":
        return ApiKey.objects.in_bulk(wanted)
    return {}


@dataclass
class BreakdownRow:
    group: object  # Model or ApiKey
    totals: Totals
    share: float  # of all tokens in the filtered range, 0..1


def usage_breakdown(*, tenant: Tenant, filters: UsageFilters, by: str = "model") -> list[BreakdownRow]:
    """One row per model or key, largest first, with its share of the total tokens (the grid's groups)."""
    grid = UsageQuery.of(tenant, filters, by=by).grid()
    objects = group_objects(by, list(grid.models))
    return breakdown_rows((objects[pk], usage.totals) for pk, usage in grid.models.items())


def breakdown_rows(pairs: Iterable[tuple[Any, Totals]]) -> list[BreakdownRow]:
    """BreakdownRows of (group, Totals) pairs: each with its share of their tokens, largest first."""
    pairs = list(pairs)
    grand_total = sum(totals.total_tokens for _group, totals in pairs)
    rows = [
        BreakdownRow(group, totals, totals.total_tokens / grand_total if grand_total else 0.0)
        for group, totals in pairs
    ]
    rows.sort(key=lambda row: (-row.totals.total_tokens, str(row.group)))
    return rows


_VERSIONS_SQL = f"""
SELECT day, MAX(id), COUNT(*), SUM(revision), NULL FROM {UsageDailyModel._meta.db_table}
WHERE tenant_id = %s AND day BETWEEN %s AND %s GROUP BY day
UNION ALL
SELECT day, NULL, NULL, NULL, token FROM {DirtyDay._meta.db_table} WHERE tenant_id = %s AND day BETWEEN %s AND %s
"""


@dataclass(frozen=True)
class UsageVersion:
    """A value that changes whenever the numbers of a range of days may have."""

    newest: int | None  # newest per-model daily row id: a recompute re-inserts rows
    rows: int  # how many of those rows: a new model or day adds one
    revisions: int  # sum of their revisions: every increment bumps one
    dirty: tuple  # sorted (day, token) of the range's dirty marks

    @property
    def has_dirty(self) -> bool:
        return bool(self.dirty)


def usage_versions(tenant: Tenant, periods: list[Period]) -> list[UsageVersion]:
    """For each period, its ``UsageVersion``.

    Ingestion bumps a per-model daily row of the call's day in the transaction that stores it;
    a recompute deletes and re-inserts its days' rows under the tenant's lock (new ids); a zone
    change or repair writes a fresh dirty token. Read it before the numbers it versions. One
    plain query for all periods: caches check it on every read.
    """
    low, high = min(p.start for p in periods), max(p.end for p in periods)
    with connection.cursor() as cursor:
        cursor.execute(_VERSIONS_SQL, [tenant.pk, low, high, tenant.pk, low, high])
        rows = [(_date(day), *rest) for day, *rest in cursor.fetchall()]
    versions = []
    for period in periods:
        newest, count, revisions, dirty = None, 0, 0, []
        for day, day_newest, day_count, day_revisions, token in rows:
            if period.start <= day <= period.end:
                if token is not None:
                    dirty.append((day, token))
                else:
                    newest = day_newest if newest is None else max(newest, day_newest)
                    count += day_count
                    revisions += int(day_revisions)
        versions.append(UsageVersion(newest, count, revisions, tuple(sorted(dirty))))
    return versions


def _date(value: dt.date | str) -> dt.date:
    return dt.date.fromisoformat(value) if isinstance(value, str) else value  # SQLite returns text


# An export reads this many days per query: memory stays bounded (a week of rows), queries few.
EXPORT_CHUNK_DAYS = 7


def _export_chunks(period: Period) -> Iterator[Period]:
    """The period in chunks: first a single day, so an export starts at once, then a week each."""
    start, size = period.start, 1
    while start <= period.end:
        end = min(start + dt.timedelta(days=size - 1), period.end)
        yield Period(start, end)
        start, size = end + dt.timedelta(days=1), EXPORT_CHUNK_DAYS


def usage_rows(
    *, tenant: Tenant | None = None, filters: UsageFilters | None = None, query: UsageQuery | None = None
) -> Iterator[tuple[dt.date, ApiKey, Model, Totals]]:
    """Yield (date, ApiKey, Model, Totals) per local day x key x model, by day, key name, model name.

    Read a chunk of days at a time: memory stays flat over long ranges and the export starts at once.
    """
    query = query_of(query, tenant, filters)
    keys = ApiKey.objects.filter(tenant=query.tenant).in_bulk()
    models: dict[int, Model] = {}
    for chunk in _export_chunks(query.period):
        grouped = query_usage(query.over(chunk), bucket="day", dims=("api_key", "model"))
        missing = {model_id for _, _, model_id in grouped} - models.keys()
        models.update(Model.objects.in_bulk(missing))
        order = lambda item: (item[0][0], keys[item[0][1]].name, models[item[0][2]].name)  # noqa: E731
        for (day, key_id, model_id), totals in sorted(grouped.items(), key=order):
            yield day, keys[key_id], models[model_id], totals


def tenant_models(*, tenant: Tenant) -> QuerySet[Model]:
    """Models the tenant can filter by: those it has used, plus its private ones."""
    used = UsageDailyModel.objects.filter(tenant=tenant).values("model_id").distinct()
    used_dirty = CallRecord.objects.filter(
        _spans_q(tenant, DirtyDay.objects.filter(tenant=tenant).values_list("day", flat=True), "occurred_at"),
        tenant=tenant,
    ).values("model_id")
    return Model.objects.filter(Q(pk__in=used) | Q(pk__in=used_dirty) | Q(tenant=tenant)).order_by("name")


def ledger_calls(*, tenant: Tenant, filters: UsageFilters) -> QuerySet[CallRecord]:
    """The calls on the filtered local days, unordered (the paginator orders them).

    A read of the ledger rather than the rollups, for the API's call list (``UsageQuery.calls``).
    """
    return UsageQuery.of(tenant, filters).calls().select_related("api_key", "model")


# --- Operations: week over week per model ------------------------------------------------------

# A change of at least this much, week over week, earns a "scale up" / "scale down" hint.
SCALE_HINT_CHANGE = 0.5


@dataclass
class ModelTrend:
    model: Model
    tokens: int
    calls: int
    previous_tokens: int
    previous_calls: int
    share: float  # of this week's tokens, 0..1

    @property
    def change(self) -> float | None:
        """Token change against last week as a fraction; None for a model new this week."""
        if not self.previous_tokens:
            return None
        return (self.tokens - self.previous_tokens) / self.previous_tokens

    @property
    def change_percent(self) -> int | None:
        return None if self.change is None else round(self.change * 100)

    @property
    def share_percent(self) -> int:
        return round(self.share * 100)

    @property
    def hint(self) -> str:
        if self.change is None:
            return "scale up" if self.tokens else ""
        if self.change >= SCALE_HINT_CHANGE:
            return "scale up"
        return "scale down" if self.change <= -SCALE_HINT_CHANGE else ""


def _weeks(today: dt.date) -> tuple[Period, Period]:
    this_week = Period(today - dt.timedelta(days=6), today)
    return this_week, this_week.previous()


def model_week_over_week(
    *, tenant: Tenant, today: dt.date, api_key: ApiKey | None = None
) -> tuple[Period, Period, list[ModelTrend]]:
    """Per model, the last 7 local days ending ``today`` against the 7 before; busiest first.
    ``api_key``: only that key's calls (one of the tenant's keys)."""
    this_week, last_week = _weeks(today)
    query = UsageQuery(tenant, Period(last_week.start, today), api_key=api_key)
    grouped = query_usage(query, bucket="day", dims=("model",))
    sums: dict[int, tuple[list[int], list[int]]] = {}
    for (day, model_id), totals in grouped.items():
        current, previous = sums.setdefault(model_id, ([0, 0], [0, 0]))
        target = current if day >= this_week.start else previous
        target[0] += totals.total_tokens
        target[1] += totals.calls
    models = Model.objects.in_bulk(sums.keys())
    week_tokens = sum(current[0] for current, _ in sums.values())
    trends = [
        ModelTrend(
            models[pk],
            current[0],
            current[1],
            previous[0],
            previous[1],
            current[0] / week_tokens if week_tokens else 0.0,
        )
        for pk, (current, previous) in sums.items()
    ]
    trends.sort(key=lambda t: (-t.tokens, -t.previous_tokens, t.model.name))
    return this_week, last_week, trends

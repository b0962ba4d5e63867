"""Reads of performance: calls, errors by type, latency, time to first token and output tokens per
second, per bucket (local hour or day) and group (model or key), and in total.

Everything is merged from counts, never from averages: calls and their tokens come from the usage
rollups (``usage.reporting.selectors.query_usage``: the page's numbers), statuses and histograms
from ``PerformanceHourly`` (``usage.rollups.performance``), whose buckets add up exactly over any
range of hours, keys and models. So a percentile over a week is the percentile of the week's calls,
weighted by requests, within the histogram's stated bound of the ledger's (nearest rank).

Days marked dirty (a zone change awaiting its recompute) are read from the ledger with the same
bucket SQL, as the usage reads do.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.db.models import DateField, Q, Sum
from django.db.models.expressions import RawSQL

from usage import histograms as perf
from usage import localtime
from usage.models import ErrorType, PerformanceHourly
from usage.reporting.selectors import bucket_values, query_usage

if TYPE_CHECKING:
    from usage.reporting.query import UsageQuery

PERCENTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
ERROR_TYPES = (*ErrorType.values, "unspecified")
_TYPE_OF_BUCKET = {index: name for name, index in perf.ERROR_BUCKETS.items()} | {
    perf.UNTYPED_ERROR_BUCKET: "unspecified"
}


def percentile(counts: Mapping[int, int], p: float) -> float | None:
    """The nearest-rank ``p`` percentile of a histogram ({bucket: calls}): the estimate of the bucket
    holding the call of rank ceil(p * n). None for no calls."""
    total = sum(counts.values())
    if not total:
        return None
    rank, seen = max(1, math.ceil(p * total)), 0
    for bucket in sorted(counts):
        seen += counts[bucket]
        if seen >= rank:
            return perf.bucket_estimate(bucket)
    raise AssertionError("unreachable")


@dataclass
class Stats:
    """The performance of a set of calls: every field adds up, so two Stats merge exactly."""

    calls: int = 0
    output_tokens: int = 0
    statuses: defaultdict[int, int] = field(default_factory=lambda: defaultdict(int))
    histograms: dict[int, defaultdict[int, int]] = field(
        default_factory=lambda: {metric: defaultdict(int) for metric in perf.METRICS}
    )

    def add_bucket(self, metric: int, bucket: int, calls: int) -> None:
        target = self.statuses if metric == perf.STATUS else self.histograms[metric]
        target[bucket] += calls

    def merge(self, other: Stats) -> None:
        self.calls += other.calls
        self.output_tokens += other.output_tokens
        for bucket, calls in other.statuses.items():
            self.statuses[bucket] += calls
        for metric, histogram in other.histograms.items():
            for bucket, calls in histogram.items():
                self.histograms[metric][bucket] += calls

    @property
    def errors(self) -> dict[str, int]:
        by_type = dict.fromkeys(ERROR_TYPES, 0)
        for bucket, calls in self.statuses.items():
            if bucket != perf.OK_BUCKET:
                by_type[_TYPE_OF_BUCKET[bucket]] += calls
        return by_type

    @property
    def error_count(self) -> int:
        return sum(calls for bucket, calls in self.statuses.items() if bucket != perf.OK_BUCKET)

    @property
    def error_rate(self) -> float | None:
        """Failed calls over all calls (a call that reported no status is not counted as failed)."""
        return self.error_count / self.calls if self.calls else None

    def percentiles(self, metric: int) -> dict[str, float | None]:
        histogram = self.histograms[metric]
        scale = perf.TPS_SCALE if metric == perf.TOKENS_PER_SECOND else 1
        found = {}
        for name, p in PERCENTILES.items():
            value = percentile(histogram, p)
            found[name] = None if value is None else round(value / scale, 1)
        return {**found, "calls": sum(histogram.values())}

    def as_api(self) -> dict[str, Any]:
        tps = self.percentiles(perf.TOKENS_PER_SECOND)
        return {
            "calls": self.calls,
            "errors": {"total": self.error_count, **self.errors},
            "error_rate": None if self.error_rate is None else round(self.error_rate, 6),
            "latency_ms": self.percentiles(perf.LATENCY),
            "time_to_first_token_ms": self.percentiles(perf.TTFT),
            "output_tokens_per_second": {"p50": tps["p50"], "calls": tps["calls"]},
        }


@dataclass
class PerformanceReport:
    bucket: str
    buckets: list[Any]
    # {group id or None: [Stats per bucket]}
    groups: dict[int | None, list[Stats]]
    total: Stats

    def group_total(self, group: int | None) -> Stats:
        merged = Stats()
        for stats in self.groups[group]:
            merged.merge(stats)
        return merged


_GROUP_COLUMNS = {"model": "model_id", "api_key": "api_key_id"}


def query_performance(query: UsageQuery, *, group_by: str | None, bucket: str | None = None) -> PerformanceReport:
    """Stats per bucket (``bucket``, default ``query.bucket``: "hour" or "day") and per ``group_by``
    ("model", "api_key" or None). Hours over a long range are the caller's choice (the page's baseline)."""
    dims = (group_by,) if group_by else ()
    bucket = bucket or query.bucket
    keyed: defaultdict[tuple[Any, ...], Stats] = defaultdict(Stats)
    for key, totals in query_usage(query, bucket=bucket, dims=dims).items():
        stats = keyed[key]
        stats.calls, stats.output_tokens = totals.calls, totals.output_tokens
    for (period, group, metric, bucket_index), calls in _bucket_counts(query, group_by, bucket).items():
        keyed[(period, *((group,) if group_by else ()))].add_bucket(metric, bucket_index, calls)
    buckets = bucket_values(query.tenant, query.period, bucket, dict.fromkeys(keyed, Stats()))  # type: ignore[arg-type]
    position = {value: index for index, value in enumerate(buckets)}
    groups: dict[int | None, list[Stats]] = {}
    total = Stats()
    for key, stats in keyed.items():
        group = key[1] if group_by else None
        series = groups.setdefault(group, [Stats() for _ in buckets])
        series[position[key[0]]].merge(stats)
        total.merge(stats)
    return PerformanceReport(bucket, buckets, groups, total)


def _bucket_counts(query: UsageQuery, group_by: str | None, bucket: str) -> dict[tuple[Any, Any, int, int], int]:
    """{(period, group id or None, metric, bucket): calls} of the rollups (clean days) and the ledger (dirty)."""
    counts: defaultdict[tuple[Any, Any, int, int], int] = defaultdict(int)
    tenant = query.tenant
    start, end = localtime.day_span(tenant, query.period.start, query.period.end)
    rows = query.narrowed(PerformanceHourly.objects.filter(hour__gte=start, hour__lt=end))
    if query.dirty_days:
        rows = rows.exclude(_spans(tenant, query.dirty_days, "hour"))
    columns = ["hour" if bucket == "hour" else "period"]
    if bucket != "hour":
        sql, params = localtime.local_date_sql("hour", tenant.timezone)
        rows = rows.annotate(period=RawSQL(sql, params, output_field=DateField()))  # noqa: S611 (our SQL, bound zone)
    group_column = _GROUP_COLUMNS[group_by] if group_by else None
    columns += [group_column] if group_column else []
    grouped = rows.values(*columns, "metric", "bucket").annotate(n=Sum("calls")).order_by()
    # Tuples, not dicts: a day of hours x keys x buckets is thousands of rows.
    for *head, metric, bucket_index, calls in grouped.values_list(*columns, "metric", "bucket", "n"):
        period = head[0].astimezone(dt.UTC) if bucket == "hour" else _date(head[0])
        counts[(period, head[1] if group_column else None, metric, bucket_index)] += calls
    for key, calls in _ledger_counts(query, group_by, bucket).items():
        counts[key] += calls
    return counts


def _ledger_counts(query: UsageQuery, group_by: str | None, bucket: str) -> dict[tuple[Any, Any, int, int], int]:
    """The same counts for the dirty days, from the ledger (their hourly rows may be stale)."""
    counts: defaultdict[tuple[Any, Any, int, int], int] = defaultdict(int)
    if not query.dirty_days:
        return counts
    tenant = query.tenant
    hour, hour_params = localtime.local_hour_sql("occurred_at", tenant.timezone)
    where, where_params = ["tenant_id = %s"], list[Any]([tenant.pk])
    scope, scope_params = query.sql_scope()
    spans = []
    adapt = connection.ops.adapt_datetimefield_value
    for first, last in localtime.consecutive_ranges(query.dirty_days):
        span_start, span_end = localtime.day_span(tenant, first, last)
        spans.append("(occurred_at >= %s AND occurred_at < %s)")
        where_params += [adapt(span_start), adapt(span_end)]
    condition = " AND ".join(where) + f" AND ({' OR '.join(spans)})" + scope
    sql = perf.stats_select_sql(connection.vendor, source="usage_callrecord", hour=hour, where=condition)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*hour_params, *where_params, *scope_params] * 4)
        rows = cursor.fetchall()
    for _tenant, instant, key_id, model_id, metric, bucket_index, calls in rows:
        instant = _instant(instant)
        period = instant if bucket == "hour" else instant.astimezone(tenant.tz).date()
        group = {"model": model_id, "api_key": key_id}.get(group_by or "")
        counts[(period, group, metric, bucket_index)] += calls
    return counts


def _spans(tenant: Any, days: Iterable[dt.date], column: str) -> Q:
    q = Q(pk__in=[])
    for first, last in localtime.consecutive_ranges(days):
        start, end = localtime.day_span(tenant, first, last)
        q |= Q(**{f"{column}__gte": start, f"{column}__lt": end})
    return q


def _date(value: dt.date | str) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


def _instant(value: dt.datetime | str) -> dt.datetime:
    if isinstance(value, str):  # SQLite: naive UTC text
        return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)

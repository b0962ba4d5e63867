"""The Performance view of the Usage Statistics page (``?view=performance``): what it shows.

With the page's filters and range: cards for the period (latency and time to first token
percentiles, output tokens per second, error rate, peak calls per hour) with the change against
the previous period of the same length; per model over time the chosen metric drawn over the
calls (so a usage spike and a degradation are seen together); errors by type; and markers where a
model departs from the same hours of the previous weeks (``departures``).

Every figure comes from ``usage.reporting.performance`` (merged histograms, weighted by requests).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.db.models import Sum
from django.urls import reverse

from usage import histograms as perf
from usage import localtime
from usage.dashboard.colors import chart_colors
from usage.dashboard.panel import change
from usage.models import Model, UsageHourly
from usage.reporting.performance import ERROR_TYPES, Stats, query_performance
from usage.reporting.periods import Period
from usage.reporting.query import MAX_HOURLY_DAYS

if TYPE_CHECKING:
    from usage.reporting.query import UsageQuery  # noqa: TC004

# The same hours of this many previous weeks make a bucket's baseline.
BASELINE_WEEKS = 4
# A bucket and its baseline each need this many calls before a departure is marked: below it a
# percentile or a rate is mostly noise.
MIN_CALLS = 20
# A departure: p95 latency above this multiple of the baseline's, or an error rate at least
# ERROR_RATE_STEP above the baseline's and at least twice it.
P95_FACTOR = 1.5
ERROR_RATE_STEP = 0.05

METRICS: dict[str, tuple[str, int | None, str | None]] = {
    "latency_p95": ("p95 latency (ms)", perf.LATENCY, "p95"),
    "latency_p50": ("p50 latency (ms)", perf.LATENCY, "p50"),
    "ttft_p95": ("p95 time to first token (ms)", perf.TTFT, "p95"),
    "tps_p50": ("p50 output tokens/s", perf.TOKENS_PER_SECOND, "p50"),
    "error_rate": ("Error rate (%)", None, None),
}


def _value(stats: Stats, metric: str) -> float | None:
    _label, histogram, name = METRICS[metric]
    if histogram is None or name is None:
        rate = stats.error_rate
        return None if rate is None else round(rate * 100, 2)
    return stats.percentiles(histogram)[name]


def _local_key(tenant: Any, bucket: Any) -> Any:
    """A bucket as local wall time (hours) or a date: the same hours of other weeks match on it."""
    return bucket.astimezone(tenant.tz).replace(tzinfo=None) if isinstance(bucket, dt.datetime) else bucket


def departures(query: UsageQuery, current: dict[int | None, list[Stats]], buckets: list[Any]) -> list[dict[str, Any]]:
    """[{model, index, reason}] where a model's p95 latency or error rate departs from its baseline:
    the same local hours (or days) of the previous ``BASELINE_WEEKS`` weeks, merged."""
    tenant = query.tenant
    history = Period(query.period.start - dt.timedelta(weeks=BASELINE_WEEKS), query.period.start - dt.timedelta(days=1))
    past = query_performance(query.using(bucket="day").over(history), group_by="model", bucket=query.bucket)
    by_time: dict[tuple[int | None, Any], Stats] = {}
    for group, points in past.groups.items():
        for bucket, stats in zip(past.buckets, points, strict=True):
            by_time[(group, _local_key(tenant, bucket))] = stats
    found = []
    for group, points in current.items():
        for index, (bucket, stats) in enumerate(zip(buckets, points, strict=True)):
            baseline = Stats()
            local = _local_key(tenant, bucket)
            for weeks in range(1, BASELINE_WEEKS + 1):
                earlier = by_time.get((group, local - dt.timedelta(weeks=weeks)))
                if earlier is not None:
                    baseline.merge(earlier)
            reason = _departure(stats, baseline)
            if reason:
                found.append({"model": group, "index": index, "reason": reason})
    return found


def _departure(stats: Stats, baseline: Stats) -> str | None:
    if stats.calls < MIN_CALLS or baseline.calls < MIN_CALLS:
        return None
    reasons = []
    now_p95, then_p95 = _value(stats, "latency_p95"), _value(baseline, "latency_p95")
    if now_p95 is not None and then_p95 and now_p95 > P95_FACTOR * then_p95:
        reasons.append(f"p95 latency {now_p95:,.0f} ms vs {then_p95:,.0f} ms in the same hours of previous weeks")
    now_rate, then_rate = stats.error_rate or 0.0, baseline.error_rate or 0.0
    if now_rate >= then_rate + ERROR_RATE_STEP and now_rate >= 2 * then_rate:
        reasons.append(f"error rate {now_rate:.1%} vs {then_rate:.1%} in the same hours of previous weeks")
    return "; ".join(reasons) or None


def peak_calls_per_hour(query: UsageQuery) -> tuple[int, dt.datetime | None]:
    """The busiest local hour of the range (calls, its start): per minute is not kept."""
    start, end = localtime.day_span(query.tenant, query.period.start, query.period.end)
    rows = query.narrowed(UsageHourly.objects.filter(hour__gte=start, hour__lt=end))
    peak = rows.values("hour").annotate(n=Sum("calls")).order_by("-n", "hour").first()
    return (int(peak["n"]), peak["hour"]) if peak else (0, None)


def _cards(query: UsageQuery, total: Stats) -> list[dict[str, Any]]:
    previous = query_performance(query.over(query.period.previous()), group_by=None).total
    peak, peak_hour = peak_calls_per_hour(query)
    previous_peak, _hour = peak_calls_per_hour(query.over(query.period.previous()))
    cards = []
    for key, label, unit, better in (
        ("latency_p50", "p50 latency", "ms", "lower"),
        ("latency_p95", "p95 latency", "ms", "lower"),
        ("ttft_p95", "p95 time to first token", "ms", "lower"),
        ("tps_p50", "Output tokens/s (p50)", "tokens/s", "higher"),
        ("error_rate", "Error rate", "%", "lower"),
    ):
        now, then = _value(total, key), _value(previous, key)
        cards.append(_card(key, label, now, then, unit, better))
    cards.append({**_card("peak", "Peak calls per hour", peak, previous_peak, "calls", "neutral")})
    if peak_hour is not None:
        cards[-1]["note"] = f"busiest hour {peak_hour.astimezone(query.tenant.tz):%b %d %H:00}"
    return cards


def _card(key: str, label: str, now: float | None, then: float | None, unit: str, better: str) -> dict[str, Any]:
    shown = "–" if now is None else f"{now:,.1f}" if isinstance(now, float) else f"{now:,}"
    delta = change(now or 0, then or 0) if now is not None and then is not None else None
    return {"key": key, "label": label, "value": now, "display": shown, "unit": unit, "change": delta, "better": better}


def performance_panel(query: UsageQuery, params: Any) -> dict[str, Any]:
    """What the Performance view shows, as JSON for its chart and context for its template.
    By hour for ranges of up to two days, as the usage trend."""
    query = query.using(bucket="hour" if query.period.days <= MAX_HOURLY_DAYS else "day")
    report = query_performance(query, group_by="model")
    models = Model.objects.in_bulk([pk for pk in report.groups if pk is not None])
    order = sorted(report.groups, key=lambda pk: (-report.group_total(pk).calls, models[pk].name if pk else ""))
    colors = chart_colors([models[pk] for pk in order if pk is not None])
    labels = [_label(query, bucket) for bucket in report.buckets]
    usage = [0] * len(report.buckets)
    series = []
    for pk in order:
        points = report.groups[pk]
        for index, stats in enumerate(points):
            usage[index] += stats.calls
        series.append(
            {
                "model": models[pk].name if pk else "",
                "color": colors.get(pk) if pk else None,
                "calls": [stats.calls for stats in points],
                **{metric: [_value(stats, metric) for stats in points] for metric in METRICS},
            }
        )
    calls_urls = [_calls_url(query, bucket, params) for bucket in report.buckets]
    marks = departures(query, report.groups, report.buckets)
    for mark in marks:
        mark["model"] = models[mark["model"]].name if mark["model"] else ""
        mark["label"] = labels[mark["index"]]
        mark["url"] = calls_urls[mark["index"]]
    return {
        "bucket": query.bucket,
        "labels": labels,
        "calls_urls": calls_urls,
        "usage": usage,
        "series": series,
        "metrics": {key: label for key, (label, _h, _n) in METRICS.items()},
        "departures": marks,
        "cards": _cards(query, report.total),
        "errors": _error_rows(report.total),
        "empty": report.total.calls == 0,
    }


def _error_rows(total: Stats) -> list[dict[str, Any]]:
    errors = total.errors
    return [
        {"type": name, "calls": errors[name], "percent": f"{100 * errors[name] / total.calls:.2f}"}
        for name in ERROR_TYPES
        if errors[name]
    ]


def _label(query: UsageQuery, bucket: Any) -> str:
    if isinstance(bucket, dt.datetime):
        return f"{bucket.astimezone(query.tenant.tz):%b %d %H:00}"
    return f"{bucket:%b %d}"


def _calls_url(query: UsageQuery, bucket: Any, params: Any) -> str:
    """The calls explorer on the calls behind one bucket, with the page's key and model."""
    wanted: dict[str, str] = {}
    for name in ("api_key", "model"):
        if params.get(name):
            wanted[name] = params[name]
    if isinstance(bucket, dt.datetime):
        wanted["hour"] = bucket.astimezone(query.tenant.tz).isoformat()
    else:
        wanted["start"] = wanted["end"] = bucket.isoformat()
    base = reverse("usage:calls", kwargs={"slug": query.tenant.slug})
    return f"{base}?{urlencode(wanted)}"

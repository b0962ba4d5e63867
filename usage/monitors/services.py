"""Monitors: alert rules on a tenant's error rate, p95 latency or usage spike (issue 27).

Each rule is evaluated on its window of ``window_minutes``:

- whole hours (a multiple of 60): the last N local hours, the current one included, read from the
  rollups through ``usage.reporting.performance.query_performance`` (the page's reads), so an
  evaluation costs the same whatever the traffic;
- any other window (5 to 1440 minutes): the last M minutes up to the evaluation, read from the
  ledger (``CallRecord`` by tenant and ``occurred_at``, served by ``callrecord_tenant_time``), so
  "error rate over 15 minutes" counts exactly the calls of those 15 minutes and its p95 latency is
  the exact nearest-rank percentile of their durations, not a histogram's estimate.

A rule whose value is above its threshold, with at least ``min_calls`` calls in the window, goes
from ok to firing: one ``MonitorEvent`` and one delivery per channel of its budget
(``usage.budgets``: the same deliveries, dispatch, retries and Standard Webhooks signature as budget
alerts). It fires once per episode; when it is back below (or too few calls remain to judge) it is
resolved, with a resolve message. The transition happens under the rule's row lock, so concurrent
evaluations (beat, a retry) send it once.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import uuid
from dataclasses import dataclass
from functools import partial

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from usage import histograms as perf
from usage.budgets.services import _dispatch_after_commit, budget_channels
from usage.localtime import local_hour_start
from usage.models import AlertDelivery, CallRecord, Monitor, MonitorEvent
from usage.reporting.performance import Stats, query_performance
from usage.reporting.periods import Period
from usage.reporting.query import UsageQuery

logger = logging.getLogger(__name__)

P95 = 0.95


@dataclass(frozen=True)
class Reading:
    value: float | None
    calls: int
    window_start: dt.datetime


def monitor_window(monitor: Monitor, now: dt.datetime, weeks_back: int = 0) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of the rule's window at ``now`` (``weeks_back`` weeks earlier for a spike's base)."""
    hours = monitor.whole_hours
    if hours:
        end = local_hour_start(now, monitor.tenant.tz) + dt.timedelta(hours=1)
        start = end - dt.timedelta(hours=hours)
    else:
        end = now
        start = end - dt.timedelta(minutes=monitor.window_minutes)
    shift = dt.timedelta(weeks=weeks_back)
    return start - shift, end - shift


def _rollup_stats(monitor: Monitor, start: dt.datetime, end: dt.datetime) -> Stats:
    """The Stats of the local hours in [start, end), merged from the rollups (the page's reads)."""
    tz = monitor.tenant.tz
    period = Period(start.astimezone(tz).date(), (end - dt.timedelta(microseconds=1)).astimezone(tz).date())
    query = UsageQuery(monitor.tenant, period, api_key=monitor.api_key, model=monitor.model)
    report = query_performance(query, group_by=None, bucket="hour")
    merged = Stats()
    series = report.groups.get(None) or [Stats() for _ in report.buckets]  # no calls: no group
    for hour, stats in zip(report.buckets, series, strict=True):
        if start <= hour < end:
            merged.merge(stats)
    return merged


def _ledger_calls(monitor: Monitor, start: dt.datetime, end: dt.datetime):
    """The rule's calls in [start, end): tenant and time first, so ``callrecord_tenant_time`` serves
    it (and PostgreSQL prunes to the month partitions the span touches)."""
    calls = CallRecord.objects.filter(tenant_id=monitor.tenant_id, occurred_at__gte=start, occurred_at__lt=end)
    if monitor.model_id:
        calls = calls.filter(model_id=monitor.model_id)
    if monitor.api_key_id:
        calls = calls.filter(api_key_id=monitor.api_key_id)
    return calls.order_by()


def exact_p95(calls) -> tuple[float | None, int]:
    """(nearest-rank p95 of ``duration_ms``, calls it is of) of the calls not marked as errors that
    reported a duration: the same calls the latency histograms count."""
    timed = calls.filter(duration_ms__isnull=False).exclude(status="error")
    count = timed.count()
    if not count:
        return None, 0
    rank = max(1, math.ceil(P95 * count))
    value = timed.order_by("duration_ms").values_list("duration_ms", flat=True)[rank - 1]
    return float(value), count


def _ledger_reading(monitor: Monitor, start: dt.datetime, end: dt.datetime) -> Reading:
    calls = _ledger_calls(monitor, start, end)
    if monitor.metric == Monitor.Metric.LATENCY_P95:
        value, timed = exact_p95(calls)
        return Reading(value, timed, start)
    counts = calls.aggregate(calls=Count("pk"), errors=Count("pk", filter=Q(status="error")))
    if monitor.metric == Monitor.Metric.ERROR_RATE:
        rate = counts["errors"] * 100 / counts["calls"] if counts["calls"] else None
        return Reading(rate, counts["calls"], start)
    before = _ledger_calls(monitor, *monitor_window(monitor, end, weeks_back=1)).count()
    return Reading(counts["calls"] / before if before else None, counts["calls"], start)


def _rollup_reading(monitor: Monitor, start: dt.datetime, end: dt.datetime, now: dt.datetime) -> Reading:
    stats = _rollup_stats(monitor, start, end)
    if monitor.metric == Monitor.Metric.USAGE_SPIKE:
        before = _rollup_stats(monitor, *monitor_window(monitor, now, weeks_back=1)).calls
        return Reading(stats.calls / before if before else None, stats.calls, start)
    if monitor.metric == Monitor.Metric.ERROR_RATE:
        rate = stats.error_rate
        return Reading(None if rate is None else rate * 100, stats.calls, start)
    latency = stats.percentiles(perf.LATENCY)
    return Reading(latency["p95"], int(latency["calls"] or 0), start)


def monitor_reading(monitor: Monitor, now: dt.datetime) -> Reading:
    """The rule's value over its window now, and the calls it is judged on."""
    start, end = monitor_window(monitor, now)
    if monitor.whole_hours:
        return _rollup_reading(monitor, start, end, now)
    return _ledger_reading(monitor, start, end)


def _breached(monitor: Monitor, reading: Reading) -> bool:
    return reading.value is not None and reading.calls >= monitor.min_calls and reading.value > float(monitor.threshold)


def monitor_evaluate(*, monitor_id: int, now: dt.datetime | None = None) -> str | None:
    """Evaluate one rule; returns "fired" or "resolved" when its state changed, else None."""
    now = now or timezone.now()
    with transaction.atomic():
        monitor = Monitor.objects.select_for_update().select_related("tenant", "channels").filter(pk=monitor_id).first()
        if monitor is None:
            return None
        reading = monitor_reading(monitor, now)
        firing = _breached(monitor, reading)
        changed = None
        if firing and monitor.state == Monitor.State.OK:
            changed, monitor.state = MonitorEvent.Kind.FIRED, Monitor.State.FIRING
        elif not firing and monitor.state == Monitor.State.FIRING:
            changed, monitor.state = MonitorEvent.Kind.RESOLVED, Monitor.State.OK
        monitor.value, monitor.evaluated_at = reading.value, now
        monitor.save(update_fields=["state", "value", "evaluated_at"])
        if changed:
            _announce(monitor, changed, reading)
    return changed


def _announce(monitor: Monitor, kind: str, reading: Reading) -> None:
    event = MonitorEvent.objects.create(
        monitor=monitor, kind=kind, value=reading.value, calls=reading.calls, window_start=reading.window_start
    )
    budget = monitor.channels
    for channel in budget_channels(budget):
        AlertDelivery.objects.create(budget=budget, monitor_event=event, channel=channel, delivery_id=uuid.uuid4())
    transaction.on_commit(partial(_dispatch_after_commit, monitor.tenant_id))
    logger.info("Monitor %s %s at %s (%s calls)", monitor.pk, kind, reading.value, reading.calls)


def monitors_evaluate_all(*, now: dt.datetime | None = None) -> int:
    """What beat runs every MONITOR_EVALUATE_SECONDS: every rule of every tenant."""
    changed = 0
    for monitor_id in Monitor.objects.order_by("tenant_id", "pk").values_list("pk", flat=True):
        try:
            changed += monitor_evaluate(monitor_id=monitor_id, now=now) is not None
        except Exception:  # one broken rule must not keep the others from being evaluated
            logger.exception("Monitor %s could not be evaluated", monitor_id)
    return changed


# --- Rules: what the page and the API write ------------------------------------------------------


def monitor_create(*, tenant, data: dict) -> Monitor:
    """A new rule (``data``: the form's cleaned fields); beat evaluates it within a minute."""
    monitor = Monitor(tenant=tenant, **data)
    monitor.full_clean()
    monitor.save()
    return monitor


def monitor_update(*, monitor: Monitor, data: dict) -> Monitor:
    """A changed rule keeps its state: the next evaluation fires or resolves it by the new terms."""
    with transaction.atomic():
        locked = Monitor.objects.select_for_update().get(pk=monitor.pk)
        for name, value in data.items():
            setattr(locked, name, value)
        locked.full_clean()
        locked.save()
    return locked

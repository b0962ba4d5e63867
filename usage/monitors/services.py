"""Monitors: alert rules on a tenant's error rate, p95 latency or usage spike (issue 27).

Each rule is evaluated on the last ``window_hours`` local hours (the current one included) from the
rollups (``usage.rollups.performance`` and the hourly usage), so an evaluation costs the same
whatever the traffic. A rule whose value is above its threshold, with at least ``min_calls``
calls in the window, goes from ok to firing: one ``MonitorEvent`` and one delivery per channel of
its budget (``usage.budgets``: the same deliveries, dispatch, retries and Standard Webhooks
signature as budget alerts). It fires once per episode; when it is back below (or too few calls
remain to judge) it is resolved, with a resolve message. The transition happens under the rule's
row lock, so concurrent evaluations (beat, a retry) send it once.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from functools import partial

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from usage import histograms as perf
from usage.budgets.services import _dispatch_after_commit, budget_channels
from usage.localtime import local_hour_start
from usage.models import AlertDelivery, Monitor, MonitorEvent, PerformanceHourly, UsageHourly
from usage.reporting.performance import Stats

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reading:
    value: float | None
    calls: int
    window_start: dt.datetime


def _window(monitor: Monitor, now: dt.datetime, weeks_back: int = 0) -> tuple[dt.datetime, dt.datetime]:
    end = local_hour_start(now, monitor.tenant.tz) + dt.timedelta(hours=1)
    shift = dt.timedelta(weeks=weeks_back)
    return end - dt.timedelta(hours=monitor.window_hours) - shift, end - shift


def _scoped(monitor: Monitor, queryset, start: dt.datetime, end: dt.datetime):
    queryset = queryset.filter(tenant_id=monitor.tenant_id, hour__gte=start, hour__lt=end)
    if monitor.model_id:
        queryset = queryset.filter(model_id=monitor.model_id)
    if monitor.api_key_id:
        queryset = queryset.filter(api_key_id=monitor.api_key_id)
    return queryset


def _calls(monitor: Monitor, start: dt.datetime, end: dt.datetime) -> int:
    return int(_scoped(monitor, UsageHourly.objects, start, end).aggregate(n=Sum("calls"))["n"] or 0)


def monitor_reading(monitor: Monitor, now: dt.datetime) -> Reading:
    """The rule's value over its window now, and the calls it is judged on."""
    start, end = _window(monitor, now)
    calls = _calls(monitor, start, end)
    if monitor.metric == Monitor.Metric.USAGE_SPIKE:
        before = _calls(monitor, *_window(monitor, now, weeks_back=1))
        return Reading(calls / before if before else None, calls, start)
    stats = Stats(calls=calls)
    rows = _scoped(monitor, PerformanceHourly.objects, start, end).values("metric", "bucket").annotate(n=Sum("calls"))
    for row in rows.order_by():
        stats.add_bucket(row["metric"], row["bucket"], int(row["n"]))
    if monitor.metric == Monitor.Metric.ERROR_RATE:
        rate = stats.error_rate
        return Reading(None if rate is None else rate * 100, calls, start)
    latency = stats.percentiles(perf.LATENCY)
    return Reading(latency["p95"], int(latency["calls"] or 0), start)


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

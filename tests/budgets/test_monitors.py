"""Monitors (issue 27 item 6): alert rules on error rate, p95 latency or a usage spike, fired once per
episode and resolved, delivered through a budget's channels (signed webhook, e-mail)."""

import datetime as dt
import json

from django.core import mail
from django.utils import timezone
from standardwebhooks import Webhook

from accounts import services as account_services
from usage.budgets.delivery import standard_webhook_secret
from usage.ingestion.services import call_records_ingest
from usage.localtime import local_hour_start
from usage.models import AlertDelivery, Monitor, MonitorEvent
from usage.monitors.services import monitor_evaluate, monitor_reading

from .helpers import budget


def calls(key, prefix, at, count, **fields):
    return [
        {
            "request_id": f"{prefix}-{n}",
            "api_key": key.public_id,
            "model": "public/deepseek-r1",
            "occurred_at": (at + dt.timedelta(seconds=n)).isoformat(),
            "input_tokens": 10,
            "output_tokens": 5,
            **fields,
        }
        for n in range(count)
    ]


def half_past_last_hour(tenant):
    """Mid-hour, so the calls the tests send around it (a minute before to two after) share the
    rule's window whatever the wall clock says."""
    return local_hour_start(timezone.now(), tenant.tz) - dt.timedelta(minutes=30)


def monitor(tenant, channels, **fields):
    values = {"name": "r1 errors", "metric": "error_rate", "threshold": 5, "window_minutes": 60, "min_calls": 20}
    return Monitor.objects.create(tenant=tenant, channels=channels, **{**values, **fields})


def test_error_rate_fires_once_per_episode_and_resolves(tenant, other_tenant, api_key, receiver, committed):
    now = half_past_last_hour(tenant)
    other_key = account_services.api_key_create(tenant=other_tenant, name="theirs")[0]
    channels = budget(tenant, webhook_url=receiver.url, emails="ops@acme.test")
    rule = monitor(tenant, channels)
    started = now - dt.timedelta(minutes=1)
    # 19 errors in 19 calls: below min_calls, nothing to judge yet; the other tenant's failures never count.
    call_records_ingest(items=calls(api_key, "e", started, 19, status="error", error_type="rate_limited"))
    call_records_ingest(items=calls(other_key, "x", started, 50, status="error"))
    assert committed(monitor_evaluate, monitor_id=rule.pk, now=now) is None
    call_records_ingest(items=calls(api_key, "ok", started, 81, status="ok"))
    reading = monitor_reading(rule, now)
    assert (reading.value, reading.calls) == (19.0, 100)
    assert committed(monitor_evaluate, monitor_id=rule.pk, now=now) == "fired"
    assert committed(monitor_evaluate, monitor_id=rule.pk, now=now) is None  # the same episode: nothing more
    [fired] = MonitorEvent.objects.all()
    assert (fired.kind, fired.calls, fired.value) == ("fired", 100, 19.0)
    assert sorted(AlertDelivery.objects.values_list("channel", "status")) == [
        ("email", "delivered"),
        ("webhook", "delivered"),
    ]
    [request] = receiver.requests
    body = Webhook(standard_webhook_secret(channels)).verify(request["body"], request["headers"])
    assert body["type"] == "monitor.fired" and body["monitor"]["name"] == "r1 errors"
    assert body["event"]["value"] == 19.0 and body["tenant"] == "acme"
    assert mail.outbox[0].subject == "Monitor r1 errors (acme) fired: error_rate 19.00"
    # Two hours on, the window holds no calls: resolved, once.
    later = now + dt.timedelta(hours=2)
    assert committed(monitor_evaluate, monitor_id=rule.pk, now=later) == "resolved"
    assert committed(monitor_evaluate, monitor_id=rule.pk, now=later) is None
    assert json.loads(receiver.requests[1]["body"])["type"] == "monitor.resolved"
    assert list(MonitorEvent.objects.order_by("pk").values_list("kind", flat=True)) == ["fired", "resolved"]


def test_p95_latency_of_a_model_and_a_usage_spike_of_a_key(tenant, api_key):
    now = half_past_last_hour(tenant)
    channels = budget(tenant)
    slow = monitor(tenant, channels, metric="latency_p95", threshold=2000, min_calls=10)
    spike = monitor(tenant, channels, name="spike", metric="usage_spike", threshold=3, api_key=api_key, min_calls=10)
    at = now - dt.timedelta(minutes=1)
    call_records_ingest(items=calls(api_key, "week-ago", at - dt.timedelta(weeks=1), 10, duration_ms=900))
    call_records_ingest(items=calls(api_key, "now", at, 40, duration_ms=3000), now=now)
    assert monitor_reading(slow, now).value == monitor_reading(slow, now).value > 2000
    assert monitor_reading(spike, now).value == 4.0
    assert monitor_evaluate(monitor_id=slow.pk, now=now) == "fired"
    assert monitor_evaluate(monitor_id=spike.pk, now=now) == "fired"
    # A budget without channels: the events are kept, nothing to send.
    assert MonitorEvent.objects.count() == 2 and not AlertDelivery.objects.exists()


def a_minute_an_hour_ago():
    """A whole minute an hour ago: the calls sent around it are inside the ingestion window."""
    return timezone.now().replace(second=0, microsecond=0) - dt.timedelta(hours=1)


def test_a_15_minute_error_rate_counts_only_those_minutes_and_this_tenant(
    tenant, other_tenant, api_key, receiver, committed
):
    now = a_minute_an_hour_ago()
    other_key = account_services.api_key_create(tenant=other_tenant, name="theirs")[0]
    channels = budget(tenant, webhook_url=receiver.url)
    rule = monitor(tenant, channels, window_minutes=15)
    inside = now - dt.timedelta(minutes=10)
    # In the window [now - 15 min, now): 3 failures in 40 calls, 7.5%.
    call_records_ingest(items=calls(api_key, "err", inside, 3, status="error", error_type="timeout"))
    call_records_ingest(items=calls(api_key, "ok", inside + dt.timedelta(minutes=1), 37, status="ok"))
    # Not in it: this tenant's failures 20 minutes before (the window is minutes, not the hour), and
    # the other tenant's failures in the same minutes.
    call_records_ingest(items=calls(api_key, "before", now - dt.timedelta(minutes=20), 100, status="error"))
    call_records_ingest(items=calls(other_key, "theirs", inside, 50, status="error"))
    reading = monitor_reading(rule, now)
    assert (reading.value, reading.calls) == (3 * 100 / 40, 40)
    assert reading.window_start == now - dt.timedelta(minutes=15)
    assert committed(monitor_evaluate, monitor_id=rule.pk, now=now) == "fired"
    [fired] = MonitorEvent.objects.all()
    assert (fired.kind, fired.value, fired.calls) == ("fired", 7.5, 40)
    body = json.loads(receiver.requests[0]["body"])
    assert body["monitor"]["window_minutes"] == 15 and body["monitor"]["window_hours"] is None
    # Five minutes on, 60 more successful calls in the window: 3 in 100 is 3%, resolved once.
    later = now + dt.timedelta(minutes=5)
    call_records_ingest(items=calls(api_key, "ok2", now + dt.timedelta(minutes=1), 60, status="ok"), now=later)
    assert committed(monitor_evaluate, monitor_id=rule.pk, now=later) == "resolved"
    assert committed(monitor_evaluate, monitor_id=rule.pk, now=later) is None
    resolved = MonitorEvent.objects.get(kind="resolved")
    assert (resolved.value, resolved.calls) == (3.0, 100)
    assert [json.loads(r["body"])["type"] for r in receiver.requests] == ["monitor.fired", "monitor.resolved"]
    other_rule = monitor(other_tenant, budget(other_tenant), window_minutes=15)
    assert monitor_reading(other_rule, now).value == 100.0  # its own 50 failures, and only those


def test_a_minute_window_p95_is_the_ledger_s_exact_nearest_rank(tenant, other_tenant, api_key):
    now = a_minute_an_hour_ago()
    other_key = account_services.api_key_create(tenant=other_tenant, name="theirs")[0]
    rule = monitor(tenant, budget(tenant), metric="latency_p95", threshold=1000, window_minutes=30, min_calls=5)
    durations = [17 * n % 1013 + 40 for n in range(73)]  # 73 distinct durations, unordered
    items = calls(api_key, "d", now - dt.timedelta(minutes=25), 73)
    for item, duration in zip(items, durations, strict=True):
        item["duration_ms"] = duration
    call_records_ingest(items=items)
    # Failed calls and the other tenant's calls are not part of the latency, however slow.
    call_records_ingest(
        items=calls(api_key, "slow-err", now - dt.timedelta(minutes=5), 10, status="error", duration_ms=90_000)
    )
    call_records_ingest(items=calls(other_key, "slow", now - dt.timedelta(minutes=5), 10, duration_ms=90_000))
    expected = sorted(durations)[-(-95 * 73 // 100) - 1]  # rank ceil(0.95 x 73) = 70
    assert expected == sorted(durations)[69]
    reading = monitor_reading(rule, now)
    assert (reading.value, reading.calls) == (float(expected), 73)
    assert (monitor_evaluate(monitor_id=rule.pk, now=now) == "fired") == (expected > 1000)


def test_beat_evaluates_every_rule_at_least_every_minute(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["evaluate-monitors"]
    assert entry["task"] == "usage.monitors.tasks.evaluate_monitors"
    # The shortest window is 5 minutes: evaluated every minute, a breach is seen within a fifth of it.
    assert entry["schedule"] <= 60 and Monitor._meta.get_field("window_minutes").default == 60

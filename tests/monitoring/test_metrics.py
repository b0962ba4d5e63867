"""Issue 28 item 2: /metrics, who may read it, and what it counts (in one process: the suite's).

The counters are read from the exposition /metrics answers, before and after, so each test
asserts the exact increase its requests caused.
"""

import datetime as dt
import ipaddress
import json
import logging
import re
import uuid
from pathlib import Path

import pytest
import redis
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from accounts import services as account_services
from usage.budgets.delivery import delivery_attempt
from usage.models import AlertDelivery, DirtyDay
from usage.outages import log_outage
from usage.rollups.recompute import mark_days_dirty

from ..budgets.helpers import budget
from ..budgets.receivers import WebhookReceiver
from . import servers

INGEST = "/api/v1/ingest/calls"


@pytest.fixture
def service_secret(db):
    _token, secret = account_services.service_token_create(name="prometheus")
    return secret


@pytest.fixture
def scrape(service_secret):
    """{(name, frozenset(labels)): value} of one scrape of /metrics with a service token."""

    def read():
        response = Client(headers={"Authorization": f"Bearer {service_secret}"}).get("/metrics")
        assert response.status_code == 200, response.content
        return samples(response.content.decode())

    return read


def samples(text):
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scraped, name, **labels):
    return scraped.get((name, frozenset(labels.items())), 0.0)


# Fixed for the whole run: a resent call must be the same call to be a duplicate, not a conflict.
SENT_AT = (timezone.now() - dt.timedelta(hours=1)).isoformat()


def call(key, request_id, **fields):
    item = {
        "request_id": request_id,
        "api_key": key.public_id,
        "model": "public/deepseek-r1",
        "occurred_at": SENT_AT,
        "input_tokens": 10,
        "output_tokens": 2,
    }
    return {**item, **fields}


# --- access ---------------------------------------------------------------------------------


def test_a_service_token_is_answered_in_the_prometheus_text_format(service_secret):
    response = Client(headers={"Authorization": f"Bearer {service_secret}"}).get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE usage_ingest_calls_total counter" in response.content.decode()


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer svc_nope_wrong", "Basic cHJvbTpwdw=="])
def test_without_a_valid_service_token_it_is_refused(db, header):
    client = Client(headers={"Authorization": header} if header else {})
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 403
    assert b"usage_" not in response.content


def test_a_revoked_service_token_is_refused(db):
    token, secret = account_services.service_token_create(name="old")
    account_services.credential_revoke(token)
    assert Client(headers={"Authorization": f"Bearer {secret}"}).get("/metrics").status_code == 403


def test_a_tenants_access_token_is_refused(tenant):
    _token, secret = account_services.access_token_create(tenant=tenant, name="bi")
    assert Client(headers={"Authorization": f"Bearer {secret}"}).get("/metrics").status_code == 403


def test_an_allowed_network_is_answered_without_a_token(db, settings):
    settings.METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network("10.20.0.0/16")]
    assert Client().get("/metrics", REMOTE_ADDR="10.20.3.4").status_code == 200
    assert Client().get("/metrics", REMOTE_ADDR="10.21.0.1").status_code == 403


def test_a_forwarded_header_does_not_open_the_allowed_network(db, settings):
    settings.METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network("10.20.0.0/16")]
    client = Client(headers={"X-Forwarded-For": "10.20.3.4", "X-Real-IP": "10.20.3.4"})
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403


def test_behind_the_proxy_its_client_header_decides(db, settings):
    settings.METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network("10.20.0.0/16")]
    settings.LOGIN_CLIENT_IP_HEADER = "X-Real-IP"
    client = Client(headers={"X-Real-IP": "10.20.3.4"})
    assert client.get("/metrics", REMOTE_ADDR="10.99.0.1").status_code == 200


def test_no_network_is_allowed_by_default(db, settings):
    assert settings.METRICS_ALLOWED_NETWORKS == []
    assert Client().get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


# --- ingestion ------------------------------------------------------------------------------


def test_ingested_calls_are_counted_by_outcome_and_rejections_by_reason(api_key, llm, service_secret, scrape):
    gateway = Client(headers={"Authorization": f"Bearer {service_secret}"})
    before = scrape()
    first = [call(api_key, "a"), call(api_key, "b"), call(api_key, "c", input_tokens=-1)]
    second = [call(api_key, "a"), call(api_key, "d", model=""), call(api_key, "e", api_key="sk_unknown")]
    for batch in (first, second):
        response = gateway.post(INGEST, json.dumps({"calls": batch}), content_type="application/json")
        assert response.status_code == 200
    after = scrape()

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    outcomes = {o: grew("usage_ingest_calls_total", endpoint="calls", outcome=o) for o in ("accepted", "duplicate")}
    assert outcomes == {"accepted": 2, "duplicate": 1}
    assert grew("usage_ingest_calls_total", endpoint="calls", outcome="rejected") == 3
    reasons = {
        dict(labels)["reason"]: after[(name, labels)] - before.get((name, labels), 0)
        for name, labels in after
        if name == "usage_ingest_rejections_total" and dict(labels)["endpoint"] == "calls"
    }
    assert {reason: count for reason, count in reasons.items() if count} == {
        "out_of_range": 1,
        "blank": 1,
        "unknown_api_key": 1,
    }


def test_litellm_payloads_are_counted_by_outcome(api_key, llm, service_secret, scrape):
    gateway = Client(headers={"Authorization": f"Bearer {service_secret}"})
    before = scrape()
    payloads = [
        {"id": "x1", "status": "failure"},
        {
            "id": "x2",
            "status": "success",
            "model": "public/deepseek-r1",
            "endTime": timezone.now().timestamp() - 60,
            "prompt_tokens": 5,
            "completion_tokens": 1,
            "metadata": {"user_api_key_alias": api_key.public_id},
        },
    ]
    response = gateway.post("/api/v1/litellm/logs", json.dumps(payloads), content_type="application/json")
    # A failure is a call too (issue 27): this one names no key nor model, so it is rejected, not ignored.
    assert (response.json()["accepted"], response.json()["rejected"], response.json()["ignored"]) == (1, 1, 0)
    after = scrape()
    for outcome, count in (("accepted", 1), ("rejected", 1), ("ignored", 0)):
        labels = {"endpoint": "litellm", "outcome": outcome}
        assert (
            value(after, "usage_ingest_calls_total", **labels) - value(before, "usage_ingest_calls_total", **labels)
            == count
        )


def _span(span_id, attributes):
    end = int((timezone.now() - dt.timedelta(minutes=5)).timestamp() * 1e9)
    return {
        "traceId": "ab" * 16,
        "spanId": span_id * 8,
        "endTimeUnixNano": str(end),
        "attributes": [{"key": k, "value": v} for k, v in attributes.items()],
    }


def test_otlp_spans_are_counted_with_the_non_genai_ones_ignored(api_key, llm, service_secret, scrape):
    usage = {
        "usage_statistics.api_key": {"stringValue": api_key.public_id},
        "gen_ai.request.model": {"stringValue": "public/deepseek-r1"},
        "gen_ai.usage.input_tokens": {"intValue": "7"},
        "gen_ai.usage.output_tokens": {"intValue": "1"},
    }
    spans = [_span("01", usage), _span("02", {"http.route": {"stringValue": "/"}}), _span("03", usage)]
    spans[2]["attributes"][2]["value"] = {"intValue": "-5"}
    body = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
    before = scrape()
    gateway = Client(headers={"Authorization": f"Bearer {service_secret}"})
    response = gateway.post("/api/v1/otlp/v1/traces", json.dumps(body), content_type="application/json")
    assert response["X-Usage-Accepted"] == "1"
    after = scrape()
    grew = {
        outcome: value(after, "usage_ingest_calls_total", endpoint="otlp", outcome=outcome)
        - value(before, "usage_ingest_calls_total", endpoint="otlp", outcome=outcome)
        for outcome in ("accepted", "duplicate", "rejected", "ignored")
    }
    assert grew == {"accepted": 1, "duplicate": 0, "rejected": 1, "ignored": 1}
    labels = {"endpoint": "otlp", "reason": "out_of_range"}
    assert (
        value(after, "usage_ingest_rejections_total", **labels)
        - value(before, "usage_ingest_rejections_total", **labels)
        == 1
    )


# --- requests -------------------------------------------------------------------------------


def test_request_durations_are_labelled_by_url_name_never_by_path(owner_client, tenant, scrape):
    owner_client.get(f"/api/v1/tenants/{tenant.slug}/keys/no-such-key-4711")
    owner_client.get("/no/such/page/4711")
    text = "\n".join(f"{name} {dict(labels)}" for name, labels in scrape())
    assert "4711" not in text and "no-such-key" not in text
    histogram = [
        dict(labels)
        for name, labels in scrape()
        if name == "usage_http_request_duration_seconds_count" and dict(labels)["status"] == "404"
    ]
    assert {"view": "unresolved", "method": "GET", "status": "404"} in histogram


def test_an_unknown_method_does_not_open_a_series(client, scrape):
    client.generic("BREW", "/healthz")
    methods = {dict(labels)["method"] for name, labels in scrape() if name.startswith("usage_http_request_duration")}
    assert "BREW" not in methods and "other" in methods


# --- gauges read at scrape --------------------------------------------------------------------


NOW = dt.datetime(2025, 3, 10, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def dirty(tenant, other_tenant, monkeypatch):
    """Acme: two dirty days, the older marked 90 s ago; Globex: one, marked 30 s ago."""
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    mark_days_dirty(tenant=tenant, days=[dt.date(2025, 3, 8), dt.date(2025, 3, 9)])
    mark_days_dirty(tenant=other_tenant, days=[dt.date(2025, 3, 9)])
    DirtyDay.objects.filter(tenant=tenant, day=dt.date(2025, 3, 8)).update(marked_at=NOW - dt.timedelta(seconds=90))
    DirtyDay.objects.filter(tenant=other_tenant).update(marked_at=NOW - dt.timedelta(seconds=30))


def test_rollup_lag_is_read_from_the_dirty_marks(dirty, scrape):
    scraped = scrape()
    assert value(scraped, "usage_rollup_dirty_days") == 3
    assert value(scraped, "usage_rollup_oldest_dirty_age_seconds") == 90
    assert value(scraped, "usage_scrape_source_up", source="database") == 1


def test_no_tenant_label_by_default(dirty, scrape):
    scraped = scrape()
    assert not [labels for _name, labels in scraped if "tenant" in dict(labels)]
    assert not [labels for _name, labels in scraped if {"acme", "globex"} & set(dict(labels).values())]


def test_tenant_labels_when_the_operator_opts_in(dirty, scrape, settings):
    settings.METRICS_TENANT_LABELS = True
    scraped = scrape()
    assert value(scraped, "usage_rollup_dirty_days", tenant="acme") == 2
    assert value(scraped, "usage_rollup_dirty_days", tenant="globex") == 1
    assert value(scraped, "usage_rollup_oldest_dirty_age_seconds", tenant="acme") == 90
    assert value(scraped, "usage_rollup_oldest_dirty_age_seconds", tenant="globex") == 30


@pytest.fixture
def broker(settings):
    """A private Redis as the broker (never the shared one: the test fills its queues)."""
    port = servers.free_port()
    process = servers.redis_server(port)
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{port}/0"
    yield redis.Redis(port=port)
    servers.stop(process)


def test_celery_queue_depth_counts_every_priority_of_a_queue(broker, scrape):
    broker.rpush("celery", "m1", "m2", "m3")
    broker.rpush("webhooks", "m4")
    broker.rpush("webhooks\x06\x166", "m5")
    scraped = scrape()
    assert value(scraped, "usage_celery_queue_length", queue="celery") == 3
    assert value(scraped, "usage_celery_queue_length", queue="webhooks") == 2


def test_a_broker_that_is_down_shows_as_a_source_down_not_an_error(broker, scrape, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{servers.free_port()}/0"
    scraped = scrape()
    assert value(scraped, "usage_scrape_source_up", source="broker") == 0
    assert ("usage_celery_queue_length", frozenset({("queue", "celery")})) not in scraped


# --- deliveries and outages ---------------------------------------------------------------


def test_webhook_attempts_are_counted_by_outcome(tenant, settings, scrape):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.BUDGET_DELIVERY_MAX_ATTEMPTS = 2
    receiver = WebhookReceiver(statuses=[500, 200])
    closed = budget(tenant, name="closed", webhook_url=f"http://127.0.0.1:{servers.free_port()}/")
    try:
        b = budget(tenant, webhook_url=receiver.url)
        deliveries = [
            AlertDelivery.objects.create(budget=x, channel="webhook", delivery_id=uuid.uuid4()) for x in (b, closed)
        ]
        before = scrape()
        for _ in range(2):
            for delivery in deliveries:
                delivery_attempt(delivery_pk=delivery.pk)
    finally:
        receiver.close()
    after = scrape()
    name = "usage_alert_delivery_attempts_total"
    grew = {
        o: value(after, name, channel="webhook", outcome=o) - value(before, name, channel="webhook", outcome=o)
        for o in ("delivered", "retry", "failed")
    }
    assert grew == {"delivered": 1, "retry": 2, "failed": 1}
    assert value(after, "usage_alert_deliveries_pending") == 0


def test_every_outage_is_counted_though_logged_once_a_minute(db, scrape, caplog):
    before = scrape()
    with caplog.at_level(logging.WARNING, logger="usage.outages"):
        for _ in range(3):
            log_outage("Could not reach the cache: %r", "refused", service="cache")
        log_outage("Could not enqueue: %r", "refused")
    after = scrape()
    grew = {
        s: value(after, "usage_service_errors_total", service=s)
        - value(before, "usage_service_errors_total", service=s)
        for s in ("cache", "broker")
    }
    assert grew == {"cache": 3, "broker": 1}
    assert len(caplog.records) <= 1


# --- the Grafana dashboard ------------------------------------------------------------------

DASHBOARD = Path(django_settings.BASE_DIR) / "docs" / "grafana-dashboard.json"


def dashboard_queries():
    return [target["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"] for target in panel["targets"]]


def test_every_metric_the_dashboard_reads_is_exposed(service_secret, broker):
    text = Client(headers={"Authorization": f"Bearer {service_secret}"}).get("/metrics").content.decode()
    declared = set(re.findall(r"^# TYPE (usage_\w+) (\w+)", text, re.M))
    names = {name for name, _kind in declared}
    names |= {f"{name}_{part}" for name, kind in declared if kind == "histogram" for part in ("bucket", "count", "sum")}
    names |= {f"{name}_total" for name, kind in declared if kind == "counter" and not name.endswith("_total")}
    used = {name for query in dashboard_queries() for name in re.findall(r"\busage_\w+", query)}
    assert used and used <= names, used - names


class _Unwritable:
    """An instrument whose value file cannot be written (PROMETHEUS_MULTIPROC_DIR gone or full)."""

    def labels(self, **labels):
        raise OSError(28, "No space left on device")


def test_a_metric_that_cannot_be_written_fails_nothing(api_key, llm, service_secret, monkeypatch, caplog):
    from usageproject import metrics

    for name in ("INGEST_CALLS", "INGEST_REJECTIONS", "REQUEST_DURATION"):
        monkeypatch.setattr(metrics, name, _Unwritable())
    gateway = Client(headers={"Authorization": f"Bearer {service_secret}"})
    batch = [call(api_key, "kept"), call(api_key, "bad", input_tokens=-1)]
    response = gateway.post(INGEST, json.dumps({"calls": batch}), content_type="application/json")
    assert response.status_code == 200
    assert (response.json()["accepted"], response.json()["rejected"]) == (1, 1)
    assert "Could not record a metric" in caplog.text

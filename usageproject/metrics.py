"""The product's Prometheus instruments, and the one-line helpers the code that counts calls.

Counting stays out of the code paths it observes: an ingestion endpoint, a delivery or an
outage calls one function here. Under gunicorn with ``PROMETHEUS_MULTIPROC_DIR`` set, every
worker (and a Celery worker sharing the directory) writes its values to files there and
``/metrics`` adds them up (``usageproject/monitoring.py``); without it the values are the
answering process's own.

No instrument here has a tenant label: one series per tenant would multiply every series by
the number of tenants (README "Health and metrics"). The opt-in tenant labels
(``METRICS_TENANT_LABELS``) only apply to the gauges read from the database at scrape time.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter as Tally
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec

from prometheus_client import Counter, Histogram

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

INGEST_OUTCOMES = ("accepted", "duplicate", "rejected", "ignored")
logger = logging.getLogger("usage.metrics")
P = ParamSpec("P")

INGEST_CALLS = Counter(
    "usage_ingest_calls",
    "Reported calls by ingestion endpoint and outcome (accepted, duplicate, rejected, ignored).",
    ["endpoint", "outcome"],
)
INGEST_REJECTIONS = Counter(
    "usage_ingest_rejections",
    "Reasons of rejected calls (the error code; an item rejected for two reasons counts in both).",
    ["endpoint", "reason"],
)
REQUEST_DURATION = Histogram(
    "usage_http_request_duration_seconds",
    "Time to answer a request, by the resolved URL name (never the raw path), method and status.",
    ["view", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
WEBHOOK_DELIVERIES = Counter(
    "usage_alert_delivery_attempts",
    "Attempts of budget alert deliveries by channel and outcome (delivered, retry, failed).",
    ["channel", "outcome"],
)
SERVICE_ERRORS = Counter(
    "usage_service_errors",
    "Operations that failed because the broker or the cache could not be reached.",
    ["service"],
)


def _never_raises(count: Callable[P, None]) -> Callable[P, None]:
    """Counting must not fail what it counts (e.g. PROMETHEUS_MULTIPROC_DIR missing or full)."""

    @functools.wraps(count)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            count(*args, **kwargs)
        except Exception:
            logger.exception("Could not record a metric in %s", count.__name__)

    return guarded


@_never_raises
def ingest_counted(endpoint: str, result: Any, ignored: int = 0) -> None:
    """Count one answered batch: ``result`` is an ``IngestResult`` (accepted, duplicates, rejected, errors)."""
    counts = {
        "accepted": result.accepted,
        "duplicate": result.duplicates,
        "rejected": result.rejected,
        "ignored": ignored,
    }
    for outcome, count in counts.items():
        if count:
            INGEST_CALLS.labels(endpoint=endpoint, outcome=outcome).inc(count)
    # One reason per distinct (item, code): an item whose two fields share a code counts once.
    reasons = Tally(code for _index, code in {(item["index"], item["code"]) for item in result.errors})
    for reason, count in reasons.items():
        INGEST_REJECTIONS.labels(endpoint=endpoint, reason=reason).inc(count)


@_never_raises
def delivery_counted(channel: str, status: str, retry: bool) -> None:
    """Count one delivery attempt by what became of it."""
    outcome = "retry" if retry else ("delivered" if status == "delivered" else "failed")
    WEBHOOK_DELIVERIES.labels(channel=channel, outcome=outcome).inc()


@_never_raises
def service_error_counted(service: str) -> None:
    """Count one operation lost to an unreachable ``service`` ("broker", "cache" or "database")."""
    SERVICE_ERRORS.labels(service=service).inc()


def _view_label(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    return match.view_name if match is not None else "unresolved"


class RequestDurationMiddleware:
    """Times every request; first in MIDDLEWARE so the time covers the whole stack."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        _observed(request, response.status_code, time.perf_counter() - started)
        return response


@_never_raises
def _observed(request: HttpRequest, status: int, seconds: float) -> None:
    labels = {"view": _view_label(request), "method": _method_label(request.method), "status": str(status)}
    REQUEST_DURATION.labels(**labels).observe(seconds)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _method_label(method: str | None) -> str:
    # A client may send any token as the method: an unknown one must not open a new series.
    return method if method in _METHODS else "other"

"""``/healthz``, ``/readyz`` and ``/metrics`` (README "Health and metrics").

The two health endpoints need no login and say nothing secret: only which of the database,
the cache and the broker could not be reached, never an address or an error text. Each check
runs in its own thread with one deadline for all, so a service that hangs answers "down" in
``READYZ_TIMEOUT_SECONDS`` instead of holding the probe.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import TYPE_CHECKING

import redis
from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.db import DatabaseError, connections
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

from accounts.models import ServiceToken
from accounts.throttling import client_ip

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


# Celery's queues (settings.CELERY_TASK_QUEUES) and the keys kombu's Redis transport keeps
# a queue's messages of each priority step in ("<queue>", "<queue>\x06\x16<step>").
QUEUES = ("celery", "webhooks")
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


# --- health ---------------------------------------------------------------------------


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """The process answers: nothing else is asked, so a slow database never restarts it."""
    return JsonResponse({"status": "ok"})


def _database_check() -> None:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connections.close_all()  # this thread's connection: the thread ends here


def _cache_check() -> None:
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        # Ask Redis itself: the resilient backend answers misses for CACHE_OUTAGE_RETRY_SECONDS after
        # a failure, which would keep a cache that is back reported as down.
        RedisCache.set(backend, "readyz", "1", 10)
        value = RedisCache.get(backend, "readyz")
    else:
        cache.set("readyz", "1", 10)
        value = cache.get("readyz")
    if value != "1":
        raise RuntimeError("the cache did not keep a value")


def _broker_redis(timeout: float) -> redis.Redis | None:
    """A client of the broker when it is Redis; None for the in-process (eager) default."""
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://")):
        return None
    return redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)


def _broker_check() -> None:
    client = _broker_redis(settings.READYZ_TIMEOUT_SECONDS)
    if client is not None:
        with client:
            client.ping()
    elif not settings.CELERY_TASK_ALWAYS_EAGER:
        from usageproject.celery import app

        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=settings.READYZ_TIMEOUT_SECONDS)


CHECKS: dict[str, Callable[[], None]] = {"database": _database_check, "cache": _cache_check, "broker": _broker_check}


# One thread per check at most: a hung service (a connect that waits for TCP's own timeout)
# makes every probe answer "down" without piling up a thread per probe.
_executor = ThreadPoolExecutor(max_workers=len(CHECKS), thread_name_prefix="readyz")
_running: dict[str, Future[None]] = {}
_running_lock = threading.Lock()


def _started(name: str) -> Future[None]:
    with _running_lock:
        future = _running.get(name)
        if future is None or future.done():
            future = _running[name] = _executor.submit(CHECKS[name])
        return future


def _run_checks() -> dict[str, str]:
    futures = {name: _started(name) for name in CHECKS}
    futures_wait(futures.values(), timeout=settings.READYZ_TIMEOUT_SECONDS)
    return {name: "ok" if future.done() and future.exception() is None else "down" for name, future in futures.items()}


@require_safe
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when the database, the cache and the broker answer; 503 naming the ones that do not."""
    checks = _run_checks()
    down = [name for name, state in checks.items() if state != "ok"]
    body = {"status": "unavailable" if down else "ok", "down": down, "checks": checks}
    return JsonResponse(body, status=503 if down else 200)


# --- metrics ----------------------------------------------------------------------------


def metrics_allowed(request: HttpRequest) -> bool:
    """A service token (``Authorization: Bearer svc_...``) or a client in METRICS_ALLOWED_NETWORKS."""
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and secret.strip():
        token = ServiceToken.find_by_secret(secret.strip())
        return token is not None and token.status_at() == "active"
    try:
        address = ipaddress.ip_address(client_ip(request) or "")
    except ValueError:
        return False
    return any(address in network for network in settings.METRICS_ALLOWED_NETWORKS)


REFUSED = "Send 'Authorization: Bearer <service token>' or scrape from a network in METRICS_ALLOWED_NETWORKS."


@require_safe
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    try:
        allowed = metrics_allowed(request)
    except DatabaseError:  # the token cannot be looked up: say so rather than a 500
        return JsonResponse({"detail": "The database is unreachable; the token cannot be checked."}, status=503)
    if not allowed:
        return JsonResponse({"detail": REFUSED}, status=403)
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_PLAIN_0_0_4)


def exposition() -> bytes:
    """The counters (of all processes in multiprocess mode) and the gauges read now."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
        counters = generate_latest(registry)
    else:
        counters = generate_latest(REGISTRY)
    scraped = CollectorRegistry()
    scraped.register(ScrapeCollector())
    return counters + generate_latest(scraped)


class ScrapeCollector:
    """Gauges computed at each scrape from the database and the broker (cheap, indexed reads)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "usage_scrape_source_up", "1 when this scrape could read the source of its gauges.", labels=["source"]
        )
        try:
            yield from _database_gauges(tenant_labels=settings.METRICS_TENANT_LABELS)
            up.add_metric(["database"], 1)
        except DatabaseError:
            up.add_metric(["database"], 0)
        try:
            yield from _queue_gauges()
            up.add_metric(["broker"], 1)
        except redis.RedisError:
            up.add_metric(["broker"], 0)
        yield up


def _database_gauges(*, tenant_labels: bool) -> list[GaugeMetricFamily]:
    """Rollup lag and pending deliveries; per tenant (slug) only when the operator opted in."""
    from usage.models import AlertDelivery, DirtyDay

    now = timezone.now()
    labels = ["tenant"] if tenant_labels else []
    dirty = GaugeMetricFamily("usage_rollup_dirty_days", "Local days waiting for a rollup recompute.", labels=labels)
    oldest = GaugeMetricFamily(
        "usage_rollup_oldest_dirty_age_seconds", "Age of the oldest dirty-day mark (0: none).", labels=labels
    )
    pending = GaugeMetricFamily(
        "usage_alert_deliveries_pending", "Budget alert deliveries not yet delivered nor given up.", labels=labels
    )
    if tenant_labels:
        for row in DirtyDay.objects.values("tenant__slug").annotate(n=Count("pk"), first=Min("marked_at")):
            dirty.add_metric([row["tenant__slug"]], row["n"])
            oldest.add_metric([row["tenant__slug"]], _age(now, row["first"]))
        waiting = AlertDelivery.objects.filter(status=AlertDelivery.Status.PENDING)
        for row in waiting.values("budget__tenant__slug").annotate(n=Count("pk")):
            pending.add_metric([row["budget__tenant__slug"]], row["n"])
    else:
        totals = DirtyDay.objects.aggregate(n=Count("pk"), first=Min("marked_at"))
        dirty.add_metric([], totals["n"])
        oldest.add_metric([], _age(now, totals["first"]))
        pending.add_metric([], AlertDelivery.objects.filter(status=AlertDelivery.Status.PENDING).count())
    return [dirty, oldest, pending]


def _age(now: dt.datetime, since: dt.datetime | None) -> float:
    return max((now - since).total_seconds(), 0.0) if since else 0.0


def _queue_gauges() -> list[GaugeMetricFamily]:
    """Messages waiting in each Celery queue (Redis broker only; nothing for the eager default)."""
    client = _broker_redis(timeout=1.0)
    if client is None:
        return []
    depth = GaugeMetricFamily("usage_celery_queue_length", "Messages waiting in a Celery queue.", labels=["queue"])
    with client:
        pipe = client.pipeline(transaction=False)
        for queue in QUEUES:
            for suffix in _PRIORITY_SUFFIXES:
                pipe.llen(queue + suffix)
        lengths = pipe.execute()
    step = len(_PRIORITY_SUFFIXES)
    for position, queue in enumerate(QUEUES):
        depth.add_metric([queue], sum(lengths[position * step : (position + 1) * step]))
    return [depth]

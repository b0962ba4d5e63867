"""Broker and cache outages are logged, never raised to a writer, and at most once a minute."""

import logging
import os
import time
from typing import Any

from celery import Celery, Task
from django.conf import settings

from usageproject import metrics

logger = logging.getLogger("usage.outages")

# An outage is logged once per this many seconds in a process, not once per batch.
OUTAGE_LOG_SECONDS = 60
_last_outage_log = [0.0]


def log_outage(message: str, *args: object, service: str = "broker") -> None:
    """Log a broker/cache outage at most once per ``OUTAGE_LOG_SECONDS`` in this process.

    Every call is counted (``usage_service_errors_total{service}``), logged or not.
    """
    metrics.service_error_counted(service)
    now = time.monotonic()
    if now - _last_outage_log[0] >= OUTAGE_LOG_SECONDS:
        _last_outage_log[0] = now
        logger.warning(message, *args)


# --- Publishing on a request path ---------------------------------------------------------------
# Celery's own publish waits for an unreachable broker: even without publish retries, kombu
# retries the connection for broker_connection_timeout (4 s) and more, per publish. A writer may
# not wait on the broker, so a request path publishes on connections that try once, with short
# socket timeouts, and after a failure leaves the broker alone for BROKER_OUTAGE_RETRY_SECONDS;
# what is not published then is caught up by beat's sweeps.
_FAST_PUBLISH = {"max_retries": 0, "socket_connect_timeout": 0.5, "socket_timeout": 0.5}
_publish_pools: dict[tuple[int, int], Any] = {}
_broker_down_until = [0.0]


def _publish_pool(app: Celery) -> Any:
    # Per process: a pool made before a fork (gunicorn --preload, a worker's parent) is not shared.
    slot = (id(app), os.getpid())
    pool = _publish_pools.get(slot)
    if pool is None:
        options = {**app.conf.broker_transport_options, **_FAST_PUBLISH}
        pool = app.connection_for_write(transport_options=options, connect_timeout=0.5).Pool(limit=8)
        _publish_pools[slot] = pool
    return pool


def task_publish(task: Task, args: tuple, *, countdown: float | None = None, what: str = "", **options: Any) -> bool:
    """Publish ``task`` now or not at all: True if the broker took it. Never waits on the broker and
    never raises its errors; in-process (eager) Celery runs the task here, errors and all."""
    if task.app.conf.task_always_eager:
        task.delay(*args)
        return True
    if time.monotonic() < _broker_down_until[0]:
        return False
    try:
        with _publish_pool(task.app).acquire(block=True, timeout=1) as connection:
            task.apply_async(args, countdown=countdown, retry=False, connection=connection, **options)
    except Exception as exc:  # noqa: BLE001 - kombu's errors of an unreachable broker vary by transport
        _broker_down_until[0] = time.monotonic() + settings.BROKER_OUTAGE_RETRY_SECONDS
        log_outage("Could not enqueue %s (beat's sweep catches up): %r", what or task.name, exc)
        return False
    return True

"""Broker and cache outages are logged, never raised to a writer, and at most once a minute."""

import logging
import time

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

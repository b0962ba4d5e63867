"""A log line for what a gateway endpoint answered 200 to but did not store.

An OTLP exporter counts a 200 as delivered (the Python exporters ignore ``partial_success``),
and LiteLLM does not read its answer: without a line here an operator cannot see that spans or
payloads are dropped. The lines are rate-limited per process: at most one per endpoint and
reason each ``INTERVAL`` seconds, and the next one says how many it stands for.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from usage.ingestion.services import IngestResult

logger = logging.getLogger("usage.gateway.dropped")
INTERVAL = 60.0

_lock = threading.Lock()
_last_logged: dict[tuple[str, str], float] = {}
_suppressed: Counter[tuple[str, str]] = Counter()


def reasons_of(result: IngestResult, labels: Iterable[str]) -> list[tuple[str, str]]:
    """(reason, example item) of each rejection in ``result``; ``labels`` name the items by index."""
    names = list(labels)
    return [
        (f"rejected {error['field'] or 'item'}: {error['code']}", names[error["index"]] if names else "")
        for error in result.errors
    ]


def log_dropped(endpoint: str, dropped: Iterable[tuple[str, str]]) -> None:
    """Log each reason once per interval with an example item and how many items it stands for."""
    items = list(dropped)
    counts = Counter(reason for reason, _example in items)
    examples = dict(reversed(items))  # the first example of each
    now = time.monotonic()
    for reason, count in counts.items():
        key = (endpoint, reason)
        with _lock:
            due = now - _last_logged.get(key, -INTERVAL) >= INTERVAL
            if not due:
                _suppressed[key] += count
                continue
            _last_logged[key] = now
            total = count + _suppressed.pop(key, 0)
        logger.warning(
            "%s answered 200 but did not store %d item(s) (reason: %s; e.g. %s)%s",
            endpoint,
            count,
            _one_line(reason),
            _one_line(examples.get(reason) or "-"),
            f"; {total - count} more since the last line for this reason" if total > count else "",
        )


def _one_line(text: str) -> str:
    """``text`` with control characters escaped: an id or status a client sent cannot start a
    forged line of its own in the operator's log."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)

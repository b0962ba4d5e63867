"""A LiteLLM callback that reports every successful call to Usage Statistics.

Works with plain ``pip install litellm``: LiteLLM's own ``generic_api`` callback is an
enterprise feature, and without the ``litellm-enterprise`` package LiteLLM silently replaces it
with a logger that does nothing (every call logged by LiteLLM, none received here).

This module needs only ``litellm`` and ``httpx`` (a dependency of litellm) and imports nothing
of the product, so it can be copied as a single file next to a proxy's ``config.yaml``:

    litellm_settings:
      callbacks: litellm_callback.usage_statistics_logger

or used from code: ``litellm.callbacks = [UsageStatisticsLogger()]``. Configuration, from the
arguments or else the environment:

    USAGE_STATISTICS_URL            the product's base URL (https://usage.example.com)
    USAGE_STATISTICS_SERVICE_TOKEN  a service token (manage.py create_service_token)
    USAGE_STATISTICS_API_KEY        optional: the key public id of calls that name none
    USAGE_STATISTICS_BATCH_SIZE     payloads per request (default 100, at most 1000)
    USAGE_STATISTICS_FLUSH_SECONDS  the longest a payload waits for its batch (default 5)

Each successful call's ``StandardLoggingPayload`` (without the prompt and the response: only
ids, model, times, token counts and the key's metadata) is queued and posted in batches to
``POST /api/v1/litellm/logs`` by one background thread. A 429, a 5xx, a timeout or a refused
connection is retried with exponential back-off (a 429's ``Retry-After`` honoured); a batch that
still fails stays queued for the next flush (at most ``max_queue`` payloads are kept: the oldest
are dropped with an error in the log). A batch over the product's body limit (413) is split
in halves and each half sent; another 4xx is not retried (it would fail again): it is logged
with the answer, as are payloads the product rejected in a 200 answer. Re-sending is safe: the
product deduplicates by the call's id. The queue is flushed when the interpreter exits. Nothing
here ever raises into LiteLLM: errors are logged on the ``usage_statistics`` logger.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import random
import threading
import time
from collections.abc import Mapping
from typing import Any

import httpx
from litellm.integrations.custom_logger import CustomLogger

logger = logging.getLogger("usage_statistics")

PATH = "/api/v1/litellm/logs"
# Members of the payload the product reads (docs/ingestion.md, "LiteLLM"); the prompt and the
# response are never sent.
PAYLOAD_MEMBERS = (
    "id",
    "litellm_call_id",
    "status",
    "call_type",
    "model",
    "model_group",
    "model_id",
    "custom_llm_provider",
    "api_base",
    "startTime",
    "endTime",
    "completionStartTime",
    "response_time",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cache_hit",
    "stream",
    "error_information",
)
METADATA_MEMBERS = ("user_api_key_alias", "user_api_key_hash", "spend_logs_metadata", "usage_object")
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_BATCH = 1000  # the product's INGEST_MAX_ITEMS default


class Delivery(Exception):
    """A batch that could not be delivered now; ``retry`` False when sending it again is futile."""

    def __init__(self, message: str, *, retry: bool, wait: float | None = None, too_large: bool = False) -> None:
        super().__init__(message)
        self.retry, self.wait, self.too_large = retry, wait, too_large


def _setting(value: Any, name: str, default: Any = None) -> Any:
    return value if value is not None else os.environ.get(name, default)


class UsageStatisticsLogger(CustomLogger):
    """Queues each successful call's payload and posts batches from a background thread."""

    def __init__(
        self,
        *,
        url: str | None = None,
        service_token: str | None = None,
        api_key: str | None = None,
        batch_size: int | None = None,
        flush_seconds: float | None = None,
        max_retries: int = 5,
        backoff_seconds: float = 0.5,
        max_queue: int = 100_000,
        timeout_seconds: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__()
        base = _setting(url, "USAGE_STATISTICS_URL")
        token = _setting(service_token, "USAGE_STATISTICS_SERVICE_TOKEN")
        if not base or not token:
            raise ValueError("Set USAGE_STATISTICS_URL and USAGE_STATISTICS_SERVICE_TOKEN (or pass url, service_token)")
        base = base.rstrip("/")
        self.endpoint = base if base.endswith(PATH) else base + PATH
        self.api_key = _setting(api_key, "USAGE_STATISTICS_API_KEY") or None
        self.batch_size = min(int(_setting(batch_size, "USAGE_STATISTICS_BATCH_SIZE", 100)), MAX_BATCH)
        self.flush_seconds = float(_setting(flush_seconds, "USAGE_STATISTICS_FLUSH_SECONDS", 5))
        self.max_retries, self.backoff_seconds, self.max_queue = max_retries, backoff_seconds, max_queue
        self.received = 0  # payloads LiteLLM handed over
        self.delivered = 0  # payloads the product answered for (stored, duplicate or rejected)
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._client = httpx.Client(timeout=timeout_seconds, transport=transport)
        self._queue: list[dict[str, Any]] = []
        self._lock = threading.Lock()  # the queue
        self._sending = threading.Lock()  # one batch in flight, in order
        self._wake = threading.Event()
        self._worker: threading.Thread | None = None
        self._stopped = False
        self._pid = os.getpid()
        atexit.register(self.flush, 10.0)

    # --- LiteLLM's hooks: never raise ------------------------------------------------------

    def log_success_event(self, kwargs: dict, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._take(kwargs)

    async def async_log_success_event(self, kwargs: dict, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._take(kwargs)

    def _take(self, kwargs: Mapping[str, Any]) -> None:
        try:
            payload = kwargs.get("standard_logging_object")
            if isinstance(payload, Mapping):
                self.enqueue(payload)
            else:
                logger.error(
                    "LiteLLM passed no standard_logging_object: call %s not reported", kwargs.get("litellm_call_id")
                )
        except Exception:
            logger.exception("Usage Statistics: could not queue a LiteLLM payload")

    # --- Queue ---------------------------------------------------------------------------------

    def enqueue(self, payload: Mapping[str, Any]) -> None:
        item = self.trimmed(payload)
        with self._lock:
            self.received += 1
            self._queue.append(item)
            self._bound_queue()
            full = len(self._queue) >= self.batch_size
        self._start_worker()
        if full:
            self._wake.set()

    def trimmed(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The payload without prompt and response, JSON-safe, with the default key if it names none."""
        item = {name: payload[name] for name in PAYLOAD_MEMBERS if name in payload}
        metadata = payload.get("metadata")
        if not isinstance(metadata, Mapping):
            metadata = {}
        item["metadata"] = {name: metadata[name] for name in METADATA_MEMBERS if metadata.get(name) is not None}
        if self.api_key and not item["metadata"].get("user_api_key_alias"):
            spend = dict(item["metadata"].get("spend_logs_metadata") or {})
            spend.setdefault("usage_statistics_api_key", self.api_key)
            item["metadata"]["spend_logs_metadata"] = spend
        return json.loads(json.dumps(item, default=str))

    def _bound_queue(self) -> None:
        overflow = len(self._queue) - self.max_queue
        if overflow > 0:
            del self._queue[:overflow]
            logger.error("Usage Statistics unreachable: dropped the %d oldest queued call(s)", overflow)

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    # --- Sending -------------------------------------------------------------------------------

    def _start_worker(self) -> None:
        if self._worker is not None and self._worker.is_alive() and self._pid == os.getpid():
            return
        with self._lock:
            if self._worker is None or not self._worker.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()  # a forked proxy worker starts its own thread
                self._worker = threading.Thread(target=self._run, name="usage-statistics", daemon=True)
                self._worker.start()

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            try:
                self.flush()
            except Exception:
                logger.exception("Usage Statistics: flush failed")

    def flush(self, timeout: float | None = None) -> bool:
        """Send the queue in batches (until ``timeout`` seconds have passed); True when it is empty."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._sending:
            while True:
                with self._lock:
                    batch = self._queue[: self.batch_size]
                if not batch or self._stopped:
                    return not batch
                if not self._deliver(batch, deadline):
                    return False
                with self._lock:
                    del self._queue[: len(batch)]

    def close(self, timeout: float = 10.0) -> bool:
        """Flush (for at most ``timeout`` seconds) and stop; True when nothing was left unsent."""
        empty = self.flush(timeout)
        with self._sending:  # not while the worker sends
            self._stopped = True
            self._client.close()
        self._wake.set()
        atexit.unregister(self.flush)
        return empty

    def _deliver(self, batch: list[dict[str, Any]], deadline: float | None) -> bool:
        """True when the batch is done with (delivered, or not worth sending again)."""
        for attempt in range(self.max_retries + 1):
            try:
                self._post(batch)
                return True
            except Delivery as failure:
                if failure.too_large and len(batch) > 1:
                    # Over the product's body limit: the halves may fit, so one large payload does
                    # not cost the calls batched with it (a half sent twice is deduplicated there).
                    half = len(batch) // 2
                    return self._deliver(batch[:half], deadline) and self._deliver(batch[half:], deadline)
                if not failure.retry:
                    logger.error("Usage Statistics refused %d call(s), not retried: %s", len(batch), failure)
                    return True
                pause = failure.wait if failure.wait is not None else self.backoff_seconds * 2**attempt
                pause = min(pause, 60.0) * (1 + random.random() / 4)  # noqa: S311 (jitter, not secrecy)
                if attempt == self.max_retries or (deadline is not None and time.monotonic() + pause > deadline):
                    logger.warning("Usage Statistics: %s; %d call(s) kept for the next flush", failure, len(batch))
                    return False
                time.sleep(pause)
        return False

    def _post(self, batch: list[dict[str, Any]]) -> None:
        try:
            response = self._client.post(self.endpoint, content=json.dumps(batch), headers=self._headers)
        except httpx.HTTPError as exc:
            raise Delivery(f"{type(exc).__name__}: {exc}", retry=True) from exc
        if response.status_code in RETRY_STATUSES:
            raise Delivery(f"HTTP {response.status_code}", retry=True, wait=_retry_after(response))
        if response.status_code != 200:
            message = f"HTTP {response.status_code}: {response.text[:500]}"
            raise Delivery(message, retry=False, too_large=response.status_code == 413)
        self.delivered += len(batch)
        errors = _answer(response).get("errors") or []
        if errors:
            logger.error("Usage Statistics rejected %d call(s): %s", len(errors), json.dumps(errors[:20])[:2000])


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


_default: UsageStatisticsLogger | None = None


def __getattr__(name: str) -> Any:
    """``usage_statistics_logger``: one logger per process, made on first use from the
    environment (the proxy's ``callbacks: litellm_callback.usage_statistics_logger``)."""
    global _default
    if name != "usage_statistics_logger":
        raise AttributeError(name)
    if _default is None:
        _default = UsageStatisticsLogger()
    return _default

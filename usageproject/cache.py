"""The shared cache (``CACHE_URL``): Django's Redis cache, except that Redis being unreachable is a
miss, never an error.

Every cached value here can be computed again (grids, costs, panels, the recompute debounce, the
API's throttle history), so an outage costs speed and never an answer. Short socket timeouts keep
an unreachable host from adding seconds to a read, and after a failure the process leaves Redis
alone for ``CACHE_OUTAGE_RETRY_SECONDS`` instead of paying a connection attempt per call. Each
outage is logged at most once a minute (``usage.outages``).
"""

import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

from usage.outages import log_outage

T = TypeVar("T")

# Seconds a socket may take to connect or answer: a healthy Redis answers in a millisecond.
DEFAULT_SOCKET_TIMEOUT = 0.25


class ResilientRedisCache(RedisCache):
    """Reads miss and writes are dropped while Redis is unreachable (see the module docstring)."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        options = {
            "socket_connect_timeout": DEFAULT_SOCKET_TIMEOUT,
            "socket_timeout": DEFAULT_SOCKET_TIMEOUT,
            **params.get("OPTIONS", {}),
        }
        super().__init__(server, {**params, "OPTIONS": options})
        self._down_until = 0.0

    def _guarded(self, call: Callable[[], T], fallback: T) -> T:
        if time.monotonic() < self._down_until:
            return fallback
        try:
            return call()
        except RedisError as exc:
            self._down_until = time.monotonic() + settings.CACHE_OUTAGE_RETRY_SECONDS
            log_outage("Cache unreachable, reading without it: %r", exc, service="cache")
            return fallback

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        return self._guarded(lambda: super(ResilientRedisCache, self).get(key, default, version), default)

    def get_many(self, keys: Any, version: int | None = None) -> dict[str, Any]:
        return self._guarded(lambda: super(ResilientRedisCache, self).get_many(keys, version), {})

    def has_key(self, key: Any, version: int | None = None) -> bool:
        return self._guarded(lambda: super(ResilientRedisCache, self).has_key(key, version), False)

    def set(self, key: Any, value: Any, timeout: Any = None, version: int | None = None, **kwargs: Any) -> None:
        self._guarded(lambda: super(ResilientRedisCache, self).set(key, value, timeout, version), None)

    def set_many(self, data: dict[Any, Any], timeout: Any = None, version: int | None = None) -> list[Any]:
        return self._guarded(lambda: super(ResilientRedisCache, self).set_many(data, timeout, version), list(data))

    def add(self, key: Any, value: Any, timeout: Any = None, version: int | None = None) -> bool:
        # False: nothing was stored (a debounce then leaves the work to its sweep).
        return self._guarded(lambda: super(ResilientRedisCache, self).add(key, value, timeout, version), False)

    def touch(self, key: Any, timeout: Any = None, version: int | None = None) -> bool:
        return self._guarded(lambda: super(ResilientRedisCache, self).touch(key, timeout, version), False)

    def delete(self, key: Any, version: int | None = None) -> bool:
        return self._guarded(lambda: super(ResilientRedisCache, self).delete(key, version), False)

    def delete_many(self, keys: Any, version: int | None = None) -> None:
        self._guarded(lambda: super(ResilientRedisCache, self).delete_many(keys, version), None)

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        # No caller counts in the cache today; a counter that cannot be read is a missing key.
        result = self._guarded(lambda: super(ResilientRedisCache, self).incr(key, delta, version), None)
        if result is None:
            raise ValueError(f"Key '{key}' not found (the cache is unreachable)")
        return result

    def clear(self) -> None:
        self._guarded(lambda: super(ResilientRedisCache, self).clear(), None)

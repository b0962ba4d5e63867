"""Cached answers stored under their question, with the version they answer beside them.

A key made of everything an answer depends on (usage versions, prices) never serves a stale
answer, but while calls arrive every read of a live day is a new key: 8 readers for 20 s with
1,000 calls/s arriving left 416 entries (21.4 MB) of which each lived an hour, for one page. So an
answer is stored in a *slot* named by its question alone (tenant, zone, period, filters: what
``UsageQuery.cache_key`` hashes without versions), as ``(version key, answer)``. A reader whose
version key differs computes afresh and overwrites the slot. The cache holds one entry per
question asked, however fast the data moves; a stale answer is still never read.
"""

from collections.abc import Sequence
from typing import Any

from django.core.cache import cache


def slots_get(pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """{version key: answer} of the ``(slot, version key)`` pairs whose slot holds that version."""
    stored = cache.get_many([slot for slot, _version in pairs])
    found = {}
    for slot, version in pairs:
        entry = stored.get(slot)
        if isinstance(entry, tuple) and len(entry) == 2 and entry[0] == version:
            found[version] = entry[1]
    return found


def slot_get(slot: str, version: str) -> Any:
    """The answer of ``version`` in ``slot``, or None."""
    return slots_get([(slot, version)]).get(version)


def slot_set(slot: str, version: str, answer: Any, timeout: int) -> None:
    """Store ``answer`` of ``version`` in ``slot``, replacing whatever version it held."""
    cache.set(slot, (version, answer), timeout=timeout)

"""The fixed buckets of the performance histograms, shared by the writer (``usage.rollups.performance``)
and the readers (``usage.reporting.performance``); see the former for what they mean and the bound
of a percentile read from them (within sqrt(1.1) - 1 < 4.9% relative of the exact one).
"""

from __future__ import annotations

import math
from bisect import bisect_right

from usage.models import ErrorType

STATUS, LATENCY, TTFT, TOKENS_PER_SECOND = 0, 1, 2, 3
METRICS = {LATENCY: "latency_ms", TTFT: "time_to_first_token_ms", TOKENS_PER_SECOND: "output_tokens_per_second"}
OK_BUCKET = 0
ERROR_BUCKETS = {name: index for index, name in enumerate(ErrorType.values, start=1)}
UNTYPED_ERROR_BUCKET = len(ERROR_BUCKETS) + 1
# Tokens per second are kept in thousandths so that every bucket is decided in integers.
TPS_SCALE = 1000
RELATIVE_ERROR_BOUND = math.sqrt(1.1) - 1  # 0.0488


def _bounds() -> tuple[int, ...]:
    bounds = list(range(11))
    while bounds[-1] < 10**12:
        bounds.append(bounds[-1] * 11 // 10)
    return tuple(bounds)


BOUNDS = _bounds()


def bucket_of(value: int) -> int:
    """The histogram bucket (0-based) of a whole, non-negative value."""
    return bisect_right(BOUNDS, value) - 1


def bucket_estimate(bucket: int) -> float:
    """The value that stands for a bucket: the geometric middle of the whole numbers in it."""
    low = BOUNDS[bucket]
    if bucket + 1 >= len(BOUNDS):
        return float(low)
    high = BOUNDS[bucket + 1] - 1
    return math.sqrt(low * high)


def status_bucket(status: str | None, error_type: str | None) -> int | None:
    if status is None:
        return None
    if status != "error":
        return OK_BUCKET
    return UNTYPED_ERROR_BUCKET if error_type is None else ERROR_BUCKETS[error_type]


def tokens_per_second_scaled(output_tokens: int, duration: int | None, ttft: int | None) -> int | None:
    """Output tokens per second of generation, in thousandths (rounded down); None when unknown."""
    if duration is None or ttft is None or duration <= ttft:
        return None
    return output_tokens * 1000 * TPS_SCALE // (duration - ttft)


def metric_buckets(
    out: int, duration: int | None, ttft: int | None, status: str | None, error_type: str | None
) -> list[tuple[int, int]]:
    """[(metric, bucket)] a call adds one to."""
    found = []
    state = status_bucket(status, error_type)
    if state is not None:
        found.append((STATUS, state))
    if status == "error":
        return found
    if duration is not None:
        found.append((LATENCY, bucket_of(duration)))
    if ttft is not None:
        found.append((TTFT, bucket_of(ttft)))
    tps = tokens_per_second_scaled(out, duration, ttft)
    if tps is not None:
        found.append((TOKENS_PER_SECOND, bucket_of(tps)))
    return found


# --- SQL: the same buckets, computed by the database ------------------------------------------


def _bucket_sql(vendor: str, value: str) -> str:
    if vendor == "postgresql":
        return f"(width_bucket({value}, '{{{','.join(map(str, BOUNDS))}}}'::bigint[]) - 1)"
    return f"usage_perf_bucket({value})"


def _status_sql() -> str:
    types = " ".join(f"WHEN '{name}' THEN {index}" for name, index in ERROR_BUCKETS.items())
    return (
        f"CASE WHEN status <> 'error' THEN {OK_BUCKET} ELSE CASE error_type {types} ELSE {UNTYPED_ERROR_BUCKET} END END"
    )


def stats_select_sql(vendor: str, *, source: str, hour: str, where: str) -> str:
    """SELECT tenant_id, hour, api_key_id, model_id, metric, bucket, calls of the rows of ``source``
    matching ``where`` (unqualified column names), grouped as ``stats_from_values`` groups them."""
    not_error = "(status IS NULL OR status <> 'error')"
    tps = f"(output_tokens * {1000 * TPS_SCALE}) / (duration_ms - time_to_first_token_ms)"
    parts = [
        (STATUS, _status_sql(), "status IS NOT NULL"),
        (LATENCY, _bucket_sql(vendor, "duration_ms"), f"duration_ms IS NOT NULL AND {not_error}"),
        (TTFT, _bucket_sql(vendor, "time_to_first_token_ms"), f"time_to_first_token_ms IS NOT NULL AND {not_error}"),
        (TOKENS_PER_SECOND, _bucket_sql(vendor, tps), f"duration_ms > time_to_first_token_ms AND {not_error}"),
    ]
    return " UNION ALL ".join(
        f"SELECT tenant_id, {hour} AS hour, api_key_id, model_id, {metric} AS metric, {bucket} AS bucket,"
        f" COUNT(*) AS calls FROM {source} WHERE ({where}) AND {condition} GROUP BY tenant_id, 2, api_key_id,"
        " model_id, 6"
        for metric, bucket, condition in parts
    )

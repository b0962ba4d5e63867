"""Warehouse export: the ledger and the daily rollups as Parquet on S3-compatible storage.

Layout (README "Exports"), one partition per tenant and local day::

    <prefix>/calls/tenant=<slug>/day=YYYY-MM-DD/part-0.parquet     the day's calls, by time and request id
    <prefix>/daily/tenant=<slug>/day=YYYY-MM-DD/part-0.parquet     the day's rollup rows, by key and model
    <prefix>/_manifests/tenant=<slug>/day=YYYY-MM-DD.json          written last: the partition is complete

Idempotent: rows are read in a fixed order and written with fixed writer options, so the same
day gives the same bytes (and the same ETag). Resumable: a partition counts as done only when
its manifest exists and still matches the ledger (calls and token sums of the day), so a rerun
after a crash redoes the partition that was cut short and skips the rest; a day that got late
calls is redone too. Memory stays bounded: a day's calls are read in chunks and written a row
group at a time to a temporary file, which is then uploaded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import ClientError
from django.conf import settings
from django.db.models import Count, QuerySet, Sum

from usage import localtime
from usage.models import CallRecord, DirtyDay, UsageDaily
from usage.reporting.periods import Period
from usage.reporting.query import UsageQuery

if TYPE_CHECKING:
    from accounts.models import Tenant

CHUNK_ROWS = 10_000
MANIFEST_FORMAT = 1

CALL_SCHEMA = pa.schema(
    [
        ("tenant", pa.string()),
        ("day", pa.date32()),
        ("request_id", pa.string()),
        ("occurred_at", pa.timestamp("us", tz="UTC")),
        ("api_key", pa.string()),
        ("api_key_name", pa.string()),
        ("model", pa.string()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("cached_input_tokens", pa.int64()),
        ("reasoning_tokens", pa.int64()),
    ]
)
DAILY_SCHEMA = pa.schema(
    [
        ("tenant", pa.string()),
        ("day", pa.date32()),
        ("api_key", pa.string()),
        ("api_key_name", pa.string()),
        ("model", pa.string()),
        ("calls", pa.int64()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("cached_input_tokens", pa.int64()),
        ("reasoning_tokens", pa.int64()),
    ]
)


def s3_client() -> Any:
    """A client for the configured endpoint (AWS itself when none is set)."""
    return boto3.client(
        "s3",
        endpoint_url=settings.WAREHOUSE_S3_ENDPOINT_URL,
        region_name=settings.WAREHOUSE_S3_REGION,
        aws_access_key_id=settings.WAREHOUSE_S3_ACCESS_KEY_ID,
        aws_secret_access_key=settings.WAREHOUSE_S3_SECRET_ACCESS_KEY,
    )


@dataclass(frozen=True)
class Partition:
    tenant: Tenant
    day: dt.date

    def key(self, prefix: str, table: str) -> str:
        return f"{_join(prefix, table)}/tenant={self.tenant.slug}/day={self.day}/part-0.parquet"

    def manifest_key(self, prefix: str) -> str:
        return f"{_join(prefix, '_manifests')}/tenant={self.tenant.slug}/day={self.day}.json"

    @property
    def query(self) -> UsageQuery:
        """The tenant's question about this one local day: its scope is the query layer's."""
        return UsageQuery(self.tenant, Period(self.day, self.day))

    def calls(self) -> QuerySet[CallRecord]:
        return self.query.calls()

    def source(self) -> dict[str, int]:
        """The day's ledger in four numbers: what the manifest must still match to be skipped."""
        sums = self.calls().aggregate(
            calls=Count("id"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cached_input_tokens=Sum("cached_input_tokens"),
        )
        return {name: int(value or 0) for name, value in sums.items()}


def _join(prefix: str, name: str) -> str:
    return f"{prefix.strip('/')}/{name}" if prefix.strip("/") else name


def _call_batches(partition: Partition) -> Iterator[pa.RecordBatch]:
    rows = (
        partition.calls()
        .order_by("occurred_at", "request_id")
        .values_list(
            "request_id",
            "occurred_at",
            "api_key__public_id",
            "api_key__name",
            "model__name",
            "input_tokens",
            "output_tokens",
            "cached_input_tokens",
            "reasoning_tokens",
        )
    )
    chunk: list[tuple[Any, ...]] = []
    for row in rows.iterator(chunk_size=CHUNK_ROWS):
        chunk.append(row)
        if len(chunk) == CHUNK_ROWS:
            yield _batch(CALL_SCHEMA, partition, chunk)
            chunk = []
    if chunk:
        yield _batch(CALL_SCHEMA, partition, chunk)


def _daily_batches(partition: Partition) -> Iterator[pa.RecordBatch]:
    rows = (
        partition.query.rollups(UsageDaily)
        .order_by("api_key__public_id", "model__name")
        .values_list(
            "api_key__public_id",
            "api_key__name",
            "model__name",
            "calls",
            "input_tokens",
            "output_tokens",
            "cached_input_tokens",
            "reasoning_tokens",
        )
    )
    chunk = list(rows)  # one row per key x model of one day: small
    if chunk:
        yield _batch(DAILY_SCHEMA, partition, chunk)


def _batch(schema: pa.Schema, partition: Partition, rows: list[tuple[Any, ...]]) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True))
    arrays = [pa.array([partition.tenant.slug] * len(rows), pa.string()), pa.array([partition.day] * len(rows))]
    arrays += [pa.array(values, field.type) for values, field in zip(columns, list(schema)[2:], strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _write_parquet(out: BinaryIO, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> int:
    """Write the batches as one file, a row group per batch; the rows written."""
    rows = 0
    with pq.ParquetWriter(out, schema, compression="zstd", write_statistics=True) as writer:
        for batch in batches:
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


def _upload(client: Any, bucket: str, key: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> dict:
    with tempfile.TemporaryFile() as spool:
        rows = _write_parquet(spool, schema, batches)
        spool.seek(0)
        digest = hashlib.sha256()
        for block in iter(lambda: spool.read(1 << 20), b""):
            digest.update(block)
        spool.seek(0)
        client.put_object(Bucket=bucket, Key=key, Body=spool)
    return {"key": key, "rows": rows, "sha256": digest.hexdigest()}


def _manifest(client: Any, bucket: str, key: str) -> dict | None:
    try:
        return json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise


def partition_export(*, client: Any, bucket: str, prefix: str, partition: Partition) -> bool:
    """Export one tenant-day unless its manifest says it is done and the ledger agrees.
    True when it was (re)written, False when skipped."""
    source = partition.source()
    manifest_key = partition.manifest_key(prefix)
    done = _manifest(client, bucket, manifest_key)
    if done is not None and done.get("format") == MANIFEST_FORMAT and done.get("source") == source:
        return False
    files = [
        _upload(client, bucket, partition.key(prefix, "calls"), CALL_SCHEMA, _call_batches(partition)),
        _upload(client, bucket, partition.key(prefix, "daily"), DAILY_SCHEMA, _daily_batches(partition)),
    ]
    body = {"format": MANIFEST_FORMAT, "tenant": partition.tenant.slug, "day": str(partition.day)}
    body |= {"source": source, "files": files}
    client.put_object(Bucket=bucket, Key=manifest_key, Body=json.dumps(body, sort_keys=True).encode())
    return True


def export_days(tenant: Tenant, start: dt.date | None, end: dt.date | None) -> list[dt.date]:
    """The local days to export: those of the range with calls (default: every closed day with calls).

    A day marked dirty (its rollups await a recompute) waits for the next run: its daily rows may be stale.
    """
    from usage.rollups.recompute import ledger_day_range

    bounds = ledger_day_range(tenant=tenant)
    if bounds is None:
        return []
    first = max(start or bounds[0], bounds[0])
    last = min(end or localtime.tenant_today(tenant) - dt.timedelta(days=1), bounds[1])
    days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
    dirty = set(DirtyDay.objects.filter(tenant=tenant, day__range=(first, last)).values_list("day", flat=True))
    return [day for day in days if day not in dirty and Partition(tenant, day).calls().exists()]


def warehouse_export(
    *,
    tenants: Iterable[Tenant],
    bucket: str,
    prefix: str,
    start: dt.date | None = None,
    end: dt.date | None = None,
    progress: Callable[[Partition, bool], None] | None = None,
    client: Any = None,
) -> tuple[int, int]:
    """Export every tenant-day of the range; (written, skipped) partitions."""
    client = client or s3_client()
    written = skipped = 0
    for tenant in tenants:
        for day in export_days(tenant, start, end):
            partition = Partition(tenant, day)
            wrote = partition_export(client=client, bucket=bucket, prefix=prefix, partition=partition)
            written, skipped = written + wrote, skipped + (not wrote)
            if progress is not None:
                progress(partition, wrote)
    return written, skipped

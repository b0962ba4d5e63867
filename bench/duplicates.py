"""A re-sent batch on a big tenant with and without planner statistics (issue 25, item 6).

    .venv/bin/python bench/duplicates.py --calls 2000000

PostgreSQL only. The database (``--database-url``, default ``usage_bench_duplicates``; its name
must contain "bench") is created and migrated if missing. One tenant gets ``--calls`` calls in
the current UTC month (a bare binary COPY into the ledger and its request-id claims, after
``TRUNCATE``; the statistics of both are deleted, so the tables are as a fresh deployment or a
new month's partition has them: never analyzed). Then, each ``--rounds`` times, through the
product's ingestion service (``call_records_ingest``, in this process):

- a batch of ``--batch`` new calls;
- the same number of calls already stored, re-sent (all duplicates).

first with no statistics, then after ``ANALYZE``. It prints each batch's milliseconds, the plan
of the stored-contents lookup (``EXPLAIN ANALYZE`` of the queries ``_stored_contents`` issues)
and the ledger rows it read.
"""

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usageproject.settings")
os.environ.setdefault("DEBUG", "0")
os.environ.pop("CELERY_BROKER_URL", None)  # budgets and rollups are not what this measures

import django  # noqa: E402
import psycopg  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/usage_bench_duplicates"
LEDGER_COLUMNS = "tenant_id, api_key_id, model_id, occurred_at, input_tokens, output_tokens, request_id, received_at"


def month_start(now: dt.datetime) -> dt.datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def fill(conn: psycopg.Connection, tenant, keys, models, n: int, now: dt.datetime) -> None:
    """``n`` calls of the tenant between the month's start and now; no statistics afterwards."""
    from usage.ledger.partitions import partitions_ensure

    start = month_start(now)
    step = (now - dt.timedelta(minutes=10) - start) / n
    partitions_ensure([start, now])
    conn.execute("TRUNCATE usage_callrecord, usage_callrequest, usage_dirtyday")
    with conn.cursor().copy(f"COPY usage_callrecord ({LEDGER_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "int8", "int8", "timestamptz", "int8", "int8", "text", "timestamptz"])
        for i in range(n):
            at = start + step * i
            copy.write_row(
                (tenant.pk, keys[i % len(keys)].pk, models[i % len(models)].pk, at, 100, 10, f"old-{i}", now)
            )
    conn.execute(
        "INSERT INTO usage_callrequest (tenant_id, request_id, occurred_at)"
        " SELECT tenant_id, request_id, occurred_at FROM usage_callrecord"
    )
    drop_statistics(conn)


def ledger_tables(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute("SELECT relid::regclass::text FROM pg_partition_tree('usage_callrecord')").fetchall()
    return [name for (name,) in rows] + ["usage_callrequest"]


def drop_statistics(conn: psycopg.Connection) -> None:
    for table in ledger_tables(conn):
        conn.execute("DELETE FROM pg_statistic WHERE starelid = %s::regclass", [table])
        if table != "usage_callrecord":  # a partitioned table has no storage of its own to vacuum
            conn.execute("ALTER TABLE " + table + " SET (autovacuum_enabled = false)")


def items(keys, models, prefix: str, numbers, start: dt.datetime, step: dt.timedelta) -> list[dict]:
    return [
        {
            "request_id": f"{prefix}-{i}",
            "api_key": keys[i % len(keys)].public_id,
            "model": models[i % len(models)].name,
            "occurred_at": (start + step * i).isoformat(),
            "input_tokens": 100,
            "output_tokens": 10,
        }
        for i in numbers
    ]


def explain_lookup(batch: list[dict]) -> list[str]:
    """EXPLAIN ANALYZE of the queries the stored-contents lookup issues for ``batch``."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from usage.ingestion import services
    from usage.ingestion.validation import validate_call

    checked = services.call_records_check(calls=[(i, validate_call(raw)[0]) for i, raw in enumerate(batch)])
    identities = [row.identity for row in checked.rows]
    with CaptureQueriesContext(connection) as captured:
        services._stored_contents(identities)
    lines = []
    with connection.cursor() as cursor:
        for query in captured.captured_queries:
            cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + query["sql"])
            lines += [row[0] for row in cursor.fetchall() if "Filter" not in row[0] and "Cond" not in row[0]]
    return lines


def timed_batch(batch: list[dict], now: dt.datetime) -> tuple[float, dict]:
    from usage.ingestion.services import call_records_ingest

    started = time.perf_counter()
    result = call_records_ingest(items=batch, now=now)
    return (time.perf_counter() - started) * 1000, result.as_dict()


def measure(label: str, keys, models, args, now: dt.datetime, counter: list[int]) -> None:
    start = month_start(now)
    step = (now - dt.timedelta(minutes=10) - start) / args.calls
    new_ms, dup_ms = [], []
    for round_ in range(args.rounds):
        first = counter[0]
        counter[0] += args.batch
        fresh = items(keys, models, "new", range(first, first + args.batch), start, step)
        ms, result = timed_batch(fresh, now)
        assert result["accepted"] == args.batch, result
        new_ms.append(ms)
        # Re-sent calls spread over the month (every partition-month row may be read).
        spread = range(round_ * 7, args.calls, max(1, args.calls // args.batch))
        resent = items(keys, models, "old", list(spread)[: args.batch], start, step)
        ms, result = timed_batch(resent, now)
        assert result["duplicates"] == args.batch, result
        dup_ms.append(ms)
    print(f"{label}: {args.batch} new calls, ms per batch: {[round(m) for m in new_ms]}")
    print(f"{label}: {args.batch} duplicates, ms per batch: {[round(m) for m in dup_ms]}")
    print(f"{label}: median new {statistics.median(new_ms):.0f} ms, duplicates {statistics.median(dup_ms):.0f} ms")
    print(f"{label}: plan of the stored-contents lookup:")
    for line in explain_lookup(resent):
        print("    " + line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--calls", type=int, default=2_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if "bench" not in args.database_url.rsplit("/", 1)[-1]:
        raise SystemExit("The database name must contain 'bench': this script truncates the ledger")
    os.environ["DATABASE_URL"] = args.database_url
    from ingest import ensure_database, setup_fixtures

    ensure_database(args.database_url)
    django.setup()
    tenant, keys, models, _secret = setup_fixtures()
    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        began = time.perf_counter()
        fill(conn, tenant, keys, models, args.calls, now)
        print(f"{args.calls:,} calls of one tenant this month in {time.perf_counter() - began:.0f} s")
        counter = [0]
        measure("no statistics", keys, models, args, now, counter)
        for table in ledger_tables(conn):
            conn.execute("ANALYZE " + table)
        measure("after ANALYZE", keys, models, args, now, counter)


if __name__ == "__main__":
    main()

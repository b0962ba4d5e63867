"""Issue 25, item 6: a re-sent batch is looked up by the unique keys whatever the planner's
statistics. Without them, the stored-contents lookup read every claim and call of the tenant's
month (2.04M rows, 1.1 s, for 1,000 duplicates); bench/duplicates.py measures it at scale."""

import datetime as dt
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import services as account_services
from tests.services import require_postgresql
from usage.ingestion.services import call_records_ingest

NOW = dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)
PER_BATCH = 1000


@pytest.fixture(autouse=True)
def _postgresql(db):
    require_postgresql(connection.vendor, "the plans of PostgreSQL's planner")


def _batch(key, first):
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    return [
        {
            "request_id": f"r-{i}",
            "api_key": key.public_id,
            "model": "public/plan",
            "occurred_at": (start + dt.timedelta(minutes=5 * i)).isoformat(),
            "input_tokens": i,
            "output_tokens": 1,
        }
        for i in range(first, first + PER_BATCH)
    ]


def _drop_statistics():
    """As on a new deployment or a new month's partition: never analyzed."""
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM pg_statistic WHERE starelid IN (SELECT relid FROM pg_partition_tree('usage_callrecord'))"
            " OR starelid = 'usage_callrequest'::regclass"
        )


def _scans(plan):
    """(node type, relation, index) of every node of an EXPLAIN (ANALYZE, FORMAT JSON) plan that
    read a table (partitions pruned at run time never run and do not count)."""
    found = []
    if "Relation Name" in plan and plan.get("Actual Loops", 0) > 0:
        found.append((plan["Node Type"], plan["Relation Name"], plan.get("Index Name")))
    for child in plan.get("Plans", []):
        found += _scans(child)
    return found


def test_a_resent_batch_probes_the_unique_keys_without_statistics(tenant, other_tenant):
    key, _ = account_services.api_key_create(tenant=tenant, name="k")
    other_key, _ = account_services.api_key_create(tenant=other_tenant, name="k2")
    for first in range(0, 6 * PER_BATCH, PER_BATCH):  # 6,000 calls of the tenant this month
        assert call_records_ingest(items=_batch(key, first), now=NOW).accepted == PER_BATCH
    assert call_records_ingest(items=_batch(other_key, 0), now=NOW).accepted == PER_BATCH  # same ids
    _drop_statistics()

    resent = _batch(key, 2 * PER_BATCH)
    with CaptureQueriesContext(connection) as captured:
        result = call_records_ingest(items=resent, now=NOW)
    assert (result.accepted, result.duplicates, result.rejected) == (0, PER_BATCH, 0)

    lookups = [q["sql"] for q in captured if "usage_callrecord" in q["sql"] or "usage_callrequest" in q["sql"]]
    assert lookups, "the duplicates were judged without reading the claims or the ledger"
    scans = []
    with connection.cursor() as cursor:
        for sql in lookups:
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)
            raw = cursor.fetchone()[0]
            scans += _scans((json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"])
    ledger_and_claims = [scan for scan in scans if scan[1].startswith(("usage_callrecord", "usage_callrequest"))]
    assert ledger_and_claims
    for node_type, relation, index in ledger_and_claims:
        assert node_type == "Index Scan", (node_type, relation, index)
        assert index.endswith(("_pkey", "_tenant_id_request_id_occurred_at_key")), (relation, index)

"""Small helpers to put calls in the ledger the way ingestion does."""

import datetime as dt
import itertools

from usage import rollups
from usage.models import CallRecord

_ids = itertools.count(1)


def make_calls(tenant, specs):
    """Insert calls and mark their days dirty, like ingestion. ``specs``: dicts of CallRecord fields."""
    records = []
    for spec in specs:
        fields = {"request_id": f"req-{next(_ids)}", "input_tokens": 0, "output_tokens": 0, **spec}
        records.append(CallRecord(tenant=tenant, **fields))
    CallRecord.objects.bulk_create(records)
    rollups.mark_days_dirty(tenant=tenant, days={rollups.local_day(tenant, r.occurred_at) for r in records})
    return records


def utc(*args):
    return dt.datetime(*args, tzinfo=dt.UTC)

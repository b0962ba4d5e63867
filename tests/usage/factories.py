"""Small helpers to put calls in the ledger the way ingestion does."""

import datetime as dt
import itertools
from decimal import Decimal

from usage import localtime
from usage.models import CallRecord, ModelPrice
from usage.rollups import recompute as rollups

_ids = itertools.count(1)


def make_calls(tenant, specs):
    """Insert calls and mark their days dirty, like ingestion. ``specs``: dicts of CallRecord fields."""
    records = []
    for spec in specs:
        fields = {"request_id": f"req-{next(_ids)}", "input_tokens": 0, "output_tokens": 0, **spec}
        records.append(CallRecord(tenant=tenant, **fields))
    CallRecord.objects.bulk_create(records)
    rollups.mark_days_dirty(tenant=tenant, days={localtime.local_day(tenant, r.occurred_at) for r in records})
    return records


def utc(*args):
    return dt.datetime(*args, tzinfo=dt.UTC)


def price(model, day, inp, out="0", *, tenant=None, currency="USD", cached=None):
    """A ModelPrice from plain strings: per 1K input / output (/ cached input) tokens from ``day``."""
    return ModelPrice.objects.create(
        model=model,
        tenant=tenant,
        currency=currency,
        input_per_1k=Decimal(inp),
        output_per_1k=Decimal(out),
        cached_input_per_1k=None if cached is None else Decimal(cached),
        effective_from=day,
    )

"""Small helpers to put calls in the ledger through the real write path."""

import datetime as dt
import itertools
from decimal import Decimal

from usage import localtime
from usage.ingestion import services
from usage.ingestion.validation import validate_call
from usage.models import CallRecord, CallRequest, ModelPrice
from usage.rollups import recompute as rollups

_ids = itertools.count(1)
# An import's chunk size: a factory call of many calls stays a few statements, as the import's.
BATCH = 1000


def make_calls(tenant, specs, *, dirty=False):
    """Store calls of ``tenant`` the way ``import_calls`` does (claims, ledger rows and rollup
    increments in one transaction) and return them as CallRecords, in the order of ``specs``.

    ``specs``: dicts of CallRecord fields (``api_key`` and ``model`` as objects). Every call must
    be stored: a rejection (a key of another tenant, a revoked key, a purged instant) fails here.
    ``dirty=True`` leaves the rollups without the calls and their days dirty, so that reads take
    them from the ledger until a recompute: for the tests of that path only.
    """
    items = [_item(spec) for spec in specs]
    if dirty:
        return _stored_dirty(tenant, items)
    for start in range(0, len(items), BATCH):
        calls = [(start + line, _validated(raw)) for line, raw in enumerate(items[start : start + BATCH])]
        result = services.call_records_store(services.call_records_check(calls=calls, tenant=tenant))
        assert (result.rejected, result.duplicates) == (0, 0), result.errors
    return _in_order(tenant, items)


def _item(spec):
    fields = {"request_id": f"req-{next(_ids)}", "input_tokens": 0, "output_tokens": 0, **spec}
    key, model, at = fields.pop("api_key"), fields.pop("model"), fields.pop("occurred_at")
    raw = {k: v for k, v in fields.items() if v is not None}
    return {**raw, "api_key": key.public_id, "model": getattr(model, "name", model), "occurred_at": at.isoformat()}


def _validated(raw):
    call, errors = validate_call(raw)
    assert not errors, errors
    return call


def _in_order(tenant, items):
    ids = [raw["request_id"] for raw in items]
    stored = {call.request_id: call for call in CallRecord.objects.filter(tenant=tenant, request_id__in=ids)}
    return [stored[request_id] for request_id in ids]


def _stored_dirty(tenant, items):
    """The ledger rows and their claims, no increments; their local days marked dirty."""
    calls = [_validated(raw) for raw in items]
    checked = services.call_records_check(calls=list(enumerate(calls)), tenant=tenant)
    assert not checked.result.rejected, checked.result.errors
    records = [CallRecord(**dict(zip(services._COLUMNS, row.values, strict=True))) for row in checked.rows]
    CallRecord.objects.bulk_create(records)
    CallRequest.objects.bulk_create(
        [CallRequest(tenant_id=r.tenant_id, request_id=r.request_id, occurred_at=r.occurred_at) for r in records]
    )
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

"""The ledger's own guarantees, enforced by the database whatever code writes to it."""

import datetime as dt

import pytest
from django.db import IntegrityError, transaction

from usage.models import CallRecord

AT = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


def _call(tenant, api_key, llm, request_id="r-1", **tokens):
    fields = {"input_tokens": 10, "output_tokens": 5, **tokens}
    return CallRecord.objects.create(
        tenant=tenant, api_key=api_key, model=llm, occurred_at=AT, request_id=request_id, **fields
    )


def test_request_id_is_unique_within_a_tenant(tenant, api_key, llm):
    _call(tenant, api_key, llm)
    with pytest.raises(IntegrityError), transaction.atomic():
        _call(tenant, api_key, llm)
    assert CallRecord.objects.count() == 1


def test_the_same_request_id_may_exist_in_another_tenant(tenant, api_key, other_tenant, other_api_key, llm):
    _call(tenant, api_key, llm)
    _call(other_tenant, other_api_key, llm)
    assert CallRecord.objects.filter(request_id="r-1").count() == 2


def test_bulk_insert_ignoring_conflicts_skips_duplicates(tenant, api_key, llm):
    _call(tenant, api_key, llm)
    rows = [
        CallRecord(
            tenant=tenant, api_key=api_key, model=llm, occurred_at=AT, request_id=rid, input_tokens=1, output_tokens=1
        )
        for rid in ("r-1", "r-2")
    ]
    CallRecord.objects.bulk_create(rows, ignore_conflicts=True)
    assert sorted(CallRecord.objects.values_list("request_id", "input_tokens")) == [("r-1", 10), ("r-2", 1)]


@pytest.mark.parametrize(
    "tokens",
    [
        {"input_tokens": -1},
        {"output_tokens": -1},
        {"cached_input_tokens": -1},
        {"reasoning_tokens": -5},
    ],
)
def test_negative_token_counts_are_refused(tenant, api_key, llm, tokens):
    with pytest.raises(IntegrityError), transaction.atomic():
        _call(tenant, api_key, llm, **tokens)
    assert not CallRecord.objects.exists()


def test_not_reported_stays_apart_from_zero(tenant, api_key, llm):
    _call(tenant, api_key, llm, "none", cached_input_tokens=None, reasoning_tokens=None)
    _call(tenant, api_key, llm, "zero", cached_input_tokens=0, reasoning_tokens=0)
    stored = dict(CallRecord.objects.values_list("request_id", "cached_input_tokens"))
    assert stored == {"none": None, "zero": 0}


def test_token_counts_beyond_32_bits_are_kept_exactly(tenant, api_key, llm):
    big = 2**53 - 1
    _call(tenant, api_key, llm, input_tokens=big, output_tokens=big)
    assert CallRecord.objects.get().total_tokens == 2 * big


def test_a_key_with_calls_cannot_be_deleted(tenant, api_key, llm):
    """Reports keep a deleted key's name: the ledger protects the key row."""
    _call(tenant, api_key, llm)
    with pytest.raises(IntegrityError), transaction.atomic():
        api_key.delete()

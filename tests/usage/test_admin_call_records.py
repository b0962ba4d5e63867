"""The admin's call records: found by the beginning of a request id, newest first by time, each
page read through an index (no count of the table, no scan of it, no sort of all its rows)."""

import datetime as dt
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from usage.ingestion.services import call_records_ingest

NOW = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
# Sent out of time order (a late batch of older calls), so the storing order is not the time order.
SENT = [
    ("req-2026-11-b", NOW - dt.timedelta(hours=1)),
    ("req-2026-11-a", NOW - dt.timedelta(hours=2)),
    ("req-2026-10-z", NOW - dt.timedelta(days=25)),
    ("req-2026-11-c", NOW - dt.timedelta(days=3)),
    ("other-1", NOW - dt.timedelta(minutes=5)),
]
URL = reverse("admin:usage_callrecord_changelist")


@pytest.fixture
def ledger(api_key, other_api_key, llm):
    """The same request ids for two tenants, through the ingestion service."""
    for key in (api_key, other_api_key):
        for request_id, at in SENT:
            item = {
                "request_id": request_id,
                "api_key": key.public_id,
                "model": llm.name,
                "occurred_at": at.isoformat(),
                "input_tokens": 10,
                "output_tokens": 1,
            }
            assert call_records_ingest(items=[item], now=NOW).accepted == 1


@pytest.fixture
def admin_client(django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("root@example.test", "pw-for-tests-123"))
    return client


def _listed(response):
    return [(row.tenant.slug, row.request_id) for row in response.context["cl"].result_list]


def test_the_beginning_of_a_request_id_finds_a_tenants_calls_newest_first(admin_client, ledger, tenant):
    response = admin_client.get(URL, {"q": "req-2026-11", "tenant__id__exact": tenant.pk})
    assert _listed(response) == [("acme", "req-2026-11-b"), ("acme", "req-2026-11-a"), ("acme", "req-2026-11-c")]


def test_a_tenants_calls_are_listed_newest_first_by_time(admin_client, ledger, other_tenant):
    response = admin_client.get(URL, {"tenant__id__exact": other_tenant.pk})
    order = [request_id for _slug, request_id in _listed(response)]
    assert order == ["other-1", "req-2026-11-b", "req-2026-11-a", "req-2026-11-c", "req-2026-10-z"]


def test_across_tenants_a_prefix_finds_both_tenants_calls(admin_client, ledger):
    found = sorted(_listed(admin_client.get(URL, {"q": "req-2026-10"})))
    assert found == [("acme", "req-2026-10-z"), ("globex", "req-2026-10-z")]


def _ledger_reads(queries):
    """The changelist's reads of the ledger: the capped count and the page (a one-page list comes
    without a LIMIT: given the one of a page among many, as a big ledger has)."""
    reads = [q["sql"] for q in queries if 'FROM "usage_callrecord"' in q["sql"]]
    return [sql if "LIMIT" in sql else sql + " LIMIT 100" for sql in reads]


def _plan(sql):
    with connection.cursor() as cursor:
        # A handful of rows would be scanned and sorted whatever the indexes: price that out, so
        # the plan shows which index (if any) gives the order.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("EXPLAIN " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.skipif(connection.vendor != "postgresql", reason="plans of the partitioned ledger are PostgreSQL's")
@pytest.mark.parametrize("with_tenant", [True, False], ids=["a-tenant", "all-tenants"])
def test_each_read_goes_through_an_index_in_its_order(admin_client, ledger, tenant, with_tenant):
    params = {"tenant__id__exact": tenant.pk} if with_tenant else {}
    with CaptureQueriesContext(connection) as queries:
        assert admin_client.get(URL, params).status_code == 200
    reads = _ledger_reads(queries)
    assert len(reads) == 2, reads  # the capped count and the page
    index = "tenant_id_occurred_at_idx" if with_tenant else "_pkey"
    for sql in reads:
        plan = _plan(sql)
        assert "Seq Scan" not in plan, plan
        assert not re.search(r"(?<!Incremental )Sort  \(cost", plan), plan  # no sort of every matching row
        assert re.search(rf"Index (Only )?Scan Backward using \S+{index}", plan), plan

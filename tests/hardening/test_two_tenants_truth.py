"""Two tenants with rolled-up AND dirty data on the same days: each sees exactly its own numbers.

The expected figures are literals worked out by hand (costs as Fractions in the comments), so a
selector that drops the tenant filter on the rollup read, or a wrong cost formula, fails here.
"""

import csv
import datetime as dt
import io
from decimal import Decimal
from fractions import Fraction

import pytest

from accounts import services as account_services
from tests.usage.api_helpers import csv_body, token_client
from tests.usage.factories import make_calls, price, utc
from usage.models import DirtyDay, Model
from usage.rollups import recompute as rollups

RANGE = {"start": "2026-11-01", "end": "2026-11-28"}


@pytest.fixture
def two_tenants(tenant, other_tenant):
    llm = Model.objects.create(name="public/truth-llm")
    price(llm, "2026-01-01", "0.5", "2", cached="0.1")
    acme_key, _ = account_services.api_key_create(tenant=tenant, name="acme-key")
    globex_key, _ = account_services.api_key_create(tenant=other_tenant, name="globex-key")

    # Both tenants have rolled-up rows on 2026-11-20 and 21; then Acme's 21st and Globex's 20th
    # get more calls and are dirty (read from the ledger), the other two days come from rollups.
    def acme(day, hour, inp, out, cached=None, dirty=False):
        make_calls(
            tenant,
            [
                {
                    "api_key": acme_key,
                    "model": llm,
                    "occurred_at": utc(2026, 11, day, hour),
                    "input_tokens": inp,
                    "output_tokens": out,
                    "cached_input_tokens": cached,
                }
            ],
            dirty=dirty,
        )

    def globex(day, hour, inp, out, dirty=False):
        make_calls(
            other_tenant,
            [
                {
                    "api_key": globex_key,
                    "model": llm,
                    "occurred_at": utc(2026, 11, day, hour),
                    "input_tokens": inp,
                    "output_tokens": out,
                }
            ],
            dirty=dirty,
        )

    acme(20, 9, 1000, 100, cached=400)
    acme(21, 9, 500, 50)
    globex(20, 9, 3000, 300)
    globex(21, 9, 4000, 400)
    rollups.usage_rollup_dirty(tenant=tenant)
    rollups.usage_rollup_dirty(tenant=other_tenant)
    acme(21, 10, 1500, 150, dirty=True)
    globex(20, 10, 5000, 500, dirty=True)
    assert set(DirtyDay.objects.values_list("tenant__slug", "day")) == {
        ("acme", dt.date(2026, 11, 21)),
        ("globex", dt.date(2026, 11, 20)),
    }
    return tenant, other_tenant  # fmt: skip


# Acme: input 3000 (400 cached), output 300.
#   cost = (3000-400) x 0.5/1K + 400 x 0.1/1K + 300 x 2/1K = 1.3 + 0.04 + 0.6 = 1.94
ACME_COST = Fraction(2600, 1000) * Fraction(1, 2) + Fraction(400, 1000) * Fraction(1, 10) + Fraction(300, 1000) * 2
# Globex (Asia/Kolkata: 09:00 and 10:00 UTC are 14:30 and 15:30, the same local days): input 12000, output 1200.
#   cost = 12000 x 0.5/1K + 1200 x 2/1K = 6 + 2.4 = 8.40
GLOBEX_COST = Fraction(12000, 1000) * Fraction(1, 2) + Fraction(1200, 1000) * 2


def test_the_hand_worked_costs():
    assert Fraction(194, 100) == ACME_COST
    assert Fraction(840, 100) == GLOBEX_COST


def test_summary_of_each_tenant_is_its_own(two_tenants):
    acme, globex = two_tenants
    a = token_client(acme).get("/api/v1/usage/summary", RANGE).json()
    g = token_client(globex).get("/api/v1/usage/summary", RANGE).json()
    assert (a["calls"], a["input_tokens"], a["output_tokens"], a["cached_input_tokens"]) == (3, 3000, 300, 400)
    assert (g["calls"], g["input_tokens"], g["output_tokens"], g["cached_input_tokens"]) == (3, 12000, 1200, None)
    assert a["cost"] == [{"amount": "1.94", "currency": "USD", "unpriced_tokens": 0}]
    assert g["cost"] == [{"amount": "8.40", "currency": "USD", "unpriced_tokens": 0}]
    assert Decimal(a["cost"][0]["amount"]) == Decimal(ACME_COST.numerator) / ACME_COST.denominator


def test_daily_timeseries_of_each_tenant_is_its_own(two_tenants):
    acme, globex = two_tenants
    for tenant_, totals in ((acme, [1100, 2200]), (globex, [8800, 4400])):
        body = token_client(tenant_).get("/api/v1/usage/timeseries", {**RANGE, "granularity": "day"}).json()
        points = [p for series in body["series"] for p in series["points"] if p["total_tokens"]]
        assert [p["total_tokens"] for p in points] == totals


def test_csv_of_each_tenant_is_its_own(two_tenants):
    acme, globex = two_tenants
    for tenant_, key_name, inp in ((acme, "acme-key", 3000), (globex, "globex-key", 12000)):
        rows = list(csv.DictReader(io.StringIO(csv_body(token_client(tenant_).get("/api/v1/usage/export.csv", RANGE)))))
        assert len(rows) == 2  # one per day x key x model
        assert all(key_name in row.values() for row in rows)
        assert sum(int(row["input_tokens"]) for row in rows) == inp

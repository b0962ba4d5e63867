"""Stored costs of closed days (``usage.reporting.day_costs``): used while valid, never once stale.

Two tenants with calls on the same closed days, prices in two currencies (a contract price in
EUR) and an unpriced model. Each read clears the cache, so the grid is read from the stored costs
(or computes and stores them), and equals ground truth computed from the ledger in Python:
one exact line per local day x key x model at the price in force, then summed.
"""

import datetime as dt
import random
import threading
from decimal import Decimal
from fractions import Fraction

import pytest
from django.core.cache import cache
from django.db import connection, connections
from django.db.models import F, Q

from accounts import services as accounts
from usage import localtime
from usage.ingestion import services
from usage.models import CallRecord, Model, ModelPrice, UsageDailyModel
from usage.reporting.costs import PriceBook, PriceTerms, line_cost
from usage.reporting.grid import usage_grid
from usage.reporting.periods import Period
from usage.reporting.selectors import Totals, UsageFilters
from usage.rollups import recompute as rollups

from .factories import price, utc

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="stored day costs are a PostgreSQL feature (exact numeric)"
)

NOW = utc(2026, 11, 28, 15, 30)
CLOSED = Period(dt.date(2026, 11, 10), dt.date(2026, 11, 27))  # all before NOW's day in both zones


@pytest.fixture(autouse=True)
def _clock(monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)


@pytest.fixture
def world(db):
    tenants = [
        accounts.tenant_create(slug="acme", name="Acme", timezone_name="UTC"),
        accounts.tenant_create(slug="globex", name="Globex", timezone_name="America/New_York"),
    ]
    keys = {t.pk: [accounts.api_key_create(tenant=t, name=f"key-{n}")[0] for n in range(2)] for t in tenants}
    models = [Model.objects.create(name=f"public/model-{n}") for n in range(3)]
    price(models[0], dt.date(2026, 1, 1), "0.137", "0.411", cached="0.013")
    price(models[0], dt.date(2026, 11, 18), "0.171", "0.533")
    price(models[1], dt.date(2026, 1, 1), "1.003", "2.997")
    price(models[1], dt.date(2026, 11, 15), "0.901", "2.503", tenant=tenants[1], currency="EUR")
    return tenants, keys, models  # models[2] has no price


def _send(rng, tenants, keys, models, count, *, prefix):
    items = []
    for n in range(count):
        tenant = rng.choice(tenants)
        when = utc(2026, 11, 10) + dt.timedelta(seconds=rng.randrange(0, 18 * 86400))
        item = {
            "request_id": f"{prefix}-{n}",
            "api_key": rng.choice(keys[tenant.pk]).public_id,
            "model": rng.choice(models).name,
            "occurred_at": when.isoformat().replace("+00:00", "Z"),
            "input_tokens": rng.randrange(0, 5000),
            "output_tokens": rng.randrange(0, 2000),
        }
        if rng.random() < 0.5:
            item["cached_input_tokens"] = rng.randrange(0, item["input_tokens"] + 1)
        items.append(item)
    result = services.call_records_ingest(items=items, now=NOW)
    assert result.accepted == count


def truth(tenant):
    """{model id: (calls, input, output, {(day, currency): amount}, unpriced tokens)} from the ledger."""
    tenant.refresh_from_db()
    start, end = localtime.day_span(tenant, CLOSED.start, CLOSED.end)
    prices = ModelPrice.objects.filter(Q(tenant__isnull=True) | Q(tenant=tenant))
    book = PriceBook(PriceTerms._make(row) for row in prices.values_list(*PriceTerms._fields))
    lines = {}
    for record in CallRecord.objects.filter(tenant=tenant, occurred_at__gte=start, occurred_at__lt=end):
        day = record.occurred_at.astimezone(tenant.tz).date()
        line = lines.setdefault((day, record.api_key_id, record.model_id), Totals())
        lines[(day, record.api_key_id, record.model_id)] = line + Totals(
            1, record.input_tokens, record.output_tokens, record.cached_input_tokens, record.reasoning_tokens
        )
    result = {}
    for (day, _key, model_id), totals in lines.items():
        calls, inp, out, amounts, unpriced = result.get(model_id, (0, 0, 0, {}, 0))
        in_force = book.price_for(model_id, day)
        if in_force is None:
            unpriced += totals.total_tokens
        else:
            slot = (day, in_force.currency)
            amounts[slot] = amounts.get(slot, Decimal(0)) + line_cost(price=in_force, totals=totals)
        result[model_id] = (
            calls + totals.calls,
            inp + totals.input_tokens,
            out + totals.output_tokens,
            amounts,
            unpriced,
        )
    return result


def read(tenant):
    cache.clear()  # past the grid cache: the stored costs (or their computing) answer
    tenant.refresh_from_db()
    grid = usage_grid(tenant=tenant, filters=UsageFilters(CLOSED))
    shaped = {}
    for model_id, usage in grid.models.items():
        amounts = {}
        for currency, values in usage.cost.items():
            amounts.update({(day, currency): v for day, v in zip(grid.days, values, strict=True) if v is not None})
        shaped[model_id] = (sum(usage.calls), sum(usage.input), sum(usage.output), amounts, usage.unpriced_tokens)
    return shaped


def stored_rows(tenant):
    return UsageDailyModel.objects.filter(tenant=tenant, day__range=(CLOSED.start, CLOSED.end))


def check(tenants, label):
    for tenant in tenants:
        assert read(tenant) == truth(tenant), (label, tenant.slug)


def test_stored_costs_follow_every_change(world):
    tenants, keys, models = world
    rng = random.Random(11)
    _send(rng, tenants, keys, models, 300, prefix="a")
    check(tenants, "first read computes and stores")
    rows = stored_rows(tenants[0])
    assert rows.exists() and not rows.exclude(cost_revision=F("revision")).exists()
    check(tenants, "second read from the stored costs")
    _send(rng, tenants, keys, models, 40, prefix="late")  # late calls: revisions move
    check(tenants, "after late calls")
    edited = ModelPrice.objects.get(model=models[0], effective_from=dt.date(2026, 11, 18))
    edited.input_per_1k = Decimal("0.5")  # an edit in place, as the admin does
    edited.save()
    check(tenants, "after a price edit")
    price(models[2], dt.date(2026, 11, 20), "2", "3", currency="EUR")  # the unpriced model gets a price
    check(tenants, "after a new price")
    rollups.usage_rebuild(tenant=tenants[0])  # new rows: nothing stored on them yet
    check(tenants, "after a rebuild")
    tenants[1].timezone = "Asia/Kolkata"
    tenants[1].save()
    rollups.usage_rollup_dirty(tenant=tenants[1])
    check(tenants, "after a zone change")


def test_a_valid_stored_cost_is_what_is_read_and_a_stale_one_never(world):
    tenants, keys, models = world
    tenant, other = tenants
    _send(random.Random(5), tenants, keys, models, 200, prefix="b")
    expected, expected_other = truth(tenant), truth(other)
    assert read(tenant) == expected  # stores
    row = stored_rows(tenant).filter(model=models[1], cost_currency="USD").order_by("day").first()
    UsageDailyModel.objects.filter(pk=row.pk).update(cost_amount=row.cost_amount + Decimal("1000"))
    tampered = read(tenant)[models[1].pk][3][(row.day, "USD")]
    assert tampered == expected[models[1].pk][3][(row.day, "USD")] + 1000  # read as stored: no recompute
    assert read(other) == expected_other  # the other tenant's rows are its own
    UsageDailyModel.objects.filter(pk=row.pk).update(cost_revision=row.revision - 1)  # now stale
    assert read(tenant) == expected


@pytest.mark.django_db(transaction=True)
def test_a_locked_row_is_not_waited_for_and_stored_by_a_later_read(world):
    tenants, keys, models = world
    tenant = tenants[0]
    _send(random.Random(9), tenants, keys, models, 120, prefix="c")
    expected = truth(tenant)
    row = stored_rows(tenant).order_by("day").first()
    locked, release = threading.Event(), threading.Event()

    def hold_lock():  # what an ingesting transaction does to a late call's row
        with connections["default"].cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(f"SELECT 1 FROM {UsageDailyModel._meta.db_table} WHERE id = %s FOR UPDATE", [row.pk])
            locked.set()
            release.wait(10)
            cursor.execute("ROLLBACK")
        connections["default"].close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    assert locked.wait(10)
    try:
        assert read(tenant) == expected  # the store gives up on the lock; the numbers are right
        assert not stored_rows(tenant).exclude(cost_revision=None).exists()
    finally:
        release.set()
        holder.join()
    assert read(tenant) == expected
    assert not stored_rows(tenant).filter(cost_revision=None).exists()


def _exact_day_costs(tenant):
    """{(local day, model id): Fraction} of the tenant's priced calls on CLOSED, from the ledger and
    the platform prices (the tenant has no contract), independently of the cost engine."""
    start, end = localtime.day_span(tenant, CLOSED.start, CLOSED.end)
    costs = {}
    for record in CallRecord.objects.filter(tenant=tenant, occurred_at__gte=start, occurred_at__lt=end):
        day = record.occurred_at.astimezone(tenant.tz).date()
        terms = ModelPrice.objects.filter(model_id=record.model_id, tenant=None, effective_from__lte=day)
        terms = terms.order_by("-effective_from").first()
        if terms is None:
            continue
        cached = record.cached_input_tokens or 0
        cached_rate = terms.input_per_1k if terms.cached_input_per_1k is None else terms.cached_input_per_1k
        cost = (
            (record.input_tokens - cached) * Fraction(terms.input_per_1k)
            + cached * Fraction(cached_rate)
            + record.output_tokens * Fraction(terms.output_per_1k)
        ) / 1000
        costs[(day, record.model_id)] = costs.get((day, record.model_id), Fraction(0)) + cost
    return costs


def test_costs_are_stored_exact_and_rounded_ones_of_the_previous_release_never_read(world):
    tenants, keys, models = world
    tenant = tenants[0]
    _send(random.Random(9), tenants, keys, models, 200, prefix="c")
    read(tenant)  # computes and stores
    exact = _exact_day_costs(tenant)
    rows = stored_rows(tenant).exclude(cost_currency=None)
    assert {(row.day, row.model_id): Fraction(row.cost_amount) for row in rows} == exact  # every decimal kept
    # What the previous release stored: terms without the format mark, amounts of rounded lines.
    for row in rows:
        terms = ModelPrice.objects.filter(model_id=row.model_id, tenant=None, effective_from__lte=row.day)
        terms = terms.order_by("-effective_from").first()
        old_terms = f"{terms.currency} {terms.input_per_1k} {terms.output_per_1k} {terms.cached_input_per_1k} 2"
        rounded = row.cost_amount.quantize(Decimal("0.01"))
        UsageDailyModel.objects.filter(pk=row.pk).update(cost_terms=old_terms, cost_amount=rounded)
    grid = read(tenant)
    assert {(day, model_id) for model_id, usage in grid.items() for day, _currency in usage[3]} == set(exact)
    for model_id, usage in grid.items():
        for (day, _currency), amount in usage[3].items():
            assert Fraction(amount) == exact[(day, model_id)], (day, model_id)

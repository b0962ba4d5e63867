"""Stored costs of closed days: a grid of days before today costs a read of per-model rows.

Costing a range means costing every day x key x model line (``usage.reporting.costs``): for 90 days of a
big tenant that is 14,400 lines, the larger part of a page read with an empty cache. A closed
day rarely changes, so its cost per model is kept on its ``UsageDailyModel`` row, stored by the
first read that computes it:

- ``cost_revision`` is the row's ``revision`` the cost was computed at. Every increment bumps
  the revision and a recompute inserts new rows, so a late call or a rebuild leaves the stored
  cost stale, never wrong: it is used only while ``cost_revision = revision``.
- ``cost_terms`` is the price in force for the model on that day (currency and per-1K prices)
  and the form of the stored amount (``TERMS_FORMAT``): a price added, edited or deleted changes
  it, and so did the change from amounts rounded per line to exact ones.
- ``cost_amount`` is the exact sum of the day's lines (``AMOUNT_DECIMALS`` decimals are kept:
  all an exact line cost can have), never rounded.
- The cost is computed by ``usage.reporting.costs_sql`` (the same rule, exact), in a statement that
  also reads the revision, and stored only where the revision is still the one read; storing
  is best effort (it gives up at once on a lock held by ingestion and is retried by a later
  read), so a read never waits on, or fails because of, the store.

PostgreSQL only (the SQL cost engine's exact numeric); reads filtered by API key, dirty days,
today and SQLite take the line-by-line path of ``usage.reporting.grid``.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from django.db import DatabaseError, connection, transaction

from usage.models import UsageDailyModel

if TYPE_CHECKING:
    from usage.reporting.costs import Price, PriceBook
    from usage.reporting.query import UsageQuery
from usage.reporting import costs_sql

log = logging.getLogger(__name__)

_TABLE = UsageDailyModel._meta.db_table
# Leads every stored ``cost_terms``: rows stored by a release that rounded each line (whose terms
# had no such mark) never match, so their rounded amounts are computed again, exactly.
TERMS_FORMAT = "exact"
_READ_SQL = f"""
SELECT id, day, model_id, calls, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens,
       cache_creation_input_tokens, cache_creation_1h_input_tokens,
       revision, cost_revision, cost_terms, cost_currency, cost_amount, cost_unpriced
FROM {_TABLE} WHERE tenant_id = %s AND day BETWEEN %s AND %s
"""


def terms(price: Price | None) -> str:
    """The stored form of the price in force (None: no price), compared on every read."""
    if price is None:
        return ""
    base = f"{TERMS_FORMAT} {price.currency} {price.input_per_1k} {price.output_per_1k} {price.cached_input_per_1k}"
    return base + f" {price.request_fee} {price.pricing_rules}" + class_terms(price)


def class_terms(price: Price) -> str:
    """The token class rates of issue 26 (cache writes, one-hour writes, reasoning) as stored terms.

    Always present, even when empty: stored costs of the release before cache writes were costed
    (whose terms end at the cached rate) never match, so a day whose calls reported cache writes
    is costed again with them."""
    return f" classes {price.cache_write_per_1k} {price.cache_write_1h_per_1k} {price.reasoning_per_1k}"


class DayCost(NamedTuple):
    """One closed day's usage and cost of one model."""

    day: dt.date
    model_id: int
    sums: list[Any]  # calls, input, output, cached, reasoning, cache writes, 1h writes: Totals' fields
    currency: str | None
    amount: Decimal | None
    unpriced: int


def applies(query: UsageQuery, *, dirty: bool, closed: bool, call_priced: bool = False) -> bool:
    """Stored costs serve closed, clean days of the per-model daily grid of all keys (PostgreSQL),
    while no call-priced price (``usage.pricing_rules``) may be in force in the period."""
    return (
        not call_priced
        and connection.vendor == "postgresql"
        and closed
        and not dirty
        and query.bucket == "day"
        and query.by == "model"
        and query.api_key is None
    )


def day_rows(query: UsageQuery, book: PriceBook) -> list[DayCost]:
    """The closed period's ``DayCost`` rows: one read of the per-model rows, the stale costs
    computed and stored."""
    period = query.period
    scoped, scope_params = query.sql_scope(key=False)
    with connection.cursor() as cursor:
        cursor.execute(_READ_SQL + scoped, [query.tenant.pk, period.start, period.end, *scope_params])
        rows = cursor.fetchall()
    result: list[DayCost] = []
    stale: dict[tuple[dt.date, int], Any] = {}
    known: dict[Any, str] = {}
    for pk, day, model_id, *sums, revision, cost_revision, cost_terms, currency, amount, unpriced in rows:
        price = book.price_for(model_id, day)
        wanted = known.get(price)
        if wanted is None:
            wanted = known[price] = terms(price)
        if cost_revision == revision and cost_terms == wanted:
            result.append(DayCost(day, model_id, sums, currency, amount, unpriced or 0))
        else:
            stale[(day, model_id)] = (pk, sums, wanted)
    if stale:
        result.extend(_cost_and_store(query, book, stale))
    return result


def _cost_and_store(query: UsageQuery, book: PriceBook, stale: dict[tuple[dt.date, int], Any]) -> list[DayCost]:
    """Cost the stale (day, model) rows with ``usage.reporting.costs_sql``, store what is still current."""
    costed = {}  # (day, model id) -> (currency, amount, unpriced tokens, revision)
    # One statement over the stale days' whole span, not one per run of consecutive days: stale
    # days far apart (a tenant active every other day) would otherwise cost a query per point.
    days = [day for day, _model in stale]
    for key, currency, _unpriced_model, amount, tokens, revision in costs_sql.cost_rows_with_revision(
        query, book=book, first=min(days), last=max(days)
    ):
        if key in stale:
            unpriced = int(tokens) if currency is None else 0
            costed[key] = (currency, None if currency is None else amount, unpriced, revision)
    rows, updates = [], []
    for (day, model_id), (pk, sums, wanted) in stale.items():
        currency, amount, unpriced, revision = costed.get((day, model_id), (None, None, 0, None))
        rows.append(DayCost(day, model_id, sums, currency, amount, unpriced))
        if revision is not None:
            updates.append((pk, revision, wanted, currency, amount, unpriced))
    _store(updates)
    return rows


def _store(updates: list[tuple[Any, ...]]) -> None:
    if not updates:
        return
    values = ", ".join(["(%s, %s, %s, %s, %s::numeric, %s)"] * len(updates))
    params = [value for row in updates for value in row]
    sql = f"""
        UPDATE {_TABLE} AS u SET cost_revision = v.revision, cost_terms = v.terms, cost_currency = v.currency,
               cost_amount = v.amount, cost_unpriced = v.unpriced
        FROM (VALUES {values}) AS v (id, revision, terms, currency, amount, unpriced)
        WHERE u.id = v.id AND u.revision = v.revision
    """  # noqa: S608 (placeholders only)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            # Ingestion holds these rows' locks while it increments a late call: skip, do not wait.
            cursor.execute("SET LOCAL lock_timeout = '50ms'")
            cursor.execute(sql, params)
    except DatabaseError as error:  # a lock or a read-only replica: a later read stores them
        log.info("Day costs not stored (%s): %s", len(updates), error)

"""The cost rule of ``usage.reporting.costs``, evaluated inside PostgreSQL.

Costing in Python reads every day x key x model line into the process (14,400 lines for 90 days
of a tenant with 8 keys and 20 models: about 200 ms). Here the database costs each line and
returns one exact sum per group and currency. The rule is the same, to the digit:

- the price in force is resolved in Python by ``PriceBook`` (tenant contract price first) and
  sent as runs of days over which one price holds, so the SQL only joins on (model, day);
- PostgreSQL's ``numeric`` multiplies and adds exactly, and nothing is divided: the prices
  arrive pre-scaled (Decimal, exactly) from per 1K tokens to per token;
- nothing is rounded: the lines' exact costs are summed per currency (rounding is for the figure
  shown, ``usage.reporting.money``); unpriced lines are counted by model.

Only for clean periods on PostgreSQL: a day still marked dirty is costed from the ledger by the
Python path, and SQLite has no exact decimal type.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import connection

from usage.models import Model, UsageDaily, UsageDailyModel
from usage.pricing_rules import is_call_priced
from usage.reporting.class_rates import rates
from usage.reporting.periods import Period
from usage.reporting.query import UsageQuery, query_of

if TYPE_CHECKING:
    from accounts.models import Tenant
    from usage.reporting.costs import PriceBook
    from usage.reporting.selectors import UsageFilters

_GROUP_COLUMNS = {"model": "d.model_id", "api_key": "d.api_key_id", "day": "d.day"}
_NO_PRICE = (
    "(-1, NULL::date, NULL::date, 0::numeric, 0::numeric, 0::numeric, 0::numeric, 0::numeric, 0::numeric, NULL::text,"
    " false)"
)
_PRICE_ROW = (
    "(%s, %s::date, %s::date, %s::numeric, %s::numeric, %s::numeric, %s::numeric, %s::numeric, %s::numeric, %s, %s)"
)
_PER_TOKEN = Decimal(1000)


def applies(
    *, query: UsageQuery | None = None, tenant: Tenant | None = None, filters: UsageFilters | None = None
) -> bool:
    """True when this path gives the same answer as the Python one and is available: on
    PostgreSQL, for a query (or a tenant and its filters) without dirty days."""
    if connection.vendor != "postgresql":
        return False
    return not query_of(query, tenant, filters).dirty_days


def price_runs(book: PriceBook, period: Period) -> Iterator[tuple[int, dt.date, dt.date, Any]]:
    """(model_id, first_day, last_day, price) over which one price is in force within ``period``."""
    starts_by_model: dict[int, set[dt.date]] = {}
    for price in book.prices():
        if period.start < price.effective_from <= period.end:
            starts_by_model.setdefault(price.model_id, set()).add(price.effective_from)
        starts_by_model.setdefault(price.model_id, set()).add(period.start)
    for model_id, start_set in starts_by_model.items():
        starts = sorted(start_set)
        for index, first in enumerate(starts):
            last = starts[index + 1] - dt.timedelta(days=1) if index + 1 < len(starts) else period.end
            in_force = book.price_for(model_id, first)
            if in_force is not None:
                yield model_id, first, last, in_force


def _price_values(book: PriceBook, period: Period) -> tuple[str, list[Any]]:
    """VALUES rows of the price runs: each class's rate (``costs.rates``: the empty ones resolved),
    pre-scaled (exactly) from per 1K tokens to per token."""
    rows, params = [], []
    for model_id, first, last, price in price_runs(book, period):
        rate = rates(price)
        rows.append(_PRICE_ROW)
        params += [model_id, first, last, rate.input / _PER_TOKEN, rate.output / _PER_TOKEN]
        params += [rate.cached / _PER_TOKEN, rate.write_5m / _PER_TOKEN, rate.write_1h / _PER_TOKEN]
        params += [rate.reasoning / _PER_TOKEN, price.currency]
        # A call-priced run is left out here: ``CostEngine`` costs it from its pricing classes.
        params += [is_call_priced(price)]
    return ", ".join(rows or [_NO_PRICE]), params


def _lines(price_rows: str, group_columns: list[str], scoped: str) -> str:
    """The ``WITH`` clause of the costed lines: group columns g0.., model_id, currency, tokens and
    the exact cost of each token class (c_input, c_cached, c_write, c_output), the rule of
    ``costs.class_costs`` (each class capped at what contains it)."""
    group_select = "".join(f"{column} AS g{index}, " for index, column in enumerate(group_columns))
    return f"""
        WITH p (model_id, first_day, last_day, inp, outp, cachedp, writep, write1hp, reasonp, currency, cx)
             AS (VALUES {price_rows}),
        lines AS MATERIALIZED (
            SELECT {group_select}d.model_id, p.currency, d.input_tokens + d.output_tokens AS tokens,
                   (d.input_tokens - d.cached - d.writes) * p.inp AS c_input,
                   d.cached * p.cachedp AS c_cached,
                   (d.writes - d.writes_1h) * p.writep + d.writes_1h * p.write1hp AS c_write,
                   (d.output_tokens - d.reasoning) * p.outp + d.reasoning * p.reasonp AS c_output
            FROM (SELECT w.*, LEAST(COALESCE(w.cache_creation_1h_input_tokens, 0), w.writes) AS writes_1h
                  FROM (SELECT c.*,
                               LEAST(COALESCE(c.cache_creation_input_tokens, 0), c.input_tokens - c.cached) AS writes,
                               LEAST(COALESCE(c.reasoning_tokens, 0), c.output_tokens) AS reasoning
                        FROM (SELECT *, LEAST(COALESCE(cached_input_tokens, 0), input_tokens) AS cached
                              FROM {UsageDaily._meta.db_table}
                              WHERE tenant_id = %s AND day BETWEEN %s AND %s {scoped}) c) w) d
            LEFT JOIN p ON p.model_id = d.model_id AND d.day BETWEEN p.first_day AND p.last_day
            WHERE p.cx IS NOT TRUE
        )"""


def _statement(price_rows: str, group_columns: list[str], scoped: str) -> str:
    group_names = "".join(f"g{index}, " for index in range(len(group_columns)))
    positions = ", ".join(str(position) for position in range(1, len(group_columns) + 3))
    return f"""{_lines(price_rows, group_columns, scoped)}
        SELECT {group_names}currency, CASE WHEN currency IS NULL THEN model_id END,
               SUM(c_input + c_cached + c_write + c_output), SUM(tokens)
        FROM lines GROUP BY {positions}
    """


def class_cost_rows(query: UsageQuery, *, book: PriceBook, groups: tuple[str, ...]) -> Iterator[tuple[Any, ...]]:
    """Yield (group key tuple, currency, input, cached read, cache write, output) of the priced
    lines: the exact cost per token class of each group and currency."""
    price_rows, params = _price_values(book, query.period)
    scoped, scope_params = query.sql_scope()
    columns = [_GROUP_COLUMNS[name] for name in groups]
    group_names = "".join(f"g{index}, " for index in range(len(columns)))
    positions = ", ".join(str(position) for position in range(1, len(columns) + 2))
    sql = f"""{_lines(price_rows, columns, scoped)}
        SELECT {group_names}currency, SUM(c_input), SUM(c_cached), SUM(c_write), SUM(c_output)
        FROM lines WHERE currency IS NOT NULL GROUP BY {positions}
    """  # noqa: S608 (our columns and placeholders only)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, query.tenant.pk, query.period.start, query.period.end, *scope_params])
        for row in cursor.fetchall():
            yield tuple(row[: len(groups)]), *row[len(groups) :]


def cost_rows(query: UsageQuery, *, book: PriceBook, groups: tuple[str, ...]) -> Iterator[tuple[Any, ...]]:
    """Yield (group key tuple, currency or None, unpriced model id or None, exact amount, tokens)."""
    price_rows, params = _price_values(book, query.period)
    scoped, scope_params = query.sql_scope()
    sql = _statement(price_rows, [_GROUP_COLUMNS[name] for name in groups], scoped)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, query.tenant.pk, query.period.start, query.period.end, *scope_params])
        for row in cursor.fetchall():
            yield tuple(row[: len(groups)]), *row[len(groups) :]


def cost_rows_with_revision(
    query: UsageQuery, *, book: PriceBook, first: dt.date, last: dt.date
) -> Iterator[tuple[Any, ...]]:
    """Yield ((day, model id), currency, unpriced model, amount, tokens, revision) for the days
    ``first``..``last`` of ``filters``: the cost per day and model with the ``revision`` of its
    per-model row, read in one statement (one snapshot), so the two belong together."""
    price_rows, params = _price_values(book, Period(first, last))
    scoped, scope_params = query.sql_scope(key=False)
    inner = _statement(price_rows, [_GROUP_COLUMNS["day"], _GROUP_COLUMNS["model"]], scoped)
    sql = f"""SELECT c.*, m.revision FROM ({inner}) AS c (day, model_id, currency, unpriced_model, amount, tokens)
        JOIN {UsageDailyModel._meta.db_table} m ON m.tenant_id = %s AND m.day = c.day AND m.model_id = c.model_id"""  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, query.tenant.pk, first, last, *scope_params, query.tenant.pk])
        for day, model_id, *rest in cursor.fetchall():
            yield (day, model_id), *rest


def model_names(ids: Iterable[int | None]) -> dict[int, str]:
    return {pk: model.name for pk, model in Model.objects.in_bulk([pk for pk in ids if pk is not None]).items()}

"""CSV export of usage: one row per local day x API key x model, streamed.

Served twice with the same rows: at /api/v1/usage/export.csv for integrations and at
/t/<slug>/usage/export.csv for the Usage Statistics page's Export button. Both read the same
query as the page (``UsageQuery.rows``: the same selector and cost engine), a week of days at a time, so an export
of months starts at once and its memory stays flat.

Each row also has its cost and currency at the price in force that day (``CostEngine.line``), the
cost exact (``money.amount_text``: "0.3164304", never rounded), so the rows add up to the page's
and the API's totals to the last digit; the prices are read once, after the header, so the
header still leaves before any query.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING

from django.http import StreamingHttpResponse

from usage.reporting.costs import ClassCosts
from usage.reporting.money import amount_text
from usage.reporting.query import UsageQuery, query_of

if TYPE_CHECKING:
    from accounts.models import Tenant
    from usage.reporting.selectors import UsageFilters

if TYPE_CHECKING:
    from accounts.models import Tenant
    from usage.reporting.selectors import UsageFilters

COLUMNS = [
    "date",
    "api_key",
    "api_key_name",
    "model",
    "calls",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cache_creation_input_tokens",
    "cache_creation_1h_input_tokens",
    "cost",
    "currency",
    # The line's exact cost per token class (``usage.reporting.costs.TOKEN_CLASSES``): they add up to cost.
    "cost_input",
    "cost_cached_read",
    "cost_cache_write",
    "cost_output",
]
# A spreadsheet runs a cell that starts like a formula; names typed by users must stay text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    """A file-like object whose write returns the line, so csv.writer can feed a generator."""

    def write(self, value: str) -> str:
        return value


def _text(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def _count(value: object) -> object:
    return "" if value is None else value  # not reported: an empty cell, never 0


def _class_cells(classes: ClassCosts | None, currency: str | None) -> list[str]:
    if classes is None or currency is None:
        return [""] * len(ClassCosts._fields)
    return [amount_text(amount, currency) for amount in classes]


def csv_lines(
    *, tenant: Tenant | None = None, filters: UsageFilters | None = None, query: UsageQuery | None = None
) -> Iterator[str]:
    """The CSV's lines (the header first, before any query), one per ``UsageQuery.rows`` row."""
    query = query_of(query, tenant, filters)
    writer = csv.writer(_Echo(), lineterminator="\r\n")
    yield writer.writerow(COLUMNS)
    for row in query.rows():
        totals = row.totals
        yield writer.writerow(
            [
                row.day.isoformat(),
                row.api_key.public_id,
                _text(row.api_key.name),
                _text(row.model.name),
                totals.calls,
                totals.input_tokens,
                totals.output_tokens,
                _count(totals.cached_input_tokens),
                _count(totals.reasoning_tokens),
                _count(totals.cache_creation_input_tokens),
                _count(totals.cache_creation_1h_input_tokens),
                "" if row.cost.currency is None else amount_text(row.cost.amount or Decimal(0), row.cost.currency),
                row.cost.currency or "",
                *_class_cells(row.classes, row.cost.currency),
            ]
        )


def export_response(
    *, tenant: Tenant | None = None, filters: UsageFilters | None = None, query: UsageQuery | None = None
) -> StreamingHttpResponse:
    """The streamed CSV of a ``UsageQuery`` (or of a tenant and its filters)."""
    query = query_of(query, tenant, filters)
    lines = (line.encode() for line in csv_lines(query=query))
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    name = f"usage-{query.tenant.slug}-{query.period.start}-{query.period.end}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "private, no-store"
    return response

"""CSV export of usage: one row per local day x API key x model, streamed.

Served twice with the same rows: at /api/v1/usage/export.csv for integrations and at
/t/<slug>/usage/export.csv for the Usage Statistics page's Export button. Both read the same
filters as the page and the same selector (``usage_rows``), a week of days at a time, so an export
of months starts at once and its memory stays flat.

Each row also has its cost and currency at the price in force that day (``usage.reporting.costs``); the
prices are read once, after the header, so the header still leaves before any query.
"""

import csv

from django.http import StreamingHttpResponse

from usage.reporting.costs import prices_in_force, row_cost
from usage.reporting.selectors import usage_rows

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
    "cost",
    "currency",
]
# A spreadsheet runs a cell that starts like a formula; names typed by users must stay text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    """A file-like object whose write returns the line, so csv.writer can feed a generator."""

    def write(self, value):
        return value


def _text(value):
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def _count(value):
    return "" if value is None else value  # not reported: an empty cell, never 0


def _price_book(tenant, filters):
    """Every price the rows can need, in one query: the filtered model's, or all models'."""
    model_ids = None if filters.model is None else [filters.model.pk]
    return prices_in_force(tenant=tenant, model_ids=model_ids, period=filters.period)


def csv_lines(*, tenant, filters):
    writer = csv.writer(_Echo(), lineterminator="\r\n")
    yield writer.writerow(COLUMNS)
    book = _price_book(tenant, filters)
    for day, key, model, totals in usage_rows(tenant=tenant, filters=filters):
        amount, currency = row_cost(book, day, model.pk, totals)
        yield writer.writerow(
            [
                day.isoformat(),
                key.public_id,
                _text(key.name),
                _text(model.name),
                totals.calls,
                totals.input_tokens,
                totals.output_tokens,
                _count(totals.cached_input_tokens),
                _count(totals.reasoning_tokens),
                _count(amount),
                currency or "",
            ]
        )


def export_response(*, tenant, filters):
    lines = (line.encode() for line in csv_lines(tenant=tenant, filters=filters))
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    name = f"usage-{tenant.slug}-{filters.period.start}-{filters.period.end}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "private, no-store"
    return response

"""What the Usage Statistics page shows, and the JSON endpoints its charts and refresh read.

The page renders the same dictionaries server-side that the endpoints return, so the first
paint has numbers without waiting for JavaScript and a refresh can never disagree with it.
Chart endpoints subclass django-chartjs's ``BaseLineChartView`` but return only chart data:
its default context would also serialise the view object and the URL arguments.
"""

import datetime as dt
from decimal import Decimal
from urllib.parse import urlencode

from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import json_script

from usage.dashboard.colors import chart_colors, model_color
from usage.ledger import partitions
from usage.ledger.retention import purge_horizon
from usage.models import Model
from usage.reporting import selectors
from usage.reporting.cache_economics import cache_economics
from usage.reporting.comparisons import on_record, previous_usage, whole_days
from usage.reporting.costs import CostSummary
from usage.reporting.grid import query_grids
from usage.reporting.money import amount_text, minor_digits, money_text
from usage.reporting.periods import comparison
from usage.reporting.query import UsageQuery
from usage.reporting.selectors import MAX_HOURLY_DAYS, Totals
from usage.reporting.slots import slot_get, slot_set
from usage.reporting.unpriced import unpriced_usage

METRICS = ("total", "input", "output")
# A panel carries its own version (its grids' keys), so this only bounds how long unused ones stay.
PANEL_CACHE_SECONDS = 3600


# --- Formatting --------------------------------------------------------------------------


def ktokens(tokens):
    """1234567 -> "1,234.6K": the unit the product reports usage in."""
    return f"{tokens / 1000:,.1f}K"


def change(current, previous):
    """Change against the previous period as a dict the template and JSON share."""
    if previous == 0:
        return {"percent": None, "display": "new" if current else "no change", "direction": "up" if current else "flat"}
    percent = float((current - previous) / previous * 100)
    direction = "up" if percent > 0 else "down" if percent < 0 else "flat"
    return {"percent": round(percent, 1), "display": f"{percent:+,.1f}%", "direction": direction}


def grid_cost(grid, previous, models):
    """The page's estimated cost, or None (no card, no column) when the tenant has no prices.

    One costing per period, per day x model in the grid: the card, the table and the trend's cost
    metric all add up the same amounts. ``models`` maps the grids' model ids to Model objects.
    """
    if not grid.priced:
        return None
    by_model = {model_id: usage.cost_summary(models[model_id].name) for model_id, usage in grid.models.items()}
    total = CostSummary()
    for summary in by_model.values():
        total.merge(summary)
    before = previous.cost_summary({model_id: models[model_id].name for model_id in previous.models})
    # One meaning on the page and in the API: the sum of the priced calls, "0.00 USD" when none
    # (an empty period costs nothing); tokens without a price are reported beside it, never as 0.
    # The API's amount is exact; the card shows it rounded (``money_text``).
    display = [(money_text(Decimal(item["amount"]), item["currency"]), item["currency"]) for item in total.as_api()]
    return {"summary": total, "display": display, "by_model": by_model, "change": _cost_change(total, before)}


def trend_cost(grid, cost):
    """The trend's cost metric: per model and day, in the period's one currency.

    Only for daily buckets (prices apply per local day) and a single currency (amounts in
    different currencies never share an axis); otherwise the page offers no Cost switch.
    """
    if cost is None or grid.bucket != "day" or len(cost["summary"].currencies) != 1:
        return None, {}
    currency = cost["summary"].currencies[0]
    by_model = {}
    for model_id, usage in grid.models.items():
        amounts = usage.cost.get(currency)
        if amounts is None:
            by_model[model_id] = ["0"] * len(grid.days)
        else:
            # Exact: the script adds them up exactly and rounds only the figure it shows.
            by_model[model_id] = [amount_text(amount, currency) if amount else "0" for amount in amounts]
    return currency, by_model


def _cost_change(current, previous):
    """Amounts in different currencies are never compared: a change only for one and the same currency."""
    if len(current.currencies) != 1 or current.currencies != previous.currencies:
        return None
    currency = current.currencies[0]
    return change(current.amounts[currency], previous.amounts[currency])


def cost_text(summary):
    if summary is None or not summary.display:
        return None
    return " + ".join(f"{amount} {currency}" for amount, currency in summary.display)


# --- Building blocks -----------------------------------------------------------------------


def bucket_for(filters):
    """The page's bucket for a period (of ``filters`` or a query): hours for up to two days."""
    return "hour" if filters.period.days <= MAX_HOURLY_DAYS else "day"


def page_query(query):
    """The query as the page reads it: by model, in its bucket."""
    return query.using(bucket=bucket_for(query), by="model")


def bucket_label(bucket, value, tenant):
    if bucket == "hour":
        return value.astimezone(tenant.tz).strftime("%b %d %H:%M")
    return value.strftime("%b %d")


def bucket_labels(bucket, values, tenant):
    """The axis labels; on a day the clocks change, hours carry their zone abbreviation (or
    offset), so the two "01:00" of a fall-back night read "01:00 EDT" and "01:00 EST"."""
    labels = [bucket_label(bucket, value, tenant) for value in values]
    if bucket == "hour" and len({value.astimezone(tenant.tz).utcoffset() for value in values}) > 1:
        labels = [f"{label} {value.astimezone(tenant.tz):%Z}" for label, value in zip(labels, values, strict=True)]
    return labels


def progress(tenant, grid, now):
    """(index of the bucket ``now`` falls in, index of the first bucket after it), None when absent.

    The page draws the bucket in progress dashed and nothing after it: a future hour or day has
    no usage yet, which is not the same as no usage.
    """
    if grid.bucket == "hour":
        starts = grid.buckets
        future = next((index for index, start in enumerate(starts) if start > now), None)
        last = (len(starts) if future is None else future) - 1
        current = last if last >= 0 and now < starts[last] + dt.timedelta(hours=1) else None
        return current, future
    today = now.astimezone(tenant.tz).date()
    future = next((index for index, day in enumerate(grid.buckets) if day > today), None)
    current = grid.buckets.index(today) if today in grid.buckets else None
    return current, future


def progress_note(tenant, grid, now, current, future):
    if current is None:
        return ""
    local = now.astimezone(tenant.tz)
    what = "this hour" if grid.bucket == "hour" else "today"
    note = f"The dashed part is {what}, still in progress (until {local:%H:%M})."
    if future is not None:
        note += " Later " + ("hours" if grid.bucket == "hour" else "days") + " are not drawn."
    return note


def trend_datasets(lines, cost_by_model=None, colors=None):
    """One line per model of ``grid_lines``, in that order; Total is shown first, Input / Output
    (and Cost) ride along for the switch.

    Cost amounts travel as exact decimal strings: the chart plots them, the tooltip adds them up
    exactly and shows the figures rounded by the rule of ``usage.reporting.money``.
    """
    datasets = []
    colors = colors or line_colors(lines)
    for model, usage, _totals in lines:
        color = colors.get(model.pk) or model_color(model)
        total = usage.total
        dataset = {
            "label": model.name,
            "data": total,
            "total": total,
            "input": usage.input,
            "output": usage.output,
            "borderColor": color,
            "backgroundColor": color,
        }
        if cost_by_model:
            dataset["cost"] = cost_by_model.get(model.pk, [])
        datasets.append(dataset)
    return datasets


def _card(key, label, current, previous, display):
    return {
        "key": key,
        "label": label,
        "value": current,
        "exact": f"{current:,}",
        "display": display,
        "change": change(current, previous),
    }


def cards(current, previous):
    """The overview cards; token counts read in K tokens, with the exact count kept in ``value``."""
    return [
        _card(
            "total_tokens", "Total usage", current.total_tokens, previous.total_tokens, ktokens(current.total_tokens)
        ),
        _card(
            "input_tokens", "Input tokens", current.input_tokens, previous.input_tokens, ktokens(current.input_tokens)
        ),
        _card(
            "output_tokens",
            "Output tokens",
            current.output_tokens,
            previous.output_tokens,
            ktokens(current.output_tokens),
        ),
        _card("calls", "Calls", current.calls, previous.calls, f"{current.calls:,}"),
    ]


def line_colors(lines):
    """{model pk: colour} of models drawn together (busiest first): see ``colors.chart_colors``."""
    return chart_colors([model for model, _usage, _totals in lines])


def distribution_rows(rows, query, cost=None, colors=None, economics=None):
    """Rows of the distribution table; ``url`` filters the page by the row's model; ``economics``:
    {model id: CacheEconomics} adds the cache hit rate and savings (``usage.reporting.cache_economics``)."""
    by_model = (cost or {}).get("by_model", {})
    economics = economics or {}
    link = _model_link(query)
    return [
        {
            "model": row.group.name,
            # "public/deepseek-r1" may wrap after the slash on a phone, never inside a word.
            "model_parts": row.group.name.rpartition("/"),
            "url": link(row.group.name),
            "color": (colors or {}).get(row.group.pk) or model_color(row.group),
            "tokens": row.totals.total_tokens,
            "display": ktokens(row.totals.total_tokens),
            "exact": f"{row.totals.total_tokens:,}",
            "calls": row.totals.calls,
            "calls_display": f"{row.totals.calls:,}",
            "share": round(row.share * 100, 1),
            "cost": cost_text(by_model.get(row.group.pk)),
            **_cache_fields(economics.get(row.group.pk)),
            **_cache_write_fields(row.totals),
        }
        for row in rows
    ]


def _cache_write_fields(totals):
    """The model's cache writes (issue 26): None while none of its calls reported them."""
    writes, hour = totals.cache_creation_input_tokens, totals.cache_creation_1h_input_tokens
    if writes is None:
        return {"cache_writes": None, "cache_writes_title": None}
    title = f"{writes:,} tokens written to the cache" + (f", {hour:,} of them for one hour" if hour else "")
    return {"cache_writes": ktokens(writes), "cache_writes_title": title}


def _cache_fields(economics):
    if economics is None:
        return {"cache_hit": None, "cache_saved": None}
    return {"cache_hit": economics.hit_rate_text, "cache_saved": economics.saved_text}


def grid_lines(grid, models):
    """[(Model, ModelUsage, Totals)] of the grid, busiest model first (ties by name)."""
    lines = [(models[model_id], usage, usage.totals) for model_id, usage in grid.models.items()]
    lines.sort(key=lambda line: (-line[2].total_tokens, line[0].name))
    return lines


def breakdown_rows(lines):
    """The distribution's rows (``usage_breakdown``'s) from the grid's lines."""
    return selectors.breakdown_rows((model, totals) for model, _usage, totals in lines)


def trend_chart(tenant, grid, lines, cost=None, now=None, colors=None):
    currency, cost_by_model = trend_cost(grid, cost)
    now = now or timezone.now()
    current, future = progress(tenant, grid, now)
    return {
        "bucket": grid.bucket,
        "labels": bucket_labels(grid.bucket, grid.buckets, tenant),
        "datasets": trend_datasets(lines, cost_by_model, colors),
        "cost_currency": currency,
        # The tooltip rounds the exact amounts to these digits (``money_text``'s rule).
        "cost_minor_digits": None if currency is None else minor_digits(currency),
        "current_index": current,
        "future_index": future,
        "progress_note": progress_note(tenant, grid, now, current, future),
    }


def query_grid(query):
    """(grid, lines) of the query: the grid by the page's bucket, its models loaded."""
    grid = page_query(query).grid()
    return grid, grid_lines(grid, Model.objects.in_bulk(list(grid.models)))


def filtered_grid(tenant, filters):
    """``query_grid`` of a tenant and its filters."""
    return query_grid(UsageQuery.of(tenant, filters))


def purged_after(instant: dt.datetime) -> dt.datetime | None:
    """The purge horizon when it may lie after ``instant``, else None. ``purge_calls`` keeps at
    least the UTC month before the current one, so a cut in it needs no query."""
    if instant >= partitions.add_months(partitions.month_start(timezone.now()), -1):
        return None
    return purge_horizon()


def dashboard_panel(query, params, models=None):
    """Everything the page shows of the filtered range: ``data`` (every number: cards, trend,
    distribution), ``html`` (the cards and the table, rendered) and ``json`` (the charts' data as
    a script element), from one grid of the range and one of the previous period.

    A panel is a function of its grids (their keys hold their versions; see ``usage.reporting.grid``), of
    the models' names and colours, the page's URL ``params`` (the table's links) and the tenant's
    zone, so it is cached under those. Only the clock ("Updated 12:00:00") is added afresh.
    ``models``: {id: Model} already loaded (the filter bar's choices); others are fetched.
    """
    query, tenant, now = page_query(query), query.tenant, timezone.now()
    compared = on_record(comparison(query.period, now, tenant.tz), tenant, purged_after)
    whole = whole_days(compared)
    grids = query_grids([query, *([query.using(bucket="day", period=whole)] if whole else [])])
    grid = grids[0]
    previous = previous_usage(query, compared, grid.priced, grids[1] if whole else None)
    models = dict(models or {})
    missing = {*grid.models, *previous.models} - models.keys()
    if missing:
        models.update(Model.objects.in_bulk(list(missing)))
    shown = sorted((pk, models[pk].name, models[pk].color) for pk in {*grid.models, *previous.models})
    # The bucket in progress (drawn dashed, later ones not at all) moves with the clock, and the
    # note names the minute: both are part of what the panel shows.
    in_progress = progress(tenant, grid, now)
    marker = (in_progress, in_progress[0] is not None and now.astimezone(tenant.tz).strftime("%H:%M"))
    key = query.cache_key("panel", grid.key, previous.key, shown, params.urlencode(), marker)
    slot = query.cache_key("panel", params.urlencode())  # one entry per page asked, not per version
    panel = slot_get(slot, key)
    if panel is None:
        data = _panel_data(query, params, grid, previous, models, compared, now)
        panel = {
            "data": data,
            "html": {
                "cards": render_to_string("usage/_cards.html", {"data": data}),
                "distribution": render_to_string("usage/_distribution.html", {"data": data}),
            },
            "json": json_script(json_data(data), "dashboard-data"),
        }
        slot_set(slot, key, panel, timeout=PANEL_CACHE_SECONDS)
    panel["data"]["updated_at"] = now.isoformat()
    # The clock names its zone (the tenant's): "14:27:54 CET".
    panel["data"]["updated_display"] = now.astimezone(tenant.tz).strftime("%H:%M:%S %Z")
    return panel


def _panel_data(query, params, grid, previous, models, compared, now):
    tenant = query.tenant
    lines = grid_lines(grid, models)
    colors = line_colors(lines)
    current = sum((totals for _model, _usage, totals in lines), Totals())
    cost = grid_cost(grid, previous, models)
    if cost is not None:
        cost["unpriced_calls"] = sum(u.calls for u in unpriced_usage(query, grid).values())
    distribution = distribution_rows(breakdown_rows(lines), params, cost, colors, cache_economics(query, grid))
    return {
        "empty": current.calls == 0,
        "period": _dates(query.period),
        "previous_period": _dates(compared.period),
        "previous_until": compared.cutoff.isoformat() if compared.cutoff else None,
        "comparison": compared.caption,
        "cards": cards(current, previous.totals),
        "cost": cost,
        "trend": trend_chart(tenant, grid, lines, cost, now, colors),
        "distribution": distribution,
        # The cache columns appear once a model of the range reported cached reads.
        "cache_columns": any(row["cache_hit"] not in (None, "—", "0.0%") for row in distribution),
        # The cache writes column appears once a model of the range reported cache writes.
        "cache_write_column": any(row["cache_writes"] is not None for row in distribution),
    }


def _dates(period):
    return {"start": period.start.isoformat(), "end": period.end.isoformat()}


def _model_link(query):
    """name -> "?<the page's query>&model=name", with the query encoded once for all rows."""
    query = query.copy()
    query.pop("model", None)
    prefix = f"?{query.urlencode()}&" if query else "?"
    return lambda name: prefix + urlencode({"model": name})


def json_data(data):
    """A panel's ``data`` with the cost objects turned into the API's cost shape."""
    cost = data["cost"]
    shown = cost and {"amounts": cost["summary"].as_api(), "change": cost["change"]}
    if cost:
        shown["unpriced_calls"] = cost.get("unpriced_calls", 0)
    return {**data, "cost": shown}

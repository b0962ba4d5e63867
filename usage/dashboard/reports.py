"""Finance and operations pages: Prices, the month-end expense report (page + CSV), Operations."""

import csv
import datetime as dt
from dataclasses import dataclass, fields
from typing import cast

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.utils.html import json_script

from accounts.models import ApiKey
from accounts.tenancy import tenant_for_request
from usage.dashboard.colors import model_color
from usage.localtime import tenant_today
from usage.models import Model
from usage.pricebook.selectors import price_changes_for
from usage.reporting.costs import expense_report, price_sheet
from usage.reporting.filters import MonthlyReportForm
from usage.reporting.periods import Period
from usage.reporting.query import UsageQuery
from usage.reporting.selectors import SCALE_HINT_CHANGE, ModelTrend, model_week_over_week

# Below this many calls in both weeks a model gets no scale hint: a change of 8 calls against 3
# says nothing about capacity. (README, "Operations".)
SCALE_HINT_MIN_CALLS = 100


def change_text(change: float | None) -> tuple[str, str, str]:
    """(text, direction, words) of a week-over-week change given as a fraction.

    One decimal, signed; a change that rounds to zero still shows its direction ("-<0.1%", in
    the colour of its real sign) rather than a "0%" coloured as a drop.
    """
    if change is None:
        return "new", "", "new this week"
    percent = change * 100
    direction = "up" if percent > 0 else "down" if percent < 0 else ""
    if not percent:
        return "0.0%", direction, "no change"
    if abs(percent) < 0.05:
        return f"{'+' if percent > 0 else '-'}<0.1%", direction, f"{direction} by less than 0.1%"
    return f"{percent:+,.1f}%", direction, f"{direction} by {abs(percent):,.1f}%"


def shown_hint(trend) -> str:
    """The trend's scale hint, once the model has enough calls in either week to mean something."""
    return trend.hint if max(trend.calls, trend.previous_calls) >= SCALE_HINT_MIN_CALLS else ""


@dataclass
class ShownTrend(ModelTrend):
    """A model's trend and what the Operations page shows of it."""

    color: str = ""
    change_text: str = ""
    direction: str = ""
    change_words: str = ""
    shown_hint: str = ""


def shown_trend(trend: ModelTrend) -> ShownTrend:
    text, direction, words = change_text(trend.change)
    shown = ShownTrend(
        **{field.name: getattr(trend, field.name) for field in fields(ModelTrend)},
        color=model_color(trend.model),
        change_text=text,
        direction=direction,
        change_words=words,
    )
    shown.shown_hint = shown_hint(shown)
    return shown


def _report_form(request, tenant):
    # Always bound: an empty query validates to the defaults (this month, all keys).
    return MonthlyReportForm(request.GET, tenant=tenant, today=tenant_today(tenant))


@login_required
def prices(request, slug):
    tenant = tenant_for_request(request, slug)
    today = tenant_today(tenant)
    current, upcoming = price_sheet(tenant=tenant, today=today)
    context = {"tenant": tenant, "nav": "prices", "today": today, "current": current, "upcoming": upcoming}
    context["changes"] = price_changes_for(tenant=tenant)
    return render(request, "usage/prices.html", context)


@login_required
def monthly_report(request, slug):
    tenant = tenant_for_request(request, slug)
    form = _report_form(request, tenant)
    context = {"tenant": tenant, "nav": "reports", "form": form}
    if not form.is_valid():
        return render(request, "usage/monthly_report.html", context, status=400)
    report = expense_report(query=form.usage_query())
    period = report.filters.period
    today = tenant_today(tenant)
    # The current month is not over: the report says "month to date" and up to which day.
    to_date = today if period.start <= today <= period.end else None
    context.update(report=report, period=period, query=form.url_query(), month_to_date=to_date)
    return render(request, "usage/monthly_report.html", context)


CSV_COLUMNS = [
    "month",
    "api_key",
    "api_key_id",
    "model",
    "calls",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_creation_input_tokens",
    "cache_creation_1h_input_tokens",
    "cost",
    "currency",
    "unpriced_tokens",
    # Exact cost per token class; they add up to cost (empty when unpriced).
    "cost_input",
    "cost_cached_read",
    "cost_cache_write",
    "cost_output",
]


def _safe_cell(value):
    """Names are typed by users: keep a spreadsheet from reading one as a formula."""
    text = str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def report_csv_rows(report):
    """The report's key x model rows as CSV cells; they add up to the report's totals."""
    month = f"{report.filters.period.start:%Y-%m}"
    for row in report.rows:
        cached = row.totals.cached_input_tokens
        yield [
            month,
            _safe_cell(row.api_key.name),
            row.api_key.public_id,
            _safe_cell(row.model.name),
            row.totals.calls,
            row.totals.input_tokens,
            row.totals.output_tokens,
            "" if cached is None else cached,
            _optional(row.totals.cache_creation_input_tokens),
            _optional(row.totals.cache_creation_1h_input_tokens),
            row.cost.exact(row.currency) if row.currency else "",  # exact: the lines add up to the total
            row.currency or "",
            row.cost.unpriced_tokens,
            *(row.class_amounts or [""] * 4),
        ]


def _optional(count):
    return "" if count is None else count


@login_required
def monthly_report_csv(request, slug):
    tenant = tenant_for_request(request, slug)
    form = _report_form(request, tenant)
    if not form.is_valid():
        errors = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in form.errors.items())
        return HttpResponse(errors, status=400, content_type="text/plain; charset=utf-8")
    report = expense_report(query=form.usage_query())
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    filename = f"expense-report-{tenant.slug}-{report.filters.period.start:%Y-%m}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(report_csv_rows(report))
    return response


# --- Operations -------------------------------------------------------------------------------


TREND_WEEKS = 10


class OperationsForm(forms.Form):
    """The week (its first local day; 7 whole days ending yesterday at the latest, the last
    ``TREND_WEEKS`` weeks) and the API key (one of the tenant's, default all)."""

    week = forms.DateField(required=False, input_formats=["%Y-%m-%d"], widget=forms.Select, label="Week")
    api_key = forms.ModelChoiceField(
        queryset=ApiKey.objects.none(), to_field_name="public_id", required=False, empty_label="All", label="API Key"
    )

    def __init__(self, data=None, *, tenant, yesterday):
        super().__init__(data)
        self.latest = Period(yesterday - dt.timedelta(days=6), yesterday)
        self.earliest = self.latest.start - dt.timedelta(days=7 * (TREND_WEEKS - 1))
        keys = cast(forms.ModelChoiceField, self.fields["api_key"])
        keys.queryset = ApiKey.objects.filter(tenant=tenant).order_by("name")
        starts = [self.latest.start - dt.timedelta(days=7 * week) for week in range(TREND_WEEKS)]
        chosen = self.data.get("week")
        self.fields["week"].widget.choices = [(f"{day:%Y-%m-%d}", self._label(day)) for day in starts]
        if chosen and chosen not in dict(self.fields["week"].widget.choices):
            # A bookmarked week that no longer lines up with yesterday is still offered, if valid.
            self.fields["week"].widget.choices.append((chosen, chosen))

    def _label(self, start):
        text = f"{start:%b %d} – {start + dt.timedelta(days=6):%b %d, %Y}"
        return text + (" (latest)" if start == self.latest.start else "")

    def clean_week(self):
        start = self.cleaned_data.get("week") or self.latest.start
        if not self.earliest <= start <= self.latest.start:
            raise forms.ValidationError(
                f"Choose a week that starts between {self.earliest} and {self.latest.start}: "
                f"the last {TREND_WEEKS} whole weeks."
            )
        return Period(start, start + dt.timedelta(days=6))


def weekly_trend(tenant, last_day, weeks=TREND_WEEKS, api_key=None):
    """Tokens per model in each of the last ``weeks`` whole weeks (7 local days ending ``last_day``),
    oldest first, from the page's cached daily grid: {"labels", "datasets"} for a chart and table."""
    first = last_day - dt.timedelta(days=7 * weeks - 1)
    grid = UsageQuery(tenant, Period(first, last_day), api_key=api_key).grid()
    models = Model.objects.in_bulk(list(grid.models))
    labels = [f"{first + dt.timedelta(days=7 * week):%b %d}" for week in range(weeks)]
    datasets = []
    for model_id, usage in grid.models.items():
        totals = usage.total
        per_week = [sum(totals[7 * week : 7 * week + 7]) for week in range(weeks)]
        color = model_color(models[model_id])
        datasets.append(
            {"label": models[model_id].name, "data": per_week, "borderColor": color, "backgroundColor": color}
        )
    datasets.sort(key=lambda item: (-item["data"][-1], item["label"]))
    return {"labels": labels, "datasets": datasets}


@login_required
def operations(request, slug):
    tenant = tenant_for_request(request, slug)
    # Whole days only: a week that ends with today's first hours would always look like a drop.
    yesterday = tenant_today(tenant) - dt.timedelta(days=1)
    form = OperationsForm(request.GET, tenant=tenant, yesterday=yesterday)
    context = {"tenant": tenant, "nav": "operations", "form": form}
    if not form.is_valid():
        # Another tenant's key is "not one of the available choices": a form error, nothing of it shown.
        return render(request, "usage/operations.html", context, status=400)
    week, key = form.cleaned_data["week"], form.cleaned_data["api_key"]
    this_week, last_week, trends = model_week_over_week(tenant=tenant, today=week.end, api_key=key)
    weekly = weekly_trend(tenant, week.end, api_key=key)
    trends = [shown_trend(trend) for trend in trends]
    scope = f"&api_key={key.public_id}" if key else ""
    context.update(
        weekly=weekly,
        weekly_json=json_script(weekly, "weekly-data"),
        this_week=this_week,
        last_week=last_week,
        trends=trends,
        api_key=key,
        # The dashboard of the same two weeks and key, per model (the row's link).
        dashboard_query=f"preset=custom&start={last_week.start}&end={this_week.end}{scope}",
        scale_hint_percent=int(SCALE_HINT_CHANGE * 100),
        scale_hint_min_calls=SCALE_HINT_MIN_CALLS,
    )
    return render(request, "usage/operations.html", context)

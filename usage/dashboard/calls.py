"""The calls explorer page: the tenant's calls, filtered, newest or slowest first, a page at a time.

Reached from the Performance view's chart ("the calls behind this hour": ``hour`` and the page's key
and model in the URL) and from the sidebar. Every filter lives in the URL; the next page is a
cursor (``usage.reporting.calls``). Another tenant's key or model is not a choice: a 400 with
the form's error, never its calls.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from accounts.models import ApiKey, Tenant
from accounts.tenancy import tenant_for_request
from usage.localtime import day_span, tenant_today
from usage.models import ErrorType
from usage.reporting.calls import SLOWEST_MAX_DAYS, CallFilters, InvalidCursor, calls_page, hour_span
from usage.reporting.filters import MAX_DATE, MIN_DATE
from usage.reporting.periods import DEFAULT_PRESET, preset_period
from usage.reporting.selectors import tenant_models


class CallExplorerForm(forms.Form):
    api_key = forms.ModelChoiceField(
        queryset=ApiKey.objects.none(), to_field_name="public_id", required=False, empty_label="All", label="API Key"
    )
    model: forms.ModelChoiceField = forms.ModelChoiceField(
        queryset=None, to_field_name="name", required=False, empty_label="All"
    )
    status = forms.ChoiceField(choices=[("", "All"), ("ok", "OK"), ("error", "Error")], required=False)
    error_type = forms.ChoiceField(choices=[("", "All"), *ErrorType.choices], required=False, label="Error type")
    start = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    hour = forms.CharField(required=False, max_length=40, widget=forms.HiddenInput)
    request_id = forms.CharField(required=False, max_length=255, label="Request id starts with")
    sort = forms.ChoiceField(choices=[("newest", "Newest first"), ("slowest", "Slowest first")], required=False)

    def __init__(self, data: Any, *, tenant: Tenant) -> None:
        super().__init__(data)
        self.tenant = tenant
        self.fields["api_key"].queryset = ApiKey.objects.filter(tenant=tenant).order_by("name")  # type: ignore[attr-defined]
        self.fields["model"].queryset = tenant_models(tenant=tenant)  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        data["span"] = self._span(data)
        if data.get("sort") == "slowest" and data["span"][1] - data["span"][0] > dt.timedelta(days=SLOWEST_MAX_DAYS):
            raise forms.ValidationError(
                {"sort": f"Slowest first is offered for ranges of at most {SLOWEST_MAX_DAYS} days."}
            )
        return data

    def _span(self, data: dict[str, Any]) -> tuple[dt.datetime, dt.datetime]:
        if data.get("hour"):
            return hour_span(self.tenant, self._hour(data["hour"]))
        start, end = data.get("start"), data.get("end")
        if start is None and end is None:
            period = preset_period(DEFAULT_PRESET, tenant_today(self.tenant))
            start, end = period.start, period.end
        first, last = start or end, end or start
        if first is None or last is None:  # one of them is set by now; for the type checker
            raise forms.ValidationError({"start": "Pick a start date."})
        if not (MIN_DATE <= first <= MAX_DATE and MIN_DATE <= last <= MAX_DATE):
            raise forms.ValidationError({"start": f"Enter dates between {MIN_DATE} and {MAX_DATE}."})
        if last < first:
            raise forms.ValidationError({"end": "The end date is before the start date."})
        return day_span(self.tenant, first, last)

    def _hour(self, text: str) -> dt.datetime:
        """An ISO 8601 instant; without an offset, the tenant's local wall time."""
        try:
            hour = dt.datetime.fromisoformat(text)
        except ValueError:
            raise forms.ValidationError(
                {"hour": "Enter the hour as YYYY-MM-DDTHH:MM, with or without its offset."}
            ) from None
        if not MIN_DATE <= hour.date() <= MAX_DATE:
            raise forms.ValidationError({"hour": f"Enter an hour between {MIN_DATE} and {MAX_DATE}."})
        return hour if hour.tzinfo is not None else hour.replace(tzinfo=self.tenant.tz)

    def filters(self) -> CallFilters:
        data = self.cleaned_data
        start, end = data["span"]
        return CallFilters(
            tenant=self.tenant,
            start=start,
            end=end,
            api_key=data.get("api_key"),
            model=data.get("model"),
            status=data.get("status") or "",
            error_type=data.get("error_type") or "",
            request_id_prefix=data.get("request_id") or "",
            sort=data.get("sort") or "newest",
        )


@login_required
@require_safe
def calls_explorer(request: HttpRequest, slug: str) -> HttpResponse:
    tenant = tenant_for_request(request, slug)
    form = CallExplorerForm(request.GET, tenant=tenant)
    context: dict[str, Any] = {"tenant": tenant, "nav": "calls", "form": form, "page": None}
    if not form.is_valid():
        return render(request, "usage/calls.html", context, status=400)
    filters = form.filters()
    try:
        page = calls_page(filters, request.GET.get("cursor") or None)
    except InvalidCursor:
        context["cursor_error"] = "This page link is not valid any more: start again from the first page."
        return render(request, "usage/calls.html", context, status=400)
    query = request.GET.copy()
    query.pop("cursor", None)
    next_query = query.copy()
    if page.next_cursor:
        next_query["cursor"] = page.next_cursor
    context.update(
        page=page,
        span=[instant.astimezone(tenant.tz) for instant in (filters.start, filters.end)],
        first_url="?" + query.urlencode(),
        next_url=("?" + next_query.urlencode()) if page.next_cursor else None,
        paged="cursor" in request.GET,
    )
    return render(request, "usage/calls.html", context)

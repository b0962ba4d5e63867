"""The filter bar and the API's common parameters: key, model and a range of local dates.

One FilterSet serves the page, the chart endpoints, the REST API and the CSV export, so a URL
means the same thing everywhere: its cleaned data is the request's ``UsageQuery`` (``query()``),
and its ``qs`` the ledger's calls that query covers (the calls API). Choices are scoped to the
tenant: another tenant's key or model is "not one of the available choices", never its data.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from django.forms.models import ModelChoiceIterator
from django.forms.utils import flatatt
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from accounts.models import ApiKey, Tenant
from usage.localtime import tenant_today
from usage.models import CallRecord, Model
from usage.reporting.periods import DEFAULT_PRESET, MAX_RANGE_DAYS, PRESETS, Period, month_period, preset_period
from usage.reporting.query import UsageQuery
from usage.reporting.selectors import UsageFilters, tenant_models

CUSTOM = "custom"
# Dates outside this span cannot be anyone's usage, and near the calendar's ends the
# previous-period and day-span arithmetic would overflow.
MIN_DATE = dt.date(1970, 1, 1)
MAX_DATE = dt.date(9998, 12, 31)


class PlainSelect(forms.Select):
    """A <select> of flat choices built in Python rather than through a template per option.

    Same markup and semantics as Django's Select (the first matching option selected, attributes,
    escaping); the filter bar renders on every page view, where the option templates cost more
    than the rest of the form together. Grouped choices fall back to Django's rendering.
    """

    def render(self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None) -> SafeString:
        choices = list(self.choices)
        if any(isinstance(label, list | tuple) for _value, label in choices):
            return super().render(name, value, attrs, renderer)
        wanted, found, options = set(self.format_value(value)), False, []
        for option_value, label in choices:
            option_value = "" if option_value is None else option_value
            selected = not found and str(option_value) in wanted
            found |= selected
            options.append((option_value, " selected" if selected else "", label))
        return format_html(
            '<select name="{}"{}>\n{}\n</select>',
            name,
            flatatt(self.build_attrs(self.attrs, attrs)),
            format_html_join("\n", '<option value="{}"{}>{}</option>', options),
        )


class ListedChoices(ModelChoiceIterator):
    """Choices from one plain query: Django's iterator opens a server-side cursor on PostgreSQL
    (three round trips) for what is a short list of keys or models."""

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        for obj in self.queryset:
            yield self.choice(obj)

    def __len__(self) -> int:
        # The rows themselves (and then cached), not a COUNT query.
        return len(self.queryset) + (self.field.empty_label is not None)


class ListedModelChoiceFilter(django_filters.ModelChoiceFilter):
    """ "All" or one of the tenant's objects (the FilterSet sets the queryset), as a PlainSelect."""

    class field_class(django_filters.fields.ModelChoiceField):  # noqa: N801 (django-filter's attribute name)
        iterator = ListedChoices

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(empty_label="All", method="keep", widget=PlainSelect, **kwargs)


class UsageFilterForm(forms.Form):
    today: dt.date  # set by the FilterSet: the tenant's local today

    def _bounded(self, name: str) -> dt.date | None:
        day = self.cleaned_data.get(name)
        if day is not None and not MIN_DATE <= day <= MAX_DATE:
            raise forms.ValidationError(f"Enter a date between {MIN_DATE} and {MAX_DATE}.")
        return day

    def clean_start(self) -> dt.date | None:
        return self._bounded("start")

    def clean_end(self) -> dt.date | None:
        return self._bounded("end")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if self.errors:
            return data
        if start or end or data.get("preset") == CUSTOM:
            data["period"] = self._custom_period(start, end)
        else:
            data["period"] = preset_period(data.get("preset") or DEFAULT_PRESET, self.today)
        return data

    def _custom_period(self, start: dt.date | None, end: dt.date | None) -> Period:
        first, last = start or end, end or start  # one date alone is a single day
        if first is None or last is None:
            raise forms.ValidationError({"start": "Pick a start date for a custom range."})
        start, end = first, last
        if end < start:
            raise forms.ValidationError({"end": "The end date is before the start date."})
        if (end - start).days + 1 > MAX_RANGE_DAYS:
            raise forms.ValidationError({"end": f"Choose a range of at most {MAX_RANGE_DAYS} days."})
        return Period(start, end)


class UsageFilterSet(django_filters.FilterSet):
    api_key = ListedModelChoiceFilter(queryset=ApiKey.objects.none(), to_field_name="public_id", label="API Key")
    model = ListedModelChoiceFilter(queryset=Model.objects.none(), to_field_name="name", label="Model")
    preset = django_filters.ChoiceFilter(
        choices=[*PRESETS.items(), (CUSTOM, "Custom")],
        empty_label=None,
        label="Time range",
        method="keep",
        widget=PlainSelect,
    )
    # ISO dates only: "11/01/2026" means different days to different readers.
    start = django_filters.DateFilter(
        label="From", method="keep", input_formats=["%Y-%m-%d"], widget=forms.DateInput(attrs={"type": "date"})
    )
    end = django_filters.DateFilter(
        label="To", method="keep", input_formats=["%Y-%m-%d"], widget=forms.DateInput(attrs={"type": "date"})
    )

    class Meta:
        model = CallRecord
        fields: list[str] = []
        form = UsageFilterForm

    def __init__(
        self, data: Mapping[str, Any] | None = None, *, tenant: Tenant, now: dt.datetime | None = None, **kwargs: Any
    ) -> None:
        # Unbound, ``qs`` is all of the tenant's calls; bound, the query's (``filter_queryset``).
        super().__init__(data, queryset=CallRecord.objects.filter(tenant=tenant), **kwargs)
        self.tenant = tenant
        self.filters["api_key"].queryset = ApiKey.objects.filter(tenant=tenant).order_by("name")
        self.filters["model"].queryset = tenant_models(tenant=tenant)
        self.today = tenant_today(tenant, now)

    @property
    def form(self) -> UsageFilterForm:
        form = super().form
        form.today = self.today
        return form

    def keep(self, queryset: QuerySet[CallRecord], name: str, value: object) -> QuerySet[CallRecord]:
        """Each field alone narrows nothing: the dates, key and model narrow together, in
        ``filter_queryset``, as the query they make."""
        return queryset

    def filter_queryset(self, queryset: QuerySet[CallRecord]) -> QuerySet[CallRecord]:
        """The calls of the tenant on the chosen local days, of the chosen key and model; none
        for an invalid choice."""
        if not self.form.is_valid():
            return queryset.none()
        return self.query().calls(queryset)

    def query(self, **options: Any) -> UsageQuery:
        """The cleaned choice as the request's ``UsageQuery``; call after ``is_valid()``.
        ``options``: its ``bucket`` and ``by``."""
        data = self.form.cleaned_data
        return UsageQuery(self.tenant, data["period"], data.get("api_key"), data.get("model"), **options)

    def usage_filters(self) -> UsageFilters:
        """The cleaned choice as ``UsageFilters`` (the query without its tenant)."""
        data = self.form.cleaned_data
        return UsageFilters(period=data["period"], api_key=data.get("api_key"), model=data.get("model"))


# --- The monthly report's question -------------------------------------------------------------

MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")
MIN_YEAR, MAX_YEAR = 1970, 9998


class MonthlyReportForm(forms.Form):
    """Month (YYYY-MM, default the tenant's current month) and key (public id, default all)."""

    month = forms.CharField(required=False, widget=forms.DateInput(attrs={"type": "month"}))
    api_key = forms.ModelChoiceField(
        queryset=ApiKey.objects.none(), to_field_name="public_id", required=False, empty_label="All", label="API Key"
    )

    def __init__(self, data: Mapping[str, Any] | None = None, *, tenant: Tenant, today: dt.date) -> None:
        super().__init__(data)
        self.tenant, self.today = tenant, today
        # Revoked keys stay: a past month is reported under the key's name.
        key_field = self.fields["api_key"]
        assert isinstance(key_field, forms.ModelChoiceField)
        key_field.queryset = ApiKey.objects.filter(tenant=tenant).order_by("name")

    def clean_month(self) -> Period:
        value = (self.cleaned_data.get("month") or "").strip()
        if not value:
            return month_period(self.today.year, self.today.month)
        match = MONTH_RE.match(value)
        if not match or not 1 <= int(match[2]) <= 12:
            raise forms.ValidationError("Enter a month as YYYY-MM, for example 2026-11.")
        # The API's date bounds (usage.api.scope): outside them local midnights can overflow.
        if not MIN_YEAR <= int(match[1]) <= MAX_YEAR:
            raise forms.ValidationError(f"Enter a month between {MIN_YEAR}-01 and {MAX_YEAR}-12.")
        return month_period(int(match[1]), int(match[2]))

    def usage_query(self) -> UsageQuery:
        """The report's ``UsageQuery``: the month, all keys or one."""
        return UsageQuery(self.tenant, self.cleaned_data["month"], api_key=self.cleaned_data.get("api_key"))

    def url_query(self) -> str:
        """The URL query of the cleaned choice, for the CSV link and the API."""
        period, key = self.cleaned_data["month"], self.cleaned_data.get("api_key")
        url_query = f"month={period.start:%Y-%m}"
        return f"{url_query}&api_key={key.public_id}" if key else url_query

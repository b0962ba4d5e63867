"""Date presets of the filter bar and the API, in the tenant's local days."""

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone

DEFAULT_PRESET = "last_2_weeks"

PRESETS = {
    "today": "Today",
    "yesterday": "Yesterday",
    "last_7_days": "Last 7 days",
    "last_2_weeks": "Last 2 weeks",
    "last_30_days": "Last 30 days",
    "this_month": "This month",
    "last_month": "Last month",
}

# The longest range any view or endpoint accepts: a bound on the work one request can cause.
MAX_RANGE_DAYS = 366


@dataclass(frozen=True)
class Period:
    start: dt.date
    end: dt.date  # inclusive

    @property
    def days(self):
        return (self.end - self.start).days + 1

    def previous(self):
        """The period of the same length that ends the day before this one starts."""
        end = self.start - dt.timedelta(days=1)
        return Period(end - dt.timedelta(days=self.days - 1), end)

    def dates(self):
        return [self.start + dt.timedelta(days=offset) for offset in range(self.days)]


def tenant_today(tenant, now=None):
    return (now or timezone.now()).astimezone(tenant.tz).date()


def _last_days(today, count):
    return Period(today - dt.timedelta(days=count - 1), today)


def preset_period(preset, today):
    """The local dates a preset covers; "Last N days" and "Last 2 weeks" end with today."""
    first_of_month = today.replace(day=1)
    if preset == "today":
        return Period(today, today)
    if preset == "yesterday":
        yesterday = today - dt.timedelta(days=1)
        return Period(yesterday, yesterday)
    if preset == "last_7_days":
        return _last_days(today, 7)
    if preset == "last_2_weeks":
        return _last_days(today, 14)
    if preset == "last_30_days":
        return _last_days(today, 30)
    if preset == "this_month":
        return Period(first_of_month, today)
    if preset == "last_month":
        last_of_previous = first_of_month - dt.timedelta(days=1)
        return Period(last_of_previous.replace(day=1), last_of_previous)
    raise ValueError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")


def month_period(year, month):
    first = dt.date(year, month, 1)
    next_first = (first + dt.timedelta(days=32)).replace(day=1)
    return Period(first, next_first - dt.timedelta(days=1))

"""Date presets of the filter bar and the API, in the tenant's local days."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

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
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        """The period of the same length that ends the day before this one starts."""
        end = self.start - dt.timedelta(days=1)
        return Period(end - dt.timedelta(days=self.days - 1), end)

    def dates(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=offset) for offset in range(self.days)]


def _last_days(today: dt.date, count: int) -> Period:
    return Period(today - dt.timedelta(days=count - 1), today)


def preset_period(preset: str, today: dt.date) -> Period:
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


def month_period(year: int, month: int) -> Period:
    first = dt.date(year, month, 1)
    next_first = (first + dt.timedelta(days=32)).replace(day=1)
    return Period(first, next_first - dt.timedelta(days=1))


@dataclass(frozen=True)
class Comparison:
    """What a period's change is measured against: ``period``'s local dates, and when ``cutoff``
    is set, on its last day only the calls before that instant (the same local time as now)."""

    period: Period
    cutoff: dt.datetime | None
    caption: str


def _day_text(day: dt.date) -> str:
    return day.strftime("%b %d")


def comparison(period: Period, now: dt.datetime, tz: dt.tzinfo) -> Comparison:
    """Like for like: a period that has not ended yet (it holds today) is compared with as much
    of the period before it as has elapsed of this one, up to the same local time of day.

    - Today until 14:27 -> yesterday until 14:27.
    - This month (Dec 01 to Dec 02, 14:27) -> Nov 01 to Nov 02 until 14:27, the same days of last
      month (cut at the last day of last month when it is shorter: then whole days).
    - Last 2 weeks (ends today) -> the 14 days before, the last one until 14:27.
    A period wholly in the past is compared with the whole period of the same length before it.
    """
    local_now = now.astimezone(tz)
    today = local_now.date()
    if not period.start <= today <= period.end:
        if period == month_period(period.start.year, period.start.month):
            before = period.start - dt.timedelta(days=1)
            previous = month_period(before.year, before.month)
            return Comparison(previous, None, f"Compared with {_range_text(previous)} (the month before).")
        previous = period.previous()
        caption = f"Compared with {_range_text(previous)} (the {_days_text(previous.days)} before)."
        return Comparison(previous, None, caption)
    elapsed = (today - period.start).days + 1
    same_month = period.start.day == 1 and period.end.month == period.start.month
    cutoff_date = None
    if same_month:
        first = (period.start - dt.timedelta(days=1)).replace(day=1)
        last_of_month = period.start - dt.timedelta(days=1)
        end = first + dt.timedelta(days=elapsed - 1)
        if end > last_of_month:
            end = last_of_month
        else:
            cutoff_date = end
        previous, how = Period(first, end), "the same days of last month"
    else:
        first = period.start - dt.timedelta(days=period.days)
        previous = Period(first, first + dt.timedelta(days=elapsed - 1))
        cutoff_date = previous.end
        how = "the day before" if period.days == 1 else f"the {_days_text(period.days)} before"
    if cutoff_date is None:
        return Comparison(previous, None, f"Compared with {_range_text(previous)} ({how}, whole days).")
    # Minutes: the comparison (and the page caching it) moves on once a minute.
    wall = local_now.time().replace(second=0, microsecond=0)
    cutoff = dt.datetime.combine(cutoff_date, wall, tzinfo=tz).astimezone(dt.UTC)
    caption = f"Compared with {_range_text(previous)} until {wall:%H:%M} ({how}, up to the same time of day)."
    return Comparison(previous, cutoff, caption)


def _range_text(period: Period) -> str:
    if period.days == 1:
        return _day_text(period.start)
    return f"{_day_text(period.start)} to {_day_text(period.end)}"


def _days_text(days: int) -> str:
    return "day" if days == 1 else f"{days} days"

"""The period a budget is counted over: a calendar month, week or day of the tenant's time zone.

Periods are local dates, like every day the page shows, so a month starts at the tenant's
local midnight (00:00 Asia/Kolkata is 18:30 UTC the day before) and a day with a daylight
saving change is still one day, of 23 or 25 hours.
"""

import datetime as dt

from usage.reporting.periods import Period, month_period


def budget_period(budget, today):
    """The Period of ``budget`` that contains the local date ``today``."""
    if budget.period == "day":
        return Period(today, today)
    if budget.period == "week":
        start = today - dt.timedelta(days=(today.weekday() - budget.week_start) % 7)
        return Period(start, start + dt.timedelta(days=6))
    return month_period(today.year, today.month)


def local_midnight(tenant, day):
    """The instant (UTC) the local ``day`` starts in the tenant's zone."""
    return dt.datetime.combine(day, dt.time(), tzinfo=tenant.tz).astimezone(dt.UTC)


# The run rate is the average of this many complete local days before today.
RUN_RATE_DAYS = 7


def run_rate_period(today):
    return Period(today - dt.timedelta(days=RUN_RATE_DAYS), today - dt.timedelta(days=1))

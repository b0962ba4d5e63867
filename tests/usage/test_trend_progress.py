"""The trend draws no future, marks the bucket in progress, and tells the two 01:00 of a DST night apart."""

import datetime as dt

from accounts import services
from usage.dashboard.panel import bucket_labels, progress, progress_note
from usage.reporting.grid import UsageGrid
from usage.reporting.periods import Period
from usage.reporting.selectors import hour_buckets

from .factories import utc


def _tenant(db, zone):
    return services.tenant_create(slug="dst", name="DST", timezone_name=zone)


def test_fall_back_hours_carry_their_zone_abbreviation(db):
    tenant = _tenant(db, "America/New_York")
    hours = hour_buckets(tenant, Period(dt.date(2026, 11, 1), dt.date(2026, 11, 1)))
    labels = bucket_labels("hour", hours, tenant)
    assert len(labels) == 25 and len(set(labels)) == 25
    assert "Nov 01 01:00 EDT" in labels and "Nov 01 01:00 EST" in labels


def test_ordinary_days_keep_plain_labels(db):
    tenant = _tenant(db, "America/New_York")
    hours = hour_buckets(tenant, Period(dt.date(2026, 11, 10), dt.date(2026, 11, 10)))
    assert bucket_labels("hour", hours, tenant)[:2] == ["Nov 10 00:00", "Nov 10 01:00"]


def test_hourly_progress_stops_at_the_current_hour(db):
    tenant = _tenant(db, "Europe/Berlin")
    hours = hour_buckets(tenant, Period(dt.date(2026, 12, 2), dt.date(2026, 12, 2)))
    grid = UsageGrid("hour", hours, [dt.date(2026, 12, 2)], False)
    now = utc(2026, 12, 2, 13, 27)  # 14:27 in Berlin
    current, future = progress(tenant, grid, now)
    assert (current, future) == (14, 15)
    assert progress_note(tenant, grid, now, current, future) == (
        "The dashed part is this hour, still in progress (until 14:27). Later hours are not drawn."
    )


def test_daily_progress_and_a_past_period(db):
    tenant = _tenant(db, "UTC")
    days = Period(dt.date(2026, 11, 19), dt.date(2026, 12, 2)).dates()
    grid = UsageGrid("day", days, days, False)
    assert progress(tenant, grid, utc(2026, 12, 2, 9)) == (13, None)
    assert progress(tenant, grid, utc(2026, 11, 30, 9)) == (11, 12)
    assert progress(tenant, grid, utc(2026, 12, 5, 9)) == (None, None)
    assert progress_note(tenant, grid, utc(2026, 12, 5, 9), None, None) == ""

import datetime as dt
import random
import zoneinfo
from collections import defaultdict

import pytest

from accounts import services
from usage.models import CallRecord, DirtyDay, Model, UsageDaily, UsageDailyModel, UsageHourly
from usage.reporting.periods import Period
from usage.reporting.selectors import Totals, UsageFilters, usage_series, usage_summary
from usage.rollups import recompute as rollups

from .factories import make_calls, utc


def table(model, bucket):
    return {
        (getattr(row, bucket), row.api_key_id, row.model_id): (
            row.calls,
            row.input_tokens,
            row.output_tokens,
            row.cached_input_tokens,
            row.reasoning_tokens,
        )
        for row in model.objects.all()
    }


def run_dirty(tenant):
    return rollups.usage_rollup_dirty(tenant=tenant)


def test_rollup_writes_exact_buckets_and_clears_dirty(tenant, api_key, llm):
    make_calls(
        tenant,
        [
            {
                "api_key": api_key,
                "model": llm,
                "occurred_at": utc(2026, 3, 1, 10, 5),
                "input_tokens": 100,
                "output_tokens": 7,
                "cached_input_tokens": 0,
            },
            {
                "api_key": api_key,
                "model": llm,
                "occurred_at": utc(2026, 3, 1, 10, 59, 59),
                "input_tokens": 50,
                "output_tokens": 3,
            },
            {
                "api_key": api_key,
                "model": llm,
                "occurred_at": utc(2026, 3, 2, 0, 0),
                "input_tokens": 1,
                "output_tokens": 5,
                "reasoning_tokens": 4,
            },
        ],
        dirty=True,
    )
    assert run_dirty(tenant) == 2
    assert table(UsageHourly, "hour") == {
        (utc(2026, 3, 1, 10), api_key.pk, llm.pk): (2, 150, 10, 0, None),
        (utc(2026, 3, 2, 0), api_key.pk, llm.pk): (1, 1, 5, None, 4),
    }
    assert table(UsageDaily, "day") == {
        (dt.date(2026, 3, 1), api_key.pk, llm.pk): (2, 150, 10, 0, None),
        (dt.date(2026, 3, 2), api_key.pk, llm.pk): (1, 1, 5, None, 4),
    }
    assert list(UsageDailyModel.objects.values_list("day", "model_id", "calls", "input_tokens")) == [
        (dt.date(2026, 3, 1), llm.pk, 2, 150),
        (dt.date(2026, 3, 2), llm.pk, 1, 1),
    ]
    assert not DirtyDay.objects.exists()


def test_late_call_and_second_recompute_give_the_same_exact_answer(tenant, api_key, llm):
    call = {"api_key": api_key, "model": llm}
    make_calls(tenant, [{**call, "occurred_at": utc(2026, 3, 1, 9), "input_tokens": 10}], dirty=True)
    run_dirty(tenant)
    make_calls(tenant, [{**call, "occurred_at": utc(2026, 3, 1, 23), "input_tokens": 5}], dirty=True)
    run_dirty(tenant)
    rollups.usage_rollup_days(tenant=tenant, first_day=dt.date(2026, 3, 1), last_day=dt.date(2026, 3, 1))
    assert table(UsageDaily, "day") == {(dt.date(2026, 3, 1), api_key.pk, llm.pk): (2, 15, 0, None, None)}
    assert UsageHourly.objects.count() == 2


def test_dirty_day_is_read_from_the_ledger_until_recomputed(tenant, api_key, llm):
    make_calls(tenant, [{"api_key": api_key, "model": llm, "occurred_at": utc(2026, 3, 1, 9), "input_tokens": 10}])
    run_dirty(tenant)
    late = {"api_key": api_key, "model": llm, "occurred_at": utc(2026, 3, 1, 10), "input_tokens": 5}
    make_calls(tenant, [late], dirty=True)
    filters = UsageFilters(Period(dt.date(2026, 3, 1), dt.date(2026, 3, 1)))
    assert UsageDaily.objects.get().input_tokens == 10  # stale rollup
    assert usage_summary(tenant=tenant, filters=filters).input_tokens == 15
    hourly = usage_series(tenant=tenant, filters=filters, bucket="hour", group_by=None)
    assert [p.input_tokens for p in hourly.groups[0][1]][9:11] == [10, 5]


def test_mark_during_recompute_keeps_the_day_dirty(tenant, api_key, llm, monkeypatch):
    call = {"api_key": api_key, "model": llm, "occurred_at": utc(2026, 3, 1, 9), "input_tokens": 10}
    make_calls(tenant, [call], dirty=True)
    original = rollups._insert_daily

    def insert_then_ingest(cursor, *args):
        original(cursor, *args)
        rollups.mark_days_dirty(tenant=tenant, days=[dt.date(2026, 3, 1)])

    monkeypatch.setattr(rollups, "_insert_daily", insert_then_ingest)
    run_dirty(tenant)
    assert DirtyDay.objects.filter(tenant=tenant, day=dt.date(2026, 3, 1)).exists()


def test_failed_recompute_rolls_back_and_leaves_the_day_dirty(tenant, api_key, llm, monkeypatch):
    make_calls(tenant, [{"api_key": api_key, "model": llm, "occurred_at": utc(2026, 3, 1, 9), "input_tokens": 10}])
    run_dirty(tenant)
    late = {"api_key": api_key, "model": llm, "occurred_at": utc(2026, 3, 1, 10), "input_tokens": 5}
    make_calls(tenant, [late], dirty=True)

    def crash(*args):
        raise RuntimeError("worker died")

    monkeypatch.setattr(rollups, "_insert_daily", crash)
    with pytest.raises(RuntimeError):
        run_dirty(tenant)
    assert DirtyDay.objects.filter(tenant=tenant).count() == 1
    assert UsageDaily.objects.get().input_tokens == 10  # the old bucket survived the crash
    monkeypatch.undo()
    run_dirty(tenant)
    assert UsageDaily.objects.get().input_tokens == 15


def test_rollup_runs_on_commit_in_eager_mode(tenant, api_key, llm, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        call = {"api_key": api_key, "model": llm, "occurred_at": utc(2026, 3, 1, 9), "input_tokens": 3}
        make_calls(tenant, [call], dirty=True)
    assert UsageDaily.objects.get().input_tokens == 3
    assert not DirtyDay.objects.exists()


# --- Ground truth across time zones ------------------------------------------------------


def ground_truth(records, zone):
    """Daily and hourly sums computed independently of the SQL: per call, in Python."""
    tz = zoneinfo.ZoneInfo(zone)
    daily, hourly = defaultdict(Totals), defaultdict(Totals)
    for r in records:
        local = r.occurred_at.astimezone(tz)
        one = Totals(1, r.input_tokens, r.output_tokens, r.cached_input_tokens, r.reasoning_tokens)
        daily[(local.date(), r.api_key_id, r.model_id)] += one
        # A local hour is its wall-clock start plus the fold, so a repeated hour stays apart.
        hourly[(local.replace(minute=0, second=0, microsecond=0), local.fold, r.api_key_id, r.model_id)] += one
    return daily, hourly


def as_tuple(t):
    return (t.calls, t.input_tokens, t.output_tokens, t.cached_input_tokens, t.reasoning_tokens)


def random_calls(tenant, keys, models, start, hours, count, seed):
    rng = random.Random(seed)
    specs = []
    for _ in range(count):
        inp, out = rng.randrange(0, 5000), rng.randrange(0, 2000)
        # Within the input and output: ingestion refuses more (they are counted inside them).
        cached = rng.choice([None, 0, rng.randrange(0, min(500, inp) + 1)])
        specs.append(
            {
                "api_key": rng.choice(keys),
                "model": rng.choice(models),
                "occurred_at": start + dt.timedelta(seconds=rng.randrange(0, hours * 3600)),
                "input_tokens": inp,
                "output_tokens": out,
                "cached_input_tokens": cached,
                "reasoning_tokens": rng.choice([None, rng.randrange(0, min(100, out) + 1)]),
            }
        )
    return make_calls(tenant, specs)


@pytest.mark.parametrize(
    ("zone", "start"),
    [
        ("UTC", utc(2026, 2, 27, 12)),
        ("Asia/Shanghai", utc(2026, 2, 27, 12)),
        ("Asia/Kolkata", utc(2026, 2, 27, 12)),
        ("America/New_York", utc(2026, 3, 6, 12)),  # spring forward on 2026-03-08: a 23-hour day
        ("America/New_York", utc(2026, 10, 30, 12)),  # fall back on 2026-11-01: a 25-hour day
    ],
)
def test_rollups_equal_ground_truth(db, zone, start):
    tenant = services.tenant_create(slug="tz", name="TZ", timezone_name=zone)
    keys = [services.api_key_create(tenant=tenant, name=f"k{i}")[0] for i in range(3)]
    models = [Model.objects.create(name=f"m/{i}") for i in range(3)]
    records = random_calls(tenant, keys, models, start, hours=96, count=1500, seed=zone)
    assert len(records) == 1500
    daily, hourly = ground_truth(CallRecord.objects.filter(tenant=tenant), zone)
    assert_rollups_equal(daily, hourly, zone)  # ingestion's increments
    run_dirty(tenant)
    rollups.usage_rollup_days(tenant=tenant, first_day=dt.date(2026, 1, 1), last_day=dt.date(2026, 12, 31))
    assert_rollups_equal(daily, hourly, zone)  # a full recompute: the same, row for row


def assert_rollups_equal(daily, hourly, zone):
    assert table(UsageDaily, "day") == {key: as_tuple(value) for key, value in daily.items()}
    per_model = defaultdict(Totals)
    for (day, _key_id, model_id), totals in daily.items():
        per_model[(day, model_id)] += totals
    got_per_model = {
        (row.day, row.model_id): (
            row.calls,
            row.input_tokens,
            row.output_tokens,
            row.cached_input_tokens,
            row.reasoning_tokens,
        )
        for row in UsageDailyModel.objects.all()
    }
    assert got_per_model == {key: as_tuple(value) for key, value in per_model.items()}
    tz = zoneinfo.ZoneInfo(zone)
    got_hourly = {}
    for (hour, key_id, model_id), sums in table(UsageHourly, "hour").items():
        local = hour.astimezone(tz)
        got_hourly[(local.replace(tzinfo=None), local.fold, key_id, model_id)] = sums
    want_hourly = {(h.replace(tzinfo=None), fold, k, m): as_tuple(v) for (h, fold, k, m), v in hourly.items()}
    assert got_hourly == want_hourly


def test_dst_days_have_23_and_25_hour_buckets(db):
    tenant = services.tenant_create(slug="ny", name="NY", timezone_name="America/New_York")
    from usage.reporting.selectors import hour_buckets

    assert len(hour_buckets(tenant, Period(dt.date(2026, 3, 8), dt.date(2026, 3, 8)))) == 23
    assert len(hour_buckets(tenant, Period(dt.date(2026, 11, 1), dt.date(2026, 11, 1)))) == 25
    kolkata = services.tenant_create(slug="in", name="IN", timezone_name="Asia/Kolkata")
    buckets = hour_buckets(kolkata, Period(dt.date(2026, 3, 1), dt.date(2026, 3, 1)))
    assert len(buckets) == 24 and buckets[0] == utc(2026, 2, 28, 18, 30)


def test_rebuild_after_time_zone_change_moves_days(tenant, api_key, llm):
    make_calls(tenant, [{"api_key": api_key, "model": llm, "occurred_at": utc(2026, 3, 1, 20), "input_tokens": 7}])
    run_dirty(tenant)
    assert UsageDaily.objects.get().day == dt.date(2026, 3, 1)
    tenant.timezone = "Asia/Shanghai"
    tenant.save()
    rollups.usage_rebuild(tenant=tenant)
    assert list(UsageDaily.objects.values_list("day", "input_tokens")) == [(dt.date(2026, 3, 2), 7)]
    assert list(UsageDailyModel.objects.values_list("day", "input_tokens")) == [(dt.date(2026, 3, 2), 7)]
    assert UsageHourly.objects.get().hour == utc(2026, 3, 1, 20)


def test_calls_at_exactly_local_midnight_belong_to_the_new_day(db):
    tenant = services.tenant_create(slug="kol", name="Kol", timezone_name="Asia/Kolkata")
    key = services.api_key_create(tenant=tenant, name="k")[0]
    model = Model.objects.create(name="m/x")
    midnight = utc(2026, 3, 1, 18, 30)  # 2026-03-02 00:00 in Kolkata
    make_calls(tenant, [{"api_key": key, "model": model, "occurred_at": midnight, "input_tokens": 1}])
    make_calls(
        tenant,
        [{"api_key": key, "model": model, "occurred_at": midnight - dt.timedelta(microseconds=1), "input_tokens": 2}],
    )
    before = utc(2026, 3, 1, 17, 30)  # the local hour 23:00 of March 1st
    for recompute in (False, True):  # the increments of ingestion, then a recompute: the same buckets
        if recompute:
            rollups.usage_rollup_days(tenant=tenant, first_day=dt.date(2026, 3, 1), last_day=dt.date(2026, 3, 2))
        days = UsageDaily.objects.order_by("day").values_list("day", "input_tokens")
        assert list(days) == [(dt.date(2026, 3, 1), 2), (dt.date(2026, 3, 2), 1)]
        assert list(UsageHourly.objects.order_by("hour").values_list("hour", flat=True)) == [before, midnight]


def test_changing_the_time_zone_rebuilds_on_commit(tenant, api_key, llm, django_capture_on_commit_callbacks):
    make_calls(tenant, [{"api_key": api_key, "model": llm, "occurred_at": utc(2026, 3, 1, 20), "input_tokens": 7}])
    run_dirty(tenant)
    with django_capture_on_commit_callbacks(execute=True):
        tenant.timezone = "Asia/Tokyo"
        tenant.save()
    assert list(UsageDaily.objects.values_list("day", "input_tokens")) == [(dt.date(2026, 3, 2), 7)]


def test_rebuild_rollups_command_restores_deleted_buckets(tenant, api_key, llm):
    from io import StringIO

    from django.core.management import call_command

    make_calls(tenant, [{"api_key": api_key, "model": llm, "occurred_at": utc(2026, 3, 1, 20), "input_tokens": 7}])
    run_dirty(tenant)
    UsageDaily.objects.all().delete()
    UsageHourly.objects.all().delete()
    out = StringIO()
    call_command("rebuild_rollups", "--tenant", tenant.slug, stdout=out, verbosity=0)
    assert "Rebuilt 1 tenant-days" in out.getvalue()
    assert table(UsageDaily, "day") == {(dt.date(2026, 3, 1), api_key.pk, llm.pk): (1, 7, 0, None, None)}


def test_admin_action_rebuilds_a_tenants_rollups(tenant, api_key, llm, admin_client):
    make_calls(tenant, [{"api_key": api_key, "model": llm, "occurred_at": utc(2026, 3, 1, 20), "input_tokens": 9}])
    response = admin_client.post(
        "/admin/accounts/tenant/", {"action": "rebuild_rollups", "_selected_action": [tenant.pk]}, follow=True
    )
    assert "Rebuild of 1 tenant(s) started." in response.content.decode()
    assert table(UsageDaily, "day") == {(dt.date(2026, 3, 1), api_key.pk, llm.pk): (1, 9, 0, None, None)}


def test_reads_are_exact_in_the_new_zone_before_the_recompute_runs(tenant, api_key, llm):
    make_calls(tenant, [{"api_key": api_key, "model": llm, "occurred_at": utc(2026, 3, 1, 20), "input_tokens": 7}])
    run_dirty(tenant)
    tenant.timezone = "Asia/Tokyo"  # 20:00 UTC is 05:00 on March 2nd in Tokyo
    tenant.save()  # on_commit never fires inside the test transaction: no recompute has run
    day = lambda d: usage_summary(tenant=tenant, filters=UsageFilters(Period(d, d))).input_tokens  # noqa: E731
    assert (day(dt.date(2026, 3, 1)), day(dt.date(2026, 3, 2))) == (0, 7)
    assert UsageDaily.objects.get().day == dt.date(2026, 3, 1)  # the stale bucket is still there
    run_dirty(tenant)
    assert list(UsageDaily.objects.values_list("day", flat=True)) == [dt.date(2026, 3, 2)]
    assert not DirtyDay.objects.exists()


def test_half_hour_dst_zone_keeps_every_call_in_the_hourly_series(db):
    tenant = services.tenant_create(slug="lh", name="LH", timezone_name="Australia/Lord_Howe")
    key = services.api_key_create(tenant=tenant, name="k")[0]
    model = Model.objects.create(name="m/lh")
    # 2026-04-05: Lord Howe moves from +11:00 to +10:30 at 02:00 local; 01:30-02:00 happens twice.
    start = utc(2026, 4, 4, 13)
    make_calls(
        tenant,
        [
            {"api_key": key, "model": model, "occurred_at": start + dt.timedelta(minutes=20 * n), "input_tokens": 1}
            for n in range(24)
        ],
    )
    run_dirty(tenant)
    filters = UsageFilters(Period(dt.date(2026, 4, 5), dt.date(2026, 4, 5)))
    series = usage_series(tenant=tenant, filters=filters, bucket="hour", group_by=None)
    assert sum(point.input_tokens for point in series.groups[0][1]) == 24
    assert usage_summary(tenant=tenant, filters=filters).input_tokens == 24

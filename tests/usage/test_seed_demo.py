"""seed_demo: the demo data set, deterministic and idempotent, on a small configuration."""

import datetime as dt
import io
from collections import Counter

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count, Sum

from accounts.models import ApiKey, Membership, Tenant, User
from usage.demo import seed as demo
from usage.models import CallRecord, CallRequest, DirtyDay, Model, ModelPrice, UsageDaily

NOW = dt.datetime(2026, 3, 18, 9, 30, tzinfo=dt.UTC)  # a Wednesday
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # The demo sets two passwords per run; the default hasher takes ~0.3 s each on purpose.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def trace_dir(tmp_path):
    """Two tiny traces in the Azure format, calls spread over 50 minutes."""
    for name, scale in (("AzureLLMInferenceTrace_code.csv", 3), ("AzureLLMInferenceTrace_conv.csv", 1)):
        lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
        lines += [f"2023-11-16 18:{10 + n:02d}:0{n % 10}.1234567,{100 * scale + n},{10 + n}" for n in range(40)]
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    return tmp_path


def config(trace_dir, **overrides):
    return demo.DemoConfig(**{"days": 3, "trace_sample": 6, "synthetic_peak": 12, "trace_dir": trace_dir, **overrides})


def seed(trace_dir, now=NOW, **overrides):
    return demo.seed_demo(config=config(trace_dir, **overrides), now=now)


def run_command(trace_dir, *extra):
    out, err = io.StringIO(), io.StringIO()
    args = ["--days", "2", "--trace-sample", "5", "--synthetic-peak", "10", "--trace-dir", str(trace_dir), *extra]
    call_command("seed_demo", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_second_run_adds_nothing(trace_dir):
    first, _ = run_command(trace_dir)
    rows = CallRecord.objects.count()
    second, _ = run_command(trace_dir)
    assert rows > 0
    assert CallRecord.objects.count() == rows
    assert "demo: 0 added" in second and "side-project: 0 added" in second
    assert "demo: 0 added" not in first


def test_command_prints_the_logins_and_urls(trace_dir):
    out, _ = run_command(trace_dir)
    assert f"{demo.DEMO_EMAIL} / {demo.DEMO_PASSWORD}" in out
    assert f"{demo.VIEWER_EMAIL} / {demo.DEMO_PASSWORD}" in out
    assert "http://127.0.0.1:8000" in out and "http://127.0.0.1:8000/admin/" in out
    assert "CC-BY 4.0" in out


def test_a_later_minute_of_the_same_hour_adds_nothing(trace_dir):
    seed(trace_dir)
    again = seed(trace_dir, now=NOW.replace(minute=59, second=59))
    assert set(again.added.values()) == {0}


def test_the_next_day_adds_only_that_day(trace_dir):
    first = seed(trace_dir)
    before = {(t, r): at for t, r, at in CallRecord.objects.values_list("tenant_id", "request_id", "occurred_at")}
    second = seed(trace_dir, now=NOW + dt.timedelta(days=1))
    after = {(t, r): at for t, r, at in CallRecord.objects.values_list("tenant_id", "request_id", "occurred_at")}
    new = [at for key, at in after.items() if key not in before]
    assert second.added["demo"] > 0
    assert all(first.window[1] <= at < second.window[1] for at in new)
    assert {key: after[key] for key in before} == before


def test_calls_end_before_the_start_of_the_current_utc_hour(trace_dir):
    result = seed(trace_dir)
    span = CallRecord.objects.values_list("occurred_at", flat=True)
    assert result.window == (dt.datetime(2026, 3, 15, 9, tzinfo=dt.UTC), dt.datetime(2026, 3, 18, 9, tzinfo=dt.UTC))
    assert all(result.window[0] <= at < result.window[1] for at in span)


def test_same_data_on_every_run(trace_dir):
    seed(trace_dir)
    first = sorted(CallRecord.objects.values_list("request_id", "input_tokens", "output_tokens", "occurred_at"))
    CallRecord.objects.all().delete()
    CallRequest.objects.all().delete()  # a ledger emptied with its claims, as a purge does
    seed(trace_dir)
    assert sorted(CallRecord.objects.values_list("request_id", "input_tokens", "output_tokens", "occurred_at")) == first


def test_demo_logins_and_tenants(trace_dir):
    seed(trace_dir)
    owner = User.objects.get(email=demo.DEMO_EMAIL)
    viewer = User.objects.get(email=demo.VIEWER_EMAIL)
    assert owner.is_staff and owner.is_superuser and owner.check_password(demo.DEMO_PASSWORD)
    assert not viewer.is_staff and viewer.check_password(demo.DEMO_PASSWORD)
    roles = set(Membership.objects.values_list("user__email", "tenant__slug", "role"))
    assert roles == {
        (demo.DEMO_EMAIL, "demo", "owner"),
        (demo.DEMO_EMAIL, "side-project", "owner"),
        (demo.VIEWER_EMAIL, "demo", "viewer"),
    }
    assert Tenant.objects.get(slug="demo").timezone == "Asia/Shanghai"


def test_five_demo_keys_one_revoked_and_each_used(trace_dir):
    seed(trace_dir, days=30)  # the revoked key was last used 20 days ago
    keys = ApiKey.objects.filter(tenant__slug="demo")
    assert keys.count() == 5
    assert Counter(key.status for key in keys) == {"active": 4, "revoked": 1}
    assert all(key.last_used_at is not None for key in keys)


def test_revoked_key_stops_calling_at_its_revocation(trace_dir):
    seed(trace_dir, days=30)
    revoked = ApiKey.objects.get(tenant__slug="demo", revoked_at__isnull=False)
    calls = CallRecord.objects.filter(api_key=revoked)
    assert calls.exists()
    assert not calls.filter(occurred_at__gte=revoked.revoked_at).exists()


def test_models_have_distinct_colours_and_prices(trace_dir):
    seed(trace_dir)
    colours = dict(Model.objects.values_list("name", "color"))
    assert len(colours) >= 6
    assert colours["public/deepseek-r1"] == "#7c3aed"
    assert len(set(colours.values())) == len(colours)
    today = NOW.date()
    for model in Model.objects.all():
        starts = sorted(model.prices.filter(tenant__isnull=True).values_list("effective_from", flat=True))
        assert starts[0] == today - dt.timedelta(days=120)
    r1_starts = ModelPrice.objects.filter(model__name="public/deepseek-r1").values_list("effective_from", flat=True)
    assert sorted(r1_starts) == [today - dt.timedelta(days=120), today - dt.timedelta(days=30)]


def test_prices_are_not_added_again_on_later_days(trace_dir):
    seed(trace_dir)
    prices = ModelPrice.objects.count()
    seed(trace_dir, now=NOW + dt.timedelta(days=3))
    assert ModelPrice.objects.count() == prices


def test_trace_calls_keep_their_token_counts_and_land_on_busy_hours(trace_dir):
    seed(trace_dir)
    replayed = CallRecord.objects.filter(request_id__contains="AzureLLMInferenceTrace_code")
    shanghai = Tenant.objects.get(slug="demo").tz
    assert replayed.exists()
    for call in replayed.select_related("model"):
        line = int(call.request_id.split("-")[3])
        assert (call.input_tokens, call.output_tokens) == (300 + line - 2, 10 + line - 2)
        assert call.model.name == "public/qwen2.5-coder-32b" and call.cached_input_tokens is None
        local = call.occurred_at.astimezone(shanghai)
        busy = demo.BUSY_HOURS["weekend" if local.weekday() >= 5 else "weekday"]
        assert local.hour in busy


def test_weekdays_are_busier_than_weekends(trace_dir):
    result = seed(trace_dir, days=14, trace_sample=0)
    per_day = Counter(at.astimezone(dt.UTC).date() for at in CallRecord.objects.values_list("occurred_at", flat=True))
    for partial_day in (result.window[0].date(), result.window[1].date()):  # the window cuts these days
        per_day.pop(partial_day, None)
    weekday = [n for day, n in per_day.items() if day.weekday() < 5]
    weekend = [n for day, n in per_day.items() if day.weekday() >= 5]
    assert min(weekday) > max(weekend)


def test_missing_traces_are_reported_and_only_the_synthetic_part_is_seeded(tmp_path):
    _out, err = run_command(tmp_path / "nowhere")
    assert "Trace files not found" in err
    assert CallRecord.objects.exists()
    assert not CallRecord.objects.filter(request_id__contains="azure").exists()


def test_days_with_new_calls_are_marked_dirty(trace_dir, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        seed(trace_dir)
    tenant = Tenant.objects.get(slug="demo")
    instants = CallRecord.objects.filter(tenant=tenant).values_list("occurred_at", flat=True)
    days = {at.astimezone(tenant.tz).date() for at in instants}
    assert set(DirtyDay.objects.filter(tenant=tenant).values_list("day", flat=True)) == days
    assert callbacks


def test_rollups_match_the_ledger_once_committed(trace_dir, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        seed(trace_dir)
    sums = {"calls": Count("id"), "input": Sum("input_tokens"), "output": Sum("output_tokens")}
    rollup_sums = {"calls": Sum("calls"), "input": Sum("input_tokens"), "output": Sum("output_tokens")}
    for tenant in Tenant.objects.all():
        ledger = CallRecord.objects.filter(tenant=tenant).aggregate(**sums)
        assert UsageDaily.objects.filter(tenant=tenant).aggregate(**rollup_sums) == ledger
    assert not DirtyDay.objects.exists()


def test_refuses_to_run_in_production(trace_dir, settings):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="production"):
        run_command(trace_dir)
    assert not User.objects.exists()


def test_refuses_nonsense_options(trace_dir):
    with pytest.raises(CommandError):
        run_command(trace_dir, "--days", "0")


def test_every_demo_call_is_claimed_so_a_resent_request_id_is_a_conflict(trace_dir):
    """Demo calls are claimed like ingested ones: one claim per call, at its instant, in both
    tenants; the gateway re-sending a demo request id at another instant stores nothing."""
    from .ledger_helpers import item, store

    seed(trace_dir)
    calls = sorted(CallRecord.objects.values_list("tenant_id", "request_id", "occurred_at"))
    assert len({tenant_id for tenant_id, _, _ in calls}) == 2
    assert sorted(CallRequest.objects.values_list("tenant_id", "request_id", "occurred_at")) == calls
    record = CallRecord.objects.select_related("api_key").filter(api_key__revoked_at=None).first()
    later = (record.occurred_at + dt.timedelta(minutes=7)).isoformat()
    result = store([item(record.api_key, record.request_id, later)])
    assert (result.accepted, result.rejected, result.errors[0]["code"]) == (0, 1, "conflict")
    assert CallRecord.objects.count() == len(calls)


# --- performance and the incident (issue 27) ------------------------------------------------------


def test_calls_have_durations_and_the_weeks_incident_departs(trace_dir, django_capture_on_commit_callbacks):
    """Five weeks of demo data: every call has a duration; in the last week one incident, in which
    public/deepseek-r1's p95 latency is about three times the same hours' of the previous weeks,
    about 5% of its calls are rate limited and the batch-jobs key spikes; the page marks it."""
    from usage.dashboard.performance import departures
    from usage.reporting.performance import Stats, query_performance
    from usage.reporting.periods import Period
    from usage.reporting.query import UsageQuery
    from usage.rollups import performance as perf
    from usage.rollups import recompute

    with django_capture_on_commit_callbacks(execute=True):
        seed(trace_dir, days=36, synthetic_peak=60)
    tenant = Tenant.objects.get(slug="demo")
    recompute.usage_rollup_dirty(tenant=tenant)
    assert not CallRecord.objects.filter(duration_ms__isnull=True).exists()
    today = NOW.astimezone(tenant.tz).date()
    [day] = [today - dt.timedelta(days=n) for n in range(7) if (today - dt.timedelta(days=n)).toordinal() % 7 == 3]
    plan_hours = 9 + 3 * (day.toordinal() // 7 % 5)
    r1 = Model.objects.get(name="public/deepseek-r1")
    query = UsageQuery(tenant, Period(day, day), model=r1, bucket="hour")
    report = query_performance(query, group_by="model")
    [points] = report.groups.values()
    hour_index = [b.astimezone(tenant.tz).hour for b in report.buckets].index(plan_hours)
    during = points[hour_index]
    history = UsageQuery(tenant, Period(day - dt.timedelta(weeks=4), day - dt.timedelta(days=1)), model=r1)
    before = query_performance(history, group_by="model", bucket="hour")
    usual = [
        stats
        for bucket, stats in zip(before.buckets, next(iter(before.groups.values())), strict=True)
        if bucket.astimezone(tenant.tz).hour == plan_hours and (day - bucket.astimezone(tenant.tz).date()).days % 7 == 0
    ]
    p95_now = during.percentiles(perf.LATENCY)["p95"]
    merged = Stats()
    for stats in usual:
        merged.merge(stats)
    p95_then = merged.percentiles(perf.LATENCY)["p95"]
    # Three times slower; a p95 of a few dozen calls an hour is noisy, hence the wide band.
    assert len(usual) == 4 and 2.0 < p95_now / p95_then < 5.0
    assert 0.02 < during.errors["rate_limited"] / during.calls < 0.09
    assert during.calls > 3 * min(stats.calls for stats in usual)
    marks = departures(query, report.groups, report.buckets)
    assert hour_index in {mark["index"] for mark in marks}

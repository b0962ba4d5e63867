"""Demo data of ``manage.py seed_demo``: two tenants, keys, models, prices and 90 days of calls.

The calls replay the real Azure LLM inference traces (Microsoft AzurePublicDataset, CC-BY 4.0;
Patel et al., "Splitwise", ISCA 2024) on the demo tenant's busy hours, on top of a synthetic
weekly pattern over every model. Each call is derived from constants and its calendar date and
hour only (never the clock or a global random state), and the data ends at the start of the
current UTC hour: request ids are stable, so a rerun within the hour adds nothing and a later
rerun adds just the hours since.
"""

import datetime as dt
import itertools
import json
import math
import random
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

from django.conf import settings
from django.db import transaction
from django.db.models import Max

from accounts import services
from accounts.models import ApiKey, Membership, Tenant
from usage.ingestion.traces import iter_azure_trace, trace_request_id
from usage.models import CallRecord, CallRequest, Model, ModelPrice
from usage.rollups.recompute import mark_days_dirty

SEED = "usage-demo-v1"
REQUEST_PREFIX = "demo-"
DEMO_EMAIL = "demo@example.com"
VIEWER_EMAIL = "viewer@example.com"
DEMO_PASSWORD = "demo-usage-2024"
BATCH_SIZE = 1000
PRICES_SINCE_DAYS = 120
PRICE_CHANGE_DAYS_AGO = 30
HOUR = dt.timedelta(hours=1)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    color: str
    # USD per 1K input, output, cached input tokens (None: cached costs the input price), and
    # optionally cache writes and one-hour cache writes (absent: as the rule of usage.reporting.costs).
    prices: tuple
    share: float  # of the synthetic traffic
    input_median: int
    output_median: int
    cached: bool = False  # reports cached input tokens; the others leave them "not reported"
    reasoning: bool = False
    speed: int = 60  # output tokens per second of generation
    ttft_median: int = 400  # milliseconds to the first token
    cache_writes: bool = False  # reports cache writes (5-minute and one-hour), as Anthropic's API does


MODELS = (
    ModelSpec(
        "public/deepseek-r1", "#7c3aed", ("0.00055", "0.00219", "0.00014"), 0.30, 1400, 900, True, True, 28, 1800
    ),
    ModelSpec("public/deepseek-v3", "#2563eb", ("0.00027", "0.0011", "0.00007"), 0.22, 1100, 320, True, False, 45, 700),
    ModelSpec(
        "public/qwen2.5-coder-32b", "#059669", ("0.0002", "0.0006", None), 0.14, 2200, 160, speed=70, ttft_median=450
    ),
    ModelSpec(
        "public/qwen2.5-72b-instruct", "#ea580c", ("0.0004", "0.0012", None), 0.12, 900, 280, speed=40, ttft_median=600
    ),
    ModelSpec(
        "public/llama-3.3-70b-instruct",
        "#db2777",
        ("0.00059", "0.00079", None),
        0.10,
        800,
        260,
        speed=55,
        ttft_median=500,
    ),
    ModelSpec(
        "public/glm-4-9b-chat", "#0891b2", ("0.0001", "0.0001", None), 0.08, 600, 200, speed=120, ttft_median=250
    ),
    ModelSpec("public/bge-m3", "#ca8a04", ("0.00002", "0", None), 0.04, 350, 0, speed=1, ttft_median=80),
    # Prompt caching with writes priced apart (issue 26): 1.25x the input for a 5-minute write, 2x for one hour.
    ModelSpec(
        "public/claude-sonnet-4",
        "#65a30d",
        ("0.003", "0.015", "0.0003", "0.00375", "0.006"),
        0.05,
        3000,
        400,
        cached=True,
        speed=50,
        ttft_median=900,
        cache_writes=True,
    ),
)
# The incident the Performance view shows (issue 27): on the demo tenant, one local day a week
# (``incident_hours``), for three hours, the key INCIDENT_KEY calls INCIDENT_MODEL INCIDENT_SPIKE
# times as often as usual on top; that model's calls take three times as long and 5% are rate
# limited. A function of the date only (reruns add the same calls), and at other hours than in the
# four weeks before, so it departs from the same hours of previous weeks.
INCIDENT_MODEL = "public/deepseek-r1"
INCIDENT_KEY = "batch-jobs"
INCIDENT_SPIKE = 3
INCIDENT_SLOWDOWN = 3
INCIDENT_RATE_LIMITED = 0.05
# Outside the incident, a few calls fail as a provider's would.
BASE_ERRORS = (("server_error", 0.003), ("rate_limited", 0.002), ("timeout", 0.001))
MODEL_SPECS = {spec.name: spec for spec in MODELS}
# A price cut 30 days ago, so cost estimates visibly use the price of each call's day.
PRICE_CHANGE = ("public/deepseek-r1", ("0.00041", "0.00164", "0.0001"))
# Prices that depend on the call (``usage.pricing_rules``): the key BATCH_KEY's calls run at
# the ``batch`` service tier, half price where the model's price names it; public/deepseek-r1 has
# DeepSeek's off-peak window (75% off from 16:30 to 00:30 UTC); TIERED_MODEL bills a call above
# 32,000 input tokens at its long-context rates (LONG_CONTEXT_SHARE of its calls are that long).
BATCH_KEY = "batch-jobs"
_BATCH = {"batch": {"factor": "0.5"}}
PRICE_RULES = {
    "public/deepseek-r1": {
        "service_tiers": _BATCH,
        "windows": [{"start": "16:30", "end": "00:30", "zone": "UTC", "factor": "0.25"}],
    },
    "public/deepseek-v3": {"service_tiers": _BATCH},
    "public/qwen2.5-72b-instruct": {
        "service_tiers": _BATCH,
        "tiers": [{"above": 32000, "input_per_1k": "0.0008", "output_per_1k": "0.0024"}],
    },
}
TIERED_MODEL = "public/qwen2.5-72b-instruct"
LONG_CONTEXT_SHARE = 0.05


@dataclass(frozen=True)
class KeySpec:
    name: str
    weight: float
    revoked_days_ago: int | None = None


@dataclass(frozen=True)
class ReplaySpec:
    """One trace file replayed on one model, its calls spread over some keys."""

    file: str
    model: str
    keys: tuple  # (key name, weight)


@dataclass(frozen=True)
class TenantSpec:
    slug: str
    name: str
    timezone: str
    keys: tuple
    models: tuple | None  # model names with synthetic traffic; None: all
    synthetic_scale: float
    replays: tuple = ()


DEMO_TENANT = TenantSpec(
    slug="demo",
    name="Demo Corp",
    timezone="Asia/Shanghai",
    keys=(
        KeySpec("production-web", 0.38),
        KeySpec("mobile-app", 0.24),
        KeySpec("batch-jobs", 0.16),
        KeySpec("internal-tools", 0.12),
        KeySpec("legacy-backend", 0.10, revoked_days_ago=20),
    ),
    models=None,
    synthetic_scale=1.0,
    replays=(
        ReplaySpec(
            "AzureLLMInferenceTrace_code.csv",
            "public/qwen2.5-coder-32b",
            (("internal-tools", 5), ("batch-jobs", 3), ("production-web", 2)),
        ),
        ReplaySpec(
            "AzureLLMInferenceTrace_conv.csv",
            "public/deepseek-v3",
            (("production-web", 5), ("mobile-app", 3), ("legacy-backend", 2)),
        ),
    ),
)
SIDE_TENANT = TenantSpec(
    slug="side-project",
    name="Side Project",
    timezone="UTC",
    keys=(KeySpec("hobby-bot", 0.7), KeySpec("experiments", 0.3)),
    models=("public/deepseek-r1", "public/glm-4-9b-chat"),
    synthetic_scale=0.15,
)
TENANTS = (DEMO_TENANT, SIDE_TENANT)

# Share of the busiest hour's traffic in each local hour: quiet nights, a lunch dip.
HOURLY = (
    0.05, 0.04, 0.03, 0.03, 0.03, 0.05, 0.10, 0.25, 0.55, 0.85, 1.00, 0.95,
    0.70, 0.80, 0.95, 1.00, 0.90, 0.70, 0.45, 0.35, 0.30, 0.22, 0.14, 0.08,
)  # fmt: skip
# Local hours on which the real traces are replayed, with the share of the sample each gets.
BUSY_HOURS = {
    "weekday": {9: 0.7, 10: 1.0, 11: 1.0, 14: 0.9, 15: 1.0, 16: 0.9, 17: 0.6},
    "weekend": {11: 0.35, 15: 0.35},
}


@dataclass(frozen=True)
class DemoConfig:
    days: int = 90
    trace_sample: int = 70  # calls of each trace per busy hour at full weight
    synthetic_peak: int = 130  # synthetic calls of the demo tenant in its busiest weekday hour
    trace_dir: Path | None = None
    password: str = DEMO_PASSWORD


def default_trace_dir():
    """The shared data folder next to the checkout."""
    return Path(settings.BASE_DIR).parent / "shared" / "data"


@dataclass(frozen=True)
class Trace:
    path: Path
    calls: tuple  # (seconds into the trace's hour, input tokens, output tokens, request id of the line)


def load_trace(path):
    """The trace's calls as offsets from its first call; None when the file is absent."""
    path = Path(path)
    if not path.is_file():
        return None
    calls = list(iter_azure_trace(path))
    start = min(call.occurred_at for call in calls)
    rows = ((_offset(c, start), c.input_tokens, c.output_tokens, trace_request_id(path, c.line)) for c in calls)
    return Trace(path, tuple(rows))


def _offset(call, start):
    """Seconds into the hour the trace covers (a call past the hour wraps to its start)."""
    return (call.occurred_at - start).total_seconds() % 3600


# --- Accounts, catalog and prices -------------------------------------------------------------


def ensure_users(password):
    """The demo owner (a superuser, so the admin is reachable) and a read-only viewer."""
    owner, _ = services.user_get_or_create(email=DEMO_EMAIL)
    viewer, _ = services.user_get_or_create(email=VIEWER_EMAIL)
    for user, staff in ((owner, True), (viewer, False)):
        # Reset every run, so the login printed at the end always works.
        user.set_password(password)
        user.is_staff = user.is_superuser = staff
        user.first_name = user.first_name or ("Demo" if staff else "Viewer")
        user.save()
    return owner, viewer


def ensure_tenant(spec, owner, viewer):
    tenant = Tenant.objects.filter(slug=spec.slug).first()
    if tenant is None:
        tenant = services.tenant_create(slug=spec.slug, name=spec.name, timezone_name=spec.timezone)
    services.membership_set(tenant=tenant, user=owner, role=Membership.Role.OWNER)
    if spec is DEMO_TENANT:
        services.membership_set(tenant=tenant, user=viewer, role=Membership.Role.VIEWER)
    return tenant


def ensure_models():
    """Platform-wide catalog entries by name; an existing entry keeps its settings."""
    models = {}
    for spec in MODELS:
        model, _ = Model.objects.get_or_create(name=spec.name, defaults={"color": spec.color, "tenant": None})
        if not model.color:
            Model.objects.filter(pk=model.pk).update(color=spec.color)
        models[spec.name] = model
    return models


def _price(model, effective_from, prices):
    input_price, output_price = Decimal(prices[0]), Decimal(prices[1])
    cached_price, write_price, write_1h_price = (
        Decimal(p) if p is not None else None for p in (*prices, None, None)[2:5]
    )
    rules = PRICE_RULES.get(model.name)
    price = ModelPrice(
        model=model,
        currency="USD",
        input_per_1k=input_price,
        output_per_1k=output_price,
        cached_input_per_1k=cached_price,
        pricing_rules=json.dumps(rules) if rules else "",
        cache_write_per_1k=write_price,
        cache_write_1h_per_1k=write_1h_price,
        effective_from=effective_from,
    )
    price.clean()  # checks the rules and stores them canonical
    return price


def ensure_prices(models, today):
    """Platform prices for models that have none yet, so reruns on later days add no price rows."""
    rows = []
    for spec in MODELS:
        model = models[spec.name]
        if ModelPrice.objects.filter(model=model, tenant__isnull=True).exists():
            continue
        rows.append(_price(model, today - dt.timedelta(days=PRICES_SINCE_DAYS), spec.prices))
        if spec.name == PRICE_CHANGE[0]:
            rows.append(_price(model, today - dt.timedelta(days=PRICE_CHANGE_DAYS_AGO), PRICE_CHANGE[1]))
    ModelPrice.objects.bulk_create(rows)
    return len(rows)


def ensure_keys(tenant, spec, owner, window):
    """The tenant's keys by name; new ones look created before the data starts."""
    keys = {}
    for key_spec in spec.keys:
        key = ApiKey.objects.filter(tenant=tenant, name=key_spec.name).first()
        if key is None:
            key, _secret = services.api_key_create(tenant=tenant, name=key_spec.name, created_by=owner)
            key.created_at = window[0] - dt.timedelta(days=14)
            if key_spec.revoked_days_ago is not None:
                key.revoked_at = window[1] - dt.timedelta(days=key_spec.revoked_days_ago)
            key.save(update_fields=["created_at", "revoked_at"])
        keys[key_spec.name] = key
    return keys


# --- Calls ------------------------------------------------------------------------------------


@dataclass
class Plan:
    """What one tenant's calls are generated from, resolved to database rows."""

    spec: TenantSpec
    tenant: Tenant
    keys: dict  # name -> ApiKey
    models: list  # (Model, ModelSpec) with synthetic traffic
    replays: list  # (Trace, Model, ((ApiKey, weight), ...))


def build_plan(spec, tenant, keys, models, traces):
    specs = [m for m in MODELS if spec.models is None or m.name in spec.models]
    replays = []
    for replay in spec.replays:
        trace = traces.get(replay.file)
        if trace is not None:
            weighted = tuple((keys[name], weight) for name, weight in replay.keys)
            replays.append((trace, models[replay.model], weighted))
    return Plan(spec, tenant, keys, [(models[m.name], m) for m in specs], replays)


def day_factor(day):
    """Weekends are quiet; a slow 13-week swell and an occasional batch spike vary the weeks."""
    factor = 0.32 if day.weekday() >= 5 else 1.0
    factor *= 1.0 + 0.22 * math.sin(2 * math.pi * day.toordinal() / 91)
    if day.toordinal() % 17 == 0:
        factor *= 1.7
    return factor


class Call(NamedTuple):
    """One generated call; a ``CallRecord`` is only built for calls that get inserted."""

    request_id: str
    api_key_id: int
    model_id: int
    occurred_at: dt.datetime
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    duration_ms: int | None = None
    time_to_first_token_ms: int | None = None
    status: str | None = None
    error_type: str | None = None
    http_status: int | None = None
    service_tier: str | None = None
    cache_creation_input_tokens: int | None = None
    cache_creation_1h_input_tokens: int | None = None


def cache_writes(rng, spec, input_tokens, cached):
    """The call's cache writes and their one-hour part (None, None for a model that reports none)."""
    if not spec.cache_writes:
        return {}
    writes = int((input_tokens - (cached or 0)) * rng.choice((0, 0.2, 0.6, 0.9)))
    return {
        "cache_creation_input_tokens": writes,
        "cache_creation_1h_input_tokens": int(writes * rng.choice((0, 0.5, 1))),
    }


_HTTP_STATUS = {"rate_limited": 429, "timeout": 504, "server_error": 500}


def performance(rng, spec, output_tokens, *, slowdown=1.0, rate_limited=0.0, errors=True):
    """Duration, time to first token and status of a call: a first token after about the model's
    median, then its output at about the model's speed. A failed call answers fast and bills nothing
    (the replayed traces' calls all succeeded: ``errors`` False)."""
    roll, failed = (rng.random() if errors else 1.0), None
    if roll < rate_limited:
        failed = "rate_limited"
    else:
        roll -= rate_limited
        for kind, share in BASE_ERRORS:
            if roll < share:
                failed = kind
                break
            roll -= share
    if failed is not None:
        duration = 30_000 if failed == "timeout" else int(rng.uniform(20, 120))
        return {"duration_ms": duration, "status": "error", "error_type": failed, "http_status": _HTTP_STATUS[failed]}
    ttft = int(rng.lognormvariate(math.log(spec.ttft_median), 0.35) * slowdown)
    generation = output_tokens / (spec.speed * rng.uniform(0.8, 1.2)) * 1000 * slowdown
    return {"duration_ms": ttft + int(generation), "time_to_first_token_ms": ttft, "status": "ok", "http_status": 200}


def _key_chooser(rng, weighted_keys, hour_end):
    """Draws keys active for the whole hour: a revoked key has no calls from its revocation on."""
    active = [(key.pk, weight) for key, weight in weighted_keys if key.revoked_at is None or key.revoked_at >= hour_end]
    ids, weights = zip(*active, strict=True)
    cumulative = list(itertools.accumulate(weights))
    return lambda: rng.choices(ids, cum_weights=cumulative)[0]


def _tokens(rng, median):
    return 0 if median == 0 else max(1, round(rng.lognormvariate(math.log(median), 0.7)))


def synthetic_hour(plan, config, day, hour, start, incident=False):
    """Calls of every model of the plan in one local hour (``start`` is its UTC instant); during the
    ``incident`` its model is slow and rate limited, and its key adds a spike of calls."""
    calls = []
    weighted_keys = [(plan.keys[k.name], k.weight) for k in plan.spec.keys]
    base = config.synthetic_peak * plan.spec.synthetic_scale * HOURLY[hour] * day_factor(day)
    for model, spec in plan.models:
        rng = random.Random(f"{SEED}|{plan.spec.slug}|{spec.name}|{day.isoformat()}|{hour}")
        pick_key = _key_chooser(rng, weighted_keys, start + HOUR)
        batch_key = plan.keys[BATCH_KEY].pk if BATCH_KEY in plan.keys else None
        count = int(base * spec.share * rng.uniform(0.75, 1.25) + rng.random())
        hit = incident and spec.name == INCIDENT_MODEL
        effects = {"slowdown": INCIDENT_SLOWDOWN, "rate_limited": INCIDENT_RATE_LIMITED} if hit else {}
        for i in range(count + (count * INCIDENT_SPIKE if hit else 0)):
            spike = i >= count
            at = start + dt.timedelta(seconds=rng.random() * 3600)
            input_tokens, output_tokens = _tokens(rng, spec.input_median), _tokens(rng, spec.output_median)
            if spec.name == TIERED_MODEL and rng.random() < LONG_CONTEXT_SHARE:
                input_tokens += 40_000  # a long-context call, billed at the tier above 32,000
            cached = int(input_tokens * rng.choice((0, 0, 0.25, 0.5, 0.8))) if spec.cached else None
            reasoning = round(output_tokens * rng.uniform(0.35, 0.75)) if spec.reasoning else None
            request_id = f"{REQUEST_PREFIX}{spec.name}-{day:%Y%m%d}T{hour:02d}-{i}"
            key_id = plan.keys[INCIDENT_KEY].pk if spike else pick_key()
            measured = performance(rng, spec, output_tokens, **effects)
            writes = cache_writes(rng, spec, input_tokens, cached)
            if measured["status"] == "error":  # the provider bills a refused call nothing
                input_tokens, output_tokens, cached, reasoning = 0, 0, None, None
                writes = dict.fromkeys(writes)
            call = Call(request_id, key_id, model.pk, at, input_tokens, output_tokens, cached, reasoning)
            calls.append(call._replace(**measured, **writes, service_tier="batch" if key_id == batch_key else None))
    return calls


def replay_hour(plan, config, day, hour, start):
    """A deterministic sample of each real trace, re-timed onto this local hour if it is busy."""
    weight = BUSY_HOURS["weekend" if day.weekday() >= 5 else "weekday"].get(hour)
    if weight is None:
        return []
    calls = []
    for trace, model, weighted_keys in plan.replays:
        rng = random.Random(f"{SEED}|{plan.spec.slug}|{trace.path.name}|{day.isoformat()}|{hour}")
        pick_key = _key_chooser(rng, weighted_keys, start + HOUR)
        sample = min(len(trace.calls), round(config.trace_sample * weight * day_factor(day)))
        for index in sorted(rng.sample(range(len(trace.calls)), sample)):
            offset, input_tokens, output_tokens, trace_id = trace.calls[index]
            request_id = f"{REQUEST_PREFIX}{trace_id}-{day:%Y%m%d}T{hour:02d}"
            at = start + dt.timedelta(seconds=offset)
            spec = MODEL_SPECS.get(model.name, MODELS[1])
            key_id = pick_key()
            call = Call(request_id, key_id, model.pk, at, input_tokens, output_tokens)
            tier = "batch" if BATCH_KEY in plan.keys and key_id == plan.keys[BATCH_KEY].pk else None
            calls.append(call._replace(**performance(rng, spec, output_tokens, errors=False), service_tier=tier))
    return calls


def incident_hours(plan, day):
    """The local hours of the demo tenant's incident on ``day`` (none on six days of seven)."""
    if plan.spec is not DEMO_TENANT or day.toordinal() % 7 != 3:
        return ()
    # Five slots that never overlap: each of the four weeks before had its incident at other hours.
    first = 9 + 3 * (day.toordinal() // 7 % 5)
    return (first, first + 1, first + 2)


def day_calls(plan, config, day, window):
    """All calls of one local day of the tenant that fall inside ``window`` (UTC instants)."""
    calls = []
    troubled = incident_hours(plan, day)
    for hour in range(24):
        start = dt.datetime.combine(day, dt.time(hour), tzinfo=plan.tenant.tz).astimezone(dt.UTC)
        calls += synthetic_hour(plan, config, day, hour, start, incident=hour in troubled)
        calls += replay_hour(plan, config, day, hour, start)
    return [call for call in calls if window[0] <= call.occurred_at < window[1]]


def _record(tenant, call):
    # Gateways report a call within seconds of it.
    return CallRecord(tenant_id=tenant.pk, received_at=call.occurred_at + dt.timedelta(seconds=2), **call._asdict())


def seed_day(plan, config, day, window):
    """Insert the day's calls; returns how many were new. Existing request ids are skipped."""
    calls = day_calls(plan, config, day, window)
    if not calls:
        return 0
    span = (min(c.occurred_at for c in calls), max(c.occurred_at for c in calls))
    existing = CallRecord.objects.filter(
        tenant=plan.tenant, occurred_at__range=span, request_id__startswith=REQUEST_PREFIX
    )
    before = existing.count()
    # Shortcut for reruns: a day already complete costs one COUNT, not an insert of every row.
    if before == len(calls):
        return 0
    records = [_record(plan.tenant, call) for call in calls]
    with transaction.atomic():
        # Claimed like every stored call (usage.ingestion.services), and stored only where the claim is new:
        # a gateway re-sending one of these request ids at another instant is a conflict.
        claimed: set[str] = set()
        for start in range(0, len(records), BATCH_SIZE):
            ids = [r.request_id for r in records[start : start + BATCH_SIZE]]
            taken = CallRequest.objects.filter(tenant=plan.tenant, request_id__in=ids)
            claimed.update(taken.values_list("request_id", flat=True))
        records = [r for r in records if r.request_id not in claimed]
        claims = [
            CallRequest(tenant_id=r.tenant_id, request_id=r.request_id, occurred_at=r.occurred_at) for r in records
        ]
        CallRequest.objects.bulk_create(claims, batch_size=BATCH_SIZE)
        CallRecord.objects.bulk_create(records, batch_size=BATCH_SIZE)
    return existing.count() - before


def local_days(tenant, window):
    first, last = (instant.astimezone(tenant.tz).date() for instant in (window[0], window[1] - dt.timedelta(0, 1)))
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def seed_calls(plan, config, window, on_day=None):
    """Seed every local day of the window; marks the days that got calls dirty for the rollups."""
    added, dirty = 0, []
    for day in local_days(plan.tenant, window):
        count = seed_day(plan, config, day, window)
        added += count
        if count:
            dirty.append(day)
        if on_day is not None:
            on_day()
    mark_days_dirty(tenant=plan.tenant, days=dirty)
    return added


def touch_keys(plan):
    """Keys show when they were last used, like keys the gateway reported calls for."""
    for key in plan.keys.values():
        last = CallRecord.objects.filter(api_key=key).aggregate(last=Max("occurred_at"))["last"]
        if last is not None and (key.last_used_at is None or key.last_used_at < last):
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=last)


# --- Entry point ------------------------------------------------------------------------------


@dataclass
class DemoResult:
    window: tuple
    traces: list  # file names replayed
    missing_traces: list  # file names not found
    added: dict  # tenant slug -> calls added
    totals: dict  # tenant slug -> calls in the ledger
    prices_added: int


def window_for(now, days):
    """``days`` x 24 hours ending at the start of the current UTC hour: the demo runs up to
    the present (no empty "today" on the chart), and reruns within the hour agree."""
    end = now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    return (end - dt.timedelta(days=days), end)


def load_traces(trace_dir):
    """``({file name: Trace}, [missing file names])`` for the files the tenants replay."""
    files = sorted({replay.file for spec in TENANTS for replay in spec.replays})
    traces = {}
    for name in files:
        trace = load_trace(Path(trace_dir) / name) if trace_dir else None
        if trace is not None:
            traces[name] = trace
    return traces, [name for name in files if name not in traces]


def day_count(config, now):
    """How many local days ``seed_demo`` walks through (for a progress bar)."""
    window = window_for(now, config.days)
    return sum(len(local_days(Tenant(timezone=spec.timezone), window)) for spec in TENANTS)


@transaction.atomic
def seed_demo(*, config, now, on_day=None):
    window = window_for(now, config.days)
    traces, missing = load_traces(config.trace_dir)
    owner, viewer = ensure_users(config.password)
    models = ensure_models()
    prices_added = ensure_prices(models, window[1].date())
    added, totals = {}, {}
    for spec in TENANTS:
        tenant = ensure_tenant(spec, owner, viewer)
        plan = build_plan(spec, tenant, ensure_keys(tenant, spec, owner, window), models, traces)
        added[spec.slug] = seed_calls(plan, config, window, on_day)
        touch_keys(plan)
        totals[spec.slug] = CallRecord.objects.filter(tenant=tenant).count()
    return DemoResult(window, sorted(traces), missing, added, totals, prices_added)

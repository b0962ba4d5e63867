"""Prices that depend on the call: context tiers, service tiers, time-of-day windows, a fee per request.

A ``ModelPrice`` may carry ``pricing_rules`` (canonical JSON, empty for none) and a
``request_fee``. Such a price is *call-priced*: its cost can not be read from tokens summed per
day, so it is costed from ``UsagePricingClass`` rows (calls of one local day x key x model by
service tier, context band and UTC half-hour), kept in the ingest transaction like the other
rollups. Flat prices keep the daily fast path.

Rules (every rate per 1K tokens, a decimal string; an override gives ``factor`` or rates, where
``input_per_1k`` and ``output_per_1k`` are required and ``cached_input_per_1k`` defaults to the
override's input rate)::

    {"tiers": [{"above": 200000, "input_per_1k": "0.006", "output_per_1k": "0.0225"}],
     "service_tiers": {"batch": {"factor": "0.5"}, "priority": {"input_per_1k": "...", ...}},
     "windows": [{"start": "16:30", "end": "00:30", "zone": "UTC", "factor": "0.5"}]}

A call's rates: the base rates; then the tier with the highest ``above`` below the call's input
tokens (every token of that call at the tier's rates); then its service tier's override (not
reported is ``standard``, which has the base rates); then the first window holding the instant
the call started. Overrides apply in that order, a factor multiplying the rates reached so far.

- ``above`` must be an edge of ``CONTEXT_EDGES`` (the context bands the rollup keeps);
- windows start and end on a half hour in a zone whose offset is a whole number of half hours, so
  the call's UTC half-hour decides exactly whether it is inside (daylight saving included);
- every rate the rules can produce has at most 8 decimals (a factor that makes more is refused),
  so exact line costs keep ``AMOUNT_DECIMALS``.

Unpriced: a price that names service tiers prices a call of a tier it does not name as unpriced
(counted with its tokens, never costed at the standard rates); a price that names none prices
every service tier alike.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from functools import lru_cache
from typing import Any, NamedTuple

from django.core.exceptions import ValidationError

from usage.localtime import zone

# Context bands: a call is in band b when its input tokens are above exactly b of these edges.
CONTEXT_EDGES = (32_000, 128_000, 200_000, 272_000, 1_000_000)
SERVICE_TIERS = ("standard", "batch", "flex", "priority")
HALF_HOUR = dt.timedelta(minutes=30)
RATE_DECIMALS = 8
_THOUSAND = Decimal(1000)
_PRECISION = 60


class Rates(NamedTuple):
    """Per-1K rates of one call class (``cached`` already resolved: never None)."""

    input: Decimal
    output: Decimal
    cached: Decimal


class Override(NamedTuple):
    factor: Decimal | None
    rates: Rates | None

    def apply(self, rates: Rates) -> Rates:
        if self.rates is not None:
            return self.rates
        factor = self.factor if self.factor is not None else Decimal(1)
        with localcontext(prec=_PRECISION):
            return Rates(rates.input * factor, rates.output * factor, rates.cached * factor)


class Window(NamedTuple):
    start: int  # minutes after midnight in ``zone``
    end: int  # exclusive; at or before ``start``: the window runs past midnight
    zone: str
    override: Override

    def holds(self, instant: dt.datetime) -> bool:
        local = instant.astimezone(zoneinfo.ZoneInfo(self.zone))
        minute = local.hour * 60 + local.minute
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end


@dataclass(frozen=True)
class Rules:
    tiers: tuple[tuple[int, Override], ...]  # (edge index, override), by edge
    service_tiers: dict[str, Override]
    windows: tuple[Window, ...]


class PricingClass(NamedTuple):
    """One ``UsagePricingClass`` row (or the same computed from the ledger)."""

    day: dt.date
    api_key_id: int
    model_id: int
    service_tier: str
    band: int
    half_hour: dt.datetime
    calls: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int


# --- Classes of calls ---------------------------------------------------------------------------


def band_of(input_tokens: int) -> int:
    return sum(1 for edge in CONTEXT_EDGES if input_tokens > edge)


def half_hour_of(instant: dt.datetime) -> dt.datetime:
    """The UTC half-hour ``instant`` falls in (as ``HALF_HOUR_SQL``)."""
    utc = instant.astimezone(dt.UTC)
    return utc.replace(minute=utc.minute - utc.minute % 30, second=0, microsecond=0)


BAND_SQL = " + ".join(f"(CASE WHEN {{inp}} > {edge} THEN 1 ELSE 0 END)" for edge in CONTEXT_EDGES)
HALF_HOUR_SQL = "to_timestamp(floor(extract(epoch FROM {instant}) / 1800) * 1800)"


def band_sql(column: str) -> str:
    return "(" + BAND_SQL.format(inp=column) + ")"


# --- Parsing and checking ---------------------------------------------------------------------


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValidationError(f'{where}: give a decimal string such as "0.5"')
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValidationError(f"{where}: {value!r} is not a decimal number") from None
    if not number.is_finite() or number < 0:
        raise ValidationError(f"{where}: must be a number of at least 0")
    return number


def _override(raw: Any, where: str) -> Override:
    if not isinstance(raw, dict):
        raise ValidationError(f"{where}: give an object with factor or input_per_1k and output_per_1k")
    unknown = set(raw) - {
        "factor",
        "input_per_1k",
        "output_per_1k",
        "cached_input_per_1k",
        "above",
        "start",
        "end",
        "zone",
    }
    if unknown:
        raise ValidationError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    has_rates = "input_per_1k" in raw or "output_per_1k" in raw
    if ("factor" in raw) == has_rates:
        raise ValidationError(f"{where}: give either factor or input_per_1k and output_per_1k")
    if "factor" in raw:
        return Override(_decimal(raw["factor"], f"{where}.factor"), None)
    if "input_per_1k" not in raw or "output_per_1k" not in raw:
        raise ValidationError(f"{where}: input_per_1k and output_per_1k are both required")
    inp = _decimal(raw["input_per_1k"], f"{where}.input_per_1k")
    out = _decimal(raw["output_per_1k"], f"{where}.output_per_1k")
    cached = (
        _decimal(raw["cached_input_per_1k"], f"{where}.cached_input_per_1k") if "cached_input_per_1k" in raw else inp
    )
    return Override(None, Rates(inp, out, cached))


def _minutes(value: Any, where: str) -> int:
    try:
        hours, minutes = (int(part) for part in str(value).split(":"))
    except ValueError:
        raise ValidationError(f"{where}: give a time as HH:MM") from None
    if not (0 <= hours <= 23 and minutes in (0, 30)):
        raise ValidationError(f"{where}: windows start and end on a half hour (HH:00 or HH:30)")
    return hours * 60 + minutes


def _check_zone(name: Any, where: str) -> str:
    try:
        tz = zoneinfo.ZoneInfo(str(name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{where}: unknown time zone {name!r}") from None
    for year in range(2000, 2041):
        for month in (1, 4, 7, 10):
            offset = dt.datetime(year, month, 1, tzinfo=tz).utcoffset() or dt.timedelta()
            if offset % HALF_HOUR:
                raise ValidationError(f"{where}: {name} is not a whole number of half hours from UTC")
    return str(name)


def _parse(text: str) -> Rules:  # noqa: C901 (one check per key of the documented rule format)
    try:
        raw = json.loads(text)
    except ValueError as error:
        raise ValidationError(f"pricing_rules: not JSON ({error})") from None
    if not isinstance(raw, dict) or set(raw) - {"tiers", "service_tiers", "windows"}:
        raise ValidationError("pricing_rules: an object with tiers, service_tiers and windows")
    tiers = []
    for index, item in enumerate(raw.get("tiers") or []):
        where = f"tiers[{index}]"
        above = item.get("above") if isinstance(item, dict) else None
        if above not in CONTEXT_EDGES or isinstance(above, bool):
            edges = ", ".join(str(edge) for edge in CONTEXT_EDGES)
            raise ValidationError(f"{where}.above: must be one of the context edges {edges}")
        tiers.append((CONTEXT_EDGES.index(above), _override(item, where)))
    if len({edge for edge, _ in tiers}) < len(tiers):
        raise ValidationError("tiers: two tiers above the same edge")
    services = raw.get("service_tiers") or {}
    if not isinstance(services, dict):
        raise ValidationError('service_tiers: an object such as {"batch": {"factor": "0.5"}}')
    for name in services:
        if name not in SERVICE_TIERS[1:]:
            raise ValidationError(f"service_tiers: {name!r} is not one of {', '.join(SERVICE_TIERS[1:])}")
    windows = []
    for index, item in enumerate(raw.get("windows") or []):
        where = f"windows[{index}]"
        if not isinstance(item, dict):
            raise ValidationError(f"{where}: an object with start, end, zone and factor or rates")
        start, end = _minutes(item.get("start"), f"{where}.start"), _minutes(item.get("end"), f"{where}.end")
        if start == end:
            raise ValidationError(f"{where}: start and end are the same time")
        windows.append(
            Window(start, end, _check_zone(item.get("zone", "UTC"), f"{where}.zone"), _override(item, where))
        )
    return Rules(
        tuple(sorted(tiers)),
        {name: _override(value, f"service_tiers.{name}") for name, value in sorted(services.items())},
        tuple(windows),
    )


@lru_cache(maxsize=256)
def parse_rules(text: str) -> Rules | None:
    """The rules of a ``pricing_rules`` text (checked on save); None for an empty text."""
    return _parse(text) if text.strip() else None


def canonical_rules(text: str) -> str:
    """The stored form: sorted keys, no spaces, so equal rules have equal texts (audit, fingerprint)."""
    if not text.strip():
        return ""
    return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))


def check_rules(*, text: str, base: Rates) -> None:
    """Raise ValidationError unless ``text`` parses and every rate it can give has at most 8 decimals."""
    rules = _parse(text) if text.strip() else None
    if rules is None:
        return
    tier_choices = [None, *(override for _edge, override in rules.tiers)]
    service_choices = [None, *rules.service_tiers.values()]
    window_choices = [None, *(window.override for window in rules.windows)]
    for tier in tier_choices:
        for service in service_choices:
            for window in window_choices:
                rates = base
                for override in (tier, service, window):
                    rates = override.apply(rates) if override is not None else rates
                for value in rates:
                    if value != value.quantize(Decimal(1).scaleb(-RATE_DECIMALS)) or value >= Decimal(10) ** 10:
                        raise ValidationError(
                            f"pricing_rules: a factor gives the rate {value.normalize()}, more than"
                            f" {RATE_DECIMALS} decimals (or too large); give the rates instead"
                        )


# --- Costing ----------------------------------------------------------------------------------


def is_call_priced(price: Any) -> bool:
    """Whether ``price`` (a ModelPrice or PriceTerms) needs the calls' classes to be costed."""
    return bool(price.pricing_rules) or price.request_fee is not None


def base_rates(price: Any) -> Rates:
    cached = price.input_per_1k if price.cached_input_per_1k is None else price.cached_input_per_1k
    return Rates(price.input_per_1k, price.output_per_1k, cached)


def class_rates(price: Any, service_tier: str, band: int, half_hour: dt.datetime) -> Rates | None:
    """The per-1K rates of a class of calls at ``price``; None when its service tier has no price."""
    rates = base_rates(price)
    rules = parse_rules(price.pricing_rules)
    if rules is None:
        return rates
    for edge, override in reversed(rules.tiers):
        if band > edge:
            rates = override.apply(rates)
            break
    tier = service_tier or "standard"
    if tier != "standard":
        if tier in rules.service_tiers:
            rates = rules.service_tiers[tier].apply(rates)
        elif rules.service_tiers:
            return None
    for window in rules.windows:
        if window.holds(half_hour):
            return window.override.apply(rates)
    return rates


def class_cost(price: Any, cls: PricingClass) -> Decimal | None:
    """Exact cost of a class of calls at ``price`` (fee included); None when unpriced."""
    rates = class_rates(price, cls.service_tier, cls.band, cls.half_hour)
    if rates is None:
        return None
    cached = min(cls.cached_input_tokens, cls.input_tokens)
    with localcontext(prec=_PRECISION):
        amount = (
            (cls.input_tokens - cached) * rates.input + cached * rates.cached + cls.output_tokens * rates.output
        ) / _THOUSAND
        if price.request_fee is not None:
            amount += cls.calls * price.request_fee
    return amount


def tier_name(price: Any, cls: PricingClass) -> str:
    """How a report line names the rates a class was costed at: "batch, >200000, window 16:30-00:30 UTC"."""
    parts = [cls.service_tier or "standard"]
    rules = parse_rules(price.pricing_rules)
    if rules is not None:
        for edge, _override in reversed(rules.tiers):
            if cls.band > edge:
                parts.append(f">{CONTEXT_EDGES[edge]:,}")
                break
        for window in rules.windows:
            if window.holds(cls.half_hour):
                (start_h, start_m), (end_h, end_m) = divmod(window.start, 60), divmod(window.end, 60)
                parts.append(f"{start_h:02}:{start_m:02}-{end_h:02}:{end_m:02} {window.zone}")
                break
    return ", ".join(parts)


# (tenant, day, key, model, service tier, band, half hour)
ClassKey = tuple[int, dt.date, int, int, str, int, dt.datetime]

# Ledger columns in ``usage.ingestion.services._COLUMNS`` order: where the service tier is.
SERVICE_TIER_POSITION = 15


def classes_from_values(values: Iterable[Sequence[Any]], zones: Mapping[int, str]) -> dict[ClassKey, list[int]]:
    """Classes of ledger rows given in ``usage.ingestion.services._COLUMNS`` order."""
    classes: defaultdict[ClassKey, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for row in values:
        tenant_id, key_id, model_id, instant, inp, out, cached = row[:7]
        tier = row[SERVICE_TIER_POSITION] or ""
        day = instant.astimezone(zone(zones[tenant_id])).date()
        sums = classes[(tenant_id, day, key_id, model_id, tier, band_of(inp), half_hour_of(instant))]
        sums[0] += 1
        sums[1] += inp
        sums[2] += out
        sums[3] += cached or 0
    return classes

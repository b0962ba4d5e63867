"""The price book: prices imported from a file (``manage.py import_prices``), exact and audited.

Two formats:

- ``litellm``: LiteLLM's public price map (``model_prices_and_context_window.json``): an object
  of model name -> entry with per-token USD prices. ``input_cost_per_token``,
  ``output_cost_per_token``, ``cache_read_input_token_cost``, ``cache_creation_input_token_cost``,
  ``cache_creation_input_token_cost_above_1hr`` and ``output_cost_per_reasoning_token`` become
  the per-1K input, output, cached input, cache write, one-hour cache write and reasoning prices
  (times 1000, exact: numbers are read as ``Decimal``, never float).
  Context tiers and service tiers become the price's ``pricing_rules``
  (``usage.pricing_rules``): ``input_cost_per_token_above_200k_tokens``,
  ``output_cost_per_token_above_200k_tokens`` and ``cache_read_input_token_cost_above_200k_tokens``
  a tier above 200,000 (likewise 32k, 128k, 272k and 1000k: the context edges; a rate the entry
  leaves out is the base one); ``input_cost_per_token_batches``, ``output_cost_per_token_batches``,
  ``cache_read_input_token_cost_batches`` the ``batch`` service tier's rates (``_flex``: ``flex``,
  ``_priority``: ``priority``). Every other ``*cost*`` key of an imported model (tiers at other
  edges, a tier of a service tier such as ``..._above_200k_tokens_batches``, cache writes of a
  tier, ...) is listed as "not imported (not supported yet)".
- ``native``: this product's own, JSON ``{"prices": [row, ...]}`` or CSV with a header, rows
  of ``model``, ``currency``, ``input_per_1k``, ``output_per_1k``, ``cached_input_per_1k``
  (empty: as input), ``cache_write_per_1k`` (empty: as input), ``cache_write_1h_per_1k``
  (empty: as the cache write price), ``reasoning_per_1k`` (empty: as output), ``effective_from``
  (YYYY-MM-DD; default ``--effective-from``) and
  ``tenant`` (a slug; empty: ``--tenant``, else the platform price). Amounts are decimal strings.

A name is a catalog model's name or one of its aliases (``ModelAlias``); entries naming no model
are counted, not imported. The whole file is checked before anything is written and written in
one transaction: a bad number or an unknown tenant is an error naming the entry, and nothing is
saved. A price equal to the one already in force on its day is left alone, so importing the same
file again changes nothing. Every change goes through ``usage.pricebook.services`` (audited).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Tenant
from usage.models import Model, ModelAlias, ModelPrice
from usage.pricebook.services import Actor, price_save, price_terms
from usage.pricing_rules import CONTEXT_EDGES, canonical_rules

FORMATS = ("litellm", "native")
_THOUSAND = Decimal(1000)
_RATES = ModelPrice._meta.get_field("input_per_1k")
_LITELLM_RATES = {
    "input_cost_per_token": "input_per_1k",
    "output_cost_per_token": "output_per_1k",
    "cache_read_input_token_cost": "cached_input_per_1k",
    "cache_creation_input_token_cost": "cache_write_per_1k",
    "cache_creation_input_token_cost_above_1hr": "cache_write_1h_per_1k",
    "output_cost_per_reasoning_token": "reasoning_per_1k",
}
# Optional rates of the native format: empty means "as the rule says" (usage.reporting.costs.rates).
_CLASS_RATES = ("cache_write_per_1k", "cache_write_1h_per_1k", "reasoning_per_1k")
OPTIONAL_RATES = ("cached_input_per_1k", "cache_write_per_1k", "cache_write_1h_per_1k", "reasoning_per_1k")
NATIVE_FIELDS = ("model", "currency", "input_per_1k", "output_per_1k", *OPTIONAL_RATES, "effective_from", "tenant")


class PriceFileError(ValueError):
    """A file that cannot be imported as a whole: nothing of it is saved."""


@dataclass
class Entry:
    """One price read from a file, resolved to a catalog model."""

    source: str  # the name in the file
    model: Model
    tenant: Tenant | None
    effective_from: dt.date
    currency: str
    rates: dict[str, Decimal | None]
    rules: str = ""  # canonical pricing_rules (LiteLLM's tiers and service tiers)


@dataclass
class ImportResult:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # names of no catalog model
    unpriceable: list[str] = field(default_factory=list)  # matched, but no per-token input/output price
    not_supported: dict[str, list[str]] = field(default_factory=dict)  # model name -> keys not imported


def _rate(value: Any, where: str) -> Decimal:
    """A per-1K rate from a file's value: an exact, non-negative decimal the price column can hold."""
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise PriceFileError(f"{where}: {value!r} is not a number")
    try:
        rate = Decimal(value)
    except InvalidOperation:
        raise PriceFileError(f"{where}: {value!r} is not a number") from None
    if not rate.is_finite() or rate < 0:
        raise PriceFileError(f"{where}: {value!r} is not a non-negative number")
    whole_digits = _RATES.max_digits - _RATES.decimal_places
    if rate >= Decimal(10) ** whole_digits:
        raise PriceFileError(f"{where}: {value!r} is too large for a price per 1K")
    # The column's decimals, without changing the value: 0.000125000 (1.25e-7 x 1000) is 0.00012500.
    fitted = rate.quantize(Decimal(1).scaleb(-_RATES.decimal_places))
    if fitted != rate:
        raise PriceFileError(
            f"{where}: {value!r} does not fit a price per 1K of {_RATES.decimal_places} decimals exactly"
        )
    return fitted


def _per_1k(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise PriceFileError(f"{where}: {value!r} is not a number")
    return _rate(Decimal(value) * _THOUSAND, where)


class _Catalog:
    """Catalog models by name and alias, as one tenant (or the platform) may price them."""

    def __init__(self, tenant: Tenant | None) -> None:
        visible = Q(tenant__isnull=True) | Q(tenant=tenant) if tenant else Q(tenant__isnull=True)
        self.models = {model.name: model for model in Model.objects.filter(visible)}
        by_pk = {model.pk: model for model in self.models.values()}
        self.aliases = {
            name: by_pk[model_id]
            for name, model_id in ModelAlias.objects.filter(model__in=by_pk).values_list("name", "model_id")
        }

    def find(self, name: str) -> Model | None:
        return self.models.get(name) or self.aliases.get(name)


# LiteLLM's suffixes of the service tiers' rates -> this product's service tier names.
_LITELLM_SERVICE_TIERS = {"batches": "batch", "flex": "flex", "priority": "priority"}
_LITELLM_RULE_RATES = {
    "input_cost_per_token": "input_per_1k",
    "output_cost_per_token": "output_per_1k",
    "cache_read_input_token_cost": "cached_input_per_1k",
}


def _litellm_override(
    name: str, item: dict[str, Any], suffix: str, rates: dict[str, Decimal | None], used: set[str]
) -> dict[str, str] | None:
    """The rates of ``<rate key>_<suffix>`` keys as a rules override (base rates fill the gaps)."""
    found = {ours: f"{theirs}_{suffix}" for theirs, ours in _LITELLM_RULE_RATES.items() if f"{theirs}_{suffix}" in item}
    if not found:
        return None
    override: dict[str, str] = {}
    for ours in _LITELLM_RULE_RATES.values():
        key = found.get(ours)
        value = _per_1k(item[key], f"{name}.{key}") if key else rates[ours]
        if value is None and ours == "cached_input_per_1k":
            value = rates["input_per_1k"] if "input_per_1k" not in found else Decimal(override["input_per_1k"])
        override[ours] = format(value, "f")
        used.update(found.values())
    return override


def _litellm_rules(name: str, item: dict[str, Any], rates: dict[str, Decimal | None]) -> tuple[str, set[str]]:
    """(canonical pricing_rules, the keys they used) of an entry's context and service tiers."""
    used: set[str] = set()
    tiers = []
    for edge in CONTEXT_EDGES:
        override = _litellm_override(name, item, f"above_{edge // 1000}k_tokens", rates, used)
        if override is not None:
            tiers.append({"above": edge, **override})
    services = {}
    for suffix, tier in _LITELLM_SERVICE_TIERS.items():
        override = _litellm_override(name, item, suffix, rates, used)
        if override is not None:
            services[tier] = override
    rules: dict[str, Any] = {}
    if tiers:
        rules["tiers"] = tiers
    if services:
        rules["service_tiers"] = services
    return (canonical_rules(json.dumps(rules)) if rules else ""), used


def _litellm_entries(data: Any, catalog: _Catalog, tenant: Tenant | None, day: dt.date, result: ImportResult):
    if not isinstance(data, dict):
        raise PriceFileError("A LiteLLM price map is a JSON object of model name -> entry")
    entries = []
    for name, item in data.items():
        model = catalog.find(name) if isinstance(item, dict) else None
        if model is None:
            result.unmatched.append(name)
            continue
        if "input_cost_per_token" not in item or "output_cost_per_token" not in item:
            result.unpriceable.append(name)
            continue
        rates: dict[str, Decimal | None] = dict.fromkeys(_LITELLM_RATES.values())
        for theirs, ours in _LITELLM_RATES.items():
            if item.get(theirs) is not None:
                rates[ours] = _per_1k(item[theirs], f"{name}.{theirs}")
        rules, used = _litellm_rules(name, item, rates)
        if rules and any(rates[rate] is not None for rate in _CLASS_RATES):
            # Pricing rules are costed from pricing classes that count no cache writes nor reasoning
            # apart (``ModelPrice.clean`` refuses both together): the class rates are kept, the
            # tiers listed as not imported.
            rules, used = "", set()
        others = sorted(key for key in item if "cost" in key and key not in _LITELLM_RATES and key not in used)
        if others:
            result.not_supported[f"{model.name} ({name})"] = others
        entries.append(Entry(name, model, tenant, day, "USD", rates, rules))
    return entries


def _native_rows(text: str) -> list[dict[str, Any]]:
    stripped = text.lstrip()
    if stripped.startswith("{"):
        data = json.loads(text, parse_float=Decimal)
        rows = data.get("prices") if isinstance(data, dict) else None
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise PriceFileError('A native JSON price file is {"prices": [{"model": ..., ...}, ...]}')
        return rows
    reader = csv.DictReader(io.StringIO(text))
    missing = {"model", "input_per_1k", "output_per_1k"} - set(reader.fieldnames or [])
    if missing:
        raise PriceFileError(f"A native CSV price file needs the columns {', '.join(sorted(missing))}")
    return list(reader)


def _native_entries(text: str, catalog_of: Any, tenant: Tenant | None, day: dt.date | None, result: ImportResult):
    entries = []
    for number, row in enumerate(_native_rows(text), start=1):
        where = f"row {number}"
        unknown = set(row) - set(NATIVE_FIELDS)
        if unknown:
            raise PriceFileError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
        scope = _tenant(row.get("tenant"), where) or tenant
        model = catalog_of(scope).find(str(row.get("model") or ""))
        if model is None:
            result.unmatched.append(str(row.get("model")))
            continue
        rates: dict[str, Decimal | None] = {
            "input_per_1k": _rate(row.get("input_per_1k"), f"{where}.input_per_1k"),
            "output_per_1k": _rate(row.get("output_per_1k"), f"{where}.output_per_1k"),
        }
        for name in OPTIONAL_RATES:
            value = row.get(name)
            rates[name] = None if value in (None, "") else _rate(value, f"{where}.{name}")
        entries.append(
            Entry(
                str(row["model"]),
                model,
                scope,
                _day(row.get("effective_from"), day, where),
                _currency(row, where),
                rates,
            )
        )
    return entries


def _tenant(slug: Any, where: str) -> Tenant | None:
    if slug in (None, ""):
        return None
    found = Tenant.objects.filter(slug=str(slug)).first()
    if found is None:
        raise PriceFileError(f"{where}: no tenant {slug!r}")
    return found


def _day(value: Any, default: dt.date | None, where: str) -> dt.date:
    if value in (None, ""):
        if default is None:
            raise PriceFileError(f"{where}: no effective_from (give one, or --effective-from)")
        return default
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise PriceFileError(f"{where}: effective_from {value!r} is not a date (YYYY-MM-DD)") from None


def _currency(row: dict[str, Any], where: str) -> str:
    currency = str(row.get("currency") or "USD")
    if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
        raise PriceFileError(f"{where}: currency {currency!r} is not an ISO 4217 code such as USD")
    return currency


def read_entries(
    text: str, *, fmt: str, tenant: Tenant | None, day: dt.date | None
) -> tuple[list[Entry], ImportResult]:
    """The file's prices, checked and resolved to catalog models; raises PriceFileError."""
    if fmt not in FORMATS:
        raise PriceFileError(f"Unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    result = ImportResult()
    catalogs: dict[int | None, _Catalog] = {}

    def catalog_of(scope: Tenant | None) -> _Catalog:
        key = None if scope is None else scope.pk
        if key not in catalogs:
            catalogs[key] = _Catalog(scope)
        return catalogs[key]

    try:
        if fmt == "litellm":
            data = json.loads(text, parse_float=Decimal, parse_int=Decimal)
            entries = _litellm_entries(data, catalog_of(tenant), tenant, day or timezone.now().date(), result)
        else:
            entries = _native_entries(text, catalog_of, tenant, day, result)
    except json.JSONDecodeError as error:
        raise PriceFileError(f"Not JSON: {error}") from None
    return _one_per_price(entries), result


def _one_per_price(entries: list[Entry]) -> list[Entry]:
    """One entry per model, scope and day: names of one model (its name and aliases) with the same
    prices are one price; with different prices, which is meant is unknown (an error)."""
    seen: dict[tuple[int, int | None, dt.date], Entry] = {}
    for entry in entries:
        key = (entry.model.pk, entry.tenant.pk if entry.tenant else None, entry.effective_from)
        other = seen.setdefault(key, entry)
        if other is not entry and (other.rates, other.currency, other.rules) != (
            entry.rates,
            entry.currency,
            entry.rules,
        ):
            raise PriceFileError(
                f"{other.source!r} and {entry.source!r} both name {entry.model.name} with different prices"
            )
    return list(seen.values())


def _in_force(entry: Entry) -> ModelPrice | None:
    """The price of the entry's scope in force on its day (the one it would replace or repeat)."""
    prices = ModelPrice.objects.filter(
        model=entry.model, tenant=entry.tenant, effective_from__lte=entry.effective_from
    ).order_by("-effective_from")
    return prices.first()


def _apply(entry: Entry, actor: Actor, result: ImportResult) -> None:
    label = f"{entry.model.name} ({entry.tenant.slug if entry.tenant else 'platform'}) from {entry.effective_from}"
    current = _in_force(entry)
    wanted = ModelPrice(
        model=entry.model,
        tenant=entry.tenant,
        currency=entry.currency,
        effective_from=entry.effective_from,
        pricing_rules=entry.rules,
        **entry.rates,
    )
    if current is not None:
        same = {k: v for k, v in price_terms(current).items() if k != "effective_from"}
        if same == {k: v for k, v in price_terms(wanted).items() if k != "effective_from"}:
            result.unchanged.append(label)
            return
        if current.effective_from == entry.effective_from:
            for name, rate in entry.rates.items():
                setattr(current, name, rate)
            current.pricing_rules = entry.rules
            current.currency = entry.currency
            price_save(price=current, actor=actor)
            result.changed.append(label)
            return
    price_save(price=wanted, actor=actor)
    result.added.append(label)


def prices_import(
    text: str,
    *,
    fmt: str,
    actor: Actor,
    tenant: Tenant | None = None,
    day: dt.date | None = None,
    dry_run: bool = False,
) -> ImportResult:
    """Import a price file (see the module's docstring); all or nothing, rolled back on ``dry_run``."""
    entries, result = read_entries(text, fmt=fmt, tenant=tenant, day=day)
    with transaction.atomic():
        for entry in entries:
            _apply(entry, actor, result)
        if dry_run:
            transaction.set_rollback(True)
    return result

"""The price book (issue 26, item 4): ``import_prices`` from LiteLLM's map and the native format.

The LiteLLM input is the copy of the map inside the pinned ``litellm`` package, read from
site-packages at test time; expected per-1K prices are computed here with ``Fraction`` from the
map's own text, independently of the importer's ``Decimal`` path.
"""

import datetime as dt
import functools
import importlib.util
import io
import json
import random
import re
from collections import defaultdict
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from accounts import services as accounts
from usage.ingestion import services
from usage.models import Model, ModelAlias, ModelPrice, PriceChange

from .api_helpers import token_client
from .factories import price, utc

NOW = utc(2026, 11, 20, 12)
DAY = dt.date(2026, 11, 1)
# catalog model -> names in LiteLLM's map (aliases); claude is named twice, with the same prices.
CATALOG = {
    "public/gpt-4o": ["gpt-4o"],
    "public/deepseek-r1": ["deepseek/deepseek-reasoner"],
    "public/claude-sonnet-4-5": ["claude-sonnet-4-5", "claude-sonnet-4-5-20250929"],
    "public/gemini-2.5-pro": ["gemini/gemini-2.5-pro"],
    "public/local-model": [],
}


@pytest.fixture(autouse=True)
def _clock(monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)


@pytest.fixture(scope="module")
def price_map():
    path = Path(importlib.util.find_spec("litellm").origin).parent / "model_prices_and_context_window_backup.json"
    assert path.is_file(), path
    return path


@functools.cache
def _parsed(path):
    return json.loads(path.read_text(), parse_float=Fraction, parse_int=Fraction)


def _map_entry(path, name):
    """The entry with its numbers as Fractions of their own text (no float, no Decimal)."""
    return _parsed(path)[name]


@pytest.fixture
def catalog(db):
    models = {}
    for name, aliases in CATALOG.items():
        models[name] = Model.objects.create(name=name)
        for alias in aliases:
            ModelAlias.objects.create(name=alias, model=models[name])
    return models


def _run(*args):
    out = io.StringIO()
    call_command("import_prices", *map(str, args), stdout=out)
    return out.getvalue()


def test_the_litellm_map_is_imported_exactly_onto_names_and_aliases(catalog, price_map):
    output = _run(price_map, "--format", "litellm", "--effective-from", DAY)
    for name, aliases in CATALOG.items():
        stored = ModelPrice.objects.filter(model=catalog[name])
        if not aliases:
            assert not stored.exists()
            continue
        entry = _map_entry(price_map, aliases[0])
        stored = stored.get()
        assert (stored.tenant, stored.currency, stored.effective_from) == (None, "USD", DAY)
        assert Fraction(stored.input_per_1k) == entry["input_cost_per_token"] * 1000
        assert Fraction(stored.output_per_1k) == entry["output_cost_per_token"] * 1000
        assert Fraction(stored.cached_input_per_1k) == entry["cache_read_input_token_cost"] * 1000
        # Cache writes (5-minute and one-hour) and reasoning (issue 26, item 2): empty where the map has none.
        for theirs, ours in (
            ("cache_creation_input_token_cost", "cache_write_per_1k"),
            ("cache_creation_input_token_cost_above_1hr", "cache_write_1h_per_1k"),
            ("output_cost_per_reasoning_token", "reasoning_per_1k"),
        ):
            value = getattr(stored, ours)
            assert (None if value is None else Fraction(value)) == (
                entry[theirs] * 1000 if theirs in entry else None
            ), (name, theirs)
    claude = ModelPrice.objects.get(model=catalog["public/claude-sonnet-4-5"])
    assert claude.cache_write_per_1k is not None and claude.cache_write_1h_per_1k is not None
    assert ModelPrice.objects.get(model=catalog["public/deepseek-r1"]).input_per_1k == Decimal("0.00028")
    changes = PriceChange.objects.filter(source="import_prices", action="added")
    assert changes.count() == 4 and all(c.new_terms["effective_from"] == "2026-11-01" for c in changes)
    assert "4 added, 0 changed, 0 unchanged" in output


# LiteLLM's keys that become pricing rules (a tier above a context edge, a service tier's rates).
RULE_KEYS = {
    f"{rate}_{suffix}"
    for rate in ("input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost")
    for suffix in ("above_32k_tokens", "above_128k_tokens", "above_200k_tokens", "above_272k_tokens",
                   "above_1000k_tokens", "batches", "flex", "priority")
}  # fmt: skip


def test_keys_it_cannot_price_are_reported_not_dropped(catalog, price_map):
    output = _run(price_map, "--format", "litellm", "--effective-from", DAY)
    lines = {line.split(": not imported")[0]: line for line in output.splitlines() if "not supported yet" in line}
    claude = lines["public/claude-sonnet-4-5 (claude-sonnet-4-5)"]
    listed = {key.strip() for key in claude.rsplit(": ", 1)[1].split(",")}
    for key in ("cache_creation_input_token_cost", "cache_creation_input_token_cost_above_1hr"):
        assert key not in listed  # imported since issue 26's token classes: no longer listed
    # Cache write rates and pricing rules are not costed together yet: the write rates are kept,
    # the batch tier is listed as not imported.
    assert {"input_cost_per_token_batches", "output_cost_per_token_batches"} <= listed
    for name, aliases in CATALOG.items():  # every other cost key of every imported entry is named
        for alias in aliases:
            entry = _map_entry(price_map, alias)
            wanted = {k for k in entry if "cost" in k} - {
                "input_cost_per_token",
                "output_cost_per_token",
                "cache_read_input_token_cost",
                "cache_creation_input_token_cost",
                "cache_creation_input_token_cost_above_1hr",
                "output_cost_per_reasoning_token",
            }
            line = lines.get(f"{name} ({alias})", "")
            assert all(key in line for key in wanted - RULE_KEYS), (alias, wanted)
            listed_rules = set(re.findall(r"[a-z0-9_]+", line)) & RULE_KEYS
            class_rates = {"cache_creation_input_token_cost", "cache_creation_input_token_cost_above_1hr",
                           "output_cost_per_reasoning_token"} & {k for k in entry if entry[k] is not None}  # fmt: skip
            # An entry with cache write or reasoning rates keeps them; its tiers are listed, not imported.
            assert listed_rules == (set(entry) & RULE_KEYS if class_rates else set()), alias
    assert "match no catalog model or alias" in output


def _truth_rates(entry, suffix):
    """Per-1K (input, output, cached) of ``<rate>_<suffix>`` keys, the base rate where one is left out."""
    names = ("input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost")
    base = [entry.get(name) for name in names]
    base[2] = base[0] if base[2] is None else base[2]
    return tuple(entry.get(f"{name}_{suffix}", fallback) * 1000 for name, fallback in zip(names, base, strict=True))


def test_context_and_service_tiers_become_pricing_rules(catalog, price_map):
    """gemini-2.5-pro: a tier above 200k and flex/priority/batch rates; gpt-4o: batch and priority."""
    _run(price_map, "--format", "litellm", "--effective-from", DAY)
    for name, alias in (("public/gemini-2.5-pro", "gemini/gemini-2.5-pro"), ("public/gpt-4o", "gpt-4o")):
        entry = _map_entry(price_map, alias)
        rules = json.loads(ModelPrice.objects.get(model=catalog[name]).pricing_rules)
        tiers = {tier["above"]: tier for tier in rules.get("tiers", [])}
        if "input_cost_per_token_above_200k_tokens" in entry:
            tier = tiers[200000]
            got = tuple(Fraction(tier[k]) for k in ("input_per_1k", "output_per_1k", "cached_input_per_1k"))
            assert got == _truth_rates(entry, "above_200k_tokens"), name
        for suffix, tier_name in (("batches", "batch"), ("flex", "flex"), ("priority", "priority")):
            if f"input_cost_per_token_{suffix}" not in entry:
                assert tier_name not in rules.get("service_tiers", {}), (name, tier_name)
                continue
            service = rules["service_tiers"][tier_name]
            got = tuple(Fraction(service[k]) for k in ("input_per_1k", "output_per_1k", "cached_input_per_1k"))
            assert got == _truth_rates(entry, suffix), (name, tier_name)
    assert "service_tiers" in json.loads(ModelPrice.objects.get(model=catalog["public/gpt-4o"]).pricing_rules)
    change = PriceChange.objects.get(model=catalog["public/gemini-2.5-pro"])
    assert json.loads(change.new_terms["pricing_rules"])["tiers"][0]["above"] == 200000  # audited


def test_a_rerun_changes_nothing(catalog, price_map):
    _run(price_map, "--format", "litellm", "--effective-from", DAY)
    before = (list(ModelPrice.objects.values()), PriceChange.objects.count())
    output = _run(price_map, "--format", "litellm", "--effective-from", DAY)
    later = _run(price_map, "--format", "litellm", "--effective-from", DAY + dt.timedelta(days=9))
    assert (list(ModelPrice.objects.values()), PriceChange.objects.count()) == before
    assert "0 added, 0 changed, 4 unchanged" in output and "0 added, 0 changed, 4 unchanged" in later


def test_a_dry_run_saves_nothing(catalog, price_map):
    output = _run(price_map, "--format", "litellm", "--dry-run")
    assert "4 would be added" in output and "nothing saved" in output
    assert not ModelPrice.objects.exists() and not PriceChange.objects.exists()


def test_imported_prices_cost_two_tenants_calls_exactly(catalog, price_map):
    tenants = [
        accounts.tenant_create(slug="acme", name="Acme", timezone_name="UTC"),
        accounts.tenant_create(slug="gotham", name="Gotham", timezone_name="America/New_York"),
    ]
    keys = {t.pk: accounts.api_key_create(tenant=t, name="k")[0] for t in tenants}
    rng, items = random.Random(4), []
    for n in range(200):
        tenant = rng.choice(tenants)
        when = utc(2026, 11, 2) + dt.timedelta(seconds=rng.randrange(0, 16 * 86400))
        item = {
            "request_id": f"imp-{n}",
            "api_key": keys[tenant.pk].public_id,
            "model": rng.choice(["gpt-4o", "deepseek/deepseek-reasoner", "claude-sonnet-4-5"]),  # by alias
            "occurred_at": when.isoformat().replace("+00:00", "Z"),
            "input_tokens": rng.randrange(0, 90000),
            "output_tokens": rng.randrange(0, 9000),
        }
        item["cached_input_tokens"] = rng.randrange(0, item["input_tokens"] + 1)
        items.append(item)
    assert services.call_records_ingest(items=items, now=NOW).accepted == len(items)
    _run(price_map, "--format", "litellm", "--effective-from", DAY)
    period = {"start": "2026-11-02", "end": "2026-11-19"}
    for tenant in tenants:
        truth = defaultdict(Fraction)
        for item in items:
            day = dt.datetime.fromisoformat(item["occurred_at"][:-1] + "+00:00").astimezone(tenant.tz).date()
            if item["api_key"] != keys[tenant.pk].public_id or not dt.date(2026, 11, 2) <= day <= dt.date(2026, 11, 19):
                continue
            entry = _map_entry(price_map, item["model"])
            cached = item["cached_input_tokens"]
            truth[ModelAlias.objects.get(name=item["model"]).model.name] += (
                (item["input_tokens"] - cached) * entry["input_cost_per_token"]
                + cached * entry["cache_read_input_token_cost"]
                + item["output_tokens"] * entry["output_cost_per_token"]
            )
        rows = token_client(tenant).get("/api/v1/usage/breakdown", {**period, "by": "model"}).json()["results"]
        assert {row["model"]: Fraction(Decimal(row["cost"][0]["amount"])) for row in rows} == dict(truth)


NATIVE_CSV = """model,currency,input_per_1k,output_per_1k,cached_input_per_1k,effective_from,tenant
public/gpt-4o,USD,0.0025,0.01,,2026-10-01,
gpt-4o,EUR,0.00201,0.00802,0.000999,2026-11-05,acme
"""


def test_the_native_csv_and_json_formats_with_contract_prices(catalog, tmp_path):
    acme = accounts.tenant_create(slug="acme", name="Acme", timezone_name="UTC")
    path = tmp_path / "prices.csv"
    path.write_text(NATIVE_CSV)
    assert "2 added" in _run(path)
    contract = ModelPrice.objects.get(tenant=acme)
    assert (contract.model, contract.currency, contract.cached_input_per_1k) == (
        catalog["public/gpt-4o"],
        "EUR",
        Decimal("0.000999"),
    )
    assert ModelPrice.objects.get(tenant=None).cached_input_per_1k is None
    corrected = {
        "prices": [
            {"model": "public/gpt-4o", "input_per_1k": "0.003", "output_per_1k": 0.01, "effective_from": "2026-10-01"}
        ]
    }
    path = tmp_path / "fix.json"
    path.write_text(json.dumps(corrected))
    assert "0 added, 1 changed" in _run(path)
    change = PriceChange.objects.get(action="changed")
    assert (change.old_terms["input_per_1k"], change.new_terms["input_per_1k"]) == ("0.0025", "0.003")
    # --tenant: rows without a tenant become the tenant's contract prices.
    path.write_text(json.dumps({"prices": [{"model": "gpt-4o", "input_per_1k": "1", "output_per_1k": "2"}]}))
    _run(path, "--tenant", "acme", "--effective-from", "2026-11-10")
    assert ModelPrice.objects.filter(tenant=acme).count() == 2


@pytest.mark.parametrize(
    ("body", "fmt", "message"),
    [
        ('{"gpt-4o": {"input_cost_per_token": "abc", "output_cost_per_token": 1e-06}}', "litellm", "not a number"),
        ('{"gpt-4o": {"input_cost_per_token": -1e-06, "output_cost_per_token": 1e-06}}', "litellm", "non-negative"),
        ('{"gpt-4o": {"input_cost_per_token": 1e-13, "output_cost_per_token": 1e-06}}', "litellm", "8 decimals"),
        ('{"gpt-4o": {"input_cost_per_token": NaN, "output_cost_per_token": 1e-06}}', "litellm", "not a number"),
        ("[1, 2]", "litellm", "JSON object"),
        ("{not json", "litellm", "Not JSON"),
        (
            '{"gpt-4o": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06},'
            ' "claude-sonnet-4-5": {"input_cost_per_token": 1e-06, "output_cost_per_token": true}}',
            "litellm",
            "not a number",
        ),
        (NATIVE_CSV + "public/deepseek-r1,USD,0.1,1.2.3,,2026-10-01,\n", "native", "row 3.output_per_1k"),
        (NATIVE_CSV.replace(",acme", ",nobody"), "native", "no tenant 'nobody'"),
        (NATIVE_CSV.replace("2026-11-05", "05/11/2026"), "native", "not a date"),
        (NATIVE_CSV.replace("EUR", "euro"), "native", "ISO 4217"),
        (
            '{"prices": [{"model": "public/gpt-4o", "input_per_1k": "1", "output_per_1k": "1"}]}',
            "native",
            "effective_from",
        ),
    ],
)
def test_bad_input_is_a_clear_error_and_saves_nothing(catalog, tmp_path, body, fmt, message):
    accounts.tenant_create(slug="acme", name="Acme", timezone_name="UTC")
    path = tmp_path / "bad.json"
    path.write_text(body)
    with pytest.raises(CommandError, match=message) as raised:
        _run(path, "--format", fmt)
    assert "nothing was saved" in str(raised.value)
    assert not ModelPrice.objects.exists() and not PriceChange.objects.exists()


def test_an_unknown_format_is_refused(catalog, price_map):
    with pytest.raises(CommandError, match="invalid choice"):
        _run(price_map, "--format", "openrouter")


def test_a_conflict_between_a_name_and_its_alias_saves_nothing(catalog, tmp_path):
    price(catalog["public/deepseek-r1"], dt.date(2026, 1, 1), "0.5", "0.5")
    body = {
        "public/gpt-4o": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06},
        "gpt-4o": {"input_cost_per_token": 3e-06, "output_cost_per_token": 2e-06},
    }
    path = tmp_path / "map.json"
    path.write_text(json.dumps(body))
    with pytest.raises(CommandError, match="both name public/gpt-4o"):
        _run(path, "--format", "litellm")
    assert ModelPrice.objects.count() == 1

"""Repricing (issue 26, item 5): a price change reaches every figure of the days it covers at the
next read, with a preview before saving and an audit trail of every change.

Two tenants (UTC and America/New_York) call the same models on the same days through the real
write path. Every surface is read once (which fills the caches and, on PostgreSQL, the stored
costs of closed days), a price is changed through the service, and every surface is read again
without clearing anything: each must equal the truth at the new terms, computed here with
``Fraction`` from the calls sent.
"""

import csv
import datetime as dt
import io
import random
from collections import defaultdict
from decimal import Decimal
from fractions import Fraction

import pytest
from django.test import Client
from django.urls import reverse

from accounts import services as accounts
from accounts.models import Membership, User
from usage.ingestion import services
from usage.models import Model, ModelPrice, PriceChange
from usage.pricebook.preview import price_preview
from usage.pricebook.services import Actor, price_delete, price_save

from .api_helpers import csv_body, token_client
from .factories import utc

NOW = utc(2026, 11, 20, 12)
START, END = dt.date(2026, 10, 20), dt.date(2026, 11, 19)
PERIOD = {"start": START.isoformat(), "end": END.isoformat()}
ZONES = {"acme": "UTC", "gotham": "America/New_York"}
ACTOR = Actor(source="test")


@pytest.fixture(autouse=True)
def _clock(monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)


def _terms(**terms):
    base = {"currency": "USD", "cached_input_per_1k": None, "tenant": None}
    return {**base, **terms}


@pytest.fixture
def world(db):
    tenants = {s: accounts.tenant_create(slug=s, name=s.title(), timezone_name=z) for s, z in ZONES.items()}
    keys = {s: [accounts.api_key_create(tenant=t, name=f"{s}-{n}")[0] for n in range(2)] for s, t in tenants.items()}
    models = {name: Model.objects.create(name=name) for name in ("public/r1", "public/glm")}
    prices = {
        "r1": ModelPrice(
            model=models["public/r1"],
            **_terms(input_per_1k="0.00055", output_per_1k="0.00219", cached_input_per_1k="0.00014"),
            effective_from=dt.date(2026, 1, 1),
        ),
        "glm": ModelPrice(
            model=models["public/glm"],
            **_terms(input_per_1k="0.0001", output_per_1k="0.0001"),
            effective_from=dt.date(2026, 1, 1),
        ),
    }
    for price in prices.values():
        price_save(price=price, actor=ACTOR)
    rng = random.Random(5)
    items = []
    for n in range(300):
        slug = rng.choice(list(tenants))
        when = utc(2026, 10, 20) + dt.timedelta(seconds=rng.randrange(0, 30 * 86400))
        item = {
            "request_id": f"re-{n}",
            "api_key": rng.choice(keys[slug]).public_id,
            "model": rng.choice(list(models)),
            "occurred_at": when.isoformat().replace("+00:00", "Z"),
            "input_tokens": rng.randrange(0, 40000),
            "output_tokens": rng.randrange(0, 7000),
        }
        if rng.random() < 0.6:
            item["cached_input_tokens"] = rng.randrange(0, item["input_tokens"] + 1)
        items.append(item)
    assert services.call_records_ingest(items=items, now=NOW).accepted == len(items)
    return tenants, keys, models, prices, items


def _rates(price):
    cached = price.cached_input_per_1k
    return (
        Fraction(Decimal(price.input_per_1k)),
        Fraction(Decimal(cached if cached is not None else price.input_per_1k)),
        Fraction(Decimal(price.output_per_1k)),
    )


def truth(world, slug):
    """{(local day, key public id, model name): exact cost} at the prices stored now."""
    tenants, keys, _models, _prices, items = world
    tenant, mine = tenants[slug], {key.public_id for key in keys[slug]}
    lines = defaultdict(Fraction)
    for item in items:
        if item["api_key"] not in mine:
            continue
        day = dt.datetime.fromisoformat(item["occurred_at"].replace("Z", "+00:00")).astimezone(tenant.tz).date()
        if not START <= day <= END:
            continue
        stored = ModelPrice.objects.filter(model__name=item["model"], effective_from__lte=day)
        price = (
            stored.filter(tenant=tenant).order_by("-effective_from").first()
            or stored.filter(tenant=None).order_by("-effective_from").first()
        )
        if price is None:  # unpriced: no line
            continue
        fresh_rate, cached_rate, output_rate = _rates(price)
        cached = item.get("cached_input_tokens") or 0
        cost = (item["input_tokens"] - cached) * fresh_rate + cached * cached_rate + item["output_tokens"] * output_rate
        lines[(day, item["api_key"], item["model"])] += cost / 1000
    return lines


def _sum(lines, **where):
    fields = ("day", "key", "model")
    return sum(
        (cost for line, cost in lines.items() if all(line[fields.index(k)] == v for k, v in where.items())),
        Fraction(0),
    )


def member_client(tenant):
    user = User.objects.create_user(f"owner@{tenant.slug}.test", "pw-for-tests-123")
    Membership.objects.create(user=user, tenant=tenant, role=Membership.Role.OWNER)
    client = Client()
    client.force_login(user)
    return client


def _read_everything(tenant, api, page):
    """Every surface's exact figures: API summary and per model, page data, report, CSV lines."""
    summary = Fraction(Decimal(api.get("/api/v1/usage/summary", PERIOD).json()["cost"][0]["amount"]))
    rows = api.get("/api/v1/usage/breakdown", {**PERIOD, "by": "model"}).json()["results"]
    by_model = {row["model"]: Fraction(Decimal(row["cost"][0]["amount"])) for row in rows}
    data = page.get(reverse("usage:data", kwargs={"slug": tenant.slug}), {"preset": "custom", **PERIOD}).json()
    on_page = Fraction(Decimal(data["cost"]["amounts"][0]["amount"] if data["cost"]["amounts"] else "0"))
    report = api.get("/api/v1/reports/monthly", {"month": "2026-11"}).json()
    reported = Fraction(Decimal(report["cost"][0]["amount"]))
    body = csv_body(api.get("/api/v1/usage/export.csv", PERIOD))
    lines = {
        (dt.date.fromisoformat(r["date"]), r["api_key"], r["model"]): Fraction(Decimal(r["cost"]))
        for r in csv.DictReader(io.StringIO(body))
    }
    return summary, by_model, on_page, reported, lines


def _expected(world, slug):
    lines = truth(world, slug)
    november = sum((c for (day, _k, _m), c in lines.items() if day >= dt.date(2026, 11, 1)), Fraction(0))
    by_model = {name: _sum(lines, model=name) for name in {m for _d, _k, m in lines}}
    total = _sum(lines)
    return total, by_model, total, november, dict(lines)


def test_a_price_change_reaches_every_figure_at_the_next_read(world):
    tenants, _keys, models, prices, _items = world
    clients = {slug: (token_client(t), member_client(t)) for slug, t in tenants.items()}
    for slug, tenant in tenants.items():  # fills the caches and the stored day costs
        assert _read_everything(tenant, *clients[slug]) == _expected(world, slug)
    # A correction of the platform price of r1 and a contract price of gotham's from a past day.
    r1 = prices["r1"]
    r1.input_per_1k, r1.cached_input_per_1k = Decimal("0.00061"), Decimal("0.00003")
    price_save(price=r1, actor=ACTOR)
    contract = ModelPrice(
        model=models["public/glm"],
        **_terms(input_per_1k="0.00012345", output_per_1k="0.00000007", tenant=tenants["gotham"]),
        effective_from=dt.date(2026, 11, 3),
    )
    price_save(price=contract, actor=ACTOR)
    for slug, tenant in tenants.items():
        after = _read_everything(tenant, *clients[slug])
        assert after == _expected(world, slug), slug


def test_the_preview_is_what_the_figures_become(world):
    tenants, _keys, _models, prices, _items = world
    before = {slug: truth(world, slug) for slug in tenants}
    original = ModelPrice.objects.get(pk=prices["r1"].pk)
    edited = ModelPrice.objects.get(pk=prices["r1"].pk)
    edited.output_per_1k, edited.effective_from = Decimal("0.003"), dt.date(2026, 11, 10)
    preview = price_preview(original=original, new=edited)
    price_save(price=edited, actor=ACTOR)
    after = {slug: truth(world, slug) for slug in tenants}
    expected = {}
    for slug in tenants:
        for month in (dt.date(2026, 10, 1), dt.date(2026, 11, 1)):

            def in_month(lines, month=month):
                return sum(
                    (c for (d, _k, m), c in lines.items() if d.replace(day=1) == month and m == "public/r1"),
                    Fraction(0),
                )

            old, new = in_month(before[slug]), in_month(after[slug])
            if old != new:
                expected[(slug, month)] = (old, new)
    assert expected  # the edit changes past costs of both tenants
    assert {(row.tenant.slug, row.month) for row in preview.rows} == set(expected)
    for row in preview.rows:
        old, new = expected[(row.tenant.slug, row.month)]
        assert (Fraction(row.old.amounts["USD"]), Fraction(row.new.amounts.get("USD", 0))) == (old, new)
    october = [row for row in preview.rows if row.month.month == 10]
    assert october and all(row.new.unpriced_tokens and "tokens unpriced" in row.new_text for row in october)
    assert preview.first_day == dt.date(2026, 1, 1)


def test_every_change_is_audited_with_its_terms(world):
    _tenants, _keys, models, prices, _items = world
    glm = prices["glm"]
    assert price_save(price=glm, actor=ACTOR) is None  # nothing changed: nothing audited
    glm.output_per_1k = Decimal("0.0002")
    change = price_save(price=glm, actor=Actor(source="test", name="fixer"))
    assert (change.action, change.actor, change.old_terms["output_per_1k"], change.new_terms["output_per_1k"]) == (
        "changed",
        "fixer",
        "0.0001",
        "0.0002",
    )
    pk = glm.pk
    deleted = price_delete(price=glm, actor=ACTOR)
    assert (deleted.action, deleted.new_terms, deleted.old_terms["input_per_1k"]) == ("deleted", None, "0.0001")
    assert not ModelPrice.objects.filter(pk=pk).exists()
    assert list(PriceChange.objects.filter(model=models["public/glm"]).values_list("action", flat=True)) == [
        "deleted",
        "changed",
        "added",
    ]


def test_the_admin_previews_without_saving_then_saves_with_an_audit(world, django_user_model):
    _tenants, _keys, _models, prices, _items = world
    root = django_user_model.objects.create_superuser("root@example.test", "pw-for-tests-123")
    client = Client()
    client.force_login(root)
    r1 = prices["r1"]
    url = reverse("admin:usage_modelprice_change", args=[r1.pk])
    form = {
        "model": r1.model_id,
        "tenant": "",
        "currency": "USD",
        "input_per_1k": "0.001",
        "output_per_1k": "0.00219",
        "cached_input_per_1k": "0.00014",
        "effective_from": "2026-01-01",
    }
    response = client.post(url, {**form, "_preview": "1"})
    page = response.content.decode()
    assert response.status_code == 200 and "Preview only: nothing was saved" in page
    assert 'id="price-preview"' in page and "acme" in page and "gotham" in page and "2026-11" in page
    assert ModelPrice.objects.get(pk=r1.pk).input_per_1k == Decimal("0.00055")
    assert not PriceChange.objects.filter(action="changed").exists()
    response = client.post(url, form)
    assert response.status_code == 302
    change = PriceChange.objects.get(action="changed")
    assert (change.changed_by, change.source, change.new_terms["input_per_1k"]) == (root, "admin", "0.001")
    confirm = client.get(reverse("admin:usage_modelprice_delete", args=[r1.pk])).content.decode()
    assert 'id="price-preview"' in confirm and "tokens unpriced" in confirm  # deleting leaves r1 unpriced
    client.post(reverse("admin:usage_modelprice_delete", args=[r1.pk]), {"post": "yes"})
    assert PriceChange.objects.filter(action="deleted", changed_by=root).count() == 1


def test_the_prices_page_shows_the_changes_of_its_prices_only(world):
    tenants, _keys, models, _prices, _items = world
    contract = ModelPrice(
        model=models["public/glm"],
        **_terms(input_per_1k="0.00042", output_per_1k="0.00043", tenant=tenants["gotham"]),
        effective_from=dt.date(2026, 11, 3),
    )
    price_save(price=contract, actor=Actor(source="test", name="sales"))
    for slug, sees_contract in (("gotham", True), ("acme", False)):
        page = member_client(tenants[slug]).get(reverse("reports:prices", kwargs={"slug": slug})).content.decode()
        section = page[page.index('id="price-changes"') :]
        assert section.count("<tr>") == 1 + 2 + sees_contract  # header, two platform prices, the contract
        assert ("0.00042" in section) == sees_contract

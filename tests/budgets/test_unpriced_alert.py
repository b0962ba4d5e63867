"""One alert per tenant and model used without a price (issue 26, item 6), through the budget
channels, or to the owners when a tenant has none; evaluated with the budgets, never twice."""

import datetime as dt
import json

from django.core import mail

from accounts import services as accounts
from accounts.models import Membership, User
from usage.budgets import services
from usage.ingestion import services as ingestion
from usage.models import AlertDelivery, Model, UnpricedModelAlert

from ..usage.factories import price, utc
from .helpers import budget

NOW = utc(2026, 11, 20, 12)


def _send(tenant, key, model, n, at=NOW - dt.timedelta(hours=2)):
    item = {
        "request_id": f"{tenant.slug}-{model}-{n}",
        "api_key": key.public_id,
        "model": model,
        "occurred_at": at.isoformat().replace("+00:00", "Z"),
        "input_tokens": 100 + n,
        "output_tokens": 7,
    }
    assert ingestion.call_records_ingest(items=[item], now=NOW).accepted == 1


def _owner(tenant, email):
    user = User.objects.create_user(email, "pw-for-tests-123")
    Membership.objects.create(user=user, tenant=tenant, role=Membership.Role.OWNER)


def test_each_tenant_hears_once_of_each_model_used_unpriced(db, committed, monkeypatch, receiver):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    with_budget = accounts.tenant_create(slug="acme", name="Acme", timezone_name="UTC")
    without = accounts.tenant_create(slug="gotham", name="Gotham", timezone_name="America/New_York")
    _owner(without, "owner@gotham.test")
    _owner(with_budget, "owner@acme.test")
    keys = {t.pk: accounts.api_key_create(tenant=t, name="k")[0] for t in (with_budget, without)}
    price(Model.objects.create(name="public/priced"), dt.date(2026, 1, 1), "0.001", "0.002")
    # Two budgets with the same e-mail list: one message to it, and one to the webhook.
    budget(with_budget, name="a", emails="ops@acme.test", webhook_url=receiver.url)
    budget(with_budget, name="b", emails="ops@acme.test")
    for tenant in (with_budget, without):
        for n in range(3):
            _send(tenant, keys[tenant.pk], "public/priced", n)
            _send(tenant, keys[tenant.pk], "x/unpriced", n)
    mail.outbox.clear()
    for _ in range(3):  # beat, and evaluations after ingestion: still once
        committed(services.budgets_evaluate_all)
    alerts = {(a.tenant.slug, a.model.name): (a.calls, a.tokens) for a in UnpricedModelAlert.objects.all()}
    assert alerts == {("acme", "x/unpriced"): (3, 324), ("gotham", "x/unpriced"): (3, 324)}
    deliveries = AlertDelivery.objects.filter(unpriced__isnull=False)
    assert sorted(deliveries.values_list("channel", "status")) == [("email", "delivered"), ("webhook", "delivered")]
    unpriced_mail = [m for m in mail.outbox if "without a price" in m.subject]
    assert sorted((m.to, m.subject) for m in unpriced_mail) == [
        (["ops@acme.test"], "Model x/unpriced is used without a price (acme)"),
        (["owner@gotham.test"], "Model x/unpriced is used without a price (gotham)"),
    ]
    assert "3 calls (324 tokens)" in unpriced_mail[0].body
    (posted,) = [json.loads(r["body"]) for r in receiver.requests if b"model.unpriced" in r["body"]]
    assert posted["type"] == "model.unpriced" and posted["tenant"] == "acme"
    assert posted["unpriced"] == {"model": "x/unpriced", "first_day": "2026-11-20", "calls": 3, "tokens": 324}
    # A second unpriced model: one more alert; the first is not repeated.
    _send(without, keys[without.pk], "x/other", 9)
    committed(services.budgets_evaluate_all)
    assert UnpricedModelAlert.objects.filter(tenant=without).count() == 2
    assert len([m for m in mail.outbox if "without a price" in m.subject]) == 3

"""The Monitors page and /api/v1/monitors: members read, owners and admins write, other tenants get 404,
and refused input changes nothing."""

import datetime as dt
import json

import pytest
from django.urls import reverse

from accounts import services as accounts
from usage.models import Model, Monitor, MonitorEvent

from ..usage.api_helpers import token_client
from .helpers import budget

FORM = {
    "name": "r1 errors",
    "metric": "error_rate",
    "threshold": "5",
    "window_minutes": "15",
    "min_calls": "20",
    "model": "",
    "api_key": "",
}


def page(tenant):
    return reverse("monitors:list", kwargs={"slug": tenant.slug})


def edit(rule):
    return reverse("monitors:edit", kwargs={"slug": rule.tenant.slug, "pk": rule.pk})


def delete(rule):
    return reverse("monitors:delete", kwargs={"slug": rule.tenant.slug, "pk": rule.pk})


def rule(tenant, channels, **fields):
    values = {"name": "slow", "metric": "latency_p95", "threshold": 2000, "window_minutes": 60, "min_calls": 10}
    return Monitor.objects.create(tenant=tenant, channels=channels, **{**values, **fields})


def snapshot():
    return sorted(
        Monitor.objects.values_list(
            "pk",
            "tenant_id",
            "name",
            "metric",
            "threshold",
            "window_minutes",
            "min_calls",
            "model_id",
            "api_key_id",
            "channels_id",
            "state",
        )
    )


@pytest.fixture
def channels(tenant):
    return budget(tenant, name="ops budget")


@pytest.fixture
def theirs(other_tenant):
    """The other tenant's budget, key, private model and rule (with an event)."""
    their_budget = budget(other_tenant, name="globex budget")
    key = accounts.api_key_create(tenant=other_tenant, name="globex key")[0]
    private = Model.objects.create(name="globex/private-llm", tenant=other_tenant)
    their_rule = rule(other_tenant, their_budget, name="globex rule")
    MonitorEvent.objects.create(
        monitor=their_rule, kind="fired", value=3, calls=9, window_start=dt.datetime.now(dt.UTC)
    )
    return {"budget": their_budget, "key": key, "model": private, "rule": their_rule}


# --- The page --------------------------------------------------------------------------------------


def test_owner_creates_a_15_minute_rule_on_a_key_and_a_model(owner_client, tenant, api_key, channels, llm):
    data = {**FORM, "api_key": api_key.public_id, "model": llm.name, "channels": channels.pk}
    response = owner_client.post(page(tenant), data)
    assert response.status_code == 302
    created = Monitor.objects.get()
    assert (created.tenant, created.window_minutes, created.api_key, created.model, created.channels) == (
        tenant,
        15,
        api_key,
        llm,
        channels,
    )
    assert (created.state, created.whole_hours) == ("ok", None)


def test_admin_edits_and_deletes_a_rule(admin_member, client, tenant, channels):
    client.force_login(admin_member)
    existing = rule(tenant, channels)
    data = {**FORM, "name": "renamed", "threshold": "1500.5", "window_minutes": "120", "channels": channels.pk}
    assert client.post(edit(existing), data).status_code == 302
    existing.refresh_from_db()
    assert (existing.name, str(existing.threshold), existing.window_minutes) == ("renamed", "1500.5000", 120)
    assert client.post(delete(existing)).status_code == 302
    assert not Monitor.objects.exists()


def test_the_page_shows_state_value_last_evaluation_and_events(viewer_client, tenant, channels, theirs):
    firing = rule(tenant, channels, name="r1 slow", state="firing", value=2456.0)
    firing.evaluated_at = dt.datetime(2026, 12, 7, 21, 14, 5, tzinfo=dt.UTC)
    firing.save()
    at = dt.datetime(2026, 12, 7, 20, 0, tzinfo=dt.UTC)
    MonitorEvent.objects.create(monitor=firing, kind="fired", value=2456.0, calls=812, window_start=at, created_at=at)
    text = viewer_client.get(page(tenant)).content.decode()
    assert "r1 slow" in text and "firing" in text and "2456 ms" in text and "2026-12-07 21:14:05" in text
    assert "fired at 2456 ms on 812 calls" in " ".join(text.split())
    assert "globex rule" not in text  # another tenant's rule, never
    # A viewer reads; no form, no edit or delete button.
    assert "New monitor" not in text and "read-only access" in text and 'class="danger"' not in text


def test_the_sidebar_links_the_page(viewer_client, tenant):
    text = viewer_client.get(reverse("budgets:list", kwargs={"slug": tenant.slug})).content.decode()
    assert f'href="{page(tenant)}"' in text


def test_a_viewer_cannot_write(viewer_client, tenant, channels):
    existing = rule(tenant, channels)
    before = snapshot()
    assert viewer_client.post(page(tenant), {**FORM, "channels": channels.pk}).status_code == 403
    assert viewer_client.post(edit(existing), {**FORM, "channels": channels.pk}).status_code == 403
    assert viewer_client.post(delete(existing)).status_code == 403
    assert viewer_client.get(edit(existing)).status_code == 200
    assert snapshot() == before


def test_another_tenant_s_rule_is_a_404(outsider_client, tenant, channels):
    existing = rule(tenant, channels)
    before = snapshot()
    assert outsider_client.get(page(tenant)).status_code == 404
    assert outsider_client.get(edit(existing)).status_code == 404
    assert outsider_client.post(edit(existing), {**FORM, "channels": channels.pk}).status_code == 404
    assert outsider_client.post(delete(existing)).status_code == 404
    # Its own slug with our rule's id: 404 too.
    ours = reverse("monitors:edit", kwargs={"slug": "globex", "pk": existing.pk})
    assert outsider_client.get(ours).status_code == 404
    assert outsider_client.post(ours.replace(f"/{existing.pk}/", f"/{existing.pk}/delete/")).status_code == 404
    assert snapshot() == before


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("api_key", "theirs-key", "No such API key in this tenant."),
        ("model", "theirs-model", "No such model for this tenant."),
        ("channels", "theirs-budget", "No such budget in this tenant."),
        ("window_minutes", "4", "The window is 5 to 1440 minutes"),
        ("window_minutes", "1450", "A window longer than a day is whole hours"),
        ("window_minutes", "10140", "The window is 5 to 1440 minutes"),
        ("threshold", "0", "greater than zero"),
        ("metric", "latency_p50", "Select a valid choice"),
        ("name", "  ", "This field is required"),
    ],
)
def test_bad_input_is_a_form_error_and_changes_nothing(owner_client, tenant, channels, theirs, field, value, message):
    existing = rule(tenant, channels)
    foreign = {"theirs-key": theirs["key"].public_id, "theirs-model": theirs["model"].name}
    foreign["theirs-budget"] = theirs["budget"].pk
    data = {**FORM, "channels": channels.pk, field: foreign.get(value, value)}
    before = snapshot()
    response = owner_client.post(page(tenant), data)
    assert response.status_code == 400 and message in response.content.decode()
    response = owner_client.post(edit(existing), data)
    assert response.status_code == 400 and message in response.content.decode()
    assert snapshot() == before


# --- The API ---------------------------------------------------------------------------------------


def api(pk=None, events=False):
    if pk is None:
        return reverse("api_monitors")
    return reverse("api_monitor_events" if events else "api_monitor", kwargs={"pk": pk})


def post_json(client, url, body, method="post"):
    return getattr(client, method)(url, json.dumps(body), content_type="application/json")


def test_api_lists_and_reads_with_an_access_token(tenant, channels, theirs, api_key, llm):
    mine = rule(tenant, channels, model=llm, api_key=api_key, window_minutes=15, state="firing", value=2100.5)
    at = dt.datetime(2026, 12, 7, 20, 0, tzinfo=dt.UTC)
    MonitorEvent.objects.create(monitor=mine, kind="fired", value=2100.5, calls=40, window_start=at, created_at=at)
    client = token_client(tenant)
    [listed] = client.get(api()).json()["results"]
    assert listed == client.get(api(mine.pk)).json()
    assert {k: listed[k] for k in ("name", "metric", "threshold", "window_minutes", "model", "api_key", "budget")} == {
        "name": "slow",
        "metric": "latency_p95",
        "threshold": "2000",
        "window_minutes": 15,
        "model": llm.name,
        "api_key": api_key.public_id,
        "budget": channels.pk,
    }
    assert (listed["state"], listed["value"]) == ("firing", 2100.5)
    assert [(e["kind"], e["value"], e["calls"]) for e in listed["recent_events"]] == [("fired", 2100.5, 40)]
    events = client.get(api(mine.pk, events=True)).json()
    assert [(e["kind"], e["calls"], e["at"]) for e in events["results"]] == [("fired", 40, "2026-12-07T20:00:00Z")]


def test_api_another_tenant_s_monitor_is_a_404(tenant, channels, theirs):
    client = token_client(tenant)
    their_rule = theirs["rule"]
    assert client.get(api(their_rule.pk)).status_code == 404
    assert client.get(api(their_rule.pk, events=True)).status_code == 404
    assert "globex" not in client.get(api()).content.decode()


def test_api_owner_creates_updates_and_deletes(owner_client, tenant, channels, api_key):
    body = {"name": "r1 errors", "metric": "error_rate", "threshold": 5, "window_minutes": 15, "budget": channels.pk}
    response = post_json(owner_client, api(), {**body, "api_key": api_key.public_id, "min_calls": 20})
    assert response.status_code == 201, response.content
    created = response.json()
    assert (created["threshold"], created["window_minutes"], created["min_calls"], created["model"]) == (
        "5",
        15,
        20,
        None,
    )
    pk = created["id"]
    patched = post_json(owner_client, api(pk), {"threshold": "7.5", "api_key": None}, "patch").json()
    assert (patched["threshold"], patched["api_key"], patched["window_minutes"]) == ("7.5", None, 15)
    replaced = post_json(owner_client, api(pk), {**body, "state": "ok", "id": pk}, "put").json()
    assert (replaced["min_calls"], replaced["threshold"]) == (50, "5")  # PUT: omitted fields take their defaults
    assert owner_client.delete(api(pk)).status_code == 204
    assert not Monitor.objects.exists()


def test_api_viewer_and_access_token_are_read_only(viewer_client, tenant, channels):
    existing = rule(tenant, channels)
    body = {"name": "x", "metric": "error_rate", "threshold": 5, "budget": channels.pk}
    before = snapshot()
    for client in (viewer_client, token_client(tenant)):
        assert client.get(api(existing.pk)).status_code == 200
        assert post_json(client, api(), body).status_code == 403
        assert post_json(client, api(existing.pk), body, "put").status_code == 403
        assert post_json(client, api(existing.pk), {"threshold": 9}, "patch").status_code == 403
        assert client.delete(api(existing.pk)).status_code == 403
    assert snapshot() == before


def test_api_outsider_cannot_write_our_monitor(outsider_client, tenant, channels):
    existing = rule(tenant, channels)
    before = snapshot()
    assert post_json(outsider_client, api(existing.pk), {"threshold": 9}, "patch").status_code == 404
    assert outsider_client.delete(api(existing.pk)).status_code == 404
    assert snapshot() == before


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"api_key": "theirs-key"}, "api_key", "No such API key in this tenant."),
        ({"model": "theirs-model"}, "model", "No such model for this tenant."),
        ({"budget": "theirs-budget"}, "budget", "No such budget in this tenant."),
        ({"window_minutes": 2}, "window_minutes", "The window is 5 to 1440 minutes"),
        ({"window_minutes": 1441}, "window_minutes", "A window longer than a day is whole hours"),
        ({"threshold": -1}, "threshold", "greater than zero"),
        ({"threshold": [5]}, "threshold", "Enter a single value"),
        ({"metric": "p50"}, "metric", "Select a valid choice"),
        ({"colour": "red"}, "colour", "Unknown field."),
    ],
)
def test_api_bad_input_is_a_400_naming_the_field_and_changes_nothing(
    owner_client, tenant, channels, theirs, change, field, message
):
    existing = rule(tenant, channels)
    foreign = {"theirs-key": theirs["key"].public_id, "theirs-model": theirs["model"].name}
    foreign["theirs-budget"] = theirs["budget"].pk
    change = {name: foreign.get(value, value) if isinstance(value, str) else value for name, value in change.items()}
    body = {"name": "r", "metric": "error_rate", "threshold": 5, "budget": channels.pk, **change}
    before = snapshot()
    for response in (post_json(owner_client, api(), body), post_json(owner_client, api(existing.pk), change, "patch")):
        assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"
        errors = response.json()["errors"]
        assert [error["field"] for error in errors] == [field] and message in errors[0]["detail"]
    assert snapshot() == before

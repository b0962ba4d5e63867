"""The Performance view of Usage Statistics and the calls explorer (issue 27 items 4 and 5), server side."""

import datetime as dt
import json
import re
from html import unescape

import pytest
from django.test import Client
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Membership, User
from usage.ingestion.services import call_records_ingest
from usage.reporting.calls import CallFilters, calls_page

NOW = dt.datetime(2026, 11, 20, 18, 30, tzinfo=dt.UTC)
HOUR = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def frozen_now(monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: NOW)


def call(key, request_id, at, **fields):
    return {
        "request_id": request_id,
        "api_key": key.public_id,
        "model": fields.pop("model", "public/deepseek-r1"),
        "occurred_at": at.isoformat(),
        "input_tokens": 100,
        "output_tokens": 50,
        **fields,
    }


@pytest.fixture
def incident(api_key, other_api_key):
    """Four weeks of the same hour at ~1 s with no errors, then that hour today at ~3 s with 10%
    rate limited; the other tenant has the same hour today, slow, which must not show."""
    items = []
    for week in range(1, 5):
        for n in range(30):
            at = HOUR - dt.timedelta(weeks=week) + dt.timedelta(minutes=n)
            items.append(call(api_key, f"w{week}-{n}", at, duration_ms=1000 + n, status="ok"))
    for n in range(40):
        fields = {"status": "error", "error_type": "rate_limited"} if n % 10 == 0 else {"status": "ok"}
        items.append(call(api_key, f"now-{n}", HOUR + dt.timedelta(minutes=n), duration_ms=3000 + n, **fields))
    for n in range(25):
        items.append(call(other_api_key, f"theirs-{n}", HOUR + dt.timedelta(minutes=n), duration_ms=9000))
    assert call_records_ingest(items=items, now=NOW).rejected == 0
    return items


def panel_of(response):
    match = re.search(
        r'<script id="performance-data" type="application/json">(.*?)</script>', response.content.decode()
    )
    return json.loads(unescape(match.group(1)))


def test_performance_view_shows_cards_and_marks_the_departure(owner_client, tenant, incident):
    url = f"/t/{tenant.slug}/usage/"
    response = owner_client.get(url, {"view": "performance", "start": "2026-11-20", "end": "2026-11-20"})
    assert response.status_code == 200
    panel = panel_of(response)
    assert panel["bucket"] == "hour"
    cards = {card["key"]: card for card in panel["cards"]}
    assert cards["error_rate"]["value"] == 10.0  # 4 of 40 calls, the other tenant's 25 not counted
    assert cards["peak"]["value"] == 40 and cards["peak"]["label"] == "Peak calls per hour"
    [series] = panel["series"]
    assert series["calls"][9] == 40 and sum(series["calls"]) == 40
    [mark] = panel["departures"]
    assert (mark["model"], mark["index"]) == ("public/deepseek-r1", 9)
    assert "p95 latency" in mark["reason"] and "error rate 10.0%" in mark["reason"]
    text = response.content.decode()
    assert 'id="departures"' in text and "Peak calls per hour" in text and 'aria-current="page">Performance' in text
    assert 'name="view" value="performance"' in text  # the filter bar keeps the view


def test_usage_view_is_unchanged_by_default(owner_client, tenant, incident):
    response = owner_client.get(f"/t/{tenant.slug}/usage/", {"start": "2026-11-20"})
    assert response.status_code == 200
    assert b"performance-data" not in response.content and b'id="view-performance"' in response.content


def test_outsider_gets_404(outsider_client, tenant, incident):
    assert outsider_client.get(f"/t/{tenant.slug}/usage/", {"view": "performance"}).status_code == 404
    assert outsider_client.get(f"/t/{tenant.slug}/calls/").status_code == 404


def test_chart_point_links_to_the_calls_behind_its_hour(owner_client, tenant, incident):
    panel = panel_of(owner_client.get(f"/t/{tenant.slug}/usage/", {"view": "performance", "start": "2026-11-20"}))
    response = owner_client.get(panel["calls_urls"][9] + "&page_size=ignored")
    assert response.status_code == 200
    ids = re.findall(r'data-request-id="([^"]+)"', response.content.decode())
    assert len(ids) == 40 and set(ids) == {f"now-{n}" for n in range(40)}  # one page of 50, newest first
    assert ids[0] == "now-39"


# --- the explorer -----------------------------------------------------------------------------------


def ids_of(response):
    return re.findall(r'data-request-id="([^"]+)"', response.content.decode())


def test_explorer_pages_through_every_filtered_call_once(tenant, incident):
    filters = CallFilters(tenant=tenant, start=HOUR - dt.timedelta(weeks=5), end=NOW)
    seen, cursor = [], None
    while True:
        page = calls_page(filters, cursor, size=7)
        seen += [call.request_id for call in page.calls]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)) == 160  # 4 x 30 + 40, none of the other tenant's
    slow = CallFilters(tenant=tenant, start=HOUR, end=HOUR + dt.timedelta(hours=1), sort="slowest")
    first = calls_page(slow, size=5)
    assert [call.duration_ms for call in first.calls] == [3039, 3038, 3037, 3036, 3035]
    second = calls_page(slow, first.next_cursor, size=5)
    assert second.calls[0].duration_ms == 3034


def test_explorer_filters(owner_client, tenant, incident):
    url = f"/t/{tenant.slug}/calls/"
    base = {"start": "2026-11-20", "end": "2026-11-20"}
    errors = ids_of(owner_client.get(url, {**base, "status": "error"}))
    assert errors == ["now-30", "now-20", "now-10", "now-0"]
    assert ids_of(owner_client.get(url, {**base, "error_type": "timeout"})) == []
    assert ids_of(owner_client.get(url, {"start": "2026-10-23", "request_id": "w4-1"})) == [
        f"w4-{n}" for n in (19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 1)
    ]
    slowest = ids_of(owner_client.get(url, {**base, "sort": "slowest"}))
    assert slowest[:2] == ["now-39", "now-38"]
    page = owner_client.get(url, {"start": "2026-10-20", "end": "2026-11-20"})
    assert len(ids_of(page)) == 50 and b'id="next-page"' in page.content
    nxt = re.search(r'href="\?([^"]+)" id="next-page"', unescape(page.content.decode())).group(1)
    assert len(ids_of(owner_client.get(f"{url}?{nxt}"))) == 50


@pytest.mark.parametrize(
    "params",
    [
        {"api_key": "their-key"},
        {"model": "globex/private"},
        {"status": "broken"},
        {"sort": "slowest", "start": "2026-11-01", "end": "2026-11-20"},
        {"cursor": "bm90IGEgY3Vyc29y"},
        {"hour": "2026-11-20T25:00:00"},
        {"hour": "yesterday"},
    ],
)
def test_explorer_bad_filters_are_400(owner_client, tenant, other_api_key, other_tenant, incident, params):
    from usage.models import Model

    Model.objects.create(name="globex/private", tenant=other_tenant)
    if params.get("api_key") == "their-key":
        params = {"api_key": other_api_key.public_id}
    response = owner_client.get(f"/t/{tenant.slug}/calls/", params)
    assert response.status_code == 400
    assert ids_of(response) == []


@pytest.fixture
def globex_client(other_tenant):
    user = User.objects.create_user("ops@globex.test", "pw-for-tests-123")
    Membership.objects.create(user=user, tenant=other_tenant, role=Membership.Role.VIEWER)
    client = Client()
    client.force_login(user)
    return client


def test_second_tenant_explorer_sees_only_its_calls(globex_client, other_tenant, incident):
    ids = ids_of(globex_client.get(f"/t/{other_tenant.slug}/calls/", {"start": "2026-11-20"}))
    assert sorted(ids) == sorted(f"theirs-{n}" for n in range(25))


def test_hour_without_offset_is_the_tenants_local_hour(globex_client, other_tenant, incident):
    # Globex is in Asia/Kolkata: 14:30 local is 09:00 UTC, when its 25 calls start.
    url = f"/t/{other_tenant.slug}/calls/"
    assert len(ids_of(globex_client.get(url, {"hour": "2026-11-20T14:30"}))) == 25
    assert ids_of(globex_client.get(url, {"hour": "2026-11-20T13:30"})) == []


def test_api_key_filter_narrows(owner_client, tenant, api_key, incident):
    second = account_services.api_key_create(tenant=tenant, name="batch")[0]
    call_records_ingest(items=[call(second, "batch-1", HOUR)], now=NOW)
    response = owner_client.get(f"/t/{tenant.slug}/calls/", {"start": "2026-11-20", "api_key": second.public_id})
    assert ids_of(response) == ["batch-1"]

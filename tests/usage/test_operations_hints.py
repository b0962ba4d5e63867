"""Operations: a change keeps its sign however small, and a scale hint needs a minimum of calls.

Calls go through the ingestion service; a second tenant (Asia/Kolkata) has calls of the same
models on the same days, with other numbers, and its page is asserted exactly too.
"""

import datetime as dt
import html as entities
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from usage.dashboard import reports
from usage.ingestion.services import call_records_ingest
from usage.models import Model

PLAN = {
    # model: (calls last week, tokens each, calls this week, tokens each, last call's tokens this week)
    "public/deepseek-r1": (100, 600, 100, 600, 498),  # 60,000 -> 59,898: -0.17 %
    "public/steady": (100, 1000, 100, 1000, 970),  # 100,000 -> 99,970: -0.03 %
    "public/growing": (100, 100, 100, 300, 300),  # +200 % on 100 calls a week: a hint
    "public/newcomer": (0, 0, 8, 500, 500),  # new, 8 calls: no hint
}


# 12:00 UTC is 17:30 in Kolkata: the same date in both tenants' zones.
NOW = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)


def _noon(days_ago):
    return NOW - dt.timedelta(days=days_ago)


def _items(key, scale):
    items = []
    for model, (before, before_tokens, now, now_tokens, last_tokens) in PLAN.items():
        weeks = [(before, before_tokens, before_tokens, 8), (now, now_tokens, last_tokens, 1)]
        for count, tokens, last, first_day in weeks:
            for n in range(count):
                items.append(
                    {
                        "request_id": f"{model}-{first_day}-{n}",
                        "api_key": key.public_id,
                        "model": model,
                        "occurred_at": _noon(first_day + n % 7).isoformat(),
                        "input_tokens": (last if n == count - 1 else tokens) * scale,
                        "output_tokens": 0,
                    }
                )
    return items


@pytest.fixture
def weeks(api_key, other_api_key, llm, monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    for name in PLAN:
        Model.objects.get_or_create(name=name)
    for key, scale in ((api_key, 1), (other_api_key, 3)):
        items = _items(key, scale)
        assert call_records_ingest(items=items, now=NOW).accepted == len(items)


def _rows(client, tenant):
    html = client.get(reverse("reports:operations", kwargs={"slug": tenant.slug})).content.decode()
    rows = {}
    for model, body in re.findall(r'<tr data-model="([^"]+)">(.*?)</tr>', html, re.S):
        cell = dict(re.findall(r'data-col="(\w+)">(.*?)</td>', body, re.S))
        text = {name: entities.unescape(re.sub(r"<[^>]+>", "", value)).strip() for name, value in cell.items()}
        colour = re.search(r'class="(change-\w+)"', cell["change"])
        hint = re.sub(r"<[^>]+>", "", re.findall(r"<td[^>]*>(.*?)</td>", body, re.S)[-1]).strip()  # the last column
        rows[model] = (text["tokens"], text["previous_tokens"], text["change"], colour and colour[1], hint)
    return rows


def test_small_changes_keep_their_sign_and_small_volumes_get_no_hint(weeks, tenant, owner_client):
    assert _rows(owner_client, tenant) == {
        "public/steady": ("99,970", "100,000", "-<0.1%", "change-down", ""),
        "public/deepseek-r1": ("59,898", "60,000", "-0.2%", "change-down", ""),
        "public/growing": ("30,000", "10,000", "+200.0%", "change-up", "Scale up"),
        "public/newcomer": ("4,000", "0", "new", None, ""),
    }


def test_the_other_tenant_sees_its_own_weeks(weeks, other_tenant, outsider_client):
    rows = _rows(outsider_client, other_tenant)
    assert rows["public/deepseek-r1"][:4] == ("179,694", "180,000", "-0.2%", "change-down")
    assert rows["public/newcomer"] == ("12,000", "0", "new", None, "")


@pytest.mark.parametrize(
    ("change", "shown"),
    [
        (-0.0017, ("-0.2%", "down", "down by 0.2%")),
        (0.0004, ("+<0.1%", "up", "up by less than 0.1%")),
        (0.0, ("0.0%", "", "no change")),
        (1.5, ("+150.0%", "up", "up by 150.0%")),
        (None, ("new", "", "new this week")),
    ],
)
def test_change_text(change, shown):
    assert reports.change_text(change) == shown


def test_the_minimum_is_on_the_page(weeks, tenant, owner_client):
    html = owner_client.get(reverse("reports:operations", kwargs={"slug": tenant.slug})).content.decode()
    assert f"at least\n{reports.SCALE_HINT_MIN_CALLS} calls in one of the two weeks" in html

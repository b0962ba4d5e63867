"""Operations in Chromium: a week and an API key picked in the page give the ledger's numbers exactly,
for two tenants with calls on the same days (each sees only its own)."""

import datetime as dt
import json
import re

import pytest
from django.utils import timezone

from accounts import services
from accounts.models import Membership, User
from usage import localtime
from usage.models import Model
from usage.rollups import recompute as rollups

from ..usage.factories import make_calls
from .chromium import wait_until
from .test_dashboard_browser import PASSWORD, browser  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WEEKS = 10


@pytest.fixture
def tenants(db):
    """Two tenants in different zones, the same three models and key names, calls on the same 45 days."""
    user = User.objects.create_user("ops@both.test", PASSWORD)
    models = [Model.objects.create(name=name) for name in ("public/deepseek-r1", "public/qwen3-235b", "public/kimi-k2")]
    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    cast = {}
    for number, (slug, zone) in enumerate((("acme", "Europe/Berlin"), ("globex", "Asia/Kolkata")), start=1):
        tenant = services.tenant_create(slug=slug, name=slug.title(), timezone_name=zone)
        Membership.objects.create(user=user, tenant=tenant, role=Membership.Role.VIEWER)
        keys = [services.api_key_create(tenant=tenant, name=name)[0] for name in ("web", "batch")]
        specs = [
            {
                "api_key": key,
                "model": model,
                "occurred_at": midnight - dt.timedelta(days=day) + dt.timedelta(hours=10),
                # Different for every tenant, key, model and day; a model fades out, one grows.
                "input_tokens": number * 1000 + k * 300 + (m + 1) * (day * (5 if m == 2 else 1)) + (day % 7) * 13,
                "output_tokens": number * 10 + day,
            }
            for day in range(1, 46)
            for k, key in enumerate(keys)
            for m, model in enumerate(models)
            if not (m == 1 and k == 1 and day < 9)  # qwen on batch: nothing in the latest week
        ]
        make_calls(tenant, specs)
        rollups.usage_rollup_dirty(tenant=tenant)
        cast[slug] = {"tenant": tenant, "keys": keys, "specs": specs}
    return {"user": user, "models": models, **cast}


def truth(tenant, specs, key, week_start):
    """Independently of the product: per model, (tokens, calls) of the 7 local days from ``week_start``
    and of the 7 before, and the tokens of each of the ``WEEKS`` weeks that end with it."""

    def sums(first, last):
        out = {}
        for spec in specs:
            day = localtime.local_day(tenant, spec["occurred_at"])
            if spec["api_key"] == key and first <= day <= last:
                tokens, calls = out.get(spec["model"].name, (0, 0))
                out[spec["model"].name] = (tokens + spec["input_tokens"] + spec["output_tokens"], calls + 1)
        return out

    week_end = week_start + dt.timedelta(days=6)
    this, before = (
        sums(week_start, week_end),
        sums(week_start - dt.timedelta(days=7), week_start - dt.timedelta(days=1)),
    )
    weekly = {}
    for index in range(WEEKS):
        first = week_start - dt.timedelta(days=7 * (WEEKS - 1 - index))
        for name, (tokens, _calls) in sums(first, first + dt.timedelta(days=6)).items():
            weekly.setdefault(name, [0] * WEEKS)[index] = tokens
    total = sum(tokens for tokens, _calls in this.values())
    rows = {}
    for name in {*this, *before}:
        (tokens, calls), (prev_tokens, prev_calls) = this.get(name, (0, 0)), before.get(name, (0, 0))
        change = "new" if not prev_tokens else f"{(tokens - prev_tokens) / prev_tokens * 100:+,.1f}%"
        share = f"{round(tokens * 100 / total)}%" if total else "0%"
        rows[name] = {
            "tokens": tokens,
            "previous_tokens": prev_tokens,
            "calls": calls,
            "previous_calls": prev_calls,
            "change": change,
            "share": share,
        }
    return rows, weekly


def shown(page):
    rows = {}
    for row in page.locator("tr[data-model]").all():
        cells = {
            col: row.locator(f'[data-col="{col}"]').inner_text().strip()
            for col in ("tokens", "previous_tokens", "calls", "previous_calls", "change", "share")
        }
        rows[row.get_attribute("data-model")] = {
            **{
                col: int(cells[col].replace(",", ""))
                for col in ("tokens", "previous_tokens", "calls", "previous_calls")
            },
            "change": cells["change"],
            "share": cells["share"],
        }
    return rows


def test_week_and_key_picked_equal_the_ledger_for_both_tenants(browser, live_server, tenants):  # noqa: F811
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.set_default_timeout(15_000)
    page.goto(f"{live_server.url}/accounts/login/?next=/t/acme/operations/")
    page.get_by_label("Email", exact=True).fill("ops@both.test")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/t/acme/operations/"))
    seen = {}
    for slug in ("acme", "globex"):
        cast = tenants[slug]
        tenant, batch = cast["tenant"], cast["keys"][1]
        page.goto(f"{live_server.url}/t/{slug}/operations/")
        weeks = page.get_by_label("Week", exact=True)
        options = weeks.locator("option").all()
        assert len(options) == WEEKS and "(latest)" in options[0].inner_text()
        # Only this tenant's keys are offered.
        offered = [o.get_attribute("value") for o in page.get_by_label("API Key", exact=True).locator("option").all()]
        assert sorted(offered) == sorted(["", *(key.public_id for key in cast["keys"])])
        picked = options[2].get_attribute("value")  # the week that ended 15 days ago
        weeks.select_option(picked)
        page.get_by_label("API Key", exact=True).select_option(batch.public_id)
        page.get_by_role("button", name="Show").click()
        page.wait_for_url(re.compile(rf"week={picked}&api_key={batch.public_id}"))
        wait_until(page, "document.getElementById('weekly-chart')?.dataset.rendered === 'true'")

        rows, weekly = truth(tenant, cast["specs"], batch, dt.date.fromisoformat(picked))
        assert shown(page) == rows
        assert len(rows) == 3 and rows["public/qwen3-235b"]["tokens"] > 0
        drawn = page.evaluate("Chart.getChart('weekly-chart').data.datasets.map((s) => [s.label, s.data])")
        assert dict(drawn) == weekly
        assert (
            json.loads(page.locator("#weekly-data").text_content())["labels"][-1]
            == f"{dt.date.fromisoformat(picked):%b %d}"
        )
        seen[slug] = rows

        # The latest week: qwen had no batch calls in it, so it is gone from the week and "new" never shows.
        latest = options[0].get_attribute("value")
        page.goto(f"{live_server.url}/t/{slug}/operations/?week={latest}&api_key={batch.public_id}")
        assert shown(page) == truth(tenant, cast["specs"], batch, dt.date.fromisoformat(latest))[0]

    assert seen["acme"] != seen["globex"]  # the same days, different numbers: each tenant its own
    # Another tenant's key in this tenant's URL is a form error, none of its numbers.
    page.goto(f"{live_server.url}/t/acme/operations/?api_key={tenants['globex']['keys'][1].public_id}")
    assert page.get_by_role("alert").inner_text().startswith("Select a valid choice")
    assert page.locator("tr[data-model]").count() == 0

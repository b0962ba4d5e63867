"""The Usage Statistics page and its JSON endpoints: filters, scoping and numbers against the ledger."""

import datetime as dt
import itertools
import json
import re
from pathlib import Path

import pytest
from django.urls import reverse

from accounts import services
from usage import localtime
from usage.dashboard.colors import color_for_index, color_for_name, model_color
from usage.models import CallRecord, Model, ModelPrice

from .factories import make_calls, utc

NOW = utc(2026, 11, 28, 15, 30)


@pytest.fixture(autouse=True)
def _clock(monkeypatch):
    """Every "today" and "last N days" is computed from this instant."""
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)


@pytest.fixture
def revoked_key(tenant):
    key, _secret = services.api_key_create(tenant=tenant, name="old-batch")
    return services.credential_revoke(key)


@pytest.fixture
def other_model(db):
    return Model.objects.create(name="public/qwen3-32b")


@pytest.fixture
def ledger(tenant, api_key, revoked_key, llm, other_model, other_tenant, other_api_key):
    """Calls over three weeks on two keys and two models; the older part is rolled up, the rest dirty.
    Globex (Asia/Kolkata) has calls at the same instants on its own key, other sizes (``theirs``)."""
    specs = []
    for day, hour, key, model in itertools.product(
        range(0, 21, 2), (1, 13, 23), (api_key, revoked_key), (llm, other_model)
    ):
        occurred = NOW.replace(hour=hour, minute=5) - dt.timedelta(days=day)
        if occurred <= NOW:
            tokens = 1000 + 37 * day + hour + (7 if model == llm else 0) + (3 if key == api_key else 0)
            specs.append(
                {
                    "api_key": key,
                    "model": model,
                    "occurred_at": occurred,
                    "input_tokens": tokens,
                    "output_tokens": tokens // 3,
                }
            )
    old, recent = (
        [s for s in specs if s["occurred_at"] < NOW - dt.timedelta(days=5)],
        [s for s in specs if s["occurred_at"] >= NOW - dt.timedelta(days=5)],
    )
    make_calls(tenant, old)
    make_calls(tenant, recent, dirty=True)  # the selectors read these days from the ledger
    theirs = [{**spec, "api_key": other_api_key, "input_tokens": 10 * spec["input_tokens"] + 1} for spec in specs]
    make_calls(other_tenant, theirs)
    return specs


@pytest.fixture
def theirs(ledger, other_tenant, other_api_key, outsider_client):
    """Globex's side of ``ledger``: its owner's client and its key."""
    return {"tenant": other_tenant, "api_key": other_api_key, "client": outsider_client}


def truth(tenant, start, end, api_key=None, model=None):
    """Ground truth straight from the ledger: (calls, input, output) on local days start..end."""
    span_start, span_end = localtime.day_span(tenant, start, end)
    calls = CallRecord.objects.filter(tenant=tenant, occurred_at__gte=span_start, occurred_at__lt=span_end)
    if api_key:
        calls = calls.filter(api_key=api_key)
    if model:
        calls = calls.filter(model=model)
    rows = list(calls)
    return len(rows), sum(r.input_tokens for r in rows), sum(r.output_tokens for r in rows)


def page_url(tenant, **params):
    return reverse("usage:dashboard", kwargs={"slug": tenant.slug}), params


def card_values(data):
    return {card["key"]: card["value"] for card in data["cards"]}


RANGES = {
    "preset last_7_days": ({"preset": "last_7_days"}, dt.date(2026, 11, 22), dt.date(2026, 11, 28)),
    "preset today": ({"preset": "today"}, dt.date(2026, 11, 28), dt.date(2026, 11, 28)),
    "custom span": (
        {"preset": "custom", "start": "2026-11-10", "end": "2026-11-24"},
        dt.date(2026, 11, 10),
        dt.date(2026, 11, 24),
    ),
    "custom one day": ({"start": "2026-11-26"}, dt.date(2026, 11, 26), dt.date(2026, 11, 26)),
}


@pytest.mark.parametrize("range_name", RANGES)
@pytest.mark.parametrize("one_model", [False, True], ids=["all-models", "one-model"])
@pytest.mark.parametrize("one_key", [False, True], ids=["all-keys", "one-key"])
def test_cards_equal_the_ledger_for_every_filter_combination(
    owner_client, tenant, api_key, llm, ledger, theirs, one_key, one_model, range_name
):
    params, start, end = RANGES[range_name]
    assert_cards_equal_the_ledger(owner_client, tenant, api_key if one_key else None, llm if one_model else None,
                                  params, start, end)  # fmt: skip
    # Globex's own page, on the same days: its own calls only (Kolkata's local days).
    their_key = theirs["api_key"] if one_key else None
    assert_cards_equal_the_ledger(theirs["client"], theirs["tenant"], their_key, llm if one_model else None,
                                  params, start, end)  # fmt: skip


def assert_cards_equal_the_ledger(client, tenant, api_key, llm, params, start, end):
    params = {
        **params,
        **({"api_key": api_key.public_id} if api_key else {}),
        **({"model": llm.name} if llm else {}),
    }
    response = client.get(reverse("usage:dashboard", kwargs={"slug": tenant.slug}), params)
    assert response.status_code == 200
    calls, input_tokens, output_tokens = truth(tenant, start, end, api_key, llm)
    assert calls > 0
    assert card_values(response.context["data"]) == {
        "total_tokens": input_tokens + output_tokens,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "calls": calls,
    }
    assert f"{(input_tokens + output_tokens) / 1000:,.1f}K" in response.content.decode()
    data = client.get(reverse("usage:data", kwargs={"slug": tenant.slug}), params).json()
    assert card_values(data) == card_values(response.context["data"])
    trend_total = sum(sum(dataset["total"]) for dataset in data["trend"]["datasets"])
    assert trend_total == input_tokens + output_tokens
    assert sum(row["tokens"] for row in data["distribution"]) == input_tokens + output_tokens


def test_default_is_last_two_weeks_and_shows_it_selected(owner_client, tenant, ledger):
    response = owner_client.get(reverse("usage:dashboard", kwargs={"slug": tenant.slug}))
    assert response.context["data"]["period"] == {"start": "2026-11-15", "end": "2026-11-28"}
    assert (
        card_values(response.context["data"])["calls"] == truth(tenant, dt.date(2026, 11, 15), dt.date(2026, 11, 28))[0]
    )
    html = response.content.decode()
    assert '<input type="radio" name="preset" value="last_2_weeks" checked> Last 2 weeks' in html
    assert '<span id="range-value">Last 2 weeks · Nov 15 – Nov 28</span>' in html


def test_range_picker_names_a_custom_range_and_keeps_a_refused_one(owner_client, tenant, ledger):
    url = reverse("usage:dashboard", kwargs={"slug": tenant.slug})
    html = owner_client.get(url, {"start": "2026-11-02", "end": "2026-11-04"}).content.decode()
    assert '<span id="range-value">Nov 02 – Nov 04</span>' in html
    assert 'value="custom" checked' in html and 'name="start" id="id_start" value="2026-11-02"' in html
    single = owner_client.get(url, {"preset": "custom", "start": "2025-12-31"}).content.decode()
    assert '<span id="range-value">Dec 31, 2025</span>' in single and 'value="day" disabled checked' in single
    refused = owner_client.get(url, {"start": "2026-11-04", "end": "2026-11-02"})
    assert refused.status_code == 400
    text = refused.content.decode()
    assert "The end date is before the start date." in text and 'value="2026-11-04"' in text


def test_change_against_previous_period(owner_client, tenant, ledger):
    data = owner_client.get(reverse("usage:data", kwargs={"slug": tenant.slug}), {"preset": "last_7_days"}).json()
    calls_now = truth(tenant, dt.date(2026, 11, 22), dt.date(2026, 11, 28))[0]
    calls_before = truth(tenant, dt.date(2026, 11, 15), dt.date(2026, 11, 21))[0]
    calls_card = next(card for card in data["cards"] if card["key"] == "calls")
    assert data["previous_period"] == {"start": "2026-11-15", "end": "2026-11-21"}
    assert calls_card["change"]["percent"] == round((calls_now - calls_before) / calls_before * 100, 1)


def test_outsider_gets_404_on_page_and_endpoints(outsider_client, tenant):
    for name in ("usage:dashboard", "usage:data", "usage:chart_trend", "usage:chart_distribution"):
        assert outsider_client.get(reverse(name, kwargs={"slug": tenant.slug})).status_code == 404


def test_anonymous_is_sent_to_login(client, tenant):
    response = client.get(reverse("usage:dashboard", kwargs={"slug": tenant.slug}))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_foreign_key_in_url_is_a_form_error_not_their_data(owner_client, tenant, ledger, other_tenant, other_api_key):
    foreign_model = Model.objects.create(name="private/globex-tuned", tenant=other_tenant)
    for params in ({"api_key": other_api_key.public_id}, {"model": foreign_model.name}):
        response = owner_client.get(reverse("usage:dashboard", kwargs={"slug": tenant.slug}), params)
        assert response.status_code == 400
        assert response.context["data"] is None
        assert "Select a valid choice" in response.content.decode()
        data = owner_client.get(reverse("usage:data", kwargs={"slug": tenant.slug}), params)
        assert data.status_code == 400 and list(data.json()["errors"]) == list(params)


@pytest.mark.parametrize(
    "params",
    [
        {"preset": "forever"},
        {"start": "2026-13-01"},
        {"start": "2026-11-20", "end": "2026-11-01"},
        {"start": "1900-01-01", "end": "2026-01-01"},
    ],
)
def test_invalid_values_are_form_errors(owner_client, tenant, params):
    response = owner_client.get(reverse("usage:dashboard", kwargs={"slug": tenant.slug}), params)
    assert response.status_code == 400
    assert 'class="errors" role="alert"' in response.content.decode()
    assert owner_client.get(reverse("usage:chart_trend", kwargs={"slug": tenant.slug}), params).status_code == 400


def test_key_choices_are_the_tenants_and_mark_revoked(owner_client, tenant, api_key, revoked_key, other_api_key):
    html = owner_client.get(reverse("usage:dashboard", kwargs={"slug": tenant.slug})).content.decode()
    assert f"old-batch ({revoked_key.public_id}) — revoked" in html
    assert f"production ({api_key.public_id})</option>" in html
    assert other_api_key.public_id not in html


def test_model_choices_are_used_and_private_ones(owner_client, tenant, ledger, other_tenant, other_api_key):
    Model.objects.create(name="private/acme-tuned", tenant=tenant)
    theirs = Model.objects.create(name="private/globex-tuned", tenant=other_tenant)
    make_calls(other_tenant, [{"api_key": other_api_key, "model": theirs, "occurred_at": NOW, "input_tokens": 1}])
    Model.objects.create(name="public/never-used")
    html = owner_client.get(reverse("usage:dashboard", kwargs={"slug": tenant.slug})).content.decode()
    assert "public/deepseek-r1" in html and "public/qwen3-32b" in html and "private/acme-tuned" in html
    assert "globex-tuned" not in html and "never-used" not in html


def test_empty_period_says_so(owner_client, tenant):
    response = owner_client.get(reverse("usage:dashboard", kwargs={"slug": tenant.slug}))
    assert response.context["data"]["empty"] is True
    assert "No usage in this period" in response.content.decode()
    assert 'data-empty="true"' in response.content.decode()


def test_short_ranges_are_hourly_and_gap_filled(owner_client, tenant, ledger):
    url = reverse("usage:chart_trend", kwargs={"slug": tenant.slug})
    hourly = owner_client.get(url, {"preset": "custom", "start": "2026-11-25", "end": "2026-11-26"}).json()
    assert hourly["bucket"] == "hour" and len(hourly["labels"]) == 48
    daily = owner_client.get(url, {"preset": "last_30_days"}).json()
    assert daily["bucket"] == "day" and len(daily["labels"]) == 30
    assert all(len(dataset["data"]) == 30 for dataset in daily["datasets"])


def test_chart_json_holds_only_chart_data(owner_client, tenant, ledger, llm):
    trend = owner_client.get(reverse("usage:chart_trend", kwargs={"slug": tenant.slug})).json()
    assert set(trend) == {"bucket", "labels", "datasets"}
    dataset = next(d for d in trend["datasets"] if d["label"] == llm.name)
    assert dataset["borderColor"] == "#7c3aed" and dataset["data"] == dataset["total"]
    assert [a + b for a, b in zip(dataset["input"], dataset["output"], strict=True)] == dataset["total"]
    distribution = owner_client.get(reverse("usage:chart_distribution", kwargs={"slug": tenant.slug})).json()
    assert set(distribution) == {"labels", "datasets"}
    assert "view" not in json.dumps(trend) and "slug" not in json.dumps(distribution)


def test_distribution_rows_link_to_the_page_filtered_by_model(owner_client, tenant, ledger, llm, other_model):
    response = owner_client.get(reverse("usage:dashboard", kwargs={"slug": tenant.slug}), {"preset": "last_7_days"})
    rows = response.context["data"]["distribution"]
    assert {row["model"] for row in rows} == {llm.name, other_model.name}
    assert sum(row["share"] for row in rows) == pytest.approx(100, abs=0.2)
    link = next(row["url"] for row in rows if row["model"] == llm.name)
    assert link == "?preset=last_7_days&model=public%2Fdeepseek-r1"
    filtered = owner_client.get(reverse("usage:dashboard", kwargs={"slug": tenant.slug}) + link)
    assert [row["model"] for row in filtered.context["data"]["distribution"]] == [llm.name]


def test_model_colours_are_stable_and_distinct(llm, other_model):
    assert model_color(llm) == "#7c3aed"  # the operator's choice
    assert model_color(other_model) == color_for_index(other_model.pk)
    assert model_color(Model.objects.get(pk=other_model.pk)) == model_color(other_model)
    assert model_color(Model(name="public/new")) == color_for_name("public/new")
    assert len({color_for_index(index) for index in range(1, 41)}) == 40


def test_page_has_accessible_controls(owner_client, tenant, ledger):
    html = owner_client.get(reverse("usage:dashboard", kwargs={"slug": tenant.slug})).content.decode()
    assert 'aria-label="Refresh"' in html
    for name in ("Total", "Input", "Output"):
        assert f'aria-pressed="{"true" if name == "Total" else "false"}">{name}</button>' in html
    for label in ("API Key", "Model", "From", "To"):
        assert f">{label}</label>" in html
    # The range picker's button is named by its label and the range it shows.
    assert 'id="range-label">Time range</span>' in html and 'aria-labelledby="range-label range-value"' in html
    # No script or style from another site (a word like "cdn" may turn up in a random CSRF token).
    assert "vendor/chart.js/chart.umd.min.js" in html and not re.search(r'(src|href)="(https?:)?//', html)


def test_cost_card_and_column_appear_only_with_prices(owner_client, tenant, api_key, llm, other_model):
    make_calls(
        tenant,
        [
            {
                "api_key": api_key,
                "model": llm,
                "occurred_at": utc(2026, 11, 27, 9),
                "input_tokens": 1000,
                "output_tokens": 500,
            },
            {
                "api_key": api_key,
                "model": other_model,
                "occurred_at": utc(2026, 11, 27, 9),
                "input_tokens": 7,
                "output_tokens": 0,
            },
        ],
    )
    url = reverse("usage:dashboard", kwargs={"slug": tenant.slug})
    assert owner_client.get(url).context["data"]["cost"] is None
    assert 'id="cost-card"' not in owner_client.get(url).content.decode()
    ModelPrice.objects.create(model=llm, input_per_1k="2.00", output_per_1k="4.00", effective_from=dt.date(2026, 1, 1))
    response = owner_client.get(url)
    html = response.content.decode()
    assert 'id="cost-card"' in html and "4.00 <small>USD</small>" in html
    assert "+ 7 unpriced tokens" in html
    rows = {row["model"]: row["cost"] for row in response.context["data"]["distribution"]}
    assert rows == {llm.name: "4.00 USD", other_model.name: None}
    data = owner_client.get(reverse("usage:data", kwargs={"slug": tenant.slug})).json()
    assert data["cost"]["amounts"] == [{"amount": "4.00", "currency": "USD", "unpriced_tokens": 7}]


@pytest.mark.parametrize(
    "params",
    [
        {"preset": "last_30_days"},  # closed days rolled up and dirty, and today
        {"preset": "today"},  # by hour, today only
        {"start": "2026-11-20", "end": "2026-11-21"},  # by hour, closed and clean: cached
        {"start": "2026-11-08", "end": "2026-11-21"},  # by day, closed and clean: cached
    ],
    ids=["30-days", "today", "closed-hours", "closed-days"],
)
def test_page_breakdown_equals_the_breakdown_selector(tenant, ledger, params):
    from usage.dashboard.panel import breakdown_rows, filtered_grid
    from usage.reporting.filters import UsageFilterSet
    from usage.reporting.selectors import usage_breakdown

    filters = UsageFilterSet({"preset": "custom", **params}, tenant=tenant)
    assert filters.is_valid(), filters.errors
    filters = filters.usage_filters()
    expected = [(row.group, row.totals, row.share) for row in usage_breakdown(tenant=tenant, filters=filters)]
    assert expected
    for _ in range(2):  # the second read comes from the cache of closed days
        _grid, lines = filtered_grid(tenant, filters)
        assert [(row.group, row.totals, row.share) for row in breakdown_rows(lines)] == expected


def test_chart_js_4_is_served_and_django_chartjs_bundles_are_not():
    from django.contrib.staticfiles import finders

    chart = finders.find("vendor/chart.js/chart.umd.min.js")
    assert chart and "4.6.1" in Path(chart).read_text()[:300]
    for bundled in ("js/Chart.min.js", "js/highcharts/highcharts.js", "js/excanvas.js"):
        assert finders.find(bundled) is None


def test_cost_is_a_metric_of_the_trend_per_model_and_day(owner_client, tenant, api_key, llm, other_model):
    ModelPrice.objects.create(model=llm, input_per_1k="2.00", output_per_1k="4.00", effective_from=dt.date(2026, 1, 1))
    ModelPrice.objects.create(
        model=llm, input_per_1k="1.00", output_per_1k="1.00", effective_from=dt.date(2026, 11, 27)
    )
    calls = [(utc(2026, 11, 26, 9), 1000, 500), (utc(2026, 11, 27, 9), 1000, 500), (utc(2026, 11, 27, 10), 5, 0)]
    make_calls(
        tenant,
        [
            {"api_key": api_key, "model": llm, "occurred_at": at, "input_tokens": i, "output_tokens": o}
            for at, i, o in calls
        ],
    )
    make_calls(
        tenant, [{"api_key": api_key, "model": other_model, "occurred_at": utc(2026, 11, 27, 9), "input_tokens": 3}]
    )
    data = owner_client.get(reverse("usage:data", kwargs={"slug": tenant.slug}), {"preset": "last_7_days"}).json()
    trend = data["trend"]
    assert trend["cost_currency"] == "USD"
    by_label = {
        dataset["label"]: dict(zip(trend["labels"], dataset["cost"], strict=True)) for dataset in trend["datasets"]
    }
    # Nov 26 at the old price: 1000 x 2 / 1000 + 500 x 4 / 1000 = 4.00; Nov 27 at the new one: 1.5 + 0.005
    # = 1.505, exact (the tooltip rounds it); the unpriced model costs nothing.
    assert by_label[llm.name]["Nov 26"] == "4.00" and by_label[llm.name]["Nov 27"] == "1.505"
    assert set(by_label[other_model.name].values()) == {"0"}
    assert trend["cost_minor_digits"] == 2
    assert data["cost"]["amounts"][0]["amount"] == "5.505"
    html = owner_client.get(reverse("usage:dashboard", kwargs={"slug": tenant.slug})).content.decode()
    assert '<button type="button" data-metric="cost" aria-pressed="false" >Cost</button>' in html


def test_no_cost_metric_for_hours_or_without_prices(owner_client, tenant, api_key, llm):
    make_calls(tenant, [{"api_key": api_key, "model": llm, "occurred_at": utc(2026, 11, 28, 9), "input_tokens": 10}])
    url = reverse("usage:data", kwargs={"slug": tenant.slug})
    assert owner_client.get(url).json()["trend"]["cost_currency"] is None
    ModelPrice.objects.create(model=llm, input_per_1k="2.00", output_per_1k="4.00", effective_from=dt.date(2026, 1, 1))
    hourly = owner_client.get(url, {"preset": "today"}).json()["trend"]
    assert hourly["bucket"] == "hour" and hourly["cost_currency"] is None
    assert "cost" not in hourly["datasets"][0]
    html = owner_client.get(reverse("usage:dashboard", kwargs={"slug": tenant.slug}), {"preset": "today"})
    assert 'data-metric="cost" aria-pressed="false" hidden' in html.content.decode()


def test_a_cached_page_follows_new_calls_model_colours_and_the_query(owner_client, tenant, api_key, llm, ledger):
    """The page's panel is cached under its grids' versions, the models' colours and the query."""
    url = reverse("usage:dashboard", kwargs={"slug": tenant.slug})
    first = owner_client.get(url, {"preset": "last_30_days"})
    again = owner_client.get(url, {"preset": "last_30_days"})
    assert card_values(again.context["data"]) == card_values(first.context["data"])
    make_calls(tenant, [{"api_key": api_key, "model": llm, "occurred_at": NOW, "input_tokens": 5, "output_tokens": 1}])
    after = card_values(owner_client.get(url, {"preset": "last_30_days"}).context["data"])
    assert after["calls"] == card_values(first.context["data"])["calls"] + 1
    assert after["input_tokens"] == truth(tenant, dt.date(2026, 10, 30), dt.date(2026, 11, 28))[1]
    llm.color = "#123456"
    llm.save()
    html = owner_client.get(url, {"preset": "last_30_days"}).content.decode()
    assert 'fill="#123456"' in html and '"borderColor": "#123456"' in html
    links = owner_client.get(url, {"preset": "last_30_days", "api_key": api_key.public_id}).context["data"]
    assert all(f"api_key={api_key.public_id}" in row["url"] for row in links["distribution"])


def test_a_cached_page_is_a_bounded_number_of_queries(owner_client, tenant, ledger, django_assert_max_num_queries):
    url = reverse("usage:dashboard", kwargs={"slug": tenant.slug})
    owner_client.get(url, {"preset": "last_30_days"})
    # Session, user, the two-factor rule (does a tenant of the user require it), membership, the
    # filter bar's dirty days / models / keys, prices, the grids' versions, the tenant switcher, the
    # budget lines (none here: one query), the purge horizon (the call-detail note): nothing that
    # grows with the range or the number of calls.
    with django_assert_max_num_queries(12):
        assert owner_client.get(url, {"preset": "last_30_days"}).status_code == 200

import datetime as dt

import pytest

from usage.reporting.filters import UsageFilterSet
from usage.reporting.periods import Period

from .factories import make_calls, utc

NOW = utc(2026, 11, 28, 12)


def cleaned(tenant, data):
    filterset = UsageFilterSet(data, tenant=tenant, now=NOW)
    assert filterset.is_valid(), filterset.form.errors
    return filterset.usage_filters()


def test_default_is_last_two_weeks_ending_today(tenant):
    assert cleaned(tenant, {}).period == Period(dt.date(2026, 11, 15), dt.date(2026, 11, 28))


def test_single_custom_day(tenant):
    assert cleaned(tenant, {"start": "2026-11-02"}).period == Period(dt.date(2026, 11, 2), dt.date(2026, 11, 2))


def test_key_and_model_choices_are_scoped_to_the_tenant(tenant, api_key, other_api_key, llm):
    make_calls(tenant, [{"api_key": api_key, "model": llm, "occurred_at": utc(2026, 11, 20)}])
    chosen = cleaned(tenant, {"api_key": api_key.public_id, "model": llm.name})
    assert (chosen.api_key, chosen.model) == (api_key, llm)
    foreign = UsageFilterSet({"api_key": other_api_key.public_id}, tenant=tenant, now=NOW)
    assert not foreign.is_valid() and "api_key" in foreign.form.errors


def test_reversed_range_and_unknown_preset_are_form_errors(tenant):
    reversed_range = UsageFilterSet({"start": "2026-11-10", "end": "2026-11-01"}, tenant=tenant, now=NOW)
    assert not reversed_range.is_valid() and "end" in reversed_range.form.errors
    unknown = UsageFilterSet({"preset": "forever"}, tenant=tenant, now=NOW)
    assert not unknown.is_valid() and "preset" in unknown.form.errors
    bad_date = UsageFilterSet({"start": "2026-13-01"}, tenant=tenant, now=NOW)
    assert not bad_date.is_valid() and "start" in bad_date.form.errors


def test_dates_near_the_ends_of_the_calendar_are_form_errors(tenant):
    for data in ({"start": "0001-01-01"}, {"start": "9999-12-31"}, {"end": "9999-12-31"}):
        filterset = UsageFilterSet(data, tenant=tenant, now=NOW)
        assert not filterset.is_valid()
        assert next(iter(filterset.form.errors)) in ("start", "end")


def test_dashboard_shows_a_form_error_for_an_out_of_range_date(owner_client, tenant):
    response = owner_client.get(f"/t/{tenant.slug}/usage/", {"start": "9999-12-31"})
    assert response.status_code == 400
    assert "Enter a date between" in response.content.decode()


@pytest.mark.parametrize(
    ("attrs", "value"),
    [
        ({"id": "id_model", "class": "a&b"}, "2"),
        ({}, None),
        ({"id": "id_key", "required": True}, "<b>"),
        ({}, "not-a-choice"),
        ({}, 1),
    ],
)
@pytest.mark.parametrize("grouped", [False, True], ids=["flat", "grouped"])
def test_plain_select_renders_what_djangos_select_renders(attrs, value, grouped):
    from django import forms
    from django.test.html import parse_html

    from usage.reporting.filters import PlainSelect

    choices = [("", "All"), ("1", "one <1>"), ("2", 'two "q"'), ("<b>", "bold & co"), ("1", "one again")]
    if grouped:
        choices = [("", "All"), ("Group <g>", choices[1:])]
    expected = forms.Select(choices=choices).render("f", value, attrs)
    assert parse_html(PlainSelect(choices=choices).render("f", value, attrs)) == parse_html(expected)


def test_the_filterset_filters_the_ledger_by_tenant_days_key_and_model(
    tenant, other_tenant, api_key, other_api_key, llm
):
    """``qs`` is the query's calls: the tenant's, on the chosen local days, of the chosen key and
    model; the other tenant's calls on the same days never appear."""
    from usage.models import Model

    other_model = Model.objects.create(name="public/other-model")
    mine = make_calls(
        tenant,
        [
            {"api_key": api_key, "model": llm, "occurred_at": utc(2026, 11, 20, 10)},
            {"api_key": api_key, "model": other_model, "occurred_at": utc(2026, 11, 20, 11)},
            {"api_key": api_key, "model": llm, "occurred_at": utc(2026, 11, 22, 10)},
        ],
    )
    theirs = make_calls(other_tenant, [{"api_key": other_api_key, "model": llm, "occurred_at": utc(2026, 11, 20, 10)}])
    day = UsageFilterSet({"start": "2026-11-20"}, tenant=tenant, now=NOW)
    assert day.is_valid(), day.form.errors
    assert sorted(day.qs.values_list("pk", flat=True)) == sorted(call.pk for call in mine[:2])
    assert day.qs.filter(pk=theirs[0].pk).count() == 0
    one_model = UsageFilterSet({"start": "2026-11-20", "end": "2026-11-22", "model": llm.name}, tenant=tenant, now=NOW)
    assert one_model.is_valid(), one_model.form.errors
    assert sorted(one_model.qs.values_list("pk", flat=True)) == sorted([mine[0].pk, mine[2].pk])
    assert set(one_model.qs) == set(one_model.query().calls())
    their_day = UsageFilterSet({"start": "2026-11-20"}, tenant=other_tenant, now=NOW)
    assert their_day.is_valid(), their_day.form.errors
    assert list(their_day.qs.values_list("pk", flat=True)) == [theirs[0].pk]

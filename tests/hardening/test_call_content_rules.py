"""Issue 12, call content rules: model names trimmed, parts within their totals, `bearer` in any case."""

import json

import pytest
from django.test import Client

from accounts import services as account_services
from tests.usage import test_ingest_api as ingest_tests
from tests.usage.test_ingest_api import call, post
from usage.ingestion import validation as ingest
from usage.models import CallRecord, Model

api_key, gateway, frozen_now = ingest_tests.api_key, ingest_tests.gateway, ingest_tests.frozen_now


@pytest.mark.parametrize("sent", ["public/deepseek-r1 ", " public/deepseek-r1", "\tpublic/deepseek-r1\n"])
def test_model_is_trimmed_and_names_one_model(gateway, api_key, sent):
    response = post(gateway, [call(api_key, request_id="a"), call(api_key, request_id="b", model=sent)])
    assert response.json()["accepted"] == 2
    assert set(CallRecord.objects.values_list("model__name", flat=True)) == {"public/deepseek-r1"}
    assert Model.objects.filter(name__contains="deepseek-r1").count() == 1


@pytest.mark.parametrize("sent", ["   ", "\t", "\n \n"])
def test_blank_model_is_rejected(gateway, api_key, sent):
    result = post(gateway, [call(api_key, model=sent)]).json()
    assert result["rejected"] == 1
    assert [(e["field"], e["code"]) for e in result["errors"]] == [("model", "blank")]


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"input_tokens": 10, "cached_input_tokens": 11}, "cached_input_tokens", "exceeds_input"),
        ({"output_tokens": 5, "reasoning_tokens": 6}, "reasoning_tokens", "exceeds_output"),
        ({"input_tokens": 0, "cached_input_tokens": 1}, "cached_input_tokens", "exceeds_input"),
    ],
)
def test_parts_above_their_totals_are_rejected(gateway, api_key, fields, field, code):
    result = post(gateway, [call(api_key, **fields)]).json()
    assert result["rejected"] == 1
    assert [(e["field"], e["code"]) for e in result["errors"]] == [(field, code)]
    assert CallRecord.objects.count() == 0


def test_parts_equal_to_their_totals_are_fine(gateway, api_key):
    fields = {"input_tokens": 10, "cached_input_tokens": 10, "output_tokens": 5, "reasoning_tokens": 5}
    assert post(gateway, [call(api_key, **fields)]).json()["accepted"] == 1


def test_fast_and_detailed_paths_agree():
    base = {
        "request_id": "r",
        "api_key": "k",
        "model": "m",
        "occurred_at": "2025-03-10T11:00:00Z",
        "input_tokens": 3,
        "output_tokens": 3,
    }
    for extra in ({"cached_input_tokens": 4}, {"reasoning_tokens": 4}, {"model": " m"}):
        assert ingest._plainly_valid({**base, **extra}) is None
    call_, errors = ingest.validate_call({**base, "model": " m "})
    assert not errors and call_.model == "m"


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer", "bEaReR"])
def test_read_api_takes_the_scheme_in_any_case(tenant, scheme):
    _token, secret = account_services.access_token_create(tenant=tenant, name="bi")
    response = Client(headers={"Authorization": f"{scheme} {secret}"}).get("/api/v1/models")
    assert response.status_code == 200, response.content
    assert isinstance(json.loads(response.content), list | dict)

"""Issue 12 item 6: a JSON object naming a member twice is rejected, never silently resolved."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from tests.usage import test_ingest_api as ingest_tests
from tests.usage.test_ingest_api import assert_problem, call, post
from usage.ingestion import validation as ingest
from usage.models import CallRecord

# The ingestion tests' fixtures: a key, a gateway client and the pinned clock (autouse).
api_key, gateway, frozen_now = ingest_tests.api_key, ingest_tests.gateway, ingest_tests.frozen_now


def _item(key, **fields):
    return json.dumps(call(key, **fields))[:-1]  # without the closing brace, to append raw members


def test_calls_twice_in_the_body_is_400_duplicate_member(gateway, api_key):
    body = '{"calls": [' + json.dumps(call(api_key)) + '], "calls": []}'
    problem = assert_problem(post(gateway, body=body), 400)
    assert problem["code"] == "duplicate_member"
    assert "'calls'" in problem["detail"]
    assert CallRecord.objects.count() == 0


def test_key_twice_in_verify_body_is_400_duplicate_member(gateway):
    response = gateway.post("/api/v1/keys/verify", data='{"key": "a", "key": "b"}', content_type="application/json")
    assert assert_problem(response, 400)["code"] == "duplicate_member"


def test_a_field_twice_in_a_call_rejects_that_call_only(gateway, api_key):
    twice = _item(api_key, request_id="dup") + ', "input_tokens": 999999}'
    fine = json.dumps(call(api_key, request_id="ok"))
    response = post(gateway, body='{"calls": [' + twice + ", " + fine + "]}")
    assert response.status_code == 200
    result = response.json()
    assert (result["accepted"], result["rejected"]) == (1, 1)
    assert [(e["field"], e["code"]) for e in result["errors"]] == [("input_tokens", "duplicate_field")]
    assert list(CallRecord.objects.values_list("request_id", flat=True)) == ["ok"]


def test_loads_marks_duplicates_at_every_level():
    value = ingest.loads('{"a": 1, "b": {"c": 1, "c": 2, "d": 1, "d": 2}, "a": 3}')
    assert isinstance(value, ingest.DuplicateMembers) and value.duplicates == ("a",)
    assert value.duplicates == ("a",) and value["a"] == 3
    assert isinstance(value["b"], ingest.DuplicateMembers) and value["b"].duplicates == ("c", "d")
    assert type(ingest.loads('{"a": 1, "b": 2}')) is dict


def test_a_field_twice_in_an_imported_line_rejects_that_line(tmp_path, api_key):
    path = tmp_path / "calls.jsonl"
    path.write_text(
        _item(api_key, request_id="dup")
        + ', "model": "public/other"}\n'
        + json.dumps(call(api_key, request_id="ok"))
        + "\n"
    )
    rejects = tmp_path / "rejects.jsonl"
    out = StringIO()
    call_command("import_calls", str(path), "--no-progress", "--json", "--rejects", str(rejects), stdout=out)
    totals = json.loads(out.getvalue())
    assert (totals["accepted"], totals["rejected"]) == (1, 1)
    assert "duplicate_field" in rejects.read_text()


@pytest.mark.parametrize("field", ["request_id", "occurred_at", "output_tokens"])
def test_any_duplicated_field_is_named(field, api_key):
    raw = ingest.loads(_item(api_key) + f', "{field}": {json.dumps(call(api_key)[field])}}}')
    got, errors = ingest.validate_call(raw)
    assert got is None
    assert [(e["field"], e["code"]) for e in errors] == [(field, "duplicate_field")]

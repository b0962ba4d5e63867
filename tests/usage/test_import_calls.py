"""manage.py import_calls: JSONL, CSV and the Azure traces, re-runnable, with a rejects file."""

import datetime as dt
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count, Sum

from accounts import services as account_services
from usage.ingestion import files as call_files
from usage.models import CallRecord, DirtyDay, Model, UsageDailyModel


@pytest.fixture
def key(tenant):
    key, _secret = account_services.api_key_create(tenant=tenant, name="backfill")
    return key


@pytest.fixture
def rejects(tmp_path):
    return tmp_path / "rejects.jsonl"


def run(path, *args, rejects=None):
    """Run the command; return its JSON totals."""
    out = StringIO()
    options = ["--rejects", str(rejects)] if rejects else []
    call_command("import_calls", str(path), "--no-progress", "--json", *options, *args, stdout=out)
    return json.loads(out.getvalue())


def counts(totals):
    return totals["accepted"], totals["duplicates"], totals["rejected"]


def record(key, request_id="r1", **fields):
    return {
        "request_id": request_id,
        "api_key": key.public_id,
        "model": "public/deepseek-r1",
        "occurred_at": "2024-01-15T10:00:00Z",
        "input_tokens": 100,
        "output_tokens": 20,
        **fields,
    }


def write_jsonl(path, lines):
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def read_rejects(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- JSONL and CSV --------------------------------------------------------------------------


def test_jsonl_import_stores_calls_without_a_window(tmp_path, key, llm, rejects):
    # Two years back: far outside the API's window, which an import does not apply.
    path = write_jsonl(tmp_path / "calls.jsonl", [record(key, "a"), record(key, "b", cached_input_tokens=7)])
    assert counts(run(path, rejects=rejects)) == (2, 0, 0)
    assert list(CallRecord.objects.order_by("request_id").values_list("request_id", "cached_input_tokens")) == [
        ("a", None),
        ("b", 7),
    ]
    assert rejects.read_text() == ""


def test_rejected_lines_are_written_with_their_reasons(tmp_path, key, llm, rejects):
    lines = [
        record(key, "ok"),
        "{not json",
        record(key, "neg", input_tokens=-1),
        "",
        record(key, "nokey", api_key="nosuchkey123"),
        record(key, "ok", output_tokens=21),
    ]
    path = write_jsonl(tmp_path / "calls.jsonl", lines)
    assert counts(run(path, rejects=rejects)) == (1, 0, 4)
    found = [
        (r["line"], r["request_id"], [(e["field"], e["code"]) for e in r["errors"]]) for r in read_rejects(rejects)
    ]
    assert found == [
        (2, None, [(None, "invalid_json")]),
        (3, "neg", [("input_tokens", "out_of_range")]),
        (5, "nokey", [("api_key", "unknown_api_key")]),
        (6, "ok", [("request_id", "conflict")]),
    ]
    assert read_rejects(rejects)[0]["text"] == "{not json"


def test_second_import_adds_nothing(tmp_path, key, llm, rejects):
    path = write_jsonl(tmp_path / "calls.jsonl", [record(key, f"r{i}") for i in range(5)])
    run(path, rejects=rejects)
    assert counts(run(path, rejects=rejects)) == (0, 5, 0)
    assert CallRecord.objects.count() == 5


def test_duplicates_and_conflicts_across_chunks(tmp_path, key, llm, rejects):
    lines = [record(key, "a"), record(key, "b"), record(key, "a"), record(key, "b", input_tokens=1), record(key, "c")]
    path = write_jsonl(tmp_path / "calls.jsonl", lines)
    assert counts(run(path, "--batch-size", "2", rejects=rejects)) == (3, 1, 1)
    assert [r["line"] for r in read_rejects(rejects)] == [4]
    assert CallRecord.objects.get(request_id="b").input_tokens == 100


def test_duplicates_inside_one_chunk(tmp_path, key, llm, rejects):
    lines = [record(key, "a"), record(key, "a"), record(key, "a", input_tokens=5), record(key, "a")]
    path = write_jsonl(tmp_path / "calls.jsonl", lines)
    assert counts(run(path, rejects=rejects)) == (1, 2, 1)
    assert [r["line"] for r in read_rejects(rejects)] == [3]


def test_csv_import_reads_the_same_fields(tmp_path, key, llm, rejects):
    path = tmp_path / "calls.csv"
    path.write_text(
        "request_id,api_key,model,occurred_at,input_tokens,output_tokens,cached_input_tokens,reasoning_tokens\n"
        f"a,{key.public_id},public/deepseek-r1,2024-01-15T10:00:00+01:00,100,20,,0\n"
        f"b,{key.public_id},public/deepseek-r1,2024-01-15T10:00:00Z,1.5,20,,\n"
        f'"c, quoted",{key.public_id},vendor/new,2024-01-15 10:00:00Z,7,-1,,\n'
        f"d,{key.public_id},public/deepseek-r1\n"
    )
    assert counts(run(path, rejects=rejects)) == (1, 0, 3)
    stored = CallRecord.objects.get()
    assert stored.occurred_at == dt.datetime(2024, 1, 15, 9, tzinfo=dt.UTC)
    assert (stored.cached_input_tokens, stored.reasoning_tokens) == (None, 0)
    found = [(r["line"], [(e["field"], e["code"]) for e in r["errors"]]) for r in read_rejects(rejects)]
    assert found == [
        (3, [("input_tokens", "not_an_integer")]),
        (4, [("output_tokens", "out_of_range")]),
        (5, [(None, "wrong_column_count")]),
    ]
    assert not Model.objects.filter(name="vendor/new").exists()


@pytest.mark.parametrize(
    "header",
    [
        "request_id,api_key,model,occurred_at,input_tokens",
        "request_id,api_key,model,occurred_at,input_tokens,output_tokens,extra",
    ],
)
def test_csv_with_a_bad_header_is_refused(tmp_path, db, header, rejects):
    path = tmp_path / "calls.csv"
    path.write_text(header + "\n")
    with pytest.raises(CommandError, match="header"):
        run(path, rejects=rejects)


def test_bytes_that_are_not_utf8_reject_their_line_only(tmp_path, key, llm, rejects):
    good = json.dumps(record(key, "good")).encode()
    bad = json.dumps(record(key, "bad-\udcff-id")).encode().replace(b"\\udcff", b"\xff")
    path = tmp_path / "calls.jsonl"
    path.write_bytes(good + b"\n" + bad + b"\n")
    assert counts(run(path, rejects=rejects)) == (1, 0, 1)
    [reject] = read_rejects(rejects)
    assert reject["errors"][0]["code"] == "invalid_characters"


def test_tenant_option_rejects_keys_of_other_tenants(tmp_path, key, other_api_key, llm, rejects):
    path = write_jsonl(tmp_path / "calls.jsonl", [record(key, "mine"), record(other_api_key, "theirs")])
    assert counts(run(path, "--tenant", "acme", rejects=rejects)) == (1, 0, 1)
    assert read_rejects(rejects)[0]["errors"][0]["code"] == "wrong_tenant"


def test_key_revoked_before_the_call_is_rejected(tmp_path, key, llm, rejects):
    key.revoked_at = dt.datetime(2024, 1, 15, 10, tzinfo=dt.UTC)
    key.save()
    lines = [record(key, "before", occurred_at="2024-01-15T09:59:59Z"), record(key, "after")]
    path = write_jsonl(tmp_path / "calls.jsonl", lines)
    assert counts(run(path, rejects=rejects)) == (1, 0, 1)
    assert read_rejects(rejects)[0]["errors"][0]["code"] == "api_key_revoked"


def test_import_adds_calls_to_their_local_days(tmp_path, other_api_key, llm, rejects):
    # Globex is on Asia/Kolkata: 20:00 UTC is the next local day.
    lines = [
        record(other_api_key, "a", occurred_at="2024-01-15T20:00:00Z"),
        record(other_api_key, "b", occurred_at="2024-01-15T10:00:00Z"),
        record(other_api_key, "b", occurred_at="2024-01-15T10:00:00Z"),  # a duplicate adds nothing
    ]
    run(write_jsonl(tmp_path / "calls.jsonl", lines), rejects=rejects)
    days = sorted(UsageDailyModel.objects.values_list("day", "calls"))
    assert days == [(dt.date(2024, 1, 15), 1), (dt.date(2024, 1, 16), 1)]
    assert not DirtyDay.objects.exists()


def test_human_summary_and_default_rejects_file(tmp_path, key, llm, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_jsonl(tmp_path / "calls.jsonl", [record(key, "a"), record(key, "b", model="")])
    out = StringIO()
    call_command("import_calls", str(path), "--no-progress", stdout=out)
    assert "accepted 1, duplicates 0, rejected 1" in out.getvalue()
    assert len(read_rejects(tmp_path / "calls.jsonl.rejects.jsonl")) == 1


def test_unknown_format_and_missing_file_are_command_errors(tmp_path, db):
    (tmp_path / "calls.txt").write_text("")
    with pytest.raises(CommandError, match="format"):
        run(tmp_path / "calls.txt")
    with pytest.raises(CommandError, match="No such file"):
        run(tmp_path / "missing.jsonl")


def test_azure_options_are_refused_for_jsonl(tmp_path, db):
    path = write_jsonl(tmp_path / "calls.jsonl", [])
    with pytest.raises(CommandError, match="azure only"):
        run(path, "--model", "x")


# --- the Azure traces ---------------------------------------------------------------------

TRACE_TOTALS = {
    "AzureLLMInferenceTrace_code.csv": (8_819, 18_059_974, 245_896),
    "AzureLLMInferenceTrace_conv.csv": (19_366, 22_361_870, 4_088_665),
}


@pytest.fixture
def trace_keys(tenant):
    return [account_services.api_key_create(tenant=tenant, name=f"trace-{i}")[0] for i in range(3)]


def azure(path, keys, *extra, model="azure/code", rejects=None):
    key_options = [option for key in keys for option in ("--api-key", key.public_id)]
    return run(path, "--format", "azure", "--tenant", "acme", "--model", model, *key_options, *extra, rejects=rejects)


@pytest.mark.parametrize("name", sorted(TRACE_TOTALS))
def test_azure_trace_reproduces_its_totals_and_a_second_import_adds_nothing(traces, trace_keys, rejects, name):
    calls, input_tokens, output_tokens = TRACE_TOTALS[name]
    assert counts(azure(traces / name, trace_keys, rejects=rejects)) == (calls, 0, 0)
    totals = CallRecord.objects.aggregate(calls=Count("id"), input=Sum("input_tokens"), output=Sum("output_tokens"))
    assert totals == {"calls": calls, "input": input_tokens, "output": output_tokens}
    assert counts(azure(traces / name, trace_keys, rejects=rejects)) == (0, calls, 0)
    assert CallRecord.objects.count() == calls


def test_azure_calls_are_spread_over_the_keys_and_added_as_an_unlisted_model(traces, trace_keys, rejects):
    azure(traces / "AzureLLMInferenceTrace_code.csv", trace_keys, rejects=rejects)
    per_key = dict(CallRecord.objects.values_list("api_key__name").annotate(n=Count("id")))
    assert sum(per_key.values()) == 8_819 and len(per_key) == 3 and min(per_key.values()) >= 2_939
    assert Model.objects.get(name="azure/code").listed is False
    first = CallRecord.objects.get(request_id="azure-AzureLLMInferenceTrace_code-2")
    assert first.occurred_at == dt.datetime(2023, 11, 16, 18, 17, 3, 979960, tzinfo=dt.UTC)
    assert (first.input_tokens, first.output_tokens) == (4808, 10)


def test_azure_shift_moves_whole_days(traces, trace_keys, rejects):
    azure(traces / "AzureLLMInferenceTrace_conv.csv", trace_keys, "--shift-to", "2025-03-01", rejects=rejects)
    first = CallRecord.objects.get(request_id="azure-AzureLLMInferenceTrace_conv-2")
    assert first.occurred_at == dt.datetime(2025, 3, 1, 18, 15, 46, 680590, tzinfo=dt.UTC)
    assert list(UsageDailyModel.objects.values_list("day", "calls")) == [
        (dt.date(2025, 3, 1), CallRecord.objects.count())
    ]


def test_azure_reimport_with_other_options_is_rejected_as_conflicts(traces, trace_keys, rejects):
    path = traces / "AzureLLMInferenceTrace_code.csv"
    azure(path, trace_keys, rejects=rejects)
    assert counts(azure(path, trace_keys, "--shift-to", "2025-03-01", rejects=rejects)) == (0, 0, 8_819)
    assert CallRecord.objects.filter(occurred_at__year=2025).count() == 0


def test_azure_bad_rows_are_rejected_per_line(tmp_path, trace_keys, rejects):
    path = tmp_path / "trace.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:17:03.9799600,10,1\n"
        "yesterday,10,1\n"
        "2023-11-16 18:17:04.0000000,ten,1\n"
        "2023-11-16 18:17:05.0000000,10\n"
    )
    assert counts(azure(path, trace_keys, rejects=rejects)) == (1, 0, 3)
    found = [(r["line"], [(e["field"], e["code"]) for e in r["errors"]]) for r in read_rejects(rejects)]
    assert found == [
        (3, [("occurred_at", "invalid_datetime")]),
        (4, [("input_tokens", "not_an_integer")]),
        (5, [(None, "wrong_column_count")]),
    ]


def test_azure_needs_tenant_keys_and_model(tmp_path, trace_keys, other_api_key):
    path = tmp_path / "trace.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,10,1\n")
    with pytest.raises(CommandError, match="needs --tenant"):
        run(path, "--model", "m", "--api-key", trace_keys[0].public_id)
    with pytest.raises(CommandError, match="Not API keys of tenant acme"):
        azure(path, [other_api_key])
    with pytest.raises(CommandError, match="--shift-to"):
        azure(path, trace_keys, "--shift-to", "soon")


def test_reader_thread_stops_when_the_import_stops():
    produced = []

    def numbers():
        for number in range(1000):
            produced.append(number)
            yield number

    chunks = call_files.prefetched(numbers(), depth=2)
    assert next(chunks) == 0
    chunks.close()
    assert len(produced) <= 5


def test_reader_thread_errors_reach_the_importer():
    def failing():
        yield 1
        raise call_files.FileFormatError("broken")

    with pytest.raises(call_files.FileFormatError, match="broken"):
        list(call_files.prefetched(failing()))


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_checks_run_ahead_in_the_reader_thread(tmp_path, rejects):
    # Committed data, so the reader thread's own connection sees the keys (the usual, threaded path).
    tenant = account_services.tenant_create(slug="acme", name="Acme")
    key, _ = account_services.api_key_create(tenant=tenant, name="backfill")
    lines = [record(key, f"r{i}", model="vendor/fresh") for i in range(25)]
    lines += [record(key, "r3"), record(key, "bad", api_key="nosuchkey123"), record(key, "r4", input_tokens=9)]
    path = write_jsonl(tmp_path / "calls.jsonl", lines)
    assert counts(run(path, "--batch-size", "10", rejects=rejects)) == (25, 0, 3)
    assert [(r["line"], r["errors"][0]["code"]) for r in read_rejects(rejects)] == [
        (26, "conflict"),
        (27, "unknown_api_key"),
        (28, "conflict"),
    ]
    assert Model.objects.get(name="vendor/fresh").listed is False


def test_instants_no_filter_can_reach_are_rejected_per_line(tmp_path, key, rejects):
    path = write_jsonl(
        tmp_path / "edges.jsonl",
        [
            record(key, "early", occurred_at="0001-01-01T01:00:00Z"),
            record(key, "late", occurred_at="9999-12-31T23:00:00Z"),
            record(key, "fine"),
        ],
    )
    assert counts(run(path, rejects=rejects)) == (1, 0, 2)
    reasons = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert {r["errors"][0]["code"] for r in reasons} == {"out_of_range"}

"""POST /api/v1/litellm/logs: LiteLLM's standard logging payloads become calls.

The payloads come from the real ``litellm`` package (pinned in requirements-dev.txt): its
``acompletion(..., mock_response=...)`` makes no network call, and its ``generic_api`` logger
(``GenericAPILogger``) posts them to a live server as the proxy's ``callbacks: ["generic_api"]`` does.
"""

import asyncio
import json
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download of the price map at import

import litellm  # noqa: E402
import pytest  # noqa: E402
from django.test import Client  # noqa: E402
from litellm.integrations.custom_logger import CustomLogger  # noqa: E402
from litellm.integrations.generic_api.generic_api_callback import GenericAPILogger  # noqa: E402
from litellm.types.utils import (  # noqa: E402
    Choices,
    CompletionTokensDetailsWrapper,
    Message,
    ModelResponse,
    PromptTokensDetailsWrapper,
    Usage,
)

from accounts import services as account_services  # noqa: E402
from usage.models import CallRecord  # noqa: E402

URL = "/api/v1/litellm/logs"
litellm.telemetry = False
# LiteLLM's logging worker binds to the first event loop it runs in: every test uses this one.
LOOP = asyncio.new_event_loop()


def mock(response_id, prompt, completion, cached=None, reasoning=None):
    usage = Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=PromptTokensDetailsWrapper(cached_tokens=cached) if cached is not None else None,
        completion_tokens_details=CompletionTokensDetailsWrapper(reasoning_tokens=reasoning) if reasoning else None,
    )
    message = Message(role="assistant", content="mocked")
    return ModelResponse(
        id=response_id,
        model="gpt-4o-mini",
        choices=[Choices(index=0, message=message, finish_reason="stop")],
        usage=usage,
    )


class Recorder(CustomLogger):
    def __init__(self):
        super().__init__()
        self.payloads = []

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self.payloads.append(kwargs["standard_logging_object"])

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self.payloads.append(kwargs["standard_logging_object"])


# LiteLLM keeps one logger per class once registered: one recorder for every test.
RECORDER = Recorder()


async def _complete(callbacks, key_alias, responses):
    previous = litellm.callbacks
    litellm.callbacks = callbacks
    try:
        for response in responses:
            try:
                await litellm.acompletion(
                    model="openai/gpt-4o-mini",
                    messages=[{"role": "user", "content": "hi"}],
                    mock_response=response,
                    metadata={"user_api_key_alias": key_alias},
                )
            except Exception:  # a mocked failure (a string naming the exception): logged as one
                if not isinstance(response, str):
                    raise
        await asyncio.sleep(0.2)  # LiteLLM runs its success callbacks as tasks
        for callback in callbacks:
            if isinstance(callback, GenericAPILogger):
                await callback.async_send_batch()
    finally:
        litellm.callbacks = previous


def recorded_payloads(key_alias, responses):
    """Standard logging payloads as LiteLLM builds them, JSON round-tripped as its logger sends them."""
    recorder = RECORDER
    recorder.payloads = []
    LOOP.run_until_complete(_complete([recorder], key_alias, responses))
    return json.loads(json.dumps(recorder.payloads, default=str))


@pytest.fixture
def api_key(tenant):
    return account_services.api_key_create(tenant=tenant, name="proxy-key")[0]


@pytest.fixture
def gateway(db):
    return Client(headers={"Authorization": f"Bearer {account_services.service_token_create(name='litellm')[1]}"})


def test_payloads_become_calls(gateway, api_key):
    payloads = recorded_payloads(
        api_key.public_id, [mock("chatcmpl-a", 1000, 50, cached=600, reasoning=20), mock("chatcmpl-b", 30, 4)]
    )
    failed = {**payloads[1], "id": "chatcmpl-failed", "status": "failure"}
    response = gateway.post(URL, json.dumps([*payloads, failed]), content_type="application/json")
    assert response.status_code == 200
    # The failure is a call too (it used to be ignored): its tokens, as logged, count.
    assert response.json() == {"accepted": 3, "duplicates": 0, "rejected": 0, "errors": [], "ignored": 0}
    stored_failure = CallRecord.objects.get(request_id="chatcmpl-failed")
    assert (stored_failure.status, stored_failure.error_type, stored_failure.input_tokens) == ("error", "other", 30)
    first = CallRecord.objects.select_related("model").get(request_id="chatcmpl-a")
    assert (first.api_key, first.model.name) == (api_key, "gpt-4o-mini")
    assert (first.input_tokens, first.output_tokens, first.cached_input_tokens, first.reasoning_tokens) == (
        1000,
        50,
        600,
        20,
    )
    assert abs(first.occurred_at.timestamp() - payloads[0]["endTime"]) < 1e-3
    second = CallRecord.objects.get(request_id="chatcmpl-b")
    assert (second.cached_input_tokens, second.reasoning_tokens) == (None, None)
    again = gateway.post(URL, "\n".join(json.dumps(p) for p in payloads), content_type="application/x-ndjson")
    assert again.json()["duplicates"] == 2 and CallRecord.objects.count() == 3


def test_timings_and_a_real_failure_are_carried(gateway, api_key, tenant, other_tenant):
    """LiteLLM's own failure payload (a mocked RateLimitError): stored as a rate-limited error call,
    with its durations; a success carries duration and time to first token from its timestamps."""
    recorded = recorded_payloads(api_key.public_id, [mock("chatcmpl-t", 10, 5), "litellm.RateLimitError"])
    # LiteLLM logs from tasks: the two payloads may come in either order.
    ok, failure = sorted(recorded, key=lambda payload: payload["status"] != "success")
    assert (ok["status"], failure["status"]) == ("success", "failure")
    other_key = account_services.api_key_create(tenant=other_tenant, name="other")[0]
    [foreign] = recorded_payloads(other_key.public_id, [mock("chatcmpl-o", 7, 3)])
    body = gateway.post(URL, json.dumps([ok, failure, foreign]), content_type="application/json").json()
    assert (body["accepted"], body["rejected"]) == (3, 0)
    stored_ok = CallRecord.objects.get(request_id="chatcmpl-t")
    assert stored_ok.status == "ok" and stored_ok.error_type is None and stored_ok.http_status is None
    assert stored_ok.duration_ms == round((ok["endTime"] - ok["startTime"]) * 1000)
    assert stored_ok.time_to_first_token_ms == round((ok["completionStartTime"] - ok["startTime"]) * 1000)
    stored_failure = CallRecord.objects.get(request_id=failure["id"])
    assert (stored_failure.status, stored_failure.error_type, stored_failure.http_status) == (
        "error",
        "rate_limited",
        429,
    )
    assert (stored_failure.input_tokens, stored_failure.output_tokens, stored_failure.tenant) == (0, 0, tenant)
    assert stored_failure.duration_ms == round((failure["endTime"] - failure["startTime"]) * 1000)
    assert CallRecord.objects.filter(tenant=other_tenant).get().request_id == "chatcmpl-o"


def test_model_group_wins_and_errors_name_the_payload(gateway, api_key):
    [payload] = recorded_payloads(api_key.public_id, [mock("chatcmpl-c", 10, 1)])
    grouped = {**payload, "id": "chatcmpl-d", "model_group": "public/deepseek-v3"}
    unknown = {**payload, "id": "chatcmpl-e", "metadata": {**payload["metadata"], "user_api_key_alias": "key_nope"}}
    broken = {**payload, "id": "chatcmpl-f", "prompt_tokens": 1.5}
    body = gateway.post(URL, json.dumps([grouped, unknown, broken]), content_type="application/json").json()
    assert (body["accepted"], body["rejected"], body["ignored"]) == (1, 2, 0)
    assert {(error["index"], error["field"]) for error in body["errors"]} == {(1, "api_key"), (2, "input_tokens")}
    assert CallRecord.objects.get().model.name == "public/deepseek-v3"
    single = gateway.post(URL, json.dumps(payload), content_type="application/json").json()  # log_format single
    assert single["accepted"] == 1


def test_limits_and_auth(gateway, api_key, settings, db):
    [payload] = recorded_payloads(api_key.public_id, [mock("chatcmpl-g", 10, 1)])
    settings.INGEST_MAX_ITEMS = 1
    assert gateway.post(URL, json.dumps([payload, payload]), content_type="application/json").status_code == 413
    assert gateway.post(URL, "[{", content_type="application/json").status_code == 400
    assert gateway.post(URL, "x", content_type="application/xml").status_code == 415
    assert Client().post(URL, json.dumps([payload]), content_type="application/json").status_code == 401


@pytest.fixture
def short_lived_connections():
    from django.db import connections

    previous = connections.settings["default"]["CONN_MAX_AGE"]
    connections.settings["default"]["CONN_MAX_AGE"] = 0
    yield
    connections.settings["default"]["CONN_MAX_AGE"] = previous


@pytest.mark.parametrize("log_format", ["json_array", "ndjson", "single"])
def test_litellms_generic_api_logger_posts_here(transactional_db, live_server, short_lived_connections, log_format):
    tenant = account_services.tenant_create(slug="acme", name="Acme")
    key = account_services.api_key_create(tenant=tenant, name="proxy-key")[0]
    secret = account_services.service_token_create(name="litellm")[1]

    async def run():
        logger = GenericAPILogger(
            endpoint=f"{live_server.url}{URL}", headers={"Authorization": f"Bearer {secret}"}, log_format=log_format
        )
        await _complete([logger], key.public_id, [mock(f"resp-{n}", 100 + n, n, cached=n) for n in range(3)])

    LOOP.run_until_complete(run())
    calls = CallRecord.objects.order_by("request_id")
    assert [(c.request_id, c.input_tokens, c.output_tokens, c.cached_input_tokens) for c in calls] == [
        (f"resp-{n}", 100 + n, n, n) for n in range(3)
    ]

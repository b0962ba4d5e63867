"""LiteLLM as installed (plain ``pip install litellm``) reports every call through the product's
callback module, ``usage/integrations/litellm_callback.py``.

LiteLLM's own ``generic_api`` callback needs ``litellm-enterprise``: without it LiteLLM swaps in
a logger that does nothing (the first test pins that, so README's advice is revisited if a LiteLLM
release changes it). The end-to-end tests run a separate Python process as a user would, with the
module copied next to the script (it imports nothing of the product) and the environment README
gives, making real ``litellm.completion`` and ``acompletion`` calls to a fake OpenAI server on
127.0.0.1, while a real gunicorn serves the product on the test database.
"""

import ast
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download of the price map at import

import litellm  # noqa: E402
import pytest  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from litellm.integrations.custom_logger import CustomLogger  # noqa: E402

from accounts import services as account_services  # noqa: E402
from usage.integrations import litellm_callback  # noqa: E402
from usage.integrations.litellm_callback import UsageStatisticsLogger  # noqa: E402
from usage.models import CallRecord  # noqa: E402

ROOT = Path(settings.BASE_DIR)
MODULE = ROOT / "usage" / "integrations" / "litellm_callback.py"
litellm.telemetry = False


def test_generic_api_is_a_no_op_without_litellm_enterprise():
    from litellm.litellm_core_utils import litellm_logging

    with pytest.raises(ImportError):
        __import__("litellm_enterprise")
    assert litellm_logging.GenericAPILogger is CustomLogger  # LiteLLM's stand-in: it sends nothing


def test_the_module_imports_nothing_of_the_product():
    tree = ast.parse(MODULE.read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    roots = {name.split(".")[0] for name in imported}
    assert roots - {"__future__", "atexit", "json", "logging", "os", "random", "threading", "time"} == {
        "collections",
        "typing",
        "httpx",
        "litellm",
    }


# --- a fake OpenAI server and a fake product, on 127.0.0.1 ------------------------------------


class FakeOpenAI(ThreadingHTTPServer):
    """Chat completions with distinct token counts per call, as OpenAI reports them."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _OpenAIHandler)
        self.answered = {}  # response id -> (prompt, completion, cached, reasoning)
        self.lock = threading.Lock()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_port}/v1"


class _OpenAIHandler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            n = len(self.server.answered)
            tokens = (1000 + 7 * n, 20 + n, 100 * (n % 3) if n % 4 else None, n if n % 2 else None)
            response_id = f"chatcmpl-fake-{n}"
            self.server.answered[response_id] = tokens
        usage = {"prompt_tokens": tokens[0], "completion_tokens": tokens[1], "total_tokens": tokens[0] + tokens[1]}
        if tokens[2] is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": tokens[2]}
        if tokens[3] is not None:
            usage["completion_tokens_details"] = {"reasoning_tokens": tokens[3]}
        body = {
            "id": response_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": usage,
        }
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_openai():
    server = FakeOpenAI()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url():
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def gunicorn_url(transactional_db):
    """The product under gunicorn (its production server) on a free port, on the test database."""
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": _database_url(), "DEBUG": "0"}
    env.pop("CELERY_BROKER_URL", None)  # rollups in-process: this test is about delivery
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "usageproject.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"gunicorn exited: {process.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail("gunicorn did not start within 30 s")
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


# What README tells a user of the LiteLLM SDK to do: the module beside the script, the environment.
SDK_SCRIPT = """
import asyncio, os, sys
import litellm
from litellm_callback import UsageStatisticsLogger

litellm.callbacks = [UsageStatisticsLogger()]
messages = [{"role": "user", "content": "hello"}]
for n in range(10):
    litellm.completion(model="openai/gpt-4o-mini", messages=messages, api_base=sys.argv[1], api_key="sk-fake")

async def main():
    for n in range(5):
        await litellm.acompletion(
            model="openai/gpt-4o-mini", messages=messages, api_base=sys.argv[1], api_key="sk-fake"
        )

asyncio.run(main())
print("done")
"""

# What LiteLLM's proxy does with ``callbacks: litellm_callback.usage_statistics_logger`` in a
# config.yaml beside the module: its own loader, then the calls of its clients.
PROXY_SCRIPT = """
import asyncio, sys
import litellm
from litellm.proxy.types_utils.utils import get_instance_fn

logger = get_instance_fn("litellm_callback.usage_statistics_logger", config_file_path=sys.argv[2])
litellm.callbacks = [logger]

async def main():
    for n in range(6):
        await litellm.acompletion(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], api_base=sys.argv[1],
            api_key="sk-fake", metadata={"user_api_key_alias": sys.argv[3]},
        )

asyncio.run(main())
print("done")
"""


def _run_as_a_user(tmp_path, script, args, env):
    folder = tmp_path / "app"
    folder.mkdir()
    shutil.copy(MODULE, folder / "litellm_callback.py")
    (folder / "config.yaml").write_text("litellm_settings:\n  callbacks: litellm_callback.usage_statistics_logger\n")
    (folder / "script.py").write_text(textwrap.dedent(script))
    clean = {name: value for name, value in os.environ.items() if not name.startswith(("DJANGO", "DATABASE"))}
    clean.pop("PYTHONPATH", None)  # nothing of the product is importable, only the copied file
    clean |= {"LITELLM_LOCAL_MODEL_COST_MAP": "True", **env}
    done = subprocess.run(
        [sys.executable, "script.py", *args], cwd=folder, env=clean, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr[-3000:]
    return folder


def _stored(tenant):
    calls = CallRecord.objects.filter(tenant=tenant).order_by("request_id")
    return {c.request_id: (c.input_tokens, c.output_tokens, c.cached_input_tokens, c.reasoning_tokens) for c in calls}


@pytest.fixture
def accounts_(transactional_db):
    tenant = account_services.tenant_create(slug="acme", name="Acme")
    other = account_services.tenant_create(slug="globex", name="Globex")
    key = account_services.api_key_create(tenant=tenant, name="litellm-app")[0]
    other_key = account_services.api_key_create(tenant=other, name="proxy")[0]
    secret = account_services.service_token_create(name="litellm")[1]
    return tenant, key, other, other_key, secret


def test_every_sdk_call_is_stored_with_its_tokens(tmp_path, gunicorn_url, fake_openai, accounts_):
    tenant, key, other, _other_key, secret = accounts_
    env = {
        "USAGE_STATISTICS_URL": gunicorn_url,
        "USAGE_STATISTICS_SERVICE_TOKEN": secret,
        "USAGE_STATISTICS_API_KEY": key.public_id,
        "USAGE_STATISTICS_FLUSH_SECONDS": "60",  # the tail is sent when the script exits
    }
    _run_as_a_user(tmp_path, SDK_SCRIPT, [fake_openai.url], env)
    assert len(fake_openai.answered) == 15
    assert _stored(tenant) == fake_openai.answered
    assert _stored(other) == {}
    assert {c.model.name for c in CallRecord.objects.select_related("model")} == {"gpt-4o-mini"}


def test_the_proxys_callback_setting_loads_it_and_every_call_is_stored(tmp_path, gunicorn_url, fake_openai, accounts_):
    tenant, _key, other, other_key, secret = accounts_
    env = {"USAGE_STATISTICS_URL": gunicorn_url + "/", "USAGE_STATISTICS_SERVICE_TOKEN": secret}
    folder = tmp_path
    _run_as_a_user(
        folder, PROXY_SCRIPT, [fake_openai.url, str(folder / "app" / "config.yaml"), other_key.public_id], env
    )
    assert len(fake_openai.answered) == 6
    assert _stored(other) == fake_openai.answered  # the virtual key's alias names the product's key
    assert _stored(tenant) == {}


# --- delivery: retries, refusals, an unreachable product --------------------------------------


class FakeProduct(ThreadingHTTPServer):
    """Answers with the scripted statuses in turn, then 200; records every batch it got."""

    def __init__(self, statuses, port=0):
        super().__init__(("127.0.0.1", port), _ProductHandler)
        self.statuses, self.batches = list(statuses), []

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_port}"


class _ProductHandler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        batch = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status = self.server.statuses.pop(0) if self.server.statuses else 200
        self.server.batches.append((status, self.headers["Authorization"], batch))
        body = json.dumps({"accepted": len(batch), "errors": []} if status == 200 else {"title": "no"}).encode()
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def product():
    """Starts fake products (``product(statuses, port=0)``); all are stopped after the test."""
    servers = []

    def start(statuses=(), port=0):
        server = FakeProduct(statuses, port)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def loggers():
    """Makes loggers and removes them from LiteLLM's callback lists afterwards (LiteLLM keeps every
    logger it was once given), so no later test's calls reach them."""
    made = []

    def make(**options):
        made.append(UsageStatisticsLogger(**{"service_token": "svc_t", "flush_seconds": 3600, **options}))
        return made[-1]

    yield make
    for logger in made:
        litellm.logging_callback_manager.remove_callback_from_all_lists(logger)
        logger.close(timeout=0)


def _complete(logger, n, **kwargs):
    litellm.callbacks = [logger]
    try:
        for i in range(n):
            litellm.completion(
                model="openai/gpt-4o-mini",
                messages=[{"role": "user", "content": "secret prompt"}],
                mock_response=f"secret answer {i}",
                **kwargs,
            )
        deadline = time.monotonic() + 10
        while logger.received < n and time.monotonic() < deadline:  # LiteLLM logs in a thread pool
            time.sleep(0.05)
        assert logger.received == n
    finally:
        litellm.callbacks = []
        litellm.logging_callback_manager.remove_callback_from_all_lists(logger)


def test_429_and_5xx_are_retried_and_the_batch_arrives_once(product, loggers):
    server = product([503, 429, 502])
    logger = loggers(url=server.url, backoff_seconds=0.01)
    _complete(logger, 3)
    assert logger.flush(timeout=10) is True and logger.pending() == 0
    assert [status for status, _auth, _batch in server.batches] == [503, 429, 502, 200]
    _status, auth, batch = server.batches[-1]
    assert auth == "Bearer svc_t" and len(batch) == 3 and len({p["id"] for p in batch}) == 3
    assert all(p["prompt_tokens"] > 0 and p["status"] == "success" for p in batch)
    assert "secret" not in json.dumps(batch)  # neither the prompt nor the answer leaves the process


def test_an_unreachable_product_keeps_the_calls_and_litellm_never_sees_an_error(product, loggers, caplog):
    port = _free_port()  # nothing listens here yet
    logger = loggers(url=f"http://127.0.0.1:{port}", backoff_seconds=0.01, max_retries=2)
    _complete(logger, 4, metadata={"user_api_key_alias": "k1"})  # completion() returned each time
    assert logger.flush(timeout=5) is False and logger.pending() == 4
    assert "kept for the next flush" in caplog.text
    server = product(port=port)
    assert logger.flush(timeout=5) is True and logger.pending() == 0
    [(_status, _auth, batch)] = server.batches
    assert [p["metadata"]["user_api_key_alias"] for p in batch] == ["k1"] * 4


def test_a_streamed_call_is_reported_once_the_stream_ends(product, loggers):
    server = product()
    logger = loggers(url=server.url)
    litellm.callbacks = [logger]
    try:
        messages = [{"role": "user", "content": "hi"}]
        stream = litellm.completion(model="openai/gpt-4o-mini", messages=messages, mock_response="a b c", stream=True)
        assert "".join(chunk.choices[0].delta.content or "" for chunk in stream) == "a b c"
        deadline = time.monotonic() + 10
        while logger.received < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        litellm.callbacks = []
        litellm.logging_callback_manager.remove_callback_from_all_lists(logger)
    assert logger.close(timeout=5) is True
    [(_status, _auth, [payload])] = server.batches
    assert payload["stream"] is True and payload["completion_tokens"] > 0 and payload["prompt_tokens"] > 0


def test_a_refusal_is_logged_and_not_retried(product, loggers, caplog):
    server = product([401])
    logger = loggers(url=server.url, service_token="svc_wrong")
    _complete(logger, 2)
    assert logger.flush(timeout=5) is True
    assert [status for status, _a, _b in server.batches] == [401]
    assert "refused 2 call(s), not retried: HTTP 401" in caplog.text


def test_batches_are_bounded_and_the_default_key_fills_in(product, monkeypatch):
    server = product()
    monkeypatch.setenv("USAGE_STATISTICS_URL", server.url + "/api/v1/litellm/logs")
    monkeypatch.setenv("USAGE_STATISTICS_SERVICE_TOKEN", "svc_env")
    monkeypatch.setenv("USAGE_STATISTICS_API_KEY", "key_default")
    monkeypatch.setenv("USAGE_STATISTICS_BATCH_SIZE", "2")
    monkeypatch.setattr(litellm_callback, "_default", None)
    logger = litellm_callback.usage_statistics_logger
    try:
        assert logger is litellm_callback.usage_statistics_logger  # one per process
        _complete(logger, 5)
        assert logger.close(timeout=10) is True
    finally:
        logger.close(timeout=0)
    assert sorted(len(batch) for _s, _a, batch in server.batches) == [1, 2, 2]
    assert {auth for _s, auth, _b in server.batches} == {"Bearer svc_env"}
    keys = {p["metadata"]["spend_logs_metadata"]["usage_statistics_api_key"] for _s, _a, b in server.batches for p in b}
    assert keys == {"key_default"}


def test_missing_configuration_is_an_error_at_start(monkeypatch):
    monkeypatch.delenv("USAGE_STATISTICS_URL", raising=False)
    monkeypatch.delenv("USAGE_STATISTICS_SERVICE_TOKEN", raising=False)
    with pytest.raises(ValueError, match="USAGE_STATISTICS_URL"):
        UsageStatisticsLogger()

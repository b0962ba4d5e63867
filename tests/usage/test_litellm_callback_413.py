"""Review of the LiteLLM callback (issue 24): a batch the product refuses as too large (413) is
split and sent again, so one payload with large metadata does not lose the calls batched with it."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.usage.test_litellm_callback import loggers  # noqa: F401 (a fixture)

LIMIT = 4000  # bytes of a request body, as the product's INGEST_MAX_BODY_BYTES


class SizeLimitedProduct(ThreadingHTTPServer):
    """Answers 413 to a body over LIMIT bytes, as the product does; records what it accepted."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.accepted, self.refused = [], 0

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_port}"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        data = self.rfile.read(int(self.headers["Content-Length"]))
        if len(data) > LIMIT:
            self.server.refused += 1
            status, body = 413, {"title": "Content too large"}
        else:
            batch = json.loads(data)
            self.server.accepted.extend(payload["id"] for payload in batch)
            status, body = 200, {"accepted": len(batch), "errors": []}
        encoded = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(encoded)))
        self.end_headers()
        self.wfile.write(encoded)

    def log_message(self, *args):
        pass


@pytest.fixture
def product():
    server = SizeLimitedProduct()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _payload(n, note=""):
    metadata = {"user_api_key_alias": "k1", "spend_logs_metadata": {"note": note}}
    return {"id": f"call-{n}", "status": "success", "prompt_tokens": 10, "completion_tokens": 1, "metadata": metadata}


def test_a_batch_over_the_body_limit_is_split_and_only_the_oversized_payload_is_dropped(
    product,
    loggers,  # noqa: F811
    caplog,
):
    logger = loggers(url=product.url, batch_size=50)
    for n in range(20):
        logger.enqueue(_payload(n, note="x" * 5000 if n == 7 else ""))
    assert len(json.dumps([logger.trimmed(_payload(n)) for n in range(20)])) <= LIMIT  # only call-7 is too large
    assert logger.flush(timeout=10) is True and logger.pending() == 0
    assert sorted(product.accepted) == sorted(f"call-{n}" for n in range(20) if n != 7)
    assert "call-7" not in product.accepted
    assert "refused 1 call(s), not retried: HTTP 413" in caplog.text

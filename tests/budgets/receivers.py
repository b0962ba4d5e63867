"""Real local receivers started by tests: an HTTP webhook endpoint and an SMTP server."""

import hashlib
import hmac
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that records every request; the n-th gets ``statuses[n]`` (or the last).

    ``hold`` (a threading.Event) makes it wait before answering, to catch a sender mid-request.
    ``drip`` (seconds) makes it answer a header line at a time, one every ``drip`` seconds, for
    ``drip_lines`` lines, and only then end the headers: a receiver slow in every read.
    ``location`` is sent as the Location header (a redirect, with a 3xx status).
    """

    def __init__(self, statuses=(200,), drip=None, drip_lines=20, location=None):
        self.requests, self.statuses, self.hold = [], list(statuses), None
        self.drip, self.drip_lines, self.location = drip, drip_lines, location
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the http.server API)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                index = len(receiver.requests)
                receiver.requests.append(
                    {"headers": dict(self.headers), "body": body, "at": time.time(), "path": self.path}
                )
                if receiver.hold is not None:
                    receiver.hold.wait(60)
                status = receiver.statuses[min(index, len(receiver.statuses) - 1)]
                self.send_response(status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                if receiver.drip:
                    self.drip_headers()
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def drip_headers(self):
                self.flush_headers()
                for n in range(receiver.drip_lines):
                    time.sleep(receiver.drip)
                    try:
                        self.wfile.write(f"X-Drip-{n}: {n}\r\n".encode())
                        self.wfile.flush()
                    except OSError:
                        return  # the sender gave up

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/budget"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()

    def delivery_ids(self):
        return [r["headers"]["X-Usage-Delivery-Id"] for r in self.requests]


def verify_signature(secret, request, tolerance=300):
    """What a receiver does: recompute v1 over "<timestamp>.<raw body>" and compare in constant time."""
    timestamp = request["headers"]["X-Usage-Timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + request["body"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(request["headers"]["X-Usage-Signature"], f"v1={expected}")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

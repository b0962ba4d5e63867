"""The one body reader of every gateway endpoint (``/ingest/calls``, ``/keys/verify``, OTLP, LiteLLM).

Rules (docs/ingestion.md, "Request bodies"):

- At most ``INGEST_MAX_BODY_BYTES`` as sent, and at most that once decompressed: 413.
- ``Content-Length`` or ``Transfer-Encoding: chunked``. Django reads a body without a length as
  empty; gunicorn decodes a chunked body and says so with ``wsgi.input_terminated``, and then the
  stream itself is read. A server that does not (``runserver``, the test client) answers a clear
  411 instead of reading an empty body.
- ``Content-Encoding``: ``gzip`` (or ``x-gzip``), ``deflate`` or ``identity``, or a list of them
  decoded in reverse order; anything else is 415, a broken or truncated stream 400.
  Decompression stops one byte past the limit (no zip bombs).
- JSON through ``usage.ingestion.validation.loads``: NaN and Infinity refused, and an object that
  names a member twice is marked (``DuplicateMembers``) for the endpoint to refuse.
"""

from __future__ import annotations

import zlib
from collections import deque
from typing import TYPE_CHECKING, Any

from django.conf import settings

from usage.ingestion import validation as ingest
from usageproject.problems import problem_response

if TYPE_CHECKING:
    from collections.abc import Iterator

    from django.http import HttpRequest, HttpResponse


class RequestProblem(Exception):
    """A whole-request error, rendered as an RFC 9457 problem (or, for OTLP, a google.rpc.Status)."""

    def __init__(
        self, status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers or {}
        self.extra = extra

    def response(self) -> HttpResponse:
        response = problem_response(self.status, self.title, self.detail, **self.extra)
        for name, value in self.headers.items():
            response[name] = value
        return response


def _too_large(limit: int) -> RequestProblem:
    return RequestProblem(413, "Content too large", f"The body may be at most {limit} bytes.")


def read_body(request: HttpRequest) -> bytes:
    """The body, decoded from its Content-Encoding, within the size limit."""
    limit = settings.INGEST_MAX_BODY_BYTES
    codings = _codings(request.headers.get("Content-Encoding", ""))
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise _too_large(limit)  # refused before reading a byte of it
    data = _read_raw(request, limit + 1)
    if len(data) > limit:
        raise _too_large(limit)
    for coding in reversed(codings):  # listed in the order they were applied
        data = _decompressed(data, coding, limit)
    return data


def _codings(header: str) -> list[str]:
    """The codings of a Content-Encoding list (RFC 9110 8.4), identity left out, x-gzip as gzip."""
    codings = [part.strip().lower() for part in header.split(",")]
    codings = ["gzip" if coding == "x-gzip" else coding for coding in codings if coding not in ("", "identity")]
    if not set(codings) <= {"gzip", "deflate"}:
        raise RequestProblem(415, "Unsupported media type", "Content-Encoding may be gzip, deflate or identity.")
    return codings


def _read_raw(request: HttpRequest, size: int) -> bytes:
    """Up to ``size`` bytes of the body, whether sent with a Content-Length or chunked."""
    chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    if not chunked or request.META.get("CONTENT_LENGTH"):
        return request.read(size)
    environ = request.META  # a WSGIRequest's META is its WSGI environ
    if not environ.get("wsgi.input_terminated"):
        raise RequestProblem(411, "Length required", "Send a Content-Length; this server cannot read chunked bodies.")
    return b"".join(_stream_parts(environ["wsgi.input"], size))


def _stream_parts(stream: Any, size: int) -> Iterator[bytes]:
    total = 0
    while total < size:
        part = stream.read(size - total)
        if not part:
            return
        total += len(part)
        yield part


def _decompressed(data: bytes, encoding: str, limit: int) -> bytes:
    # HTTP's deflate is zlib-wrapped (RFC 9110 8.4.1.2); some clients send it raw, hence the second try.
    for wbits in (31,) if encoding == "gzip" else (15, -15):
        decompressor = zlib.decompressobj(wbits=wbits)
        try:
            plain = decompressor.decompress(data, limit + 1)
            break
        except zlib.error:
            continue
    else:
        raise RequestProblem(400, "Invalid request", f"The body is not valid {encoding}.")
    parts = [plain]
    # A gzip body may be several members (RFC 1952 2.2, e.g. files joined with cat): each is read,
    # else the calls after the first member would be answered 200 and lost.
    while encoding == "gzip" and decompressor.eof and decompressor.unused_data and len(plain) <= limit:
        decompressor, rest = zlib.decompressobj(wbits=31), decompressor.unused_data
        try:
            parts.append(decompressor.decompress(rest, limit + 1 - len(plain)))
        except zlib.error as exc:
            raise RequestProblem(400, "Invalid request", f"The body is not valid {encoding}.") from exc
        plain = b"".join(parts)
    if len(plain) > limit or decompressor.unconsumed_tail:
        raise _too_large(limit)
    if not decompressor.eof:
        raise RequestProblem(400, "Invalid request", f"The {encoding} body is truncated.")
    if decompressor.unused_data:  # bytes after the stream's end: not part of the body as compressed
        raise RequestProblem(400, "Invalid request", f"The body has data after the end of its {encoding} stream.")
    return plain


def parse_json(data: bytes, what: str = "JSON") -> Any:
    """``data`` as strict JSON (``validation.loads``): a 400 naming the fault when it is not."""
    try:
        return ingest.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise RequestProblem(400, "Malformed JSON", f"The body is not valid {what}: {str(exc)[:200]}") from exc


def duplicate_names(value: object) -> list[str]:
    """The member names some object inside ``value`` names twice, outermost first (empty when none)."""
    names: dict[str, None] = {}
    pending = deque([value])
    while pending:
        item = pending.popleft()
        if isinstance(item, dict):
            if isinstance(item, ingest.DuplicateMembers):
                names.update(dict.fromkeys(item.duplicates))
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return list(names)


def refuse_duplicates(names: list[str]) -> None:
    if names:
        raise RequestProblem(
            400,
            "Invalid request",
            f"The body names {', '.join(map(repr, names[:10]))} more than once in one object; name each member once.",
            code="duplicate_member",
        )

"""The error type of a failed call, from what a gateway or an instrumentation names it.

LiteLLM names the exception class (``RateLimitError``, ``Timeout``, ``BadRequestError``, ...)
and the HTTP status; OpenTelemetry's ``error.type`` holds a class name, a status code or a
short identifier (``timeout``, ``rate_limit_exceeded``). The name decides first, the HTTP status
second; what neither explains is ``other``.
"""

from __future__ import annotations

import re

# Searched in the lowercased name with separators removed, in this order (``contentfilter``
# before ``filter``-free server names, ``timeout`` before ``server``).
_BY_NAME = (
    (("ratelimit", "toomanyrequests", "quota", "resourceexhausted"), "rate_limited"),
    (("timeout", "timedout", "deadline"), "timeout"),
    (("contentpolicy", "contentfilter", "safety", "moderation"), "content_filter"),
    (("cancel", "abort"), "cancelled"),
    (
        ("internalserver", "serviceunavailable", "badgateway", "apiconnection", "connectionerror", "overloaded"),
        "server_error",
    ),
    (
        (
            "badrequest", "authentication", "permissiondenied", "notfound", "unprocessable", "contextwindow",
            "invalidrequest", "unsupportedparams", "budgetexceeded",
        ),
        "client_error",
    ),
)  # fmt: skip
_SEPARATORS = re.compile(r"[\s_.\-:/]+")


def error_type_of(name: object, http_status: int | None) -> str:
    """One of ``usage.models.ErrorType``'s values for a failure named ``name`` (any JSON value)."""
    text = _SEPARATORS.sub("", str(name).lower()) if isinstance(name, str | int) else ""
    for needles, kind in _BY_NAME:
        if any(needle in text for needle in needles):
            return kind
    status = http_status if http_status is not None else _status_in(text)
    if status is None:
        return "other"
    if status == 429:
        return "rate_limited"
    if status in (408, 504):
        return "timeout"
    if status == 499:
        return "cancelled"
    if 500 <= status <= 599:
        return "server_error"
    if 400 <= status <= 499:
        return "client_error"
    return "other"


def _status_in(text: str) -> int | None:
    """An HTTP status given as the whole name (``"429"``, as OpenTelemetry's ``error.type`` does)."""
    return int(text) if text.isdigit() and len(text) == 3 else None


def http_status_of(value: object) -> int | None:
    """An HTTP status from an int or a string of digits; None for anything else (not a status)."""
    if type(value) is int:
        return value if 100 <= value <= 599 else None
    if isinstance(value, str) and value.strip().isdigit():
        return http_status_of(int(value.strip()))
    return None

"""RFC 9457 problem details for every API error."""

import sys
from collections.abc import Callable
from typing import Any

import psycopg
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from usage.outages import log_outage

PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem_response(status_code: int, title: str, detail: str = "", **extra: Any) -> JsonResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status_code}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JsonResponse(body, status=status_code, content_type=PROBLEM_CONTENT_TYPE)


def _flatten(detail: object, prefix: str = "") -> list[dict[str, Any]]:
    """DRF's nested error detail as a list of {"field", "detail"} items."""
    if isinstance(detail, dict):
        items = []
        for key, value in detail.items():
            items.extend(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return items
    if isinstance(detail, list):
        items = []
        for value in detail:
            items.extend(_flatten(value, prefix))
        return items
    return [{"field": prefix or None, "detail": str(detail)}]


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = exception_handler(exc, context)
    if response is None:
        return None
    title = {
        status.HTTP_400_BAD_REQUEST: "Invalid request",
        status.HTTP_401_UNAUTHORIZED: "Authentication required",
        status.HTTP_403_FORBIDDEN: "Forbidden",
        status.HTTP_404_NOT_FOUND: "Not found",
        status.HTTP_405_METHOD_NOT_ALLOWED: "Method not allowed",
        status.HTTP_406_NOT_ACCEPTABLE: "Not acceptable",
        status.HTTP_410_GONE: "Gone",
        status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: "Unsupported media type",
        status.HTTP_429_TOO_MANY_REQUESTS: "Too many requests",
    }.get(response.status_code, "Error")
    body = {"type": "about:blank", "title": title, "status": response.status_code}
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        body["detail"] = "; ".join(
            f"{error['field']}: {error['detail']}" if error["field"] else error["detail"] for error in errors
        )
        body["errors"] = errors
    else:
        body["detail"] = str(getattr(exc, "detail", exc))
    response.data = body
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


# --- Django's own errors under /api/ -------------------------------------------------------
# DRF renders its exceptions through ``problem_exception_handler``; what happens outside a DRF
# view (an unknown URL, a body or query string Django refuses, an uncaught exception, a URL too
# long) goes through these handlers, which answer problem+json under /api/ and Django's HTML
# pages elsewhere.

API_PREFIX = "/api/"


def is_api_request(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    from django.core.exceptions import RequestDataTooBig
    from django.views import defaults

    if not is_api_request(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return problem_response(413, "Content too large", "The request body is larger than the server accepts.")
    return problem_response(400, "Invalid request", "The server could not read this request.")


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    from django.views import defaults

    if not is_api_request(request):
        return defaults.permission_denied(request, exception)
    return problem_response(403, "Forbidden", "You do not have permission to perform this action.")


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    from django.views import defaults

    if not is_api_request(request):
        return defaults.page_not_found(request, exception)
    return problem_response(404, "Not found", "No API endpoint at this URL; see /api/v1/docs.")


def server_error(request: HttpRequest) -> HttpResponse:
    from django.views import defaults

    # Also reached for a connection lost outside a view (in a middleware): still a 503.
    if is_connection_lost(sys.exc_info()[1]):
        return database_unavailable(request)
    if not is_api_request(request):
        return defaults.server_error(request)
    return problem_response(500, "Internal server error", "The server failed to answer; the error is logged.")


# --- A lost database connection --------------------------------------------------------------
# A connection killed mid-request (a failover, a restart, pg_terminate_backend) leaves nothing
# half-stored: every write is one transaction, and ingestion is idempotent by request_id. So the
# answer is 503 with Retry-After, which gateways and clients retry, not a 500. Django closes the
# broken connection when the request ends; the next request connects afresh.

DATABASE_RETRY_AFTER_SECONDS = 2


def is_connection_lost(exc: BaseException | None) -> bool:
    """A database error that retrying can cure: the connection broke or the server gave up on it.

    Raw psycopg cursors (the ledger's and rollups' bulk statements) raise psycopg's own classes.
    """
    return isinstance(exc, OperationalError | InterfaceError | psycopg.OperationalError | psycopg.InterfaceError)


def database_unavailable(request: HttpRequest) -> HttpResponse:
    log_outage("Database connection lost during %s %s: answered 503", request.method, request.path, service="database")
    if is_api_request(request):
        response: HttpResponse = problem_response(
            503,
            "Service unavailable",
            "The database connection was lost while answering; the request was rolled back."
            " Retry it (ingestion is idempotent by request_id).",
        )
    else:
        response = HttpResponse(render_to_string("503.html"), status=503)
    response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    return response


class DatabaseUnavailableMiddleware:
    """Turns a database connection lost in a view into ``database_unavailable``'s 503."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return database_unavailable(request) if is_connection_lost(exception) else None


class UrlLengthMiddleware:
    """414 for a path plus query string longer than ``MAX_URL_LENGTH`` (problem+json under /api/).

    gunicorn's own limit (``limit_request_line`` in ``gunicorn.conf.py``) is set above this one so
    that the answer comes from here; gunicorn answers its plain 414 only beyond that.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from django.conf import settings
        from django.http import HttpResponse

        limit = settings.MAX_URL_LENGTH
        if len(request.META.get("PATH_INFO", "")) + len(request.META.get("QUERY_STRING", "")) > limit:
            if is_api_request(request):
                return problem_response(414, "URI too long", f"The path and query string may be at most {limit} bytes.")
            return HttpResponse("URI too long", status=414, content_type="text/plain")
        return self.get_response(request)

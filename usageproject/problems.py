"""RFC 9457 problem details for every API error."""

from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.views import exception_handler

PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem_response(status_code, title, detail="", **extra):
    body = {"type": "about:blank", "title": title, "status": status_code}
    if detail:
        body["detail"] = detail
    body.update(extra)
    response = JsonResponse(body, status=status_code, content_type=PROBLEM_CONTENT_TYPE)
    return response


def _flatten(detail, prefix=""):
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


def problem_exception_handler(exc, context):
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

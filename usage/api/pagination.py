import binascii
import datetime as dt
from base64 import b64decode
from urllib import parse

from django.utils.dateparse import parse_datetime
from rest_framework import exceptions
from rest_framework.pagination import CursorPagination

from usage.ingestion.validation import EARLIEST_CALL, LATEST_CALL


class CallCursorPagination(CursorPagination):
    """Newest calls first; a cursor stays valid however many calls arrive meanwhile."""

    ordering = ("-occurred_at", "-id")
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        # isascii: "²".isdigit() is True but int("²") fails.
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= self.max_page_size:
            raise exceptions.ValidationError({"page_size": f"Enter a whole number from 1 to {self.max_page_size}."})
        return int(raw)

    def decode_cursor(self, request):
        invalid = exceptions.ValidationError({"cursor": "Invalid cursor: use the next or previous link as given."})
        try:
            cursor = super().decode_cursor(request)
        except exceptions.NotFound as exc:
            raise invalid from exc
        # DRF reads a cursor of NULs or junk as the first page; only its own tokens are a cursor.
        if cursor is not None and not _known_tokens(request.query_params[self.cursor_query_param]):
            raise invalid
        # The position is compared with occurred_at: a forged one must be a 400, not a 500.
        if cursor is not None and cursor.position is not None and _position(cursor.position) is None:
            raise invalid
        return cursor

    def get_paginated_response_schema(self, schema):
        paginated = super().get_paginated_response_schema(schema)
        properties = paginated["properties"]
        properties["next"]["description"] = "URL of the next (older) page; null on the last page."
        properties["previous"]["description"] = "URL of the previous (newer) page; null on the first page."
        properties["results"]["description"] = "The calls of this page, newest first."
        return paginated

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update({"minimum": 1, "maximum": self.max_page_size, "default": self.page_size})
        return parameters


def _position(text):
    """The aware instant a cursor's position names, or None if no stored call could have it.

    ``parse_datetime`` raises (rather than answering None) for a well-formed but impossible
    date such as year 0 or Feb 30, and an instant near the calendar's ends overflows when the
    database converts it; every call lies between ``EARLIEST_CALL`` and ``LATEST_CALL``.
    """
    if not text.isprintable():  # parse_datetime overlooks a trailing NUL
        return None
    try:
        instant = parse_datetime(text)
        if instant is None or instant.tzinfo is None:
            return None
        instant = instant.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        return None
    return instant if EARLIEST_CALL <= instant <= LATEST_CALL else None


def _known_tokens(encoded):
    """True if the cursor holds only DRF's tokens (o, r, p), each once, in printable ASCII."""
    try:
        querystring = b64decode(encoded.encode("ascii")).decode("ascii")
    except (ValueError, binascii.Error):
        return False
    if not querystring.isprintable():
        return False
    pairs = parse.parse_qsl(querystring, keep_blank_values=True)
    names = [name for name, _ in pairs]
    return len(names) == len(set(names)) and set(names) <= {"o", "r", "p"} and (bool(names) or not querystring)

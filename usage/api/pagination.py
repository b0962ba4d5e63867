from django.utils.dateparse import parse_datetime
from rest_framework import exceptions
from rest_framework.pagination import CursorPagination


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
        # The position is compared with occurred_at: a forged one must be a 400, not a 500.
        if cursor is not None and cursor.position is not None and parse_datetime(cursor.position) is None:
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

"""Durations in words for the pages ("15 minutes"), where a library would show ISO 8601 ("PT15M")."""

import datetime as dt

from django import template

register = template.Library()

_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


@register.filter
def duration_words(value: dt.timedelta | None) -> str:
    """timedelta(minutes=90) -> "1 hour 30 minutes"; the two largest units, rounded down."""
    if value is None:
        return ""
    seconds = max(int(value.total_seconds()), 0)
    parts = []
    for name, size in _UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {name}{'' if count == 1 else 's'}")
    return " ".join(parts[:2]) or "a moment"

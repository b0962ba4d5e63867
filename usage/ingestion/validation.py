"""Validation of reported calls: one rule set for the ingestion API and the file import.

This module only looks at the values; what needs the database (does the key exist, was it
active when the call happened, is the request id taken) is ``usage.ingestion.services``' part.

Every rejection names a ``field`` (or null for the item as a whole) and a stable ``code``:

=====================  ====================================================================
``not_an_object``      the item is not a JSON object
``unknown_field``      a field outside the contract (a typo would otherwise lose data)
``required``           a required field is missing or null
``not_a_string``       ``request_id``, ``api_key`` or ``model`` is not a string
``blank``              ... is an empty string
``too_long``           ... is longer than 255 characters
``invalid_characters`` ... holds control characters or invalid Unicode
``invalid_datetime``   ``occurred_at`` is not RFC 3339 with an offset, or not a real instant
``not_an_integer``     a token count is not a JSON integer (``1.0``, ``"1"`` and ``true`` are not)
``out_of_range``       a token count is negative or above 2^53-1
``duplicate_field``    the item names a field twice (JSON leaves which one wins undefined)
``exceeds_input``      ``cached_input_tokens`` is above ``input_tokens`` (providers count the
                       cached tokens inside the input tokens)
``exceeds_output``     ``reasoning_tokens`` is above ``output_tokens`` (reasoning is counted
                       inside the output)
``exceeds_input``      (on ``cache_creation_input_tokens``) cached reads plus cache writes are
                       above ``input_tokens``: both are counted inside the input tokens
``exceeds_cache_creation``  ``cache_creation_1h_input_tokens`` is above
                       ``cache_creation_input_tokens`` (or that is not reported): the one-hour
                       writes are a part of the cache writes
``invalid_choice``     ``status`` is not ``ok`` or ``error``, or ``error_type`` not one of
                       ``ERROR_TYPES``
``exceeds_duration``   ``time_to_first_token_ms`` is above ``duration_ms``
``requires_error``     ``error_type`` on a call whose ``status`` is ``ok``
``invalid_choice``     ``service_tier`` is not one of ``SERVICE_TIERS`` (null or absent: not
                       reported, priced as ``standard``)

Token classes inside ``input_tokens`` (optional, null or absent = not reported, never 0):
``cached_input_tokens`` (cached reads), ``cache_creation_input_tokens`` (cache writes, 5-minute
and one-hour together) and ``cache_creation_1h_input_tokens`` (the one-hour part of the writes).
The uncached input is ``input_tokens`` minus reads minus writes.

Performance (all optional, null or absent = not reported): ``duration_ms`` and
``time_to_first_token_ms`` are whole milliseconds from 0 to ``MAX_DURATION_MS``; ``http_status``
an integer from 100 to 599; ``status`` ``ok`` or ``error``; ``error_type`` one of ``ERROR_TYPES``,
and it implies ``status`` ``error`` when status is not sent.

``model`` is trimmed of outer whitespace (``"public/x "`` is ``public/x``); blank once trimmed is
``blank``. ``request_id`` and ``api_key`` are taken as sent.
=====================  ====================================================================

A request body whose top-level object names a member twice (``{"calls": [...], "calls": []}``)
is refused as a whole: 400 with ``"code": "duplicate_member"``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

from usage.models import MAX_TOKENS, CallStatus, ErrorType, ServiceTier

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import TypedDict

    class FieldError(TypedDict):
        """One rejection (``error``): the field (None for the item as a whole), a stable code, a text."""

        field: str | None
        code: str
        detail: str


TEXT_MAX_LENGTH = 255
REQUIRED_FIELDS = ("request_id", "api_key", "model", "occurred_at", "input_tokens", "output_tokens")
PERFORMANCE_FIELDS = ("duration_ms", "time_to_first_token_ms", "status", "error_type", "http_status")
CACHE_WRITE_FIELDS = ("cache_creation_input_tokens", "cache_creation_1h_input_tokens")
OPTIONAL_FIELDS = ("cached_input_tokens", "reasoning_tokens", *PERFORMANCE_FIELDS, "service_tier", *CACHE_WRITE_FIELDS)
FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS
COUNT_FIELDS = ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens", *CACHE_WRITE_FIELDS)
INTEGER_FIELDS = (*COUNT_FIELDS, "duration_ms", "time_to_first_token_ms", "http_status")
# A week: longer is a clock or unit mistake (seconds sent as milliseconds stay far below it, but
# nanoseconds do not), and it keeps every duration inside a 32-bit column.
MAX_DURATION_MS = 7 * 24 * 3600 * 1000
STATUSES = tuple(CallStatus.values)
ERROR_TYPES = tuple(ErrorType.values)
SERVICE_TIERS = tuple(ServiceTier.values)
_PERFORMANCE_FIELDS = frozenset(PERFORMANCE_FIELDS)
_CACHE_WRITE_FIELDS = frozenset(CACHE_WRITE_FIELDS)
_KNOWN_FIELDS = frozenset(FIELDS)
_MISSING = object()

# RFC 3339 section 5.6 (``T`` or, as its note allows, a space; any number of fraction digits).
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})\Z", re.ASCII)
# NUL cannot be stored by PostgreSQL, lone surrogates cannot be encoded; other control
# characters in an id are a sender's bug that would make reports unreadable.
_BAD_CHARACTERS = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


class Call(NamedTuple):
    """A reported call whose values are valid; whether it may be stored is decided later."""

    request_id: str
    api_key: str
    model: str
    occurred_at: dt.datetime  # aware, UTC
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int | None
    reasoning_tokens: int | None
    duration_ms: int | None = None
    time_to_first_token_ms: int | None = None
    status: str | None = None
    error_type: str | None = None
    http_status: int | None = None
    service_tier: str | None = None
    # Cache writes (inside input_tokens, apart from the cached reads) and their one-hour part.
    cache_creation_input_tokens: int | None = None
    cache_creation_1h_input_tokens: int | None = None


Performance = tuple[int | None, int | None, str | None, str | None, int | None]
_NOT_REPORTED: Performance = (None, None, None, None, None)
CacheWrites = tuple[int | None, int | None]
_NO_WRITES: CacheWrites = (None, None)


# Names other reports give a service tier (OpenAI's "default" is its standard tier).
_SERVICE_TIER_NAMES = {"default": "standard", "batches": "batch"}


def service_tier_of(value: object) -> object:
    """A service tier as an intake path reports it, in this product's names: "default" is
    ``standard``; "auto" (a request's "whichever is available") and empty are not reported
    (None); anything else is handed on for validation to accept or name (``invalid_choice``)."""
    if value is None or value == "" or value == "auto":
        return None
    if isinstance(value, str):
        return _SERVICE_TIER_NAMES.get(value.lower(), value.lower())
    return value


class TooLargeInteger:
    """Stands in for a JSON integer too long for Python to convert; it is out of range anyway."""


class DuplicateMembers(dict):
    """A JSON object that named a member twice; ``duplicates`` lists those names.

    The last value wins, as in ``json``, but the type marks the object so that it is rejected
    instead of silently resolved.
    """

    duplicates: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) == len(pairs):
        return value
    marked = DuplicateMembers(value)
    seen: set[str] = set()
    # set.add returns None: the condition is "seen before", recording the name on the way.
    marked.duplicates = tuple(
        dict.fromkeys(name for name, _ in pairs if name in seen or seen.add(name))  # type: ignore[func-returns-value]
    )
    return marked


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _bounded_int(text: str) -> int | TooLargeInteger:
    return int(text) if len(text) <= 20 else TooLargeInteger()


# Built once: json.loads with any option builds a new decoder per call, and files have millions of lines.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, object_pairs_hook=_object)
_TOLERANT_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_int=_bounded_int, object_pairs_hook=_object)


def loads(data: str | bytes) -> Any:
    """Parse strict JSON (UTF-8 if bytes): NaN and Infinity are refused, integers of any length survive.

    Raises ValueError (or RecursionError for absurd nesting) on anything that is not JSON.
    """
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    try:
        # raw_decode skips decode()'s two whitespace regexes: a file's lines are read one by one.
        value, end = _DECODER.raw_decode(text)
        if end == len(text) or not text[end:].strip(" \t\n\r"):  # JSON whitespace only
            return value
    except ValueError:
        pass
    try:
        return _DECODER.decode(text)  # the canonical errors, and leading whitespace
    except ValueError:
        # Python refuses to convert integers of more than 4,300 digits; retry keeping them as
        # markers so that the item, not the whole request, is rejected.
        return _TOLERANT_DECODER.decode(text)


def error(field: str | None, code: str, detail: str) -> FieldError:
    return {"field": field, "code": code, "detail": detail}


def request_id_of(raw: object) -> str | None:
    """The item's request id to name it by in an error, if it has a usable one."""
    request_id = raw.get("request_id") if isinstance(raw, dict) else None
    return request_id if isinstance(request_id, str) and len(request_id) <= TEXT_MAX_LENGTH else None


def validate_call(raw: object) -> tuple[Call | None, Sequence[FieldError]]:
    """``(Call, ())`` for a valid item, else ``(None, errors)`` naming every bad field."""
    call = _plainly_valid(raw)
    return (call, ()) if call is not None else _validate_in_detail(raw)


def _plainly_valid(raw: object) -> Call | None:
    """The Call when every value is plainly fine, else None (then the detailed path decides).

    The common case in one pass with no error bookkeeping: millions of lines go through here,
    hence the unrolled checks. It may only be stricter than ``_validate_in_detail``, never more
    lenient.
    """
    if type(raw) is not dict or not raw.keys() <= _KNOWN_FIELDS:
        return None
    get = raw.get
    request_id, api_key, model = get("request_id"), get("api_key"), get("model")
    if not (
        type(request_id) is str
        and type(api_key) is str
        and type(model) is str
        and 0 < len(request_id) <= TEXT_MAX_LENGTH
        and 0 < len(api_key) <= TEXT_MAX_LENGTH
        and 0 < len(model) <= TEXT_MAX_LENGTH
        and not (model[0].isspace() or model[-1].isspace())
        and _BAD_CHARACTERS.search(request_id + api_key + model) is None
    ):
        return None
    inp, out, cached, reasoning = (
        get("input_tokens"),
        get("output_tokens"),
        get("cached_input_tokens"),
        get("reasoning_tokens"),
    )
    if not (
        type(inp) is int
        and type(out) is int
        and 0 <= inp <= MAX_TOKENS
        and 0 <= out <= MAX_TOKENS
        and (cached is None or (type(cached) is int and 0 <= cached <= MAX_TOKENS))
        and (reasoning is None or (type(reasoning) is int and 0 <= reasoning <= MAX_TOKENS))
        and (cached is None or cached <= inp)
        and (reasoning is None or reasoning <= out)
    ):
        return None
    instant = get("occurred_at")
    instant = instant if type(instant) is dt.datetime and instant.tzinfo is not None else parse_rfc3339(instant)
    if instant is None or not EARLIEST_CALL <= instant <= LATEST_CALL:
        return None
    performance: Performance | None = _NOT_REPORTED
    if len(raw) > len(REQUIRED_FIELDS) and not raw.keys().isdisjoint(_PERFORMANCE_FIELDS):
        performance = _plain_performance(raw)
    if performance is None:
        return None
    tier = get("service_tier")
    if tier is not None and tier not in SERVICE_TIERS:
        return None
    writes: CacheWrites | None = _NO_WRITES
    if len(raw) > len(REQUIRED_FIELDS) and not raw.keys().isdisjoint(_CACHE_WRITE_FIELDS):
        writes = _plain_cache_writes(raw, inp, cached)
    if writes is None:
        return None
    return Call(request_id, api_key, model, instant, inp, out, cached, reasoning, *performance, tier, *writes)


def _plain_cache_writes(raw: dict[str, Any], inp: int, cached: int | None) -> CacheWrites | None:
    """The cache write counts when plainly fine (absent is fine), else None."""
    writes, hour = raw.get("cache_creation_input_tokens"), raw.get("cache_creation_1h_input_tokens")
    if not (
        (writes is None or (type(writes) is int and 0 <= writes <= inp - (cached or 0)))
        and (hour is None or (type(hour) is int and writes is not None and 0 <= hour <= writes))
    ):
        return None
    return writes, hour


def _plain_performance(raw: dict[str, Any]) -> Performance | None:
    """The performance values when all are plainly fine (absent is fine), else None."""
    get = raw.get
    duration, ttft, status, error_type, http = (
        get("duration_ms"), get("time_to_first_token_ms"), get("status"), get("error_type"), get("http_status"),
    )  # fmt: skip
    if not (
        (duration is None or (type(duration) is int and 0 <= duration <= MAX_DURATION_MS))
        and (ttft is None or (type(ttft) is int and 0 <= ttft <= MAX_DURATION_MS))
        and (duration is None or ttft is None or ttft <= duration)
        and (http is None or (type(http) is int and 100 <= http <= 599))
        and (status is None or status in STATUSES)
        and (error_type is None or (error_type in ERROR_TYPES and status != "ok"))
    ):
        return None
    if error_type is not None:
        status = "error"
    return duration, ttft, status, error_type, http


def _validate_in_detail(raw: object) -> tuple[Call | None, list[FieldError]]:
    if not isinstance(raw, dict):
        return None, [error(None, "not_an_object", "Each call must be a JSON object.")]
    errors: list[FieldError] = []
    if isinstance(raw, DuplicateMembers):
        errors.extend(
            error(name, "duplicate_field", "Named more than once in this call; name each field once.")
            for name in raw.duplicates
        )
    if not raw.keys() <= _KNOWN_FIELDS:
        errors.extend(
            error(name, "unknown_field", f"Unknown field; the fields are {', '.join(FIELDS)}.")
            for name in raw
            if name not in _KNOWN_FIELDS
        )
    values = (
        _text(raw, "request_id", errors),
        _text(raw, "api_key", errors),
        _text(raw, "model", errors),
        _instant(raw, errors),
        _count(raw, "input_tokens", errors, required=True),
        _count(raw, "output_tokens", errors, required=True),
        _count(raw, "cached_input_tokens", errors, required=False),
        _count(raw, "reasoning_tokens", errors, required=False),
    )
    _within(values[4], values[6], "cached_input_tokens", "exceeds_input", "input_tokens", errors)
    _within(values[5], values[7], "reasoning_tokens", "exceeds_output", "output_tokens", errors)
    performance = _performance(raw, errors)
    tier = raw.get("service_tier")
    if tier is not None and tier not in SERVICE_TIERS:
        errors.append(error("service_tier", "invalid_choice", f"Must be one of {', '.join(SERVICE_TIERS)}."))
    writes = _cache_writes(raw, values[4], values[6], errors)
    if errors:
        return None, errors
    # With no error recorded every value is of its field's type (the helpers return them unchecked otherwise).
    return Call(*values, *performance, tier, *writes), errors  # type: ignore[arg-type, call-arg]


def _cache_writes(raw: Mapping[str, object], inp: object, cached: object, errors: list[FieldError]) -> CacheWrites:
    """The cache write counts; cached reads plus writes may not exceed the input, nor the one-hour
    writes the writes."""
    writes = _count(raw, "cache_creation_input_tokens", errors, required=False)
    hour = _count(raw, "cache_creation_1h_input_tokens", errors, required=False)
    reads = cached if type(cached) is int and 0 <= cached <= MAX_TOKENS else 0
    if type(inp) is int and type(writes) is int and 0 <= writes <= MAX_TOKENS and 0 <= inp < reads + writes:
        errors.append(
            error(
                "cache_creation_input_tokens",
                "exceeds_input",
                f"Cached reads ({reads}) plus cache writes ({writes}) must not exceed input_tokens ({inp}):"
                " both are counted inside them.",
            )
        )
    if type(hour) is int and 0 <= hour <= MAX_TOKENS and (writes is None or (type(writes) is int and writes < hour)):
        errors.append(
            error(
                "cache_creation_1h_input_tokens",
                "exceeds_cache_creation",
                f"Must not exceed cache_creation_input_tokens ({writes if writes is not None else 'not reported'}):"
                " the one-hour writes are a part of the cache writes.",
            )
        )
    return writes, hour  # type: ignore[return-value]


def _performance(raw: Mapping[str, object], errors: list[FieldError]) -> tuple[object, ...]:
    duration = _whole(raw, "duration_ms", 0, MAX_DURATION_MS, errors)
    ttft = _whole(raw, "time_to_first_token_ms", 0, MAX_DURATION_MS, errors)
    http = _whole(raw, "http_status", 100, 599, errors)
    if type(duration) is int and type(ttft) is int and 0 <= duration < ttft <= MAX_DURATION_MS:
        errors.append(error("time_to_first_token_ms", "exceeds_duration", f"Must not exceed duration_ms ({duration})."))
    status, error_type = raw.get("status"), raw.get("error_type")
    if status is not None and status not in STATUSES:
        errors.append(error("status", "invalid_choice", f"Must be one of {', '.join(STATUSES)}."))
    if error_type is not None and error_type not in ERROR_TYPES:
        errors.append(error("error_type", "invalid_choice", f"Must be one of {', '.join(ERROR_TYPES)}."))
    elif error_type is not None and status == "ok":
        errors.append(error("error_type", "requires_error", 'Only a call whose status is "error" has an error type.'))
    return duration, ttft, "error" if error_type is not None else status, error_type, http


def _whole(raw: Mapping[str, object], field: str, low: int, high: int, errors: list[FieldError]) -> object:
    """An optional whole number from ``low`` to ``high``."""
    value = raw.get(field)
    if value is None:
        return None
    if isinstance(value, TooLargeInteger):
        errors.append(error(field, "out_of_range", f"Must be between {low} and {high}."))
    elif type(value) is not int:
        errors.append(error(field, "not_an_integer", "Must be a JSON integer."))
    elif not low <= value <= high:
        errors.append(error(field, "out_of_range", f"Must be between {low} and {high}."))
    return value


def _within(total: object, part: object, field: str, code: str, total_field: str, errors: list[FieldError]) -> None:
    """``part`` (counted inside ``total`` by every provider) may not exceed it."""
    if type(total) is int and type(part) is int and 0 <= part <= MAX_TOKENS and 0 <= total < part:
        errors.append(error(field, code, f"Must not exceed {total_field} ({total}): it is counted inside them."))


def _text(raw: Mapping[str, object], field: str, errors: list[FieldError]) -> str | None:
    value = raw.get(field)
    if field == "model" and isinstance(value, str):
        value = value.strip()
    if value is None:
        errors.append(error(field, "required", "This field is required."))
    elif not isinstance(value, str):
        errors.append(error(field, "not_a_string", "Must be a string."))
    elif not value:
        errors.append(error(field, "blank", "Must not be empty."))
    elif len(value) > TEXT_MAX_LENGTH:
        errors.append(error(field, "too_long", f"At most {TEXT_MAX_LENGTH} characters."))
    elif _BAD_CHARACTERS.search(value):
        errors.append(error(field, "invalid_characters", "Must not hold control characters or invalid Unicode."))
    else:
        return value
    return None


def _count(raw: Mapping[str, object], field: str, errors: list[FieldError], *, required: bool) -> object:
    value = raw.get(field)
    if value is None:
        if required:
            errors.append(error(field, "required", "This field is required."))
        return None
    if isinstance(value, TooLargeInteger):
        errors.append(error(field, "out_of_range", f"Must be between 0 and {MAX_TOKENS}."))
    elif type(value) is not int:  # bool is an int subclass, and 1.0 is not a JSON integer
        errors.append(error(field, "not_an_integer", "Must be a JSON integer."))
    elif not 0 <= value <= MAX_TOKENS:
        errors.append(error(field, "out_of_range", f"Must be between 0 and {MAX_TOKENS}."))
    return value


EARLIEST_CALL = dt.datetime(1970, 1, 2, tzinfo=dt.UTC)
LATEST_CALL = dt.datetime(9998, 12, 30, tzinfo=dt.UTC)


def _instant(raw: Mapping[str, object], errors: list[FieldError]) -> dt.datetime | None:
    value = raw.get("occurred_at")
    if value is None:
        errors.append(error("occurred_at", "required", "This field is required."))
        return None
    # File readers hand over instants they parsed themselves; JSON never holds one.
    instant = value if isinstance(value, dt.datetime) else parse_rfc3339(value)
    if instant is None or instant.tzinfo is None:
        errors.append(
            error("occurred_at", "invalid_datetime", "Must be RFC 3339 with an offset, e.g. 2025-01-31T09:30:00Z.")
        )
        return None
    if not EARLIEST_CALL <= instant <= LATEST_CALL:
        # Outside every date a filter can select (and near the calendar's ends local days overflow).
        errors.append(
            error("occurred_at", "out_of_range", f"Must lie between {EARLIEST_CALL:%Y} and {LATEST_CALL:%Y}.")
        )
        return None
    return instant


def parse_rfc3339(value: object) -> dt.datetime | None:
    """The UTC instant of an RFC 3339 timestamp, or None. Fractions beyond microseconds are cut."""
    if not isinstance(value, str) or _RFC3339.match(value) is None:
        return None
    try:
        # The pattern admits only what fromisoformat reads the RFC's way; it wants T and Z upper case.
        return dt.datetime.fromisoformat(value.upper()).astimezone(dt.UTC)
    except (ValueError, OverflowError):  # 24:00, 23:59:60, Feb 30, offsets of a day, year 1 minus an hour
        return None

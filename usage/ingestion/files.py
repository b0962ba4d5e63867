"""Readers of call files for ``manage.py import_calls``: JSONL, CSV and the Azure LLM traces.

A reader yields one ``Entry`` per record: its line number, the item the ingestion rules
check (a dict of the API's fields, or ``Unreadable`` when the line cannot even be parsed)
and the text as read, for the rejects file. Readers stream: memory does not grow with the
file. Bytes that are not UTF-8 are kept as lone surrogates, which validation rejects.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import gc
import itertools
import queue
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from usage.ingestion import validation as ingest
from usage.ingestion.traces import parse_trace_timestamp, trace_request_id

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from typing import TypeVar

    from _typeshed import StrPath

    from usage.ingestion.validation import FieldError

    _T = TypeVar("_T")

AZURE_HEADER = ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]
_INTEGER = re.compile(r"-?[0-9]+\Z")
_INTEGER_FIELDS = frozenset(ingest.INTEGER_FIELDS)


class Entry(NamedTuple):
    line: int
    item: object
    text: str


class Unreadable(NamedTuple):
    """A line that is not a record at all (bad JSON, wrong number of CSV columns)."""

    code: str
    detail: str

    @property
    def errors(self) -> list[FieldError]:
        return [ingest.error(None, self.code, self.detail)]


class FileFormatError(ValueError):
    """The file as a whole is not of the expected format (e.g. its CSV header)."""


class LineSource:
    """The file's lines, decoded, counting the bytes read so far for a progress bar."""

    def __init__(self, path: StrPath) -> None:
        self.path = Path(path)
        self.bytes_read = 0

    def __iter__(self) -> Iterator[str]:
        with self.path.open("rb", buffering=1 << 20) as handle:
            for number, raw in enumerate(handle):
                self.bytes_read += len(raw)
                text = raw.decode("utf-8", "surrogateescape")
                yield text.removeprefix("\ufeff") if number == 0 else text


class _Recorded:
    """Lines passed on to ``csv.reader``, kept until taken: the text of the record just read."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = lines
        self.pending: list[str] = []

    def __iter__(self) -> Iterator[str]:
        for text in self.lines:
            self.pending.append(text)
            yield text

    def take(self) -> str:
        text = "".join(self.pending).rstrip("\r\n")
        self.pending.clear()
        return text


def read_jsonl(source: Iterable[str]) -> Iterator[Entry]:
    for line, text in enumerate(source, start=1):
        text = text.rstrip("\r\n")
        if not text.strip():
            continue
        try:
            item = ingest.loads(text)
        except (ValueError, RecursionError) as exc:
            item = Unreadable("invalid_json", f"Not a JSON value: {str(exc)[:200]}")
        yield Entry(line, item, text)


def read_csv(source: Iterable[str]) -> Iterator[Entry]:
    """CSV with a header naming the API's fields; an empty cell is a missing value."""
    recorded = _Recorded(source)
    reader = csv.reader(recorded)
    header = next(reader, None) or []
    recorded.take()
    unknown = [name for name in header if name not in ingest.FIELDS]
    missing = [name for name in ingest.REQUIRED_FIELDS if name not in header]
    if unknown or missing or len(set(header)) != len(header):
        raise FileFormatError(
            f"CSV header must name the fields {', '.join(ingest.FIELDS)} (those after output_tokens optional),"
            " each once; "
            f"unknown: {unknown or 'none'}, missing: {missing or 'none'}."
        )
    item: Unreadable | dict[str, str | int | None]
    for row in reader:
        text = recorded.take()
        if not row:
            continue
        if len(row) != len(header):
            item = Unreadable("wrong_column_count", f"Expected {len(header)} columns, found {len(row)}.")
        else:
            item = {name: _cell(name, value) for name, value in zip(header, row, strict=True)}
        yield Entry(reader.line_num, item, text)


def _cell(name: str, value: str) -> str | int | None:
    if value == "":
        return None
    if name in _INTEGER_FIELDS and _INTEGER.match(value):
        return int(value)
    return value  # validation names what is wrong with it


def read_azure(source: LineSource, *, api_keys: Sequence[str], model: str, shift: dt.timedelta) -> Iterator[Entry]:
    """An Azure trace as calls of ``model``, keys assigned round-robin by line number.

    Request ids come from ``trace_request_id``, so a second import is recognised as
    duplicates; the same options give the same keys and times, so it adds nothing.
    """
    recorded = _Recorded(source)
    reader = csv.reader(recorded)
    header = next(reader, None)
    recorded.take()
    if header != AZURE_HEADER:
        raise FileFormatError(f"Not an Azure LLM inference trace: header {header!r}, expected {AZURE_HEADER!r}.")
    occurred_at: dt.datetime | str
    for row in reader:
        text = recorded.take()
        line = reader.line_num
        if len(row) != len(AZURE_HEADER):
            yield Entry(line, Unreadable("wrong_column_count", f"Expected 3 columns, found {len(row)}."), text)
            continue
        try:
            occurred_at = parse_trace_timestamp(row[0]) + shift
        except ValueError:
            occurred_at = row[0]  # validation rejects it as invalid_datetime
        item = {
            "request_id": trace_request_id(source.path, line),
            "api_key": api_keys[line % len(api_keys)],
            "model": model,
            "occurred_at": occurred_at,
            "input_tokens": _cell("input_tokens", row[1]),
            "output_tokens": _cell("output_tokens", row[2]),
        }
        yield Entry(line, item, text)


def azure_first_day(path: StrPath) -> dt.date:
    """The UTC date of a trace's first call, from which ``--shift-to`` counts."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        if next(reader, None) != AZURE_HEADER:
            raise FileFormatError(f"{path}: not an Azure LLM inference trace.")
        first = next(reader, None)
        if not first:
            raise FileFormatError(f"{path}: the trace has no calls.")
        try:
            return parse_trace_timestamp(first[0]).date()
        except ValueError as exc:
            raise FileFormatError(f"{path}:2: {exc}") from exc


def shift_to(path: StrPath, day: dt.date) -> dt.timedelta:
    """The whole-day shift that moves the trace's first call to ``day``, keeping times of day."""
    return dt.timedelta(days=(day - azure_first_day(path)).days)


def sniff_format(path: StrPath) -> Literal["jsonl", "csv", "azure"]:
    """``jsonl``, ``csv`` or ``azure`` from the file name and, for CSV, its header."""
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        with Path(path).open(newline="", encoding="utf-8", errors="replace") as handle:
            return "azure" if next(csv.reader(handle), None) == AZURE_HEADER else "csv"
    raise FileFormatError(f"Cannot tell the format of {path}; pass --format jsonl, csv or azure.")


class Validated(NamedTuple):
    """An entry after ``validate_call``: the ``Call``, or the errors and the request id to name."""

    line: int
    text: str
    call: ingest.Call | None
    errors: Sequence[FieldError]
    request_id: str | None


def validated_chunks(entries: Iterator[Entry], size: int) -> Iterator[list[Validated]]:
    """Lists of up to ``size`` ``Validated`` entries. The parsed items are dropped: only the
    ``Call`` (or the errors) and the text stay, which keeps an import's memory small."""
    while chunk := list(itertools.islice(entries, size)):
        yield [_validated(entry) for entry in chunk]


def _validated(entry: Entry) -> Validated:
    if isinstance(entry.item, Unreadable):
        return Validated(entry.line, entry.text, None, entry.item.errors, None)
    call, errors = ingest.validate_call(entry.item)
    request_id = ingest.request_id_of(entry.item) if errors else None
    return Validated(entry.line, entry.text, call, errors, request_id)


class _Failed(NamedTuple):
    error: BaseException


def prefetched(iterable: Iterable[_T], depth: int = 1, finish: Callable[[], object] | None = None) -> Iterator[_T]:
    """Iterate ``iterable`` in a thread, up to ``depth`` items ahead of the consumer.

    An error in the thread is raised in the consumer; a consumer that stops early stops the
    thread. ``finish`` runs in the thread when it ends (e.g. to close its database connections).
    """
    # The iterable's items, then ``done`` or a _Failed: only ``done`` being a plain object tells them apart.
    items: queue.Queue[Any]
    items, stop, done = queue.Queue(maxsize=depth), threading.Event(), object()

    def produce() -> None:
        try:
            for item in iterable:
                if not _put(items, item, stop):
                    return
            _put(items, done, stop)
        except BaseException as exc:  # handed to the consumer, which raises it
            _put(items, _Failed(exc), stop)
        finally:
            if finish is not None:
                finish()

    thread = threading.Thread(target=produce, name="import-reader", daemon=True)
    thread.start()
    try:
        while (item := items.get()) is not done:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def _put(items: queue.Queue[Any], item: object, stop: threading.Event) -> bool:
    """Put ``item`` unless the consumer has gone; True when it was put."""
    while not stop.is_set():
        try:
            items.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector rarely, and never over what existed before.

    An import allocates millions of short-lived objects while a few chunks of them stay
    alive; with the default thresholds the collector rescans those, and all of Django, again
    and again: a third of the import's CPU time. Nothing an import builds holds a cycle.
    """
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()

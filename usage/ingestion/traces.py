"""Reader for the Azure LLM inference traces (AzurePublicDataset, CC-BY 4.0).

Columns: ``TIMESTAMP`` (UTC, 7 decimals), ``ContextTokens``, ``GeneratedTokens``. The traces
carry no key, model or request id; callers assign keys and models, and use ``request_id``
so that a second import of the same file is recognised as duplicates.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

    from _typeshed import StrPath


@dataclass(frozen=True)
class TraceCall:
    line: int  # 1-based line number in the file, header included
    occurred_at: dt.datetime
    input_tokens: int
    output_tokens: int


def parse_trace_timestamp(value: str) -> dt.datetime:
    """'2023-11-16 18:17:03.9799600' -> aware UTC datetime (truncated to microseconds)."""
    date_part, _, fraction = value.strip().partition(".")
    parsed = dt.datetime.strptime(date_part, "%Y-%m-%d %H:%M:%S")
    micros = int((fraction + "000000")[:6]) if fraction else 0
    return parsed.replace(microsecond=micros, tzinfo=dt.UTC)


def iter_azure_trace(path: StrPath) -> Iterator[TraceCall]:
    """Yield each call of the trace in file order. Raises ValueError naming a bad line."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header != ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]:
            raise ValueError(f"{path}: not an Azure LLM inference trace (header {header!r})")
        for line, row in enumerate(reader, start=2):
            try:
                yield TraceCall(line, parse_trace_timestamp(row[0]), int(row[1]), int(row[2]))
            except (ValueError, IndexError) as exc:
                raise ValueError(f"{path}:{line}: {exc}") from exc


def trace_request_id(path: StrPath, line: int) -> str:
    """Deterministic id of a trace call: the same file and line always give the same id."""
    return f"azure-{Path(path).stem}-{line}"

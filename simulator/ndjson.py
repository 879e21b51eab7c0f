"""NDJSON reading and writing shared by simulate, datasets, replay and evaluate.

Files are streamed line by line so that millions of events never sit in memory;
``-`` means standard input/output so commands compose in a shell pipeline.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson


@contextlib.contextmanager
def open_binary(path: str | Path, mode: str) -> Iterator[IO[bytes]]:
    """Open ``path`` for binary reading or writing; ``-`` is stdin/stdout."""
    if str(path) == "-":
        yield sys.stdin.buffer if "r" in mode else sys.stdout.buffer
        return
    with open(path, mode + "b", buffering=1024 * 1024) as handle:
        yield handle


def write_events(events: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write events as NDJSON; returns how many were written."""
    count = 0
    dumps = orjson.dumps
    with open_binary(path, "w") as out:
        write = out.write
        for event in events:
            write(dumps(event))
            write(b"\n")
            count += 1
        out.flush()
    return count


def iter_lines(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line_number, raw_line)`` for every non-blank line (1-based numbers)."""
    with open_binary(path, "r") as handle:
        for number, line in enumerate(handle, start=1):
            stripped = line.strip()
            if stripped:
                yield number, stripped


def count_lines(path: str | Path) -> int | None:
    """Number of lines of a regular file (for a progress bar total); None for stdin."""
    if str(path) == "-":
        return None
    total = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(4 * 1024 * 1024):
            total += chunk.count(b"\n")
    return total

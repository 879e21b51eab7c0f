"""External sort of an NDJSON file by ``occurred_at``, in bounded memory.

``evaluate`` streams in event time. Exports from real systems are often grouped
by account instead; this sorts them in chunks of ``chunk_lines`` lines (each
chunk sorted in memory and spilled to a temporary file), then merges the chunks
with a heap, so memory stays bounded for files of any size.
"""

from __future__ import annotations

import heapq
import tempfile
from collections.abc import Iterator
from pathlib import Path

import orjson

from services.scorer.core.events import parse_timestamp
from simulator.ndjson import iter_lines


def _key(number: int, raw: bytes) -> float:
    try:
        stamp = orjson.loads(raw)["occurred_at"]
        return parse_timestamp(stamp)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"line {number}: cannot read occurred_at ({exc})") from None


def _spill(chunk: list[tuple[float, int, bytes]], directory: Path, index: int) -> Path:
    chunk.sort()
    path = directory / f"chunk-{index:05d}.ndjson"
    with open(path, "wb") as out:
        for ts, number, raw in chunk:
            out.write(b"%r %d " % (ts, number) + raw + b"\n")
    return path


def _read_chunk(path: Path) -> Iterator[tuple[float, int, bytes]]:
    with open(path, "rb") as handle:
        for line in handle:
            ts, number, raw = line.rstrip(b"\n").split(b" ", 2)
            yield float(ts), int(number), raw


def sort_events(source: str | Path, target: Path, chunk_lines: int = 500_000) -> int:
    """Write ``source`` sorted by event time (stable: ties keep file order) to ``target``."""
    with tempfile.TemporaryDirectory(prefix="healthstream-sort-") as tmp:
        directory = Path(tmp)
        chunks: list[Path] = []
        chunk: list[tuple[float, int, bytes]] = []
        for number, raw in iter_lines(source):
            chunk.append((_key(number, raw), number, raw))
            if len(chunk) >= chunk_lines:
                chunks.append(_spill(chunk, directory, len(chunks)))
                chunk = []
        if chunk:
            chunks.append(_spill(chunk, directory, len(chunks)))
        count = 0
        with open(target, "wb") as out:
            for _, _, raw in heapq.merge(*(_read_chunk(p) for p in chunks)):
                out.write(raw + b"\n")
                count += 1
    return count

"""``healthstream datasets cdnow --out FILE``: shipped real logs as canonical events.

Only the conversion is dataset-specific; everything downstream (replay,
evaluate) reads canonical NDJSON and knows nothing about CDNOW.

CDNOW (see ``datasets/cdnow/README.md``): one row per purchase,
``customer_id date number_of_cds dollar_value``. Each row becomes one
``usage``/``order.placed`` event at midnight UTC of its date with ``amount`` and
``quantity``; rows can share customer and date, so the event id carries a
per-(customer, date) counter. The output is sorted by event time (then
customer), because ``evaluate`` streams in event time.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from simulator.ndjson import write_events

REPO_ROOT = Path(__file__).resolve().parents[1]
CDNOW_DEFAULT = REPO_ROOT / "datasets" / "cdnow" / "CDNOW_master.txt"


class DatasetError(ValueError):
    """A source row that cannot be converted; names the line and the field."""


def _parse_cdnow_row(number: int, line: str) -> tuple[str, str, int, float]:
    parts = line.split()
    if len(parts) != 4:
        raise DatasetError(f"line {number}: expected 4 columns, got {len(parts)}")
    customer, day, cds, dollars = parts
    if len(day) != 8 or not day.isdigit():
        raise DatasetError(f"line {number}: date must be YYYYMMDD, got {day!r}")
    try:
        quantity = int(cds)
    except ValueError:
        raise DatasetError(f"line {number}: number_of_cds must be an integer") from None
    try:
        amount = float(dollars)
    except ValueError:
        raise DatasetError(f"line {number}: dollar_value must be a number") from None
    if quantity < 0:
        raise DatasetError(f"line {number}: number_of_cds must not be negative")
    return customer, f"{day[:4]}-{day[4:6]}-{day[6:]}", quantity, amount


def cdnow_events(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Convert CDNOW_master.txt lines (header included) into time-sorted canonical events."""
    rows: list[tuple[str, str, int, float, int]] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("customer_id"):
            continue
        customer, day, quantity, amount = _parse_cdnow_row(number, line)
        rows.append((day, customer, quantity, amount, number))
    rows.sort()  # by date, then customer, then source line: stable and deterministic
    seen: dict[tuple[str, str], int] = {}
    for day, customer, quantity, amount, _ in rows:
        n = seen.get((customer, day), 0) + 1
        seen[(customer, day)] = n
        yield {
            "event_id": f"cdnow-{customer}-{day.replace('-', '')}-{n}",
            "account_id": customer,
            "type": "usage",
            "name": "order.placed",
            "occurred_at": f"{day}T00:00:00Z",
            "source": "cdnow",
            "properties": {"amount": amount, "quantity": quantity, "currency": "USD"},
        }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    cdnow = sub.add_parser("cdnow", help="CDNOW purchase log (1997-1998, 23,570 customers)")
    cdnow.add_argument("--out", required=True, help="NDJSON output file, - for stdout")
    cdnow.add_argument(
        "--source", type=Path, default=CDNOW_DEFAULT, help=f"CDNOW_master.txt ({CDNOW_DEFAULT})"
    )


def run(args: argparse.Namespace) -> int:
    if args.dataset != "cdnow":  # argparse restricts choices; kept for clarity
        print(f"datasets: unknown dataset {args.dataset!r}", file=sys.stderr)
        return 2
    if not args.source.is_file():
        print(f"datasets: source file not found: {args.source}", file=sys.stderr)
        return 2
    try:
        with args.source.open(encoding="ascii") as handle:
            count = write_events(cdnow_events(handle), args.out)
    except DatasetError as exc:
        print(f"datasets: {args.source}: {exc}", file=sys.stderr)
        return 2
    print(f"datasets: wrote {count} CDNOW events to {args.out}", file=sys.stderr)
    return 0

"""``healthstream simulate``: write realistic SaaS events and their ground truth.

The truth file (``OUT.truth.json`` by default) says, for every account, whether it
cancelled inside the window, when, and which latent driver caused it, so the
evaluation can measure how many days before the cancellation the score noticed.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
from tqdm import tqdm

from simulator.generator import Simulator
from simulator.ndjson import write_events


def truth_path_for(out: str | Path) -> Path:
    """``events.ndjson`` -> ``events.truth.json`` (next to the events)."""
    path = Path(out)
    if path.suffix in (".ndjson", ".jsonl", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".truth.json")


def ending_now(days: int) -> date:
    """The first day of a ``days``-day history whose last day is yesterday (UTC).

    Every event then lies in the past (ingest and the scorer see a normal, recent
    history), and the file fits a demo that is running now.
    """
    return datetime.now(UTC).date() - timedelta(days=days)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--accounts", type=int, default=200, help="number of accounts (200)")
    parser.add_argument("--days", type=int, default=180, help="days of history (180)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same file")
    parser.add_argument(
        "--start",
        type=date.fromisoformat,
        default=None,
        help="first day, YYYY-MM-DD (default: DAYS before today, so the history ends now "
        "and fits a live demo)",
    )
    parser.add_argument(
        "--churn-rate",
        type=float,
        default=0.25,
        help="share of accounts with a latent churn driver (0.25)",
    )
    parser.add_argument("--out", default="-", help="NDJSON output file, - for stdout")
    parser.add_argument(
        "--truth",
        default=None,
        help="ground-truth JSON (default: OUT without .ndjson + .truth.json; none for stdout)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    start = args.start or ending_now(args.days)
    try:
        sim = Simulator(
            args.accounts, args.days, seed=args.seed, start=start, churn_rate=args.churn_rate
        )
    except ValueError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    # Off when asked, when the events go to stdout, and when stderr is not a terminal
    # (None: tqdm decides), so logs and pipelines get the summary line only.
    quiet = True if args.quiet or args.out == "-" else None
    events = tqdm(sim.events(), unit=" events", disable=quiet, desc="simulate", mininterval=0.5)
    count = write_events(events, args.out)
    truth_path = args.truth or (truth_path_for(args.out) if args.out != "-" else None)
    summary = sim.truth()
    if truth_path is not None:
        Path(truth_path).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    print(
        f"simulate: {count} events, {summary['accounts']} accounts, "
        f"{summary['churned']} cancelled in {summary['start']}..{summary['end']}"
        + (f"; truth in {truth_path}" if truth_path else ""),
        file=sys.stderr,
    )
    return 0

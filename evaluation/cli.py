"""``healthstream evaluate``: does a low health score come before churn, and how early?

Replays canonical NDJSON through the scoring core in event time (see
:mod:`evaluation.runner`), freezes every account's scores at ``--cutoff``,
labels outcomes from what happens in (cutoff, end], and writes ``--json`` (the
figures) and ``--report`` (an HTML page with plots).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from evaluation.analysis import analyse
from evaluation.runner import EvaluationRunner, UnsortedInput
from evaluation.sorting import sort_events
from services.scorer.core import InvalidEvent, load_scorecard
from simulator.ndjson import count_lines, iter_lines


def parse_moment(text: str) -> float:
    """``YYYY-MM-DD`` (end of that day, UTC) or an RFC 3339 timestamp -> epoch seconds.

    A bare date means "through that whole day": a cutoff of 1997-09-30 includes
    purchases made on the 30th.
    """
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=UTC).timestamp()
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date (YYYY-MM-DD) or RFC 3339 timestamp"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a time zone (e.g. Z)")
    return moment.timestamp()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", required=True, help="canonical NDJSON, sorted by occurred_at")
    parser.add_argument("--cutoff", required=True, help="score date: YYYY-MM-DD or RFC 3339")
    parser.add_argument(
        "--end", default=None, help="last day of outcomes (default: the last event)"
    )
    parser.add_argument(
        "--config", type=Path, default=None, help="scorecard TOML (default: shipped)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--report", type=Path, default=None, help="write the HTML report here")
    parser.add_argument(
        "--tick-hours",
        type=float,
        default=24.0,
        help="periodic event-time timers for every account, for time-based alerts "
        "(24; 0 = only the per-account label timers)",
    )
    parser.add_argument(
        "--alert-window-days",
        type=float,
        default=30.0,
        help="an alert this many days before the cutoff flags the account (30)",
    )
    parser.add_argument(
        "--lead-lookback-days",
        type=float,
        default=90.0,
        help="first alert within this many days before churn counts for lead time (90)",
    )
    parser.add_argument("--no-learning", action="store_true", help="scorecard only, no model")
    parser.add_argument(
        "--sort", action="store_true", help="sort the file by occurred_at first (external sort)"
    )
    parser.add_argument(
        "--skip-invalid", action="store_true", help="count invalid lines instead of stopping"
    )
    parser.add_argument("--title", default="healthstream", help="report title")
    parser.add_argument(
        "--notes",
        type=Path,
        default=None,
        help="text file: how the scorecard/model settings were chosen (shown in the report)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Run the evaluation described by ``args``; returns the summary (raises on bad input)."""
    started = time.perf_counter()
    scorecard = load_scorecard(args.config)
    notes = args.notes.read_text(encoding="utf-8") if args.notes is not None else None
    events_path = str(args.events)
    with tempfile.TemporaryDirectory(prefix="healthstream-eval-") as tmp:
        if args.sort:
            sorted_path = Path(tmp) / "sorted.ndjson"
            sort_events(events_path, sorted_path)
            events_path = str(sorted_path)
        runner = EvaluationRunner(
            scorecard,
            cutoff=parse_moment(args.cutoff),
            end=parse_moment(args.end) if args.end else None,
            tick_hours=args.tick_hours,
            learn=not args.no_learning,
            strict=not args.skip_invalid,
        )
        total = count_lines(events_path)
        with tqdm(
            total=total, unit=" events", desc="evaluate", disable=args.quiet, mininterval=0.5
        ) as bar:
            result = runner.run(iter_lines(events_path), progress=bar.update)
    summary, plot = analyse(
        result,
        alert_window_days=args.alert_window_days,
        lead_lookback_days=args.lead_lookback_days,
    )
    summary["run"] = {
        "events_file": str(args.events),
        "cutoff": _iso(result.cutoff),
        "cutoff_ts": result.cutoff,
        "end": _iso(result.end),
        "first_event": _iso(result.first_ts),
        "last_event": _iso(result.last_ts),
        "config": str(args.config) if args.config else "services/scorer/scorecard.toml",
        "scorecard_version": scorecard.version,
        "events": result.events,
        "invalid": result.invalid,
        "duplicates": result.duplicates,
        "late": result.late,
        "ignored_after_end": result.ignored_after_end,
        "training_examples": result.examples,
        "tick_hours": args.tick_hours,
        "learning": not args.no_learning,
        "seconds": round(time.perf_counter() - started, 1),
        "command": command_line(args),
    }
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(
            orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
        )
    if args.report is not None:
        from evaluation.report import write_report

        write_report(summary, plot, args.report, title=args.title, notes=notes)
    return summary


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run (defaults left out), for the report."""
    parts = ["healthstream", "evaluate", "--events", str(args.events), "--cutoff", args.cutoff]
    if args.end:
        parts += ["--end", args.end]
    if args.config:
        parts += ["--config", str(args.config)]
    if args.tick_hours != 24.0:
        parts += ["--tick-hours", f"{args.tick_hours:g}"]
    if args.alert_window_days != 30.0:
        parts += ["--alert-window-days", f"{args.alert_window_days:g}"]
    if args.lead_lookback_days != 90.0:
        parts += ["--lead-lookback-days", f"{args.lead_lookback_days:g}"]
    for flag in ("no_learning", "sort", "skip_invalid"):
        if getattr(args, flag):
            parts.append("--" + flag.replace("_", "-"))
    if args.title != "healthstream":
        parts += ["--title", args.title]
    if args.notes:
        parts += ["--notes", str(args.notes)]
    if args.json:
        parts += ["--json", str(args.json)]
    if args.report:
        parts += ["--report", str(args.report)]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    try:
        summary = evaluate(args)
    except FileNotFoundError as exc:
        print(f"evaluate: file not found: {exc.filename}", file=sys.stderr)
        return 2
    except argparse.ArgumentTypeError as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 2
    except (InvalidEvent, UnsortedInput, ValueError) as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 2
    auc = summary["auc"]
    print(
        f"evaluate: {summary['accounts']} accounts, churn rate {summary['churn_rate']:.3f}; "
        "ROC AUC "
        + ", ".join(f"{k}={v:.3f}" if v is not None else f"{k}=n/a" for k, v in auc.items()),
        file=sys.stderr,
    )
    return 0

"""``healthstream backtest``: would this scorecard have done better on our own history?

Replays history (an NDJSON file, or a time slice read straight from the event topics)
through the production scoring core with the baseline and the proposed scorecard side
by side (:mod:`evaluation.backtest`), writes ``--json`` and an HTML ``--report``, and
exits 1 when the proposed scorecard is worse than the baseline by more than the allowed
margins, so a CI job on a repository of scorecards can gate a change.

Exit status: 0 = not worse (``same`` or ``better``), 1 = worse, 2 = bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError
from tqdm import tqdm

from evaluation.backtest import (
    Check,
    Side,
    compare,
    make_side,
    occurred_at,
    replay_side_by_side,
)
from evaluation.cli import _iso, parse_moment
from evaluation.runner import DAY, UnsortedInput
from evaluation.sorting import sort_events
from services.scorer.core import InvalidEvent, load_scorecard
from simulator.ndjson import count_lines, iter_lines

EXIT_WORSE = 1
EXIT_BAD_INPUT = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scorecard", type=Path, required=True, help="proposed scorecard TOML")
    parser.add_argument(
        "--baseline", type=Path, default=None, help="current scorecard TOML (default: shipped)"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--events", type=Path, help="canonical NDJSON history")
    source.add_argument(
        "--from-topics",
        action="store_true",
        help="read history from the event topics of HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS "
        "(assigned partitions, no consumer group: live groups are not disturbed)",
    )
    parser.add_argument(
        "--from", dest="start", default=None, help="first event time replayed (YYYY-MM-DD)"
    )
    parser.add_argument(
        "--to", dest="end", default=None, help="last event time replayed (default: the last)"
    )
    parser.add_argument(
        "--cutoff",
        default=None,
        help="score date; outcomes are what happens after it "
        "(default: --to / the last event minus --outcome-days)",
    )
    parser.add_argument(
        "--outcome-days", type=float, default=90.0, help="outcome window for the default cutoff"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--report", type=Path, default=None, help="write the HTML report here")
    parser.add_argument(
        "--max-auc-drop",
        type=float,
        default=0.01,
        help="fail when the health ROC AUC drops more than this (0.01)",
    )
    parser.add_argument(
        "--max-pr-auc-drop", type=float, default=None, help="also gate the health PR AUC"
    )
    parser.add_argument(
        "--max-precision-drop",
        type=float,
        default=None,
        help="also gate alert precision (share of alerted accounts that churned), e.g. 0.05",
    )
    parser.add_argument(
        "--max-lead-drop-days",
        type=float,
        default=None,
        help="also gate the median lead time of the first alert before churn",
    )
    parser.add_argument(
        "--max-alerts-rise",
        type=float,
        default=None,
        help="also gate the number of alerts fired (absolute, over the whole replay)",
    )
    parser.add_argument(
        "--tick-hours", type=float, default=24.0, help="event-time timers, as in evaluate (24)"
    )
    parser.add_argument("--alert-window-days", type=float, default=30.0)
    parser.add_argument("--lead-lookback-days", type=float, default=90.0)
    parser.add_argument("--no-learning", action="store_true", help="scorecards only, no model")
    parser.add_argument("--sort", action="store_true", help="sort the file by occurred_at first")
    parser.add_argument(
        "--skip-invalid", action="store_true", help="count invalid lines instead of stopping"
    )
    parser.add_argument(
        "--band-changes", type=int, default=50, help="accounts listed with their reasons (50)"
    )
    parser.add_argument(
        "--bootstrap", type=int, default=200, help="resamples of the AUC change interval (200)"
    )
    parser.add_argument("--title", default="healthstream backtest", help="report title")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def checks_from(args: argparse.Namespace) -> list[Check]:
    checks = [Check("auc", args.max_auc_drop)]
    optional = (
        ("pr_auc", args.max_pr_auc_drop),
        ("alert_precision", args.max_precision_drop),
        ("lead_days", args.max_lead_drop_days),
        ("alerts_fired", args.max_alerts_rise),
    )
    checks += [Check(figure, limit) for figure, limit in optional if limit is not None]
    for check in checks:
        if check.max_worsening < 0:
            raise argparse.ArgumentTypeError(f"--max-* for {check.figure} must not be negative")
    return checks


def last_event_time(path: Path) -> float:
    """The latest ``occurred_at`` of a file (one cheap pass: no scoring)."""
    latest = None
    for _, raw in iter_lines(path):
        ts = occurred_at(raw)
        if ts != float("inf") and (latest is None or ts > latest):
            latest = ts
    if latest is None:
        raise ValueError(f"{path}: no event with a valid occurred_at")
    return latest


def _scorecard_label(path: Path | None) -> str:
    return str(path) if path is not None else "services/scorer/scorecard.toml (shipped)"


def _read_history(
    args: argparse.Namespace, tmp: Path, start: float | None, end: float | None
) -> tuple[Path, dict[str, Any]]:
    """The NDJSON file to replay, sorted by event time, and where it came from."""
    if args.from_topics:
        from evaluation.topics import read_topics
        from healthstream.settings import Settings

        settings = Settings()
        if settings.embedded_broker:
            raise ValueError(
                "--from-topics needs HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS (the broker whose "
                "topics hold the history)"
            )
        if start is None:
            raise ValueError("--from-topics needs --from (how far back to read)")
        target = tmp / "topics.ndjson"
        lateness = max(
            load_scorecard(args.scorecard).lateness_hours,
            load_scorecard(args.baseline).lateness_hours,
        )
        read = asyncio.run(
            read_topics(
                settings.kafka_bootstrap_servers,
                settings.topics.events,
                target,
                start=start,
                end=end,
                margin_seconds=lateness * 3600.0,
            )
        )
        source = {
            "kind": "topics",
            "bootstrap_servers": settings.kafka_bootstrap_servers,
            "topics": settings.topics.events,
            "partitions": read.partitions,
            "records_read": read.records,
            "events": read.written,
            "before_from": read.before_start,
            "after_to": read.after_end,
            "unreadable": read.unreadable,
            "by_topic": read.by_topic,
        }
        return target, source
    path: Path = args.events
    if not path.is_file():
        raise FileNotFoundError(2, "not found", str(path))
    if args.sort:
        sorted_path = tmp / "sorted.ndjson"
        sort_events(path, sorted_path)
        path = sorted_path
    return path, {"kind": "file", "events_file": str(args.events)}


def backtest(args: argparse.Namespace) -> dict[str, Any]:
    """Run the backtest described by ``args``; returns the JSON document (raises on bad input)."""
    started = time.perf_counter()
    checks = checks_from(args)
    proposed_card = load_scorecard(args.scorecard)
    baseline_card = load_scorecard(args.baseline)
    start = parse_moment(args.start) if args.start else None
    end = parse_moment(args.end) if args.end else None
    if start is not None and args.start and len(args.start) == 10:
        start -= DAY - 1  # a bare --from date means "from the start of that day"
    if start is not None and end is not None and start >= end:
        raise ValueError("--from must be before --to")
    with tempfile.TemporaryDirectory(prefix="healthstream-backtest-") as tmp:
        path, source = _read_history(args, Path(tmp), start, end)
        horizon = end if end is not None else last_event_time(path)
        default_cutoff = horizon - args.outcome_days * DAY
        cutoff = parse_moment(args.cutoff) if args.cutoff else default_cutoff
        if cutoff >= horizon:
            raise ValueError("the cutoff must be before the end of the history (--to)")
        if start is not None and cutoff <= start:
            raise ValueError("the cutoff must be after --from")
        options = {
            "cutoff": cutoff,
            "end": end,
            "tick_hours": args.tick_hours,
            "learn": not args.no_learning,
            "strict": not args.skip_invalid,
        }
        sides: list[Side] = [
            make_side("baseline", _scorecard_label(args.baseline), baseline_card, **options),
            make_side("proposed", str(args.scorecard), proposed_card, **options),
        ]
        with tqdm(
            total=count_lines(path),
            unit=" events",
            desc="backtest",
            disable=args.quiet,
            mininterval=0.5,
        ) as bar:
            skipped = replay_side_by_side(sides, iter_lines(path), start=start, progress=bar.update)
    document, plots = compare(
        sides[0],
        sides[1],
        checks,
        alert_window_days=args.alert_window_days,
        lead_lookback_days=args.lead_lookback_days,
        listed=args.band_changes,
        resamples=args.bootstrap,
    )
    result = sides[0].result
    assert result is not None
    document["run"] = {
        "source": source,
        "from": _iso(start),
        "to": _iso(end),
        "cutoff": _iso(cutoff),
        "end": _iso(result.end),
        "first_event": _iso(result.first_ts),
        "last_event": _iso(result.last_ts),
        "events": result.events,
        "skipped_before_from": skipped,
        "invalid": result.invalid,
        "duplicates": result.duplicates,
        "ignored_after_end": result.ignored_after_end,
        "tick_hours": args.tick_hours,
        "learning": not args.no_learning,
        "seconds": round(time.perf_counter() - started, 1),
        "command": command_line(args),
    }
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(
            orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
        )
    if args.report is not None:
        from evaluation.backtest_report import write_backtest_report

        write_backtest_report(document, plots, args.report, title=args.title)
    return document


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run (defaults left out), for the report."""
    parts = ["healthstream", "backtest", "--scorecard", str(args.scorecard)]
    if args.baseline:
        parts += ["--baseline", str(args.baseline)]
    parts += ["--from-topics"] if args.from_topics else ["--events", str(args.events)]
    for flag, value in (("--from", args.start), ("--to", args.end), ("--cutoff", args.cutoff)):
        if value:
            parts += [flag, value]
    numbers = (
        ("--outcome-days", args.outcome_days, 90.0),
        ("--max-auc-drop", args.max_auc_drop, 0.01),
        ("--max-pr-auc-drop", args.max_pr_auc_drop, None),
        ("--max-precision-drop", args.max_precision_drop, None),
        ("--max-lead-drop-days", args.max_lead_drop_days, None),
        ("--max-alerts-rise", args.max_alerts_rise, None),
        ("--tick-hours", args.tick_hours, 24.0),
        ("--alert-window-days", args.alert_window_days, 30.0),
        ("--lead-lookback-days", args.lead_lookback_days, 90.0),
        ("--band-changes", args.band_changes, 50),
        ("--bootstrap", args.bootstrap, 200),
    )
    for flag, value, default in numbers:
        if (
            value is not None
            and value != default
            and not (flag == "--outcome-days" and args.cutoff)
        ):
            parts += [flag, f"{value:g}"]
    for flag in ("no_learning", "sort", "skip_invalid"):
        if getattr(args, flag):
            parts.append("--" + flag.replace("_", "-"))
    if args.json:
        parts += ["--json", str(args.json)]
    if args.report:
        parts += ["--report", str(args.report)]
    return shlex.join(parts)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:+.{digits}f}"


def _plain(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def run(args: argparse.Namespace) -> int:
    try:
        document = backtest(args)
    except FileNotFoundError as exc:
        print(f"backtest: file not found: {exc.filename}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValidationError as exc:
        print(f"backtest: invalid scorecard: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (argparse.ArgumentTypeError, InvalidEvent, UnsortedInput, ValueError) as exc:
        print(f"backtest: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:  # e.g. the broker cannot be reached
        print(f"backtest: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    diff = document["diff"]
    changes = document["band_changes"]
    print(
        f"backtest: {document['verdict'].upper()}: {document['baseline']['accounts']} accounts; "
        f"health ROC AUC {_plain(diff['auc']['baseline'])} -> {_plain(diff['auc']['proposed'])} "
        f"({_fmt(diff['auc']['delta'])}), PR AUC {_fmt(diff['pr_auc']['delta'])}, alert "
        f"precision {_fmt(diff['alert_precision']['delta'])}, alerts fired "
        f"{_plain(diff['alerts_fired']['baseline'], 0)} -> "
        f"{_plain(diff['alerts_fired']['proposed'], 0)}; "
        f"{changes['changed']} accounts change band",
        file=sys.stderr,
    )
    for check in document["checks"]:
        if check["status"] == "fail":
            worse = check["worsening"]
            amount = "lost it" if worse is None else f"worse by {worse:.3f}"
            print(
                f"backtest: FAIL {check['label']}: {amount} (allowed {check['max_worsening']:g})",
                file=sys.stderr,
            )
    return 0 if document["passed"] else EXIT_WORSE

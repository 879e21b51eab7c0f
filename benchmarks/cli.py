"""``healthstream bench``: throughput, latency and memory of every stage, side by side, in one run.

Starts its own embedded broker unless ``HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS``
is set, generates one set of simulated events, and measures baseline, scorer,
core, ingest, e2e and memory on it. A measurement that cannot run fails loudly
with its reason (and a non-zero exit status); no number is ever made up.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from benchmarks.context import BenchConfig
from benchmarks.runner import MEASUREMENTS, format_table, run_benchmarks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller sizes: about a minute on an idle 2-core machine (51-61 s measured, "
        "see docs/BENCHMARKS.md), longer under load; state recovery is extrapolated",
    )
    parser.add_argument("--json", type=Path, metavar="OUT.json", help="also write results as JSON")
    parser.add_argument(
        "--only",
        metavar="NAMES",
        help="comma-separated subset of: " + ", ".join(m.name for m in MEASUREMENTS),
    )
    parser.add_argument("--events", type=int, help="number of simulated events (default by mode)")
    parser.add_argument("--accounts", type=int, help="accounts in the simulated events")
    parser.add_argument("--e2e-rate", type=float, help="offered load for e2e, events/s (2000)")
    parser.add_argument("--e2e-seconds", type=float, help="duration of the e2e load")
    parser.add_argument(
        "--memory-accounts", type=int, help="accounts whose state memory builds (100000 full)"
    )


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    config = BenchConfig.for_mode(args.quick)
    overrides = {
        "events": args.events,
        "accounts": args.accounts,
        "e2e_rate": args.e2e_rate,
        "e2e_seconds": args.e2e_seconds,
        "memory_accounts": args.memory_accounts,
    }
    return dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})


def run(args: argparse.Namespace) -> int:
    only = None
    if args.only:
        only = [name.strip() for name in args.only.split(",") if name.strip()]
        known = {m.name for m in MEASUREMENTS}
        unknown = sorted(set(only) - known)
        if unknown:
            print(f"unknown measurement(s): {', '.join(unknown)}", file=sys.stderr)
            return 2
    report = run_benchmarks(config_from_args(args), only=only)
    print(format_table(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
        print(f"results written to {args.json}", file=sys.stderr)
    return 1 if report["errors"] else 0

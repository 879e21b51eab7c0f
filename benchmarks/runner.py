"""Run the measurements one after another on one broker and one event set; print and save results.

Each measurement runs in its own event loop so that one that fails (or leaves
tasks behind) cannot distort the next; measurements never run concurrently,
because on a 2-core machine they would measure each other.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import time
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TextIO

from benchmarks.context import (
    BenchConfig,
    BenchContext,
    MeasurementUnavailable,
    cluster,
    stretch_for_load,
)
from benchmarks.events import load_events
from benchmarks.machine import describe, usable_cores
from benchmarks.progress import Progress

Measure = Callable[[BenchContext], Coroutine[Any, Any, dict[str, float]]]


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    target: float | None = None
    higher_is_better: bool = True


@dataclass(frozen=True)
class Measurement:
    name: str
    module: str
    metrics: tuple[Metric, ...]
    quick_timeout_s: float
    full_timeout_s: float


MEASUREMENTS: tuple[Measurement, ...] = (
    Measurement(
        "core",
        "benchmarks.core",
        (Metric("core_eps", "pure core, in-process", "events/s", 100_000),),
        30,
        300,
    ),
    Measurement(
        "baseline",
        "benchmarks.baseline",
        (Metric("baseline_eps", "bare aiokafka loop (ceiling)", "events/s"),),
        40,
        300,
    ),
    Measurement(
        "scorer",
        "benchmarks.scorer",
        (Metric("scorer_eps", "Faust scorer", "events/s", 10_000),),
        75,
        900,
    ),
    Measurement(
        "ingest",
        "benchmarks.ingest",
        (Metric("ingest_eps", "HTTP ingest, acknowledged", "events/s", 5_000),),
        40,
        300,
    ),
    Measurement(
        "e2e",
        "benchmarks.e2e",
        (
            Metric("e2e_p50_ms", "POST -> alert readable, p50", "ms", None, False),
            Metric("e2e_p95_ms", "POST -> alert readable, p95", "ms", None, False),
            Metric("e2e_p99_ms", "POST -> alert readable, p99", "ms", 250, False),
        ),
        110,
        600,
    ),
    Measurement(
        "memory",
        "benchmarks.memory",
        (
            Metric("bytes_per_account", "scorer state per account", "bytes", 2_048, False),
            Metric("recovery_s", "state recovery, 100k accounts", "s", 10, False),
        ),
        60,
        900,
    ),
)

BASELINE_AGAIN = "baseline-again"

RATIO = Metric("scorer_ratio", "scorer / baseline", "ratio", 0.5)

ALL_KEYS = (
    "baseline_eps",
    "scorer_eps",
    "scorer_ratio",
    "core_eps",
    "ingest_eps",
    "e2e_p50_ms",
    "e2e_p95_ms",
    "e2e_p99_ms",
    "bytes_per_account",
    "recovery_s",
)


def _run_one(measurement: Measurement, ctx: BenchContext) -> dict[str, float]:
    """Run one measurement in its own event loop, within its (load-stretched) time limit."""
    module = importlib.import_module(measurement.module)
    measure: Measure = module.measure
    base = measurement.quick_timeout_s if ctx.config.quick else measurement.full_timeout_s
    ctx.stretch = stretch_for_load(os.getloadavg()[0], usable_cores())
    timeout = base * ctx.stretch
    ctx.deadline = time.monotonic() + timeout

    async def bounded() -> dict[str, float]:
        try:
            return await asyncio.wait_for(measure(ctx), timeout)
        except TimeoutError:
            raise MeasurementUnavailable(
                f"did not finish within {timeout:.0f} s (last step: {ctx.progress.detail})"
            ) from None

    return asyncio.run(bounded())


def run_benchmarks(
    config: BenchConfig, only: list[str] | None = None, out: TextIO | None = None
) -> dict[str, Any]:
    """Run the selected measurements and return the JSON-ready report."""
    selected = [m for m in MEASUREMENTS if only is None or m.name in only]
    schedule = [(m.name, m) for m in selected]
    names = [m.name for m in selected]
    if "baseline" in names and "scorer" in names:
        # The machine's load drifts; measuring the ceiling on both sides of the
        # scorer and using the mean keeps scorer_ratio from riding that drift.
        again = next(m for m in selected if m.name == "baseline")
        schedule.insert(names.index("scorer") + 1, (BASELINE_AGAIN, again))
    progress = Progress(["events", *[stage for stage, _ in schedule]])
    results: dict[str, Any] = {key: None for key in ALL_KEYS}
    errors: dict[str, str] = {}
    tracebacks: dict[str, str] = {}
    durations: dict[str, float] = {}
    limits: dict[str, float] = {}
    started = time.monotonic()
    with cluster() as (bootstrap, embedded):
        progress.start("events")
        events = load_events(config.events, config.accounts, config.seed)
        progress.finish(f"{len(events):,} events from {events.source}")
        ctx = BenchContext(
            config=config,
            events=events,
            bootstrap_servers=bootstrap,
            embedded=embedded,
            progress=progress,
        )
        machine = describe(bootstrap, embedded)
        baseline_runs: list[float] = []
        for stage, measurement in schedule:
            progress.start(stage)
            t0 = time.monotonic()
            try:
                values = _run_one(measurement, ctx)
            except MeasurementUnavailable as exc:
                errors[stage] = str(exc)
                progress.finish(f"FAILED: {exc}")
            except Exception as exc:  # report every failure loudly, then go on
                errors[stage] = describe_failure(exc)
                tracebacks[stage] = traceback.format_exc(limit=12)
                progress.finish(f"FAILED: {errors[stage]}")
            else:
                if "baseline_eps" in values:
                    baseline_runs.append(values["baseline_eps"])
                    values["baseline_eps"] = sum(baseline_runs) / len(baseline_runs)
                results.update(values)
                progress.finish(", ".join(f"{k}={v:,.1f}" for k, v in values.items()))
            durations[stage] = round(time.monotonic() - t0, 1)
            limits[stage] = round(ctx.deadline - t0, 1)
        if len(baseline_runs) > 1:
            results["baseline_eps_runs"] = baseline_runs
            ctx.note(
                "baseline",
                "baseline_eps is the mean of runs before and after the scorer: "
                + ", ".join(f"{value:,.0f}" for value in baseline_runs),
            )
    load1 = os.getloadavg()[0]
    machine["load_average_1m_at_end"] = round(load1, 2)
    busiest = max(load1, machine["load_average_1m_at_start"])
    if busiest > machine["cores"]:
        ctx.note(
            "machine",
            f"MEASURED UNDER LOAD: load average up to {busiest:.1f} on {machine['cores']} cores "
            "(other processes competed for the CPU); expect higher numbers on an idle machine",
        )
    if results.get("scorer_eps") and results.get("baseline_eps"):
        results["scorer_ratio"] = results["scorer_eps"] / results["baseline_eps"]
    report: dict[str, Any] = dict(results)
    report.update(
        {
            "mode": "quick" if config.quick else "full",
            "measured": [m.name for m in selected],
            "events": events.describe(),
            "config": {
                "events": config.events,
                "accounts": config.accounts,
                "partitions": config.partitions,
                "e2e_rate": config.e2e_rate,
                "e2e_seconds": config.e2e_seconds,
                "memory_accounts": config.memory_accounts,
                "seed": config.seed,
            },
            "machine": machine,
            "errors": errors,
            "notes": ctx.notes,
            "tracebacks": tracebacks,
            "durations_s": durations,
            "time_limits_s": limits,
            "total_s": round(time.monotonic() - started, 1),
        }
    )
    return report


def describe_failure(exc: BaseException) -> str:
    """One line a reader can act on, naming where a bare exception came from."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 2)[-1]}:{frames[-1].lineno}" if frames else ""
    if isinstance(exc, NotImplementedError):
        return f"a dependency is still a stub (NotImplementedError{where})"
    message = str(exc) or "(no message)"
    return f"{type(exc).__name__}{where}: {message}"


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ratio":
        return f"{value:.3f}"
    if unit in ("ms", "s"):
        return f"{value:,.2f}"
    return f"{value:,.0f}"


def _status(metric: Metric, value: float | None, ran: bool) -> str:
    if value is None:
        return "FAILED" if ran else "not run"
    if metric.target is None:
        return ""
    ok = value >= metric.target if metric.higher_is_better else value <= metric.target
    return "met" if ok else "missed"


def format_table(report: dict[str, Any]) -> str:
    """A plain-text table: one row per number, with the issue's target and whether it is met."""
    rows = [("metric", "what", "value", "unit", "target", "status")]
    measured = set(report.get("measured", ()))
    for measurement in MEASUREMENTS:
        ran = measurement.name in measured
        for metric in measurement.metrics:
            rows.append(_row(metric, report.get(metric.key), ran))
            if measurement.name == "scorer":
                both = ran and "baseline" in measured
                rows.append(_row(RATIO, report.get(RATIO.key), both))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for name, reason in report.get("errors", {}).items():
        lines.append(f"FAILED {name}: {reason}")
    for name, notes in report.get("notes", {}).items():
        for note in notes:
            lines.append(f"note {name}: {note.strip()}")
    return "\n".join(lines)


def _row(metric: Metric, value: float | None, ran: bool) -> tuple[str, str, str, str, str, str]:
    target = ""
    if metric.target is not None:
        sign = ">=" if metric.higher_is_better else "<="
        target = f"{sign} {_fmt(metric.target, metric.unit)}"
    return (
        metric.key,
        metric.label,
        _fmt(value, metric.unit),
        metric.unit,
        target,
        _status(metric, value, ran),
    )

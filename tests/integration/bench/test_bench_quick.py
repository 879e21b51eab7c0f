"""``healthstream bench --quick`` end to end: the real command, its own broker, every measurement.

Asserts that every number the issue asks for is produced and is a positive,
finite number, and that the machine is described. It never asserts a speed:
speed lives in the benchmark's output and docs/BENCHMARKS.md, not in a test
that would flake on a loaded machine.

On an idle 2-core machine the run takes under 3 minutes (the JSON's
``total_s``). On a busy CI runner everything is slower, so the benchmark
stretches its own per-measurement time limits with the load average (up to
``MAX_STRETCH``), and this test's time limit only guards against a hang: it is
the sum of those stretched limits plus a margin, so the benchmark always gets
to report a slow measurement itself, with its reason, instead of being killed.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.context import MAX_STRETCH
from benchmarks.e2e import percentile
from benchmarks.runner import ALL_KEYS, MEASUREMENTS

pytestmark = pytest.mark.slow

#: Every quick measurement at its longest allowed time (the baseline runs twice), + start-up.
HANG_GUARD_S = (
    MAX_STRETCH
    * (
        sum(m.quick_timeout_s for m in MEASUREMENTS)
        + next(m.quick_timeout_s for m in MEASUREMENTS if m.name == "baseline")
    )
    + 60
)


@pytest.mark.timeout(HANG_GUARD_S + 30)
def test_quick_bench_produces_every_key(tmp_path: Path, artifacts_dir: Path) -> None:
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "healthstream.cli", "bench", "--quick", "--json", str(out)]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=HANG_GUARD_S)
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr or b""  # bytes even with text=True (subprocess docs)
        progress = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
        pytest.fail(f"bench --quick hung for {HANG_GUARD_S:.0f} s; progress:\n{progress[-3000:]}")
    (artifacts_dir / "bench-quick.txt").write_text(completed.stdout + "\n" + completed.stderr)
    assert out.exists(), f"no JSON written:\n{completed.stdout}\n{completed.stderr[-3000:]}"
    report = json.loads(out.read_text())
    (artifacts_dir / "bench-quick.json").write_text(json.dumps(report, indent=2))
    assert report["errors"] == {}, report["errors"]
    assert completed.returncode == 0, completed.stderr[-3000:]
    for key in ALL_KEYS:
        value = report[key]
        assert isinstance(value, int | float), f"{key} = {value!r}"
        assert math.isfinite(value) and value > 0, f"{key} = {value!r}"
    assert report["scorer_ratio"] == pytest.approx(report["scorer_eps"] / report["baseline_eps"])
    machine = report["machine"]
    assert machine["cores"] >= 1
    assert machine["python"].count(".") == 2
    for package in ("faust-streaming", "aiokafka", "river"):
        assert machine["versions"][package][0].isdigit(), machine["versions"]
    assert report["events"]["count"] > 0
    # Every measurement ran (the baseline twice, around the scorer).
    expected = {m.name for m in MEASUREMENTS} | {"baseline-again"}
    assert set(report["durations_s"]) == expected, report["durations_s"]
    # The printed table carries every key too.
    for key in ALL_KEYS:
        assert key in completed.stdout


def test_percentile_interpolates_and_lost_alerts_count_as_infinite() -> None:
    assert percentile([10.0, 20.0, 30.0, 40.0, 50.0], 50) == 30.0
    assert percentile([10.0, 20.0], 50) == 15.0
    assert percentile([1.0] * 99 + [math.inf], 50) == 1.0
    assert percentile([1.0] * 98 + [math.inf] * 2, 99) == math.inf

"""``healthstream demo`` as a user runs it: a foreground process in a terminal's process group.

The demo is started in a session of its own (as a shell starts a job), so that
"Ctrl-C" can be what a terminal sends: SIGINT to the whole foreground process
group, not only to the demo's own pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from healthstream.broker import free_port


def clean_env() -> dict[str, str]:
    """The environment without any ``HEALTHSTREAM_*`` setting: a fresh machine."""
    return {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSTREAM_")}


def demo_env() -> dict[str, str]:
    env = clean_env()
    for name in ("INGEST", "ALERTS", "SCORER", "TRAINER"):
        env[f"HEALTHSTREAM_{name}_PORT"] = str(free_port())
    return env


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc), whatever process group it is in."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class Demo:
    process: subprocess.Popen[str]
    banner: str
    cwd: Path

    @classmethod
    def start(cls, cwd: Path, env: dict[str, str], *args: str, timeout: float = 180) -> Demo:
        process = subprocess.Popen(
            [sys.executable, "-m", "healthstream.cli", "demo", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            banner = read_banner(process, timeout)
        except BaseException:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
        return cls(process, banner, cwd)

    def ctrl_c(self, within: float) -> tuple[str, float, set[int]]:
        """Send the terminal's SIGINT; (rest of the output, seconds until every
        process was gone, processes still there after ``within`` seconds, then killed)."""
        pids = descendants(self.process.pid) | {self.process.pid}
        started = time.monotonic()
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            rest, _ = self.process.communicate(timeout=within + 30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            rest, _ = self.process.communicate()
        while time.monotonic() - started < within and any(alive(p) for p in pids):
            time.sleep(0.05)
        took = time.monotonic() - started
        left = {p for p in pids if alive(p)}
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        return rest, took, left


def read_banner(process: subprocess.Popen[str], timeout: float) -> str:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError("demo exited before it was up:\n" + "".join(lines))
        lines.append(line)
        if line.startswith("Ctrl-C stops everything"):
            return "".join(lines)
    raise AssertionError("demo did not come up:\n" + "".join(lines))

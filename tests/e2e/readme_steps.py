"""Read the README's quickstart as a script, and run it in a shell as a user would.

Conventions the README follows (so the test can run it without a copy of it):

- the quickstart is the ``## Quickstart for a platform engineer`` section, up to
  the next heading;
- the fenced block right after ``make demo`` is what the demo prints (excerpt);
- in each ``bash`` block, ``# → text`` lines are the output of the commands above
  them, one line each, ``…`` standing for "anything"; a command without ``# →``
  lines prints nothing;
- ``dev-…`` is the demo's key; ports are the defaults 8080 (ingest), 8081 (alerts).
"""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

SECTION = "## Quickstart for a platform engineer"
ARROW = "# → "


@dataclass
class Step:
    """Commands (run in one go) and the lines they are documented to print."""

    commands: str
    expected: list[str] = field(default_factory=list)

    @property
    def read_only(self) -> bool:
        """Only GET requests: safe to repeat until what it reads has arrived."""
        lines = [line for line in self.commands.splitlines() if line.strip()]
        return bool(lines) and all(
            line.lstrip().startswith("curl -s '") and " -X " not in line and " -d " not in line
            for line in lines
        )


def quickstart(readme: Path) -> str:
    text = readme.read_text()
    start = text.index(SECTION)
    end = re.compile(r"^##+ ", re.M).search(text, start + len(SECTION))
    return text[start : end.start() if end else len(text)]


def blocks(section: str) -> list[tuple[str, str]]:
    """(info string, body) of every fenced block, bodies dedented."""
    found = []
    for match in re.finditer(r"^( *)```(\w*)\n(.*?)^\1```", section, re.S | re.M):
        indent = len(match.group(1))
        body = "".join(line[indent:] + "\n" for line in match.group(3).splitlines())
        found.append((match.group(2), body))
    return found


def steps(body: str) -> list[Step]:
    result: list[Step] = []
    pending: list[str] = []
    for line in body.splitlines():
        if line.startswith(ARROW):
            if pending:
                result.append(Step("\n".join(pending)))
                pending = []
            result[-1].expected.append(line[len(ARROW) :])
        else:
            pending.append(line)
    if any(line.strip() for line in pending):
        result.append(Step("\n".join(pending)))
    return result


def pattern(documented: str) -> re.Pattern[str]:
    """``…`` matches anything; everything else literally."""
    return re.compile(".*?".join(re.escape(part) for part in documented.split("…")), re.S)


def matches(documented: list[str], printed: list[str]) -> bool:
    return len(documented) == len(printed) and all(
        pattern(d).fullmatch(p) for d, p in zip(documented, printed, strict=True)
    )


class Shell:
    """One interactive-like bash session: variables and ``source`` carry over between steps."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            ["bash", "--norc", "--noprofile"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def run(self, commands: str, timeout: float) -> tuple[int, list[str]]:
        """Run ``commands``; (exit status of the last one, non-empty output lines)."""
        marker = f"__step_done_{uuid.uuid4().hex}__"
        assert self.process.stdin is not None
        # The leading newline ends output that has none (curl -s prints a bare body).
        self.process.stdin.write(f"{commands}\nprintf '\\n{marker} %s\\n' $?\n")
        self.process.stdin.flush()
        deadline = time.monotonic() + timeout
        output: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no end of step after {timeout} s:\n{commands}\n{output}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line.startswith(marker):
                return int(line.split()[-1]), [o for o in output if o]
            output.append(line.rstrip("\n"))

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

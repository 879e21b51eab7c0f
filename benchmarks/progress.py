"""A dependency-free progress bar for the benchmark run.

The bar is drawn on stderr so ``--json -`` style redirections of stdout stay
clean. On a terminal it redraws in place; in CI logs (not a TTY) it prints a
line when a stage starts or ends and at most every few seconds in between, so
logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, stages: list[str], stream: TextIO | None = None, width: int = 28) -> None:
        self.stages = stages
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.index = 0
        self.stage = ""
        self.fraction = 0.0
        self.detail = ""
        self.started = time.monotonic()
        self._stage_started = self.started
        self._last_draw = 0.0

    def start(self, stage: str) -> None:
        self.stage = stage
        self.index = self.stages.index(stage) if stage in self.stages else self.index
        self.fraction = 0.0
        self.detail = "starting"
        self._stage_started = time.monotonic()
        self._draw(force=True)

    def update(self, fraction: float, detail: str = "") -> None:
        self.fraction = min(max(fraction, 0.0), 1.0)
        if detail:
            self.detail = detail
        self._draw()

    def finish(self, summary: str) -> None:
        self.fraction = 1.0
        self.detail = summary
        self._draw(force=True, final=True)

    def _overall(self) -> float:
        if not self.stages:
            return 1.0
        return min(1.0, (self.index + self.fraction) / len(self.stages))

    def _line(self) -> str:
        overall = self._overall()
        filled = round(overall * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.monotonic() - self.started
        stage_elapsed = time.monotonic() - self._stage_started
        minutes, seconds = divmod(int(elapsed), 60)
        return (
            f"[{bar}] {overall * 100:3.0f}% {minutes:02d}:{seconds:02d} "
            f"{self.index + 1}/{len(self.stages)} {self.stage}: {self.detail} "
            f"({stage_elapsed:.0f}s)"
        )

    def _draw(self, force: bool = False, final: bool = False) -> None:
        now = time.monotonic()
        interval = 0.1 if self.tty else 5.0
        if not force and now - self._last_draw < interval:
            return
        self._last_draw = now
        line = self._line()
        if self.tty:
            self.stream.write("\r\x1b[2K" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

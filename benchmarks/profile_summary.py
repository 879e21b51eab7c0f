"""Summarise a py-spy profile (``--format raw``, collapsed stacks) as the top functions.

Why: a flame graph shows shape, but the docs need a few lines a reader can
compare across changes: which functions own the samples (self time) and which
subtrees are expensive (total time). Usage::

    py-spy record --format raw -o scorer.txt -- .venv/bin/healthstream bench --quick --only scorer
    .venv/bin/python -m benchmarks.profile_summary scorer.txt --top 15
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^)]*?)(?::\d+)?\)$")


def _short(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match.group("file")
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match.group('func')} ({path})"


def summarise(
    text: str, top: int, focus: str | None = None
) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """Samples, top self-time and top inclusive-time frames (only stacks through ``focus``)."""
    self_time: Counter[str] = Counter()
    total_time: Counter[str] = Counter()
    samples = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";") if f]
        if focus is not None:
            hits = [i for i, frame in enumerate(frames) if focus in frame]
            if not hits:
                continue
            frames = frames[hits[0] :]
        if not frames:
            continue
        samples += count
        self_time[frames[-1]] += count
        for frame in set(frames):
            total_time[frame] += count
    return samples, self_time.most_common(top), total_time.most_common(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path, help="py-spy --format raw output")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--focus", help="only stacks through a frame containing this text")
    args = parser.parse_args(argv)
    samples, by_self, by_total = summarise(args.profile.read_text(), args.top, args.focus)
    if not samples:
        print("no samples matched")
        return 1
    print(f"{samples} samples" + (f" under {args.focus!r}" if args.focus else ""))
    print("\nself time (where the CPU is):")
    for name, count in by_self:
        print(f"  {100 * count / samples:5.1f}%  {name}")
    print("\ntotal time (inclusive):")
    for name, count in by_total:
        print(f"  {100 * count / samples:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

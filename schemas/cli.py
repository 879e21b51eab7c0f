"""``healthstream schemas export|check``."""

from __future__ import annotations

import argparse
from pathlib import Path

from schemas.export import DEFAULT_DIR, export, render


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["export", "check"], help="write files, or diff them")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="target directory")


def run(args: argparse.Namespace) -> int:
    if args.action == "export":
        for path in export(args.dir):
            print(path)
        return 0
    stale = [
        name
        for name, text in render().items()
        if not (args.dir / name).exists() or (args.dir / name).read_text() != text
    ]
    for name in stale:
        print(f"out of date: {args.dir / name} (run: healthstream schemas export)")
    return 1 if stale else 0

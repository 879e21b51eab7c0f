"""Render py-spy collapsed stacks (``--format raw``) as a small, self-contained SVG flame graph.

Why our own: py-spy's SVG shows the whole process (imports, start-up, the
benchmark harness), which drowns the part that was measured. With ``--focus``
this draws only the stacks through one function (e.g. the scorer's batch
handler), so the graph in the docs is about the hot path. Usage::

    python -m benchmarks.flamegraph PROFILE.txt OUT.svg --focus _drain_messages --title "..."
"""

from __future__ import annotations

import argparse
import html
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.profile_summary import _short

WIDTH = 1200.0
ROW = 17
MIN_WIDTH = 0.5
PALETTE = {
    "services/": "#e8743b",
    "benchmarks/": "#e8a33b",
    "faust/": "#5b8def",
    "mode/": "#7ea6f4",
    "aiokafka/": "#4cb782",
    "asyncio/": "#b5b5b5",
}


@dataclass
class Node:
    name: str
    count: int = 0
    children: dict[str, Node] = field(default_factory=dict)


def build_tree(text: str, focus: str | None) -> Node:
    root = Node("all")
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [_short(f) for f in stack.split(";") if f]
        if focus is not None:
            hits = [i for i, frame in enumerate(frames) if focus in frame]
            if not hits:
                continue
            frames = frames[hits[0] :]
        count = int(count_text)
        node = root
        node.count += count
        for frame in frames:
            node = node.children.setdefault(frame, Node(frame))
            node.count += count
    return root


def _colour(name: str) -> str:
    for marker, colour in PALETTE.items():
        if marker in name:
            return colour
    return "#d9c36a"


def render(root: Node, title: str) -> str:
    rects: list[str] = []
    depth_max = 0

    def draw(node: Node, x: float, depth: int, scale: float) -> None:
        nonlocal depth_max
        width = node.count * scale
        if width < MIN_WIDTH:
            return
        depth_max = max(depth_max, depth)
        y = depth * ROW
        share = 100.0 * node.count / root.count
        label = html.escape(node.name)
        chars = int(width / 7)
        text = label[:chars] if chars >= 4 else ""
        rects.append(
            f"<g><title>{label} — {node.count} samples ({share:.1f}%)</title>"
            f'<rect x="{x:.1f}" y="{{Y{y}}}" width="{width:.1f}" height="{ROW - 1}" '
            f'fill="{_colour(node.name)}" rx="2"/>'
            f'<text x="{x + 3:.1f}" y="{{T{y}}}">{text}</text></g>'
        )
        child_x = x
        for child in sorted(node.children.values(), key=lambda n: -n.count):
            draw(child, child_x, depth + 1, scale)
            child_x += child.count * scale

    draw(root, 0.0, 0, WIDTH / max(root.count, 1))
    height = (depth_max + 1) * ROW + 40
    body = "\n".join(rects)
    # Icicle layout: the root on top, callees below, so the hot path reads downwards.
    for depth in range(depth_max + 1):
        y = depth * ROW
        body = body.replace(f"{{Y{y}}}", str(30 + y)).replace(f"{{T{y}}}", str(30 + y + 12))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:.0f}" height="{height}" '
        f'font-family="monospace" font-size="11">\n'
        f'<text x="4" y="18" font-size="14">{html.escape(title)} '
        f"({root.count} samples)</text>\n{body}\n</svg>\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--focus", help="only stacks through a frame containing this text")
    parser.add_argument("--title", default="flame graph")
    args = parser.parse_args(argv)
    root = build_tree(args.profile.read_text(), args.focus)
    if not root.count:
        print("no samples matched")
        return 1
    args.out.write_text(render(root, args.title))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

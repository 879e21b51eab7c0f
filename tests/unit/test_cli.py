"""The command line loads only the command that runs (start-up is CPU every process pays)."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

from healthstream.cli import COMMANDS, build_parser

_PROBE = """
import sys
from healthstream.cli import build_parser
args = build_parser(only="schemas").parse_args(["schemas", "check"])
assert args._module.__name__ == "schemas.cli", args
heavy = ("faust", "fastapi", "sqlalchemy", "river", "matplotlib")
print(",".join(m for m in heavy if m in sys.modules))
"""


def test_a_command_imports_only_its_own_module() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "", f"imported for `schemas`: {done.stdout.strip()}"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_is_listed_and_loads_when_chosen() -> None:
    for command in COMMANDS:
        subcommands = _subcommands(build_parser(only=command.name))
        assert set(subcommands) == {c.name for c in COMMANDS}
        assert subcommands[command.name].get_default("_command") is command, command.name
        others = [n for n, p in subcommands.items() if p.get_default("_command") is not None]
        assert others == [command.name]


def test_bench_quick_help_and_readme_give_the_same_duration() -> None:
    from pathlib import Path

    quick = next(
        action.help
        for action in _subcommands(build_parser(only="bench"))["bench"]._actions
        if "--quick" in action.option_strings
    )
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    (sentence,) = re.findall(r"`healthstream bench --quick` \(([^)]*)\)", readme)
    measured = re.findall(r"\d+-\d+ s", quick or "")
    assert measured and measured == re.findall(r"\d+-\d+ s", sentence), (quick, sentence)
    assert "about a minute" in (quick or "") and "about a minute" in sentence

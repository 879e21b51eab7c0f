"""The command line loads only the command that runs (start-up is CPU every process pays)."""

from __future__ import annotations

import argparse
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

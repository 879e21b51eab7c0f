"""The ``healthstream`` command.

Each subcommand lives in the module that owns it and exposes two functions,
``add_arguments(parser)`` and ``run(args) -> int``; this file only wires them up,
so a service's command line can change without touching the others.

Services that talk to Kafka get an embedded broker when no
``HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS`` is set (see :mod:`healthstream.runtime`).
Client commands (``send``, ``replay``) never do: they find the running demo or
refuse, since events published into a private broker would reach nobody.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    name: str
    module: str
    help: str
    needs_kafka: bool = False


COMMANDS = [
    Command("demo", "healthstream.demo", "run broker, all services and a simulator in one go"),
    Command("broker", "healthstream.broker_command", "run only the embedded Kafka-protocol broker"),
    Command("schemas", "schemas.cli", "export or check the JSON Schema of the contracts"),
    Command("ingest", "services.ingest.main", "run the ingest HTTP service", needs_kafka=True),
    Command("scorer", "services.scorer.main", "run a scorer worker (Faust)", needs_kafka=True),
    Command("trainer", "services.scorer.trainer", "run the churn-model trainer", needs_kafka=True),
    Command("alerts", "services.alerts.main", "run the alerts service, or migrate its database"),
    Command("send", "services.ingest.client", "send an NDJSON file to the ingest API"),
    Command("replay", "simulator.replay", "publish an NDJSON file to the topics"),
    Command("simulate", "simulator.cli", "generate realistic SaaS events (NDJSON)"),
    Command("datasets", "simulator.datasets", "convert shipped real datasets to canonical events"),
    Command("evaluate", "evaluation.cli", "replay events through the scoring core and report"),
    Command("backtest", "evaluation.backtest_cli", "compare two scorecards on history; gate CI"),
    Command("bench", "benchmarks.cli", "measure throughput, latency and memory side by side"),
]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """All commands; with ``only``, import just that command's module.

    Importing every service (Faust, FastAPI, SQLAlchemy, river, matplotlib...)
    costs more CPU than many commands need in all, so ``main`` loads only the
    one that runs; the others stay listed for ``--help``.
    """
    parser = argparse.ArgumentParser(
        prog="healthstream",
        description="Real-time customer health scores: ingest, score, alert.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        if only is not None and command.name != only:
            sub.add_parser(command.name, help=command.help)
            continue
        try:
            module = importlib.import_module(command.module)
        except ModuleNotFoundError as exc:
            # A command whose module is missing is listed but reports why when used.
            sub.add_parser(command.name, help=f"{command.help} (unavailable: {exc.name})")
            continue
        child = sub.add_parser(command.name, help=command.help, description=command.help)
        module.add_arguments(child)
        child.set_defaults(_command=command, _module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    known = {command.name for command in COMMANDS}
    parser = build_parser(only=chosen if chosen in known else None)
    args = parser.parse_args(argv)
    if not hasattr(args, "_module"):
        parser.error(f"command {args.command!r} is not available in this installation")
    from healthstream.runtime import kafka_environment

    if args._command.needs_kafka:
        with kafka_environment():
            return int(args._module.run(args) or 0)
    return int(args._module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

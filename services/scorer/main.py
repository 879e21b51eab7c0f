"""``healthstream scorer``: run one streaming-scorer worker (a Faust worker).

Start as many as there are partitions to share; Faust assigns the partitions
and moves account state (via the table changelog) when workers come and go.
"""

from __future__ import annotations

import argparse
import logging

from healthstream.logs import configure_logging
from services.scorer.settings import ScorerSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, help="web port for /metrics /healthz /readyz")
    parser.add_argument("--batch-max", type=int, help="records per processing batch")
    parser.add_argument(
        "--sweep-interval", type=float, help="seconds between timer sweeps (0 disables)"
    )


def build_settings(args: argparse.Namespace) -> ScorerSettings:
    overrides: dict[str, object] = {}
    if getattr(args, "port", None) is not None:
        overrides["scorer_port"] = args.port
    if getattr(args, "batch_max", None) is not None:
        overrides["scorer_batch_max"] = args.batch_max
    if getattr(args, "sweep_interval", None) is not None:
        overrides["scorer_sweep_interval_s"] = args.sweep_interval
    return ScorerSettings(**overrides)  # type: ignore[arg-type]


def run(args: argparse.Namespace) -> int:
    import faust

    from services.scorer.app import Scorer

    settings = build_settings(args)
    configure_logging("scorer", settings.log_level, settings.log_json)
    scorer = Scorer(settings)
    worker = faust.Worker(
        scorer.app,
        loglevel=settings.log_level,
        override_logging=False,
        redirect_stdouts=False,
        quiet=True,
    )
    # Faust's terminal spinner writes cursor escapes to stdout even when it is
    # not a terminal; log collectors expect one JSON object per line.
    worker.spinner = None
    logging.getLogger(__name__).info(
        "scorer worker starting",
        extra={"app_id": scorer.app_id, "port": settings.scorer_port},
    )
    worker.execute_from_commandline()
    return 0

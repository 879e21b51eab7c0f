"""``healthstream alerts [serve|migrate]``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from healthstream.logs import configure_logging
from services.alerts.settings import AlertsSettings

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="alerts_command", metavar="SUBCOMMAND")
    serve = sub.add_parser("serve", help="run API, consumer and webhook delivery (default)")
    migrate = sub.add_parser("migrate", help="apply database migrations and exit")
    for child in (parser, serve):
        child.add_argument("--port", type=int, default=None, help="HTTP port (alerts_port)")
        child.add_argument(
            "--no-consume", action="store_true", help="do not read Kafka (API and delivery only)"
        )
        child.add_argument(
            "--no-delivery",
            action="store_true",
            help="do not send webhooks (for extra API replicas: one deliverer per database)",
        )
    migrate.add_argument("--revision", default="head")


async def _migrate(settings: AlertsSettings, revision: str) -> None:
    from services.alerts.db import make_engine
    from services.alerts.migrate import upgrade

    engine = make_engine(settings.database_url)
    try:
        await upgrade(engine, revision)
    finally:
        await engine.dispose()


async def _serve(settings: AlertsSettings, port: int | None, consume: bool, deliver: bool) -> None:
    from services.alerts.app import serve

    async with serve(settings, port, consume=consume, deliver=deliver) as url:
        log.info("alerts service listening", extra={"url": url})
        await asyncio.Event().wait()


def run(args: argparse.Namespace) -> int:
    settings = AlertsSettings()
    configure_logging("alerts", settings.log_level, settings.log_json)
    # Alembic announces each built-in plugin at INFO when imported: noise at every start.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    if getattr(args, "alerts_command", None) == "migrate":
        asyncio.run(_migrate(settings, args.revision))
        log.info("migrations applied")
        return 0
    consume = not args.no_consume
    if consume and settings.embedded_broker:
        from healthstream.runtime import kafka_environment

        with kafka_environment():
            settings = AlertsSettings()
            return _run_server(settings, args, consume)
    return _run_server(settings, args, consume)


def _run_server(settings: AlertsSettings, args: argparse.Namespace, consume: bool) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(settings, args.port, consume, not args.no_delivery))
    return 0

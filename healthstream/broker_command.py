"""``healthstream broker``: the embedded broker alone, for running services in separate shells."""

from __future__ import annotations

import argparse
import asyncio
import signal
import threading
from pathlib import Path

from healthstream.broker import EmbeddedBroker
from healthstream.kafka import IDEMPOTENCE_SETTING, ensure_topics
from healthstream.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=9092, help="listen port (default 9092)")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument(
        "--no-topics", action="store_true", help="do not create the healthstream topics"
    )
    parser.add_argument(
        "--env-file",
        type=Path,
        default=None,
        help="also write the services' environment to this file (e.g. .env, which every "
        "service reads from its working directory)",
    )


def service_environment(bootstrap_servers: str) -> dict[str, str]:
    """What every service needs to use this broker. tansu cannot do InitProducerId."""
    return {
        "HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
        IDEMPOTENCE_SETTING: "false",
    }


def run(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with EmbeddedBroker(port=args.port, host=args.host) as broker:
        if not args.no_topics:
            settings = Settings(
                kafka_bootstrap_servers=broker.bootstrap_servers, kafka_enable_idempotence=False
            )
            created = asyncio.run(ensure_topics(settings))
            print(f"created {len(created)} topics")
        environment = service_environment(broker.bootstrap_servers)
        print(f"embedded broker on {broker.bootstrap_servers}")
        print("# run each service with this environment (the embedded broker cannot do")
        print("# idempotent producers, so services started without the second line exit):")
        for key, value in environment.items():
            print(f"export {key}={value}")
        if args.env_file is not None:
            args.env_file.write_text("".join(f"{k}={v}\n" for k, v in environment.items()))
            print(f"# also written to {args.env_file}")
        print("Ctrl-C to stop", flush=True)
        while not stop.wait(0.5):
            if not broker.running:
                print("broker exited unexpectedly")
                return 1
    return 0

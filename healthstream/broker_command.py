"""``healthstream broker``: the embedded broker alone, for running services in separate shells."""

from __future__ import annotations

import argparse
import asyncio
import signal
import threading

from healthstream.broker import EmbeddedBroker
from healthstream.kafka import ensure_topics
from healthstream.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=9092, help="listen port (default 9092)")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument(
        "--no-topics", action="store_true", help="do not create the healthstream topics"
    )


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
        print(f"embedded broker on {broker.bootstrap_servers}")
        print(f"  export HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}")
        print("  export HEALTHSTREAM_KAFKA_ENABLE_IDEMPOTENCE=false  # tansu has no InitProducerId")
        print("Ctrl-C to stop", flush=True)
        while not stop.wait(0.5):
            if not broker.running:
                print("broker exited unexpectedly")
                return 1
    return 0

"""``healthstream ingest``: run the ingest HTTP service with uvicorn."""

from __future__ import annotations

import argparse

from healthstream.logs import configure_logging
from services.ingest.settings import IngestSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="bind address (default: HEALTHSTREAM_HOST)")
    parser.add_argument(
        "--port", type=int, default=None, help="port (default: HEALTHSTREAM_INGEST_PORT, 8080)"
    )


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from services.ingest.app import create_app

    settings = IngestSettings()
    configure_logging("ingest", settings.log_level, settings.log_json)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=args.host or settings.host,
        port=args.port or settings.ingest_port,
        # Access logs off: they cost throughput and the metrics already count requests.
        access_log=False,
        log_config=None,
        server_header=False,
    )
    return 0

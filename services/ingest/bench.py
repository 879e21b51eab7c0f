"""Ingest throughput: acknowledged events per second through the HTTP API.

:func:`measure_ingest_eps` is what the benchmark suite calls; running this
module starts an embedded broker and one ``healthstream ingest`` worker (in its
own process, so the load client does not steal its CPU) and measures it:

    .venv/bin/python -m services.ingest.bench --events 100000 --concurrency 4
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from services.ingest.client import IngestClient


async def measure_ingest_eps(
    base_url: str,
    api_key: str,
    events: Sequence[dict[str, Any]],
    concurrency: int,
    batch_size: int = 1000,
    compress: bool = False,
) -> float:
    """Send ``events`` with ``concurrency`` requests in flight; return acknowledged events/s.

    Events are serialised before the clock starts, so the figure is the server's
    (validation, dedupe, publish with acks=all), not the load client's JSON speed.
    Only events the server reports as ``accepted`` count; use unique event ids.
    """
    lines = [orjson.dumps(e) for e in events]
    batches = [lines[i : i + batch_size] for i in range(0, len(lines), batch_size)]
    queue: asyncio.Queue[list[bytes]] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)
    accepted = 0

    async with IngestClient(
        base_url, api_key, compress=compress, concurrency=concurrency, batch_size=batch_size
    ) as client:

        async def worker() -> None:
            nonlocal accepted
            while not queue.empty():
                batch = queue.get_nowait()
                answer, _ = await client.send_lines(batch)
                accepted += int(answer["accepted"])

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return accepted / elapsed if elapsed > 0 else 0.0


def synthetic_events(count: int, accounts: int = 500) -> list[dict[str, Any]]:
    """Realistic-sized usage events with unique ids (so none is a duplicate)."""
    run = uuid.uuid4().hex[:8]
    return [
        {
            "event_id": f"bench-{run}-{i}",
            "account_id": f"acct-{i % accounts:05d}",
            "type": "usage",
            "name": "feature.used",
            "occurred_at": "2024-05-01T12:00:00.123Z",
            "properties": {"feature": f"feature-{i % 40}", "user_id": f"user-{i % 5000}"},
        }
        for i in range(count)
    ]


def _main() -> int:
    from healthstream.broker import EmbeddedBroker, free_port
    from healthstream.kafka import ensure_topics
    from healthstream.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--gzip", action="store_true")
    args = parser.parse_args()

    key = f"bench-{uuid.uuid4().hex}"
    port = free_port()
    with EmbeddedBroker() as broker:
        env = {
            **os.environ,
            "HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "HEALTHSTREAM_KAFKA_ENABLE_IDEMPOTENCE": "false",
            "HEALTHSTREAM_API_KEYS": f"{key}:ingest",
            "HEALTHSTREAM_INGEST_PORT": str(port),
            "HEALTHSTREAM_LOG_LEVEL": "WARNING",
        }
        settings = Settings(kafka_bootstrap_servers=broker.bootstrap_servers, _env_file=None)
        asyncio.run(ensure_topics(settings))
        server = subprocess.Popen(
            [sys.executable, "-m", "healthstream.cli", "ingest", "--port", str(port)], env=env
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    print("ingest server did not become ready", file=sys.stderr)
                    return 1
                time.sleep(0.2)
            warmup = synthetic_events(2_000)
            asyncio.run(measure_ingest_eps(url, key, warmup, args.concurrency, args.batch_size))
            events = synthetic_events(args.events)
            eps = asyncio.run(
                measure_ingest_eps(url, key, events, args.concurrency, args.batch_size, args.gzip)
            )
        finally:
            server.terminate()
            server.wait(10)
    print(
        f"ingest: {eps:,.0f} acknowledged events/s "
        f"({args.events} events, batch {args.batch_size}, concurrency {args.concurrency}, "
        f"gzip {args.gzip}, one worker)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(_main())

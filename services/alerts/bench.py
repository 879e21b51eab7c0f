"""Load check of the alerts consumer: a scorer-like stream of health updates and alerts.

Why it exists: at 2,000 ingested events/s the scorer publishes a health update
for nearly every event and an alert now and then; the alerts service must store
and stream each alert within a few hundred milliseconds however many health
updates surround it. This drives a real ``healthstream alerts serve`` process
(its own interpreter, as in production) over the real broker and database:

- open loop, in 50 ms ticks: ``health_rate`` health updates/s spread over
  ``accounts`` accounts (event time = now, realistic size with drivers);
- every ``alert_interval`` s one new alert (fresh id) on a random account;
- latency of an alert = the producer handing it to Kafka -> the alert arriving
  on ``GET /v1/stream`` (published only after its row is committed);
- ``health_drain_s`` = the end of the load -> every account's newest health
  readable through ``GET /v1/accounts`` (how far the health writer lags).

An alert that never arrives counts as infinite latency. Run it with
``python -m services.alerts.bench --help``; it prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from healthstream.broker import EmbeddedBroker, free_port
from healthstream.kafka import ensure_topics, make_producer
from healthstream.settings import Settings

ADMIN_KEY = "bench-admin"


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def health_value(account_id: str, score: float, now: datetime) -> bytes:
    """A health update shaped like the scorer's (five drivers with sentences)."""
    band = "green" if score > 75 else "yellow" if score > 50 else "red"
    drivers = [
        {
            "feature": feature,
            "component": component,
            "contribution": round(random.uniform(-20, 5), 2),
            "sentence": sentence,
        }
        for feature, component, sentence in (
            ("usage_trend", "usage", "usage down 38% vs the previous 4 weeks"),
            ("days_inactive", "engagement", "no logins for 6 days"),
            ("open_tickets", "support", "3 tickets open, 1 past SLA"),
            ("payment_failures_30d", "billing", "1 failed payment in 30 days"),
            ("nps", "sentiment", "last NPS answer 5 (detractor)"),
        )
    ]
    value = {
        "account_id": account_id,
        "as_of": _stamp(now),
        "score": score,
        "band": band,
        "churn_probability": round(1 - score / 100, 4),
        "components": {
            "usage": score,
            "engagement": score,
            "support": 70.0,
            "billing": 85.0,
            "sentiment": 60.0,
            "lifecycle": 75.0,
        },
        "drivers": drivers,
        "model_version": "scorecard-v1+river-bench",
    }
    return orjson.dumps(value)


def alert_value(alert_id: str, account_id: str, now: datetime) -> bytes:
    return orjson.dumps(
        {
            "alert_id": alert_id,
            "dedupe_key": f"{account_id}:payment_failed:{alert_id}",
            "account_id": account_id,
            "reason": "payment_failed",
            "severity": "warning",
            "score": 41.0,
            "previous_score": 63.0,
            "drivers": [
                {
                    "feature": "payment_failures_30d",
                    "component": "billing",
                    "contribution": -22.0,
                    "sentence": "1 failed payment in 30 days",
                }
            ],
            "occurred_at": _stamp(now),
            "csm": None,
            "message": f"{account_id}: payment failed",
        }
    )


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation; ``inf`` (lost alerts) sorts last and wins the high ones."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q
    low, high = math.floor(rank), math.ceil(rank)
    if ordered[high] == math.inf:
        return math.inf
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@contextlib.contextmanager
def _broker(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


@contextlib.contextmanager
def _service(settings: Settings, database_url: str, port: int, workdir: Path) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSTREAM_")}
    env.update(
        {
            "HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "HEALTHSTREAM_KAFKA_ENABLE_IDEMPOTENCE": "false",
            "HEALTHSTREAM_TOPIC_PREFIX": settings.topic_prefix,
            "HEALTHSTREAM_PARTITIONS": str(settings.partitions),
            "HEALTHSTREAM_DATABASE_URL": database_url,
            "HEALTHSTREAM_API_KEYS": f"{ADMIN_KEY}:admin",
            "HEALTHSTREAM_ALERTS_CONSUMER_GROUP": f"bench-{uuid.uuid4().hex[:8]}",
            "HEALTHSTREAM_LOG_LEVEL": "WARNING",
            "HEALTHSTREAM_ALERTS_PORT": str(port),
        }
    )
    with (workdir / "alerts.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "healthstream.cli", "alerts", "serve"],
            env=env,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _ready(client: httpx.AsyncClient, url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get(f"{url}/readyz")).status_code == 200:
                return
        await asyncio.sleep(0.2)
    raise RuntimeError("the alerts service did not become ready")


@contextlib.asynccontextmanager
async def _arrivals(url: str) -> AsyncIterator[dict[str, float]]:
    """alert_id -> monotonic arrival time on the SSE stream (first sighting)."""
    seen: dict[str, float] = {}
    connected = asyncio.Event()

    async def follow() -> None:
        async with (
            httpx.AsyncClient(timeout=None) as client,
            client.stream(
                "GET", f"{url}/v1/stream", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
            ) as response,
        ):
            response.raise_for_status()
            async for line in response.aiter_lines():
                connected.set()
                if line.startswith("data: "):
                    alert_id = orjson.loads(line[6:])["alert_id"]
                    seen.setdefault(alert_id, time.monotonic())

    task = asyncio.create_task(follow())
    await asyncio.wait_for(connected.wait(), 30)
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await task


async def _offer(
    settings: Settings,
    accounts: list[str],
    health_rate: float,
    alert_interval: float,
    seconds: float,
) -> tuple[dict[str, float], dict[str, str], int]:
    """Open-loop load; returns alert send times, each account's last as_of, health count."""
    producer = make_producer(settings)
    await producer.start()
    sent: dict[str, float] = {}
    last_as_of: dict[str, str] = {}
    health_count = 0
    tick = 0.05
    start = time.monotonic()
    next_alert = start
    carry = 0.0
    try:
        while (now := time.monotonic()) - start < seconds:
            carry += health_rate * tick
            batch, carry = int(carry), carry - int(carry)
            moment = datetime.now(UTC)
            for _ in range(batch):
                account = random.choice(accounts)
                await producer.send(
                    settings.topics.account_health,
                    health_value(account, round(random.uniform(20, 95), 1), moment),
                    key=account.encode(),
                )
                last_as_of[account] = _stamp(moment)
                health_count += 1
            while now >= next_alert:
                account = random.choice(accounts)
                alert_id = f"bench-{uuid.uuid4().hex[:12]}"
                sent[alert_id] = time.monotonic()
                await producer.send(
                    settings.topics.risk_alerts,
                    alert_value(alert_id, account, datetime.now(UTC)),
                    key=account.encode(),
                )
                next_alert += alert_interval
            start_of_next = start + tick * (int((time.monotonic() - start) / tick) + 1)
            await asyncio.sleep(max(0.0, start_of_next - time.monotonic()))
        await producer.flush()
    finally:
        await producer.stop()
    return sent, last_as_of, health_count


async def _health_drained(
    client: httpx.AsyncClient, url: str, last_as_of: dict[str, str], timeout: float
) -> float | None:
    """Seconds until every account's newest health is readable, None if never."""
    start = time.monotonic()
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    while time.monotonic() - start < timeout:
        items = (
            await client.get(f"{url}/v1/accounts", params={"limit": 500}, headers=headers)
        ).json()["items"]
        stored = {item["account_id"]: item["health"]["as_of"] for item in items if item["health"]}
        if all(
            account in stored and _same_instant(stored[account], as_of)
            for account, as_of in last_as_of.items()
        ):
            return time.monotonic() - start
        await asyncio.sleep(0.1)
    return None


def _store_batches(exposition: str) -> dict[str, dict[str, float]]:
    """Per consumer kind: fetches stored and mean seconds per fetch (from /metrics)."""
    found: dict[str, dict[str, float]] = {}
    for line in exposition.splitlines():
        for suffix in ("_count", "_sum"):
            name = f"healthstream_alerts_store_batch_seconds{suffix}{{"
            if line.startswith(name):
                kind = line.split('kind="', 1)[1].split('"', 1)[0]
                found.setdefault(kind, {})[suffix[1:]] = float(line.rsplit(" ", 1)[1])
    return {
        kind: {
            "fetches": values.get("count", 0.0),
            "mean_ms": round(1000 * values.get("sum", 0.0) / max(1.0, values.get("count", 0.0)), 1),
        }
        for kind, values in found.items()
    }


def _store_lag(exposition: str) -> dict[str, float]:
    """Cumulative counts of the service's own Kafka -> stored histogram, by upper bound."""
    prefix = "healthstream_alerts_store_lag_seconds_bucket{"
    return {
        line.split('le="', 1)[1].split('"', 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith(prefix)
    }


def _same_instant(a: str, b: str) -> bool:
    return datetime.fromisoformat(a) == datetime.fromisoformat(b)


async def run(
    *,
    bootstrap: str | None,
    database_url: str | None,
    health_rate: float,
    alert_interval: float,
    seconds: float,
    n_accounts: int,
    partitions: int,
    wait: float,
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="healthstream-alerts-bench-"))
    db_url = database_url or f"sqlite+aiosqlite:///{workdir / 'alerts.db'}"
    with _broker(bootstrap) as servers:
        settings = Settings(
            kafka_bootstrap_servers=servers,
            kafka_enable_idempotence=False,
            topic_prefix=f"bench{uuid.uuid4().hex[:8]}-",
            partitions=partitions,
            _env_file=None,
        )
        await ensure_topics(settings)
        accounts = [f"acct-{n:04d}" for n in range(n_accounts)]
        port = free_port()
        load_start = os.getloadavg()
        with _service(settings, db_url, port, workdir) as url:
            async with httpx.AsyncClient(timeout=30) as client:
                await _ready(client, url)
                async with _arrivals(url) as seen:
                    sent, last_as_of, health_count = await _offer(
                        settings, accounts, health_rate, alert_interval, seconds
                    )
                    deadline = time.monotonic() + wait
                    while time.monotonic() < deadline and not set(sent) <= set(seen):
                        await asyncio.sleep(0.05)
                    arrived = dict(seen)
                drain = await _health_drained(client, url, last_as_of, wait)
                exposition = (await client.get(f"{url}/metrics")).text
        latencies = [
            (arrived[alert_id] - at) * 1000 if alert_id in arrived else math.inf
            for alert_id, at in sent.items()
        ]
        return {
            "database": db_url.split(":", 1)[0],
            "offered_health_per_s": health_rate,
            "health_updates": health_count,
            "alerts": len(sent),
            "lost_alerts": sum(1 for v in latencies if v == math.inf),
            "alert_p50_ms": round(percentile(latencies, 0.5), 1),
            "alert_p95_ms": round(percentile(latencies, 0.95), 1),
            "alert_p99_ms": round(percentile(latencies, 0.99), 1),
            "alert_max_ms": round(max(latencies), 1) if latencies else None,
            "health_drain_s": None if drain is None else round(drain, 2),
            "store_batches": _store_batches(exposition),
            "store_lag_buckets": _store_lag(exposition),
            "seconds": seconds,
            "accounts": n_accounts,
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg(),
            "service_log": str(workdir / "alerts.log"),
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: embedded broker)")
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument(
        "--postgres",
        metavar="DSN",
        help="create a scratch database on this PostgreSQL server "
        "(e.g. postgresql://postgres@127.0.0.1:5432/test), use it, drop it",
    )
    parser.add_argument("--health-rate", type=float, default=2000.0, help="health updates/s")
    parser.add_argument("--alert-interval", type=float, default=0.1, help="s between alerts")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--accounts", type=int, default=400)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--wait", type=float, default=60.0, help="max wait after the load")
    args = parser.parse_args(argv)
    result = asyncio.run(_with_database(args))
    print(json.dumps(result, indent=2))


async def _with_database(args: argparse.Namespace) -> dict[str, Any]:
    """Run, on a scratch PostgreSQL database when ``--postgres`` asks for one."""
    if not args.postgres:
        return await _run(args, args.database_url)
    import asyncpg

    name = f"hs_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(args.postgres)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base = args.postgres.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        return await _run(args, f"{base}/{name}")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _run(args: argparse.Namespace, database_url: str | None) -> dict[str, Any]:
    return await run(
        bootstrap=args.bootstrap,
        database_url=database_url,
        health_rate=args.health_rate,
        alert_interval=args.alert_interval,
        seconds=args.seconds,
        n_accounts=args.accounts,
        partitions=args.partitions,
        wait=args.wait,
    )


if __name__ == "__main__":
    main()

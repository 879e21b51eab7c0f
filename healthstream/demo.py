"""``healthstream demo``: the whole product on one machine with zero configuration.

Starts the embedded broker (unless one is configured), the ingest, scorer,
trainer and alerts services as child processes (exactly the commands a
Kubernetes pod runs), waits until each is ready, then feeds simulated accounts
through the public ingest API so the alerts page fills up.

While it runs, ``<data dir>/demo.json`` says where it is (see
:mod:`healthstream.running_demo`), so ``healthstream send`` and ``replay`` run
from the same directory reach this demo rather than a broker of their own.

Ctrl-C stops all, in dependency order: the simulated feed first, then the
services that produce events before those that consume them, the broker last.
The children run in their own process groups, so the terminal's Ctrl-C reaches
only this process, which then stops them one group at a time.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from healthstream import running_demo
from healthstream.prometheus import PrometheusError, PrometheusServer
from healthstream.settings import Scope, Settings
from healthstream.stack import PortInUse, ServiceStack

#: Ctrl-C to every process gone (well inside the 5 s a user waits); the services
#: share it in stop order, Prometheus (a reader only) gets a fixed slice first.
STOP_SECONDS = 3.5
PROMETHEUS_STOP_SECONDS = 0.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--accounts", type=int, default=40, help="simulated accounts to feed")
    parser.add_argument("--days", type=int, default=60, help="days of simulated history")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--no-feed", action="store_true", help="start the services but send no simulated events"
    )
    parser.add_argument(
        "--with-prometheus",
        action="store_true",
        help="also run Prometheus (/usr/bin/prometheus) scraping the services, with the "
        "shipped alert rules, and print its URL",
    )
    parser.add_argument(
        "--exit-after",
        type=float,
        default=None,
        help="stop by itself after this many seconds (for scripted checks)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="SQLite file, logs and demo.json (HEALTHSTREAM_DEMO_DIR, else .healthstream-demo)",
    )


def dev_keys(settings: Settings) -> tuple[str, str]:
    """(value for HEALTHSTREAM_API_KEYS, a key to print for curl).

    Configured keys are used as they are; otherwise a fresh development key with
    every scope is made, so the demo never runs with a well-known secret.
    """
    configured = os.environ.get("HEALTHSTREAM_API_KEYS", "").strip()
    if configured and settings.api_keys:
        usable = [k for k in settings.api_keys if k.allows(Scope.INGEST)] or settings.api_keys
        return configured, usable[0].key
    key = "dev-" + secrets.token_urlsafe(12)
    return f"{key}:admin", key


def shifted_simulation(accounts: int, days: int, seed: int) -> Iterator[dict[str, Any]]:
    """Simulated history moved so that it ends now: the demo looks live."""
    from simulator import generate

    events = list(generate(accounts=accounts, days=days, seed=seed))
    if not events:
        return
    parse = datetime.fromisoformat
    last = max(parse(e["occurred_at"].replace("Z", "+00:00")) for e in events)
    shift = datetime.now(UTC) - last - timedelta(minutes=1)
    for event in events:
        at = parse(event["occurred_at"].replace("Z", "+00:00")) + shift
        yield {**event, "occurred_at": at.isoformat().replace("+00:00", "Z"), "source": "demo"}


def feed(
    ingest_url: str,
    key: str,
    events: Iterator[dict[str, Any]],
    stop: threading.Event | None = None,
) -> int:
    """POST ``events`` in batches; returns how many were sent before ``stop`` was set."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}
    sent = 0
    batch: list[bytes] = []
    with httpx.Client(timeout=60.0) as client:

        def flush() -> None:
            nonlocal sent
            response = client.post(ingest_url, content=b"\n".join(batch), headers=headers)
            response.raise_for_status()
            sent += len(batch)
            batch.clear()

        for event in events:
            if stop is not None and stop.is_set():
                return sent
            batch.append(orjson.dumps(event))
            if len(batch) == 1000:
                flush()
        if batch and not (stop is not None and stop.is_set()):
            flush()
    return sent


def banner(stack: ServiceStack, key: str, prometheus: str | None = None) -> str:
    ingest, alerts = stack.url("ingest"), stack.url("alerts")
    metrics = f"\n  prometheus    {prometheus}" if prometheus else ""
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return f"""
healthstream is up.
  broker        {stack.bootstrap_servers}
  ingest API    {ingest}/docs
  alerts page   {alerts}/#key={key}
  alerts API    {alerts}/v1/alerts
  scorer        {stack.url("scorer")}/metrics{metrics}
  API key       {key}

Try it (a failed payment raises an alert within seconds):
  curl -s -X POST {ingest}/v1/events -H 'Authorization: Bearer {key}' \\
    -H 'Content-Type: application/json' -d '{{"event_id":"demo-1","account_id":"acme",
    "type":"billing","name":"payment.failed","occurred_at":"{now}",
    "properties":{{"amount":499,"currency":"USD"}}}}'
  curl -s '{alerts}/v1/alerts?account_id=acme' -H 'Authorization: Bearer {key}'

Ctrl-C stops everything."""


def _demo_routing(data_dir: Path) -> Path:
    """A routing file naming the simulated CSMs, so Assign on the page has someone to pick."""
    from simulator.generator import CSMS

    path = data_dir / "routing.toml"
    names = ", ".join(f'"{csm}"' for csm in CSMS)
    path.write_text(f"# written by healthstream demo\ncsms = [{names}]\n")
    return path


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    data_dir: Path = args.data_dir or running_demo.default_dir()
    keys_env, key = dev_keys(settings)
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        "HEALTHSTREAM_API_KEYS": keys_env,
        "HEALTHSTREAM_DATABASE_URL": os.environ.get(
            "HEALTHSTREAM_DATABASE_URL",
            f"sqlite+aiosqlite:///{(data_dir / 'alerts.db').resolve()}",
        ),
        "HEALTHSTREAM_LOG_JSON": os.environ.get("HEALTHSTREAM_LOG_JSON", "false"),
        "HEALTHSTREAM_ALERTS_ROUTING_PATH": os.environ.get(
            "HEALTHSTREAM_ALERTS_ROUTING_PATH", str(_demo_routing(data_dir))
        ),
    }
    stack = ServiceStack(log_dir=data_dir, env=env, host=settings.host)
    print(f"starting broker and services (logs in {data_dir}/) ...", flush=True)
    try:
        stack.start()
    except PortInUse as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopped.", flush=True)
        return 130
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        print(f"demo: {first} (logs in {data_dir}/)", file=sys.stderr)
        return 1
    prometheus: PrometheusServer | None = None
    if args.with_prometheus:
        try:
            prometheus = PrometheusServer(data_dir / "prometheus", stack.metrics_targets()).start()
        except PrometheusError as exc:
            stack.stop(timeout=STOP_SECONDS)
            print(f"demo: {exc}", file=sys.stderr)
            return 1
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        return _serve(args, stack, key, data_dir, settings, stop, prometheus)
    finally:
        running_demo.remove(data_dir, os.getpid())
        if prometheus is not None:
            prometheus.stop(timeout=PROMETHEUS_STOP_SECONDS)
        killed = stack.stop(timeout=STOP_SECONDS)
        if killed:
            print(f"demo: killed {', '.join(killed)} (did not stop in time)", file=sys.stderr)
        print("stopped.", flush=True)


def _serve(
    args: argparse.Namespace,
    stack: ServiceStack,
    key: str,
    data_dir: Path,
    settings: Settings,
    stop: threading.Event,
    prometheus: PrometheusServer | None,
) -> int:
    running_demo.RunningDemo(
        pid=os.getpid(),
        bootstrap_servers=str(stack.bootstrap_servers),
        kafka_enable_idempotence=stack.broker is None and settings.kafka_enable_idempotence,
        topic_prefix=settings.topic_prefix,
        ingest_url=stack.url("ingest"),
        alerts_url=stack.url("alerts"),
        api_key=key,
    ).write(data_dir)
    print(banner(stack, key, prometheus.url if prometheus else None), flush=True)
    if not args.no_feed:
        events = shifted_simulation(args.accounts, args.days, args.seed)
        sent = feed(f"{stack.url('ingest')}/v1/events", key, events, stop)
        if not stop.is_set():
            print(f"fed {sent} simulated events for {args.accounts} accounts", flush=True)
    started = time.monotonic()
    while not stop.wait(0.1):
        dead = stack.check_alive()
        if dead:
            print(f"demo: {dead} exited; see {data_dir}/{dead}.log", file=sys.stderr)
            return 1
        if args.exit_after is not None and time.monotonic() - started > args.exit_after:
            break
    return 0

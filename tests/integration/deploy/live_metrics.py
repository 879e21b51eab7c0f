"""Start the real services, push one traced event through them, and collect what
their ``/metrics`` export and what they logged.

The services are started exactly as a pod starts them (``healthstream <command>``
child processes with ``HEALTHSTREAM_*`` variables, via
:class:`healthstream.stack.ServiceStack`) against an embedded broker. Before the
scrape, one ``payment.failed`` event goes in through ingest; the scorer raises
a risk alert and the alerts service delivers it to two local webhook receivers
(third parties, so a recording HTTP server stands in): one answers 204, one
answers 500 until the delivery is given up. The scrape then sees metrics with
real samples (latency histograms, deliveries, failures, dead letters), and the
logs hold the ids of that one event, alert and account.

A service whose command module is not installed is reported as unavailable
rather than silently ignored, so the dashboard test names what it could not check.
"""

from __future__ import annotations

import importlib.util
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from healthstream.broker import free_port
from healthstream.cli import COMMANDS
from healthstream.stack import ServiceStack

SERVICES = ("ingest", "scorer", "trainer", "alerts")
API_KEY = "deploy-test-key"
#: Series Prometheus itself creates for every target; no service exports them.
SYNTHETIC = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

_TYPE_LINE = re.compile(r"^# TYPE (\S+) (\S+)$")
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{|\s)")


def command_available(service: str) -> bool:
    """Is ``healthstream <service>`` installed (its module importable)?"""
    (command,) = [c for c in COMMANDS if c.name == service]
    try:
        return importlib.util.find_spec(command.module) is not None
    except ModuleNotFoundError:
        return False


def exported_names(exposition: str) -> set[str]:
    """Every series name a Prometheus server would store from this scrape.

    Families come from ``# TYPE`` lines, so a labelled metric that has not been
    observed yet (no samples) still counts: it is exported, just empty.
    """
    names: set[str] = set()
    for line in exposition.splitlines():
        type_match = _TYPE_LINE.match(line)
        if type_match:
            name, kind = type_match.groups()
            names.add(name)
            if kind == "counter":
                base = name.removesuffix("_total")
                names |= {f"{base}_total", f"{base}_created"}
            elif kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum", f"{name}_created"}
            elif kind == "summary":
                names |= {f"{name}_count", f"{name}_sum", f"{name}_created"}
            elif kind == "info":
                names.add(f"{name}_info")
            continue
        if line and not line.startswith("#"):
            sample = _SAMPLE.match(line)
            if sample:
                names.add(sample.group(1))
    return names


@dataclass
class Trace:
    """The one event pushed through the stack, and what became of it."""

    event_id: str
    account_id: str
    #: Webhook paths the alerts service called, in order (``/ok``, ``/broken``).
    received: list[str] = field(default_factory=list)


@dataclass
class Scrape:
    """What each running service exported and logged; ``unavailable`` could not be started."""

    exported: dict[str, set[str]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    unavailable: list[str] = field(default_factory=list)
    logs: dict[str, list[str]] = field(default_factory=dict)
    trace: Trace | None = None

    def all_names(self) -> set[str]:
        return set().union(*self.exported.values()) if self.exported else set()


class Receiver:
    """Local webhook receiver: ``/ok`` answers 204, anything else 500 (a broken CRM)."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.paths.append(self.path)
                self.send_response(204 if self.path == "/ok" else 500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _routing(receiver: Receiver) -> str:
    return f"""default_owner = "cs-team"

[[webhooks]]
name = "crm-ok"
owner = "*"
url = "{receiver.url}/ok"
format = "json"
secret = "deploy-test-webhook-secret"

[[webhooks]]
name = "crm-broken"
owner = "*"
url = "{receiver.url}/broken"
format = "json"
secret = "deploy-test-webhook-secret"
"""


def _get_metrics(url: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    with httpx.Client(timeout=5.0) as client:
        while time.monotonic() < deadline:
            try:
                response = client.get(url)
                if response.status_code == 200:
                    return response.text
                last_error = RuntimeError(f"{url} answered {response.status_code}")
            except httpx.HTTPError as exc:
                last_error = exc
            time.sleep(0.3)
    raise RuntimeError(f"no metrics from {url}: {last_error}")


@contextmanager
def running_services(
    workdir: Path, receiver: Receiver, timeout: float = 180.0
) -> Iterator[tuple[ServiceStack, dict[str, str]]]:
    """The available services on free ports; yields the stack and each /metrics URL."""
    available = tuple(s for s in SERVICES if command_available(s))
    trainer_port = free_port()
    routing = workdir / "routing.toml"
    routing.write_text(_routing(receiver))
    env = {
        "HEALTHSTREAM_API_KEYS": f"{API_KEY}:admin",
        "HEALTHSTREAM_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'alerts.db'}",
        "HEALTHSTREAM_TRAINER_PORT": str(trainer_port),
        "HEALTHSTREAM_PARTITIONS": "2",
        "HEALTHSTREAM_LOG_JSON": "true",
        "HEALTHSTREAM_SCORER_DATA_DIR": str(workdir / "scorer-data"),
        "HEALTHSTREAM_SCORER_SESSION_TIMEOUT_S": "10",
        "HEALTHSTREAM_ALERTS_ROUTING_PATH": str(routing),
        "HEALTHSTREAM_ALERTS_DELIVERY_MAX_ATTEMPTS": "2",
        "HEALTHSTREAM_ALERTS_DELIVERY_BACKOFF_BASE": "0.2",
    }
    stack = ServiceStack(services=available, log_dir=workdir, env=env, free_ports=True)
    with stack:
        urls = {name: f"{stack.url(name)}/metrics" for name in available if name in stack.ports}
        if "trainer" in available:
            urls["trainer"] = f"http://{stack.host}:{trainer_port}/metrics"
        stack.wait_ready(timeout)
        yield stack, urls


def push_traced_event(stack: ServiceStack, receiver: Receiver, timeout: float) -> Trace:
    """One payment.failed event in; wait until its alert was delivered and given up.

    Delivered on ``/ok``; on ``/broken`` it fails twice (the maximum attempts) and
    is dead-lettered, so both outcomes are observed and logged.
    """
    trace = Trace(event_id=f"evt-{uuid.uuid4().hex}", account_id=f"acct-{uuid.uuid4().hex[:8]}")
    event = {
        "event_id": trace.event_id,
        "account_id": trace.account_id,
        "type": "billing",
        "name": "payment.failed",
        "occurred_at": datetime.now(UTC).isoformat(),
        "properties": {"amount": 499.0, "currency": "USD"},
    }
    response = httpx.post(
        f"{stack.url('ingest')}/v1/events",
        json=event,
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    )
    response.raise_for_status()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "/ok" in receiver.paths and receiver.paths.count("/broken") >= 2:
            break
        time.sleep(0.3)
    trace.received = list(receiver.paths)
    return trace


def read_logs(workdir: Path, services: list[str]) -> dict[str, list[str]]:
    return {
        service: [
            line
            for line in (workdir / f"{service}.log").read_text(errors="replace").splitlines()
            if line.strip()
        ]
        for service in services
        if (workdir / f"{service}.log").exists()
    }


def scrape(workdir: Path, timeout: float = 180.0) -> Scrape:
    result = Scrape(unavailable=[s for s in SERVICES if not command_available(s)])
    with Receiver() as receiver, running_services(workdir, receiver, timeout) as (stack, urls):
        if {"ingest", "scorer", "alerts"} <= set(urls):
            result.trace = push_traced_event(stack, receiver, timeout=90.0)
        for service, url in urls.items():
            text = _get_metrics(url, timeout=60.0)
            result.texts[service] = text
            result.exported[service] = exported_names(text)
    # Stopped: every line is flushed.
    result.logs = read_logs(workdir, [s for s in SERVICES if s not in result.unavailable])
    return result


def parse_log_lines(lines: list[str]) -> list[dict[str, Any]]:
    """JSON objects, one per line; a line that is not one raises ValueError naming it."""
    entries = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"not a JSON log line: {line[:300]!r}") from exc
        if not isinstance(entry, dict):
            raise ValueError(f"not a JSON object: {line[:300]!r}")
        entries.append(entry)
    return entries

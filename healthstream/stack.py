"""Run healthstream services as child processes, exactly as a pod runs them.

Used by ``healthstream demo``, the end-to-end tests and the benchmarks, so all
three exercise the real command lines, ports and environment variables.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from healthstream.broker import EmbeddedBroker, free_port

#: Shutdown order: what produces events stops before what consumes them, the
#: broker after all of them, so no service is left talking to a broker that is gone.
STOP_ORDER: tuple[tuple[str, ...], ...] = (("ingest",), ("scorer", "trainer"), ("alerts",))
DEFAULT_PORTS = {"ingest": 8080, "alerts": 8081, "scorer": 8082}
#: Services that serve only ``/metrics`` (no ``/readyz`` to wait for).
METRICS_ONLY_PORTS = {"trainer": 8083}


class PortInUse(RuntimeError):
    """A port a service needs is taken; names the port and the setting that moves it."""

    def __init__(self, host: str, port: int, variable: str) -> None:
        self.port = port
        self.variable = variable
        super().__init__(
            f"port {port} on {host} is already in use (another demo?): stop what uses it, "
            f"or set {variable} to a free port"
        )


def check_port_free(host: str, port: int, variable: str) -> None:
    """Bind and release ``port``; raises :class:`PortInUse` if something listens there."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(host, port, variable) from None
            raise


def _own_group_and_die_with_parent() -> None:
    """Child pre-exec hook: a terminal's Ctrl-C reaches only the parent, which stops
    the children in :data:`STOP_ORDER`; PR_SET_PDEATHSIG ends a child whose parent died."""
    os.setpgid(0, 0)
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


@dataclass
class ServiceProcess:
    name: str
    process: subprocess.Popen[bytes]
    ready_url: str | None
    log_path: Path


@dataclass
class ServiceStack:
    """Broker (embedded unless ``bootstrap_servers`` is given) plus chosen services.

    ``free_ports=True`` picks unused ports so several stacks (tests, benchmarks)
    can run beside a demo on the fixed default ports.
    """

    services: tuple[str, ...] = ("ingest", "scorer", "trainer", "alerts")
    log_dir: Path = Path(".healthstream-demo")
    env: dict[str, str] = field(default_factory=dict)
    bootstrap_servers: str | None = None
    free_ports: bool = False
    host: str = "127.0.0.1"
    broker: EmbeddedBroker | None = None
    children: list[ServiceProcess] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)

    def check_ports(self) -> None:
        """Fail before anything starts if a service's port is taken (see :class:`PortInUse`)."""
        if self.free_ports:
            return
        env = {**os.environ, **self.env}
        defaults = {**DEFAULT_PORTS, **METRICS_ONLY_PORTS}
        for name in self.services:
            if name in defaults:
                variable = f"HEALTHSTREAM_{name.upper()}_PORT"
                port = int(env.get(variable, defaults[name]))
                if port:
                    check_port_free(self.host, port, variable)

    def _environment(self) -> dict[str, str]:
        env = {**os.environ, **self.env}
        if self.bootstrap_servers:
            env["HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS"] = self.bootstrap_servers
        elif not env.get("HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS"):
            self.broker = EmbeddedBroker().start()
            env["HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS"] = self.broker.bootstrap_servers
            env["HEALTHSTREAM_KAFKA_ENABLE_IDEMPOTENCE"] = "false"
        self.bootstrap_servers = env["HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS"]
        for name, default in DEFAULT_PORTS.items():
            variable = f"HEALTHSTREAM_{name.upper()}_PORT"
            port = free_port(self.host) if self.free_ports else int(env.get(variable, default))
            env[variable] = str(port)
            self.ports[name] = port
        for name, default in METRICS_ONLY_PORTS.items():
            variable = f"HEALTHSTREAM_{name.upper()}_PORT"
            if variable in env:
                port = int(env[variable])
            else:
                port = free_port(self.host) if self.free_ports else default
            env[variable] = str(port)
            if port and name in self.services:
                self.metrics_ports[name] = port
        env["HEALTHSTREAM_HOST"] = self.host
        return env

    def metrics_targets(self) -> dict[str, str]:
        """``host:port`` of every running service's ``/metrics``, by service name."""
        ports = {
            **{n: p for n, p in self.ports.items() if n in self.services},
            **self.metrics_ports,
        }
        return {name: f"{self.host}:{port}" for name, port in ports.items()}

    def url(self, service: str) -> str:
        return f"http://{self.host}:{self.ports[service]}"

    def start(self, timeout: float = 120.0) -> ServiceStack:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.check_ports()
        env = self._environment()
        for name in self.services:
            log_path = self.log_dir / f"{name}.log"
            ready = f"{self.url(name)}/readyz" if name in self.ports else None
            self.children.append(
                ServiceProcess(name, self._spawn(name, env, log_path), ready, log_path)
            )
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
        with log_path.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "healthstream.cli", name],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_own_group_and_die_with_parent,
            )

    def restart(self, name: str, timeout: float = 120.0) -> None:
        """Kill one service hard (SIGKILL, as an OOM kill would) and start it again."""
        env = self._environment_for_restart()
        for child in self.children:
            if child.name == name:
                child.process.kill()
                child.process.wait()
                child.process = self._spawn(name, env, child.log_path)
        self.wait_ready(timeout)

    def _environment_for_restart(self) -> dict[str, str]:
        env = {**os.environ, **self.env}
        env["HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS"] = str(self.bootstrap_servers)
        if self.broker is not None:
            env["HEALTHSTREAM_KAFKA_ENABLE_IDEMPOTENCE"] = "false"
        for name, port in {**self.ports, **self.metrics_ports}.items():
            env[f"HEALTHSTREAM_{name.upper()}_PORT"] = str(port)
        env["HEALTHSTREAM_HOST"] = self.host
        return env

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = [c for c in self.children if c.ready_url]
        with httpx.Client(timeout=2.0) as client:
            while pending:
                for child in list(pending):
                    if child.process.poll() is not None:
                        tail = child.log_path.read_text(errors="replace")[-3000:]
                        raise RuntimeError(
                            f"{child.name} exited with {child.process.returncode}:\n{tail}"
                        )
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(str(child.ready_url)).status_code == 200:
                            pending.remove(child)
                if time.monotonic() > deadline:
                    names = ", ".join(c.name for c in pending)
                    raise RuntimeError(f"not ready after {timeout:.0f}s: {names}")
                time.sleep(0.3)

    def check_alive(self) -> str | None:
        """Name of a service that has exited, if any."""
        for child in self.children:
            if child.process.poll() is not None:
                return child.name
        return None

    def stop(self, timeout: float = 30.0) -> list[str]:
        """Stop the services in :data:`STOP_ORDER`, then the broker, all within ``timeout``.

        Each group gets SIGTERM (a graceful stop: offsets committed, producers
        flushed) and what is left of the budget, less a reserve for the groups
        after it; a service still running then is killed. Returns the names of
        the killed services.
        """
        deadline = time.monotonic() + timeout
        known = {name for group in STOP_ORDER for name in group}
        groups = [*STOP_ORDER, tuple(c.name for c in self.children if c.name not in known)]
        killed: list[str] = []
        for index, group in enumerate(groups):
            members = [c for c in self.children if c.name in group]
            for child in members:
                if child.process.poll() is None:
                    child.process.terminate()
            # All that remains, less a reserve for each later group and the broker.
            reserve = min(0.5, timeout / 10) * (len(groups) - index)
            group_deadline = deadline - reserve
            for child in members:
                try:
                    child.process.wait(max(0.0, group_deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.process.kill()
                    child.process.wait()
                    killed.append(child.name)
        self.children.clear()
        if self.broker is not None:
            self.broker.stop(timeout=max(0.5, deadline - time.monotonic()))
            self.broker = None
        return killed

    def __enter__(self) -> ServiceStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

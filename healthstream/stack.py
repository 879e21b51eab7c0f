"""Run healthstream services as child processes, exactly as a pod runs them.

Used by ``healthstream demo``, the end-to-end tests and the benchmarks, so all
three exercise the real command lines, ports and environment variables.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from healthstream.broker import EmbeddedBroker, free_port


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

    def _environment(self) -> dict[str, str]:
        env = {**os.environ, **self.env}
        if self.bootstrap_servers:
            env["HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS"] = self.bootstrap_servers
        elif not env.get("HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS"):
            self.broker = EmbeddedBroker().start()
            env["HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS"] = self.broker.bootstrap_servers
            env["HEALTHSTREAM_KAFKA_ENABLE_IDEMPOTENCE"] = "false"
        self.bootstrap_servers = env["HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS"]
        defaults = {"ingest": 8080, "alerts": 8081, "scorer": 8082}
        for name, default in defaults.items():
            variable = f"HEALTHSTREAM_{name.upper()}_PORT"
            port = free_port(self.host) if self.free_ports else int(env.get(variable, default))
            env[variable] = str(port)
            self.ports[name] = port
        env["HEALTHSTREAM_HOST"] = self.host
        return env

    def url(self, service: str) -> str:
        return f"http://{self.host}:{self.ports[service]}"

    def start(self, timeout: float = 120.0) -> ServiceStack:
        self.log_dir.mkdir(parents=True, exist_ok=True)
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
        for name, port in self.ports.items():
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

    def stop(self) -> None:
        for child in self.children:
            if child.process.poll() is None:
                child.process.terminate()
        for child in self.children:
            try:
                child.process.wait(15)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        self.children.clear()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def __enter__(self) -> ServiceStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

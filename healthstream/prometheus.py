"""A real Prometheus server (Debian's ``/usr/bin/prometheus``) scraping a local stack.

Why the real server: the dashboards and alert rules are PromQL, and only
Prometheus says whether a query returns data and a rule evaluates. The scrape
configuration gives each target the labels the Prometheus Operator gives a pod
(``job`` = the service, ``namespace``), so the shipped dashboards and rules
(``deploy/grafana``, ``deploy/prometheus``) run unchanged.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx

from healthstream.broker import free_port

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "prometheus" / "healthstream.rules.yaml"
#: The label the dashboards' ``$namespace`` variable selects on.
NAMESPACE = "healthstream-demo"


class PrometheusError(RuntimeError):
    pass


def binary() -> Path:
    found = os.environ.get("HEALTHSTREAM_PROMETHEUS_BINARY") or shutil.which("prometheus")
    path = Path(found or "/usr/bin/prometheus")
    if not os.access(path, os.X_OK):
        raise PrometheusError(
            f"no Prometheus server at {path}: bash scripts/install-system-packages.sh installs it"
        )
    return path


def scrape_config(targets: dict[str, str], interval_s: float, rules: Path = RULES) -> str:
    """prometheus.yml (JSON is YAML) with one job per service, as the ServiceMonitors do."""
    interval = f"{max(1, round(interval_s))}s"
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [target], "labels": {"namespace": NAMESPACE}}],
            }
            for job, target in sorted(targets.items())
        ],
    }
    return json.dumps(config, indent=2)


def _own_group_and_die_with_parent() -> None:
    os.setpgid(0, 0)
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class PrometheusServer:
    """``prometheus`` on a free loopback port, its data and log under ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        targets: dict[str, str],
        interval_s: float = 2.0,
        host: str = "127.0.0.1",
    ) -> None:
        self.data_dir = data_dir
        self.targets = targets
        self.interval_s = interval_s
        self.host = host
        self.port = free_port(host)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "prometheus.yml"
        config.write_text(scrape_config(self.targets, self.interval_s))
        log_path = self.data_dir / "prometheus.log"
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(binary()),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
                    f"--web.listen-address={self.host}:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_own_group_and_die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise PrometheusError(f"prometheus exited; see {log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200:
                    return self
            if time.monotonic() > deadline:
                self.stop()
                raise PrometheusError(f"prometheus not ready after {timeout:.0f} s")
            time.sleep(0.2)

    def stop(self, timeout: float = 5.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

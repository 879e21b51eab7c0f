"""Run real healthstream services (child processes) against a measurement's topics.

Uses :class:`healthstream.stack.ServiceStack`, the same launcher as the demo and
the end-to-end tests, so the benchmark exercises the real command lines, ports
and environment variables, with each service in its own process as in a pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from benchmarks.context import BenchContext, MeasurementUnavailable
from healthstream.settings import Settings
from healthstream.stack import ServiceStack

INGEST_KEY = "bench-ingest-key"
READ_KEY = "bench-admin-key"

_COMMANDS = {
    "ingest": "services.ingest.main",
    "scorer": "services.scorer.main",
    "alerts": "services.alerts.main",
}


def _check_available(services: tuple[str, ...]) -> None:
    import importlib

    for name in services:
        module = _COMMANDS[name]
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MeasurementUnavailable(
                f"`healthstream {name}` is not available yet ({module}: {exc})"
            ) from None


@contextlib.asynccontextmanager
async def running_services(
    ctx: BenchContext,
    settings: Settings,
    services: tuple[str, ...],
    timeout: float,
    extra_env: dict[str, str] | None = None,
) -> AsyncIterator[ServiceStack]:
    """Start ``services`` on free ports for ``settings``' topics; stop them afterwards."""
    _check_available(services)
    workdir = Path(tempfile.mkdtemp(prefix="healthstream-bench-"))
    env = ctx.service_env(settings)
    env.update(
        {
            "HEALTHSTREAM_API_KEYS": f"{INGEST_KEY}:ingest,{READ_KEY}:admin",
            "HEALTHSTREAM_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'alerts.db'}",
            "HEALTHSTREAM_LOG_JSON": "true",
            "HEALTHSTREAM_SCORER_DATA_DIR": str(workdir / "scorer-data"),
        }
    )
    env.update(extra_env or {})
    stack = await _start(services, workdir, env, settings.kafka_bootstrap_servers, timeout)
    try:
        yield stack
    finally:
        await asyncio.to_thread(stack.stop)


async def _start(
    services: tuple[str, ...],
    workdir: Path,
    env: dict[str, str],
    bootstrap_servers: str,
    timeout: float,
    attempts: int = 3,
) -> ServiceStack:
    """Start the stack; retry with new ports if another process took a free port first."""
    for attempt in range(1, attempts + 1):
        stack = ServiceStack(
            services=services,
            log_dir=workdir / f"logs-{attempt}",
            env=env,
            bootstrap_servers=bootstrap_servers,
            free_ports=True,
        )
        try:
            await asyncio.to_thread(stack.start, timeout)
        except RuntimeError as exc:
            if "address already in use" in str(exc) and attempt < attempts:
                continue
            raise RuntimeError(f"services did not start (logs in {workdir}): {exc}") from exc
        return stack
    raise AssertionError("unreachable")


def raise_if_exited(stack: ServiceStack) -> None:
    """A service that died mid-measurement fails it, with the end of that service's log."""
    name = stack.check_alive()
    if name is None:
        return
    child = next(c for c in stack.children if c.name == name)
    tail = child.log_path.read_text(errors="replace")[-1500:]
    raise RuntimeError(f"{name} exited with {child.process.returncode}; log tail:\n{tail}")

"""Supervised background tasks: restarted with backoff, counted, and seen by ``/healthz``.

Why: a service whose consumer task died keeps answering HTTP and looks alive
while doing nothing. Every long-running background task of every service runs
under a :class:`Supervisor` instead of a bare ``asyncio.create_task``:

- a task that raises (or returns, which a long-running task never should) is
  restarted after the delay of :mod:`healthstream.retry`'s policy, counted in
  ``healthstream_<service>_task_restarts_total{task}``;
- the streak of failures is forgotten once the task has run for
  ``stable_after_s`` without failing;
- a task failing for longer than ``unhealthy_after_s`` (or once with a
  :attr:`fatal` error, which no retry can fix: a configuration the cluster
  refuses) makes :meth:`liveness` report it, and ``/healthz`` then answers 503,
  so the orchestrator restarts the process; ``healthstream_<service>_task_up{task}``
  is 0 meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import tenacity
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from healthstream import retry

log = logging.getLogger(__name__)

#: Defaults, overridable per service (``HEALTHSTREAM_TASK_UNHEALTHY_AFTER_S``).
UNHEALTHY_AFTER_S = 120.0
STABLE_AFTER_S = 30.0


class TaskExited(RuntimeError):
    """A long-running task returned although nobody asked it to stop."""


@dataclass
class TaskState:
    name: str
    #: Failures in the current streak (0: healthy).
    failures: int = 0
    failing_since: float | None = None
    started_at: float = 0.0
    running: bool = False
    fatal: bool = False
    last_error: str | None = None


_METRICS: dict[tuple[int, str], tuple[Counter, Gauge]] = {}


def _metrics(service: str, registry: CollectorRegistry) -> tuple[Counter, Gauge]:
    """One pair per (registry, service): several supervisors may share a process in tests."""
    key = (id(registry), service)
    if key not in _METRICS:
        restarts = Counter(
            f"healthstream_{service}_task_restarts",
            "Background task failures, each followed by a restart after backoff.",
            ["task"],
            registry=registry,
        )
        up = Gauge(
            f"healthstream_{service}_task_up",
            "1 while a background task runs or recovers; 0 once its failure persists.",
            ["task"],
            registry=registry,
        )
        _METRICS[key] = (restarts, up)
    return _METRICS[key]


class Supervisor:
    """Runs a service's background tasks and answers whether they are alive."""

    #: Errors retrying cannot fix: the task stops and liveness fails at once.
    fatal: tuple[type[BaseException], ...] = ()

    def __init__(
        self,
        service: str,
        *,
        unhealthy_after_s: float = UNHEALTHY_AFTER_S,
        stable_after_s: float = STABLE_AFTER_S,
        base_s: float = retry.BASE_S,
        cap_s: float = retry.CAP_S,
        fatal: tuple[type[BaseException], ...] = (),
        stopping: Callable[[], bool] = lambda: False,
        registry: CollectorRegistry = REGISTRY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.unhealthy_after_s = unhealthy_after_s
        self.stable_after_s = stable_after_s
        self.base_s = base_s
        self.cap_s = cap_s
        self.fatal = fatal
        #: True once the owner asked its tasks to finish: a return is then no failure.
        self.stopping = stopping
        self.clock = clock
        self.states: dict[str, TaskState] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.restarts, self.up = _metrics(service, registry)

    def start(self, name: str, factory: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Run ``factory()`` as a supervised task (kept here, so it is never collected)."""
        task = asyncio.create_task(self.run(name, factory), name=name)
        self.tasks.append(task)
        return task

    async def run(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        """Run ``factory()`` in the current task until cancelled, restarting it on failure."""
        state = self.states.setdefault(name, TaskState(name))
        self.up.labels(name).set(1)
        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception(
                lambda exc: isinstance(exc, Exception) and not isinstance(exc, self.fatal)
            ),
            stop=tenacity.stop_never,
            # The streak, not tenacity's attempt count: a stable run resets the backoff.
            wait=lambda _rs: retry.delay(state.failures, self.base_s, self.cap_s),
            after=lambda rs: self._failed(state, rs),
            before_sleep=lambda rs: self._log_restart(state, rs),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._once(state, factory)
        except self.fatal as exc:
            state.fatal = True
            state.last_error = f"{type(exc).__name__}: {exc}"
            self.up.labels(name).set(0)
            log.error(
                "background task %s stopped: %s", name, exc, extra={"task": name}, exc_info=exc
            )

    async def _once(self, state: TaskState, factory: Callable[[], Awaitable[None]]) -> None:
        state.started_at = self.clock()
        state.running = True
        try:
            await factory()
        finally:
            state.running = False
        if self.stopping():
            return
        raise TaskExited(f"{state.name} returned")

    def _failed(self, state: TaskState, rs: tenacity.RetryCallState) -> None:
        now = self.clock()
        if state.failing_since is None or now - state.started_at >= self.stable_after_s:
            state.failures, state.failing_since = 0, now
        state.failures += 1
        exc = rs.outcome.exception() if rs.outcome is not None else None
        state.last_error = f"{type(exc).__name__}: {exc}"[:500]
        self.restarts.labels(state.name).inc()
        self.up.labels(state.name).set(1 if self._alive(state, now) else 0)

    def _log_restart(self, state: TaskState, rs: tenacity.RetryCallState) -> None:
        exc = rs.outcome.exception() if rs.outcome is not None else None
        sleep = rs.next_action.sleep if rs.next_action is not None else 0.0
        log.error(
            "background task %s failed (%d in a row); restarting in %.1fs",
            state.name,
            state.failures,
            sleep,
            extra={"task": state.name, "failures": state.failures},
            exc_info=exc,
        )

    def _alive(self, state: TaskState, now: float) -> bool:
        if state.fatal:
            return False
        stable = state.running and now - state.started_at >= self.stable_after_s
        if stable and state.failing_since is not None:
            state.failures, state.failing_since = 0, None
        if state.failing_since is None:
            return True
        return now - state.failing_since < self.unhealthy_after_s

    def liveness(self) -> dict[str, bool]:
        """Task name -> alive; False once its failure persisted or was fatal."""
        now = self.clock()
        alive = {}
        for name, state in self.states.items():
            alive[name] = self._alive(state, now)
            self.up.labels(name).set(1 if alive[name] else 0)
        return alive

    def errors(self) -> dict[str, str]:
        """The last error of every task that is not alive (for ``/healthz``'s body)."""
        alive = self.liveness()
        return {
            name: state.last_error or "failing"
            for name, state in self.states.items()
            if not alive[name]
        }

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("background task %s failed while stopping", task.get_name())
        self.tasks.clear()

"""The supervisor restarts failing background tasks, counts them, and fails /healthz
once a failure persists; the retry policy backs off exponentially, jittered, capped."""

from __future__ import annotations

import asyncio
import random

import httpx
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from healthstream import retry
from healthstream.http import probes_router
from healthstream.kafka import IdempotenceUnsupported, KafkaConfigurationError
from healthstream.supervisor import Supervisor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def supervisor(clock: Clock, registry: CollectorRegistry, **options: object) -> Supervisor:
    return Supervisor(
        "svc",
        unhealthy_after_s=60.0,
        stable_after_s=10.0,
        base_s=0.001,
        cap_s=0.002,
        registry=registry,
        clock=clock,
        **options,  # type: ignore[arg-type]
    )


def sample(registry: CollectorRegistry, name: str, task: str) -> float:
    value = registry.get_sample_value(name, {"task": task})
    assert value is not None, f"{name}{{task={task!r}}} not exported"
    return value


async def wait_until(predicate, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(2000):
        if predicate():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_transient_failure_is_restarted_and_counted() -> None:
    registry, clock = CollectorRegistry(), Clock()
    sup = supervisor(clock, registry)
    calls = 0
    steady = asyncio.Event()

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise ConnectionError(f"broker away ({calls})")
        steady.set()
        await asyncio.Event().wait()

    sup.start("consumer", flaky)
    await asyncio.wait_for(steady.wait(), 5)
    assert calls == 3
    assert sample(registry, "healthstream_svc_task_restarts_total", "consumer") == 2
    assert sup.liveness() == {"consumer": True}
    assert sample(registry, "healthstream_svc_task_up", "consumer") == 1
    await sup.stop()


async def test_a_failure_that_persists_fails_liveness_and_a_stable_run_forgives() -> None:
    registry, clock = CollectorRegistry(), Clock()
    sup = supervisor(clock, registry)
    healthy = False
    attempts = 0

    async def broken() -> None:
        nonlocal attempts
        attempts += 1
        if not healthy:
            raise OSError("database gone")
        await asyncio.Event().wait()

    sup.start("outbox", broken)
    await wait_until(lambda: attempts >= 3, "three attempts")
    assert sup.liveness() == {"outbox": True}  # failing, but not for long yet
    clock.now += 61
    await wait_until(lambda: attempts >= 5, "more attempts")
    assert sup.liveness() == {"outbox": False}
    assert sup.errors() == {"outbox": "OSError: database gone"}
    assert sample(registry, "healthstream_svc_task_up", "outbox") == 0
    healthy = True
    await wait_until(lambda: sup.states["outbox"].running, "a running attempt")
    assert sup.liveness() == {"outbox": False}  # not stable yet
    clock.now += 11
    assert sup.liveness() == {"outbox": True}
    assert sup.states["outbox"].failures == 0
    assert sample(registry, "healthstream_svc_task_restarts_total", "outbox") == attempts - 1
    await sup.stop()


async def test_a_fatal_error_stops_the_task_and_fails_liveness_at_once() -> None:
    registry, clock = CollectorRegistry(), Clock()
    sup = supervisor(clock, registry, fatal=(KafkaConfigurationError,))
    attempts = 0

    async def misconfigured() -> None:
        nonlocal attempts
        attempts += 1
        raise IdempotenceUnsupported("set HEALTHSTREAM_KAFKA_ENABLE_IDEMPOTENCE=false")

    task = sup.start("consumer", misconfigured)
    await asyncio.wait_for(task, 5)
    assert attempts == 1
    assert sup.liveness() == {"consumer": False}
    assert "HEALTHSTREAM_KAFKA_ENABLE_IDEMPOTENCE" in sup.errors()["consumer"]
    app = FastAPI()

    async def ready() -> dict[str, bool]:
        return {}

    app.include_router(probes_router(ready, registry=registry, liveness=sup.errors))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        answer = await client.get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["status"] == "failing"
    assert "HEALTHSTREAM_KAFKA_ENABLE_IDEMPOTENCE" in answer.json()["tasks"]["consumer"]


async def test_a_task_that_returns_is_restarted_unless_its_owner_is_stopping() -> None:
    registry, clock = CollectorRegistry(), Clock()
    stopping = False
    sup = supervisor(clock, registry, stopping=lambda: stopping)
    runs = 0

    async def returns() -> None:
        nonlocal runs, stopping
        runs += 1
        if runs == 3:
            stopping = True

    await asyncio.wait_for(sup.run("loop", returns), 5)
    assert runs == 3
    assert sample(registry, "healthstream_svc_task_restarts_total", "loop") == 2
    assert "TaskExited" in (sup.states["loop"].last_error or "")


@given(st.integers(1, 40), st.floats(0.01, 5), st.floats(5, 120))
def test_retry_delay_is_exponential_jittered_and_capped(
    attempt: int, base: float, cap: float
) -> None:
    rng = random.Random(attempt)
    ceiling = min(cap, base * 2 ** (attempt - 1))
    delays = [retry.delay(attempt, base, cap, rng) for _ in range(20)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 1

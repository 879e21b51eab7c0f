"""``e2e``: latency from a POST to ingest until the resulting alert is readable via the API.

Real ``healthstream ingest``, ``scorer`` and ``alerts`` processes run on this
measurement's topics. A load client offers background usage traffic at a fixed
rate (open loop: a slow server does not slow the sender down, so queueing shows
up as latency, as it would for real clients). Mixed into that traffic, every
``PROBE_INTERVAL_S`` a probe account that has never been seen before sends
events that deterministically raise an alert (see :func:`probe_events`). The
clock starts just before the POST that carries the probe and stops when the
alert for that account arrives on the alerts service's Server-Sent Events
stream, which publishes an alert only once it is stored, i.e. readable through
``GET /v1/alerts``.

A probe whose alert never arrives counts as infinitely slow: it can only make
the percentiles worse, never disappear from them.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from benchmarks.context import BenchContext
from benchmarks.e2e_stages import LoopLag, follow_alerts, summarise, wall
from benchmarks.group_progress import GroupProgress
from benchmarks.group_progress import describe as describe_groups
from benchmarks.services import INGEST_KEY, READ_KEY, raise_if_exited, running_services
from healthstream.kafka import ensure_topics
from healthstream.stack import ServiceStack

NAME = "e2e"
#: The embedded broker completes a new group's first join only after half the
#: session timeout (15 s with the scorer's default 30 s; measured 3/5/10/15 s for
#: 6/10/20/30 s). Start-up is outside every figure, so the scorer gets the 10 s
#: session its own throughput benchmark uses: 10 s less of the quick run's budget.
FAST_JOIN_ENV = {
    "HEALTHSTREAM_SCORER_SESSION_TIMEOUT_S": "10",
    "HEALTHSTREAM_SCORER_HEARTBEAT_INTERVAL_S": "1",
}
TICK_S = 0.05
PROBE_INTERVAL_S = 0.1
MAX_IN_FLIGHT = 64


@dataclass
class Probe:
    """One probe account; ``*_wall`` stamps (``time.time()``) locate where its latency goes."""

    account_id: str
    posted_at: float | None = None
    seen_at: float | None = None
    warmup: bool = False
    #: ingest answered 202: the events are acknowledged by the broker.
    acked_wall: float | None = None
    posted_wall: float | None = None
    #: CreateTime of the alert record: when the scorer handed it to its producer.
    produced_wall: float | None = None
    #: when the benchmark's own reader of ``risk-alerts`` could fetch the alert.
    in_kafka_wall: float | None = None
    #: ``created_at`` of the stored alert (the alerts service's insert).
    stored_wall: float | None = None
    seen_wall: float | None = None

    @property
    def latency_ms(self) -> float:
        if self.posted_at is None or self.seen_at is None:
            return math.inf
        return (self.seen_at - self.posted_at) * 1000.0


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def probe_events(account_id: str, now: str) -> list[dict[str, Any]]:
    """Events that make the scorer raise an alert for a fresh account.

    A failed payment is an alert rule of its own (reason ``payment_failed``)
    that fires on the first failure of an account, whatever its score.
    """
    return [
        {
            "event_id": f"{account_id}-created",
            "account_id": account_id,
            "type": "account",
            "name": "account.created",
            "occurred_at": now,
            "source": "bench",
            "properties": {"plan": "growth", "mrr": 900.0},
        },
        {
            "event_id": f"{account_id}-payment-failed",
            "account_id": account_id,
            "type": "billing",
            "name": "payment.failed",
            "occurred_at": now,
            "source": "bench",
            "properties": {"amount": 900.0, "currency": "USD"},
        },
    ]


class Background:
    """Endless live traffic made from the shared events: fresh ids, event time = now."""

    def __init__(self, events: list[dict[str, Any]], run: str) -> None:
        self.events = events
        self.run = run
        self.position = 0

    def take(self, count: int, now: str) -> list[dict[str, Any]]:
        batch = []
        for _ in range(count):
            source = self.events[self.position % len(self.events)]
            event = dict(source)
            event["event_id"] = f"{source['event_id']}@{self.run}-{self.position}"
            event["occurred_at"] = now
            batch.append(event)
            self.position += 1
        return batch


@dataclass
class ClientStats:
    """What the load client had to work around: said in the notes, never hidden."""

    post_retries: int = 0
    stream_reconnects: int = 0


async def listen(
    client: httpx.AsyncClient,
    url: str,
    probes: dict[str, Probe],
    connected: asyncio.Event,
    stats: ClientStats,
) -> None:
    """Follow the alerts SSE stream and stamp the arrival of each probe's first alert.

    The service closes the stream of a subscriber that falls 1,000 alerts
    behind, and a connection can break; we reconnect at once, and a probe whose
    alert fell into such a gap simply counts as not arrived (never as fast).
    """
    while True:
        try:
            async with client.stream(
                "GET", url, params={"api_key": READ_KEY}, timeout=httpx.Timeout(10.0, read=None)
            ) as response:
                response.raise_for_status()
                connected.set()
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    arrived = time.perf_counter()
                    try:
                        alert = orjson.loads(line[5:].strip())
                    except orjson.JSONDecodeError:
                        continue
                    probe = probes.get(alert.get("account_id", ""))
                    if probe is not None and probe.seen_at is None:
                        probe.seen_at = arrived
                        probe.seen_wall = time.time()
                        probe.stored_wall = wall(alert.get("created_at"))
        except httpx.TransportError:
            if not connected.is_set():
                raise
        stats.stream_reconnects += 1
        await asyncio.sleep(0.1)


def raise_if_stopped(listener: asyncio.Task[None]) -> None:
    if listener.done():
        error = listener.exception()
        raise RuntimeError(f"the alerts stream listener stopped: {error!r}")


#: Attempts for one POST whose connection broke (the server closed an idle
#: keep-alive connection as we reused it, say). Safe: ingest dedupes by event id.
TRANSPORT_ATTEMPTS = 5


async def post_batch(
    client: httpx.AsyncClient,
    url: str,
    batch: list[dict[str, Any]],
    probe: Probe | None,
    stats: ClientStats | None = None,
) -> int:
    """POST one batch; retry on 503 backpressure and broken connections.

    The waits count as latency, as they would for a real client. A retry of a
    batch the server did take is answered as duplicates, never published twice.
    """
    body = orjson.dumps(batch)
    headers = {"Authorization": f"Bearer {INGEST_KEY}", "Content-Type": "application/json"}
    if probe is not None:
        probe.posted_at = time.perf_counter()
        probe.posted_wall = time.time()
    broken = 0
    for _ in range(50):
        try:
            response = await client.post(url, content=body, headers=headers)
        except httpx.TransportError:
            broken += 1
            if stats is not None:
                stats.post_retries += 1
            if broken >= TRANSPORT_ATTEMPTS:
                raise
            await asyncio.sleep(0.05)
            continue
        if response.status_code == 202:
            if probe is not None:
                probe.acked_wall = time.time()
            return len(batch)
        if response.status_code in (429, 503):
            await asyncio.sleep(float(response.headers.get("Retry-After", "0.05") or 0.05))
            continue
        raise RuntimeError(f"ingest answered {response.status_code}: {response.text[:300]}")
    raise RuntimeError("ingest kept answering 503 for 50 retries")


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile; ``inf`` values (lost alerts) sort last."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    if ordered[high] == math.inf:
        return math.inf if rank > low or ordered[low] == math.inf else ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


async def _warm_up(
    client: httpx.AsyncClient,
    url: str,
    probes: dict[str, Probe],
    run: str,
    timeout: float,
    pipeline: Pipeline,
) -> float:
    """Send a probe every half second until one alert comes back: the pipeline is live."""
    deadline = time.perf_counter() + timeout
    index = 0
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        raise_if_exited(pipeline.stack)
        probe = Probe(f"warmup-{run}-{index}", warmup=True)
        probes[probe.account_id] = probe
        await post_batch(client, url, probe_events(probe.account_id, _now_text()), probe)
        index += 1
        for _ in range(10):
            await asyncio.sleep(0.05)
            if any(p.seen_at is not None for p in probes.values()):
                return time.perf_counter() - started
    raise RuntimeError(
        f"no alert came back within {timeout:.0f} s of warm-up probes ({index} sent); "
        f"pipeline: {await pipeline.state()}"
    )


async def offer_load(
    ctx: BenchContext,
    client: httpx.AsyncClient,
    url: str,
    probes: dict[str, Probe],
    run: str,
    stats: ClientStats,
) -> tuple[int, float]:
    """Offer ``rate`` events/s for ``seconds``; return (events sent, seconds taken to send)."""
    config = ctx.config
    background = Background(ctx.events.events, run)
    per_tick = config.e2e_rate * TICK_S
    ticks = int(config.e2e_seconds / TICK_S)
    probe_every = max(1, round(PROBE_INTERVAL_S / TICK_S))
    limiter = asyncio.Semaphore(MAX_IN_FLIGHT)
    tasks: list[asyncio.Task[int]] = []
    owed = 0.0
    started = time.perf_counter()

    async def send(batch: list[dict[str, Any]], probe: Probe | None) -> int:
        try:
            return await post_batch(client, url, batch, probe, stats)
        finally:
            limiter.release()

    for tick in range(ticks):
        delay = started + tick * TICK_S - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        now = _now_text()
        owed += per_tick
        count = int(owed)
        owed -= count
        probe = None
        if tick % probe_every == 0:
            probe = Probe(f"probe-{run}-{tick:06d}")
            probes[probe.account_id] = probe
            events = probe_events(probe.account_id, now)
            count = max(0, count - len(events))
            batch = background.take(count, now) + events
        else:
            batch = background.take(count, now)
        await limiter.acquire()
        tasks.append(asyncio.create_task(send(batch, probe)))
        ctx.progress.update(0.4 + 0.5 * tick / ticks, f"offering {config.e2e_rate:,.0f} ev/s")
    sent = sum(await asyncio.gather(*tasks))
    return sent, time.perf_counter() - started


async def measure(ctx: BenchContext) -> dict[str, float]:
    settings = ctx.settings(NAME)
    await ensure_topics(settings)
    run = uuid.uuid4().hex[:6]
    probes: dict[str, Probe] = {}
    ctx.progress.update(0.02, "starting ingest, scorer and alerts")
    services = ("ingest", "scorer", "alerts")
    started = time.perf_counter()
    topics = settings.topics
    groups = GroupProgress(settings, [topics.account, topics.account_health, topics.risk_alerts])
    await groups.start()
    try:
        async with running_services(
            ctx, settings, services, 90 * ctx.stretch, extra_env=FAST_JOIN_ENV
        ) as stack:
            startup_s = time.perf_counter() - started
            ingest_url = f"{stack.url('ingest')}/v1/events"
            stream_url = f"{stack.url('alerts')}/v1/stream"
            # Idle connections are dropped before uvicorn's 5 s keep-alive timeout:
            # reusing one the server is closing breaks the request (ReadError).
            limits = httpx.Limits(max_connections=MAX_IN_FLIGHT + 4, keepalive_expiry=2.0)
            stats = ClientStats()
            async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
                pipeline = Pipeline(client, stack, groups, settings.topic_prefix)
                connected = asyncio.Event()
                tapped = asyncio.Event()
                listener = asyncio.create_task(listen(client, stream_url, probes, connected, stats))
                tap = asyncio.create_task(follow_alerts(settings, probes, tapped))
                lag = LoopLag()
                lag_task = asyncio.create_task(lag.run())
                try:
                    await asyncio.wait_for(asyncio.gather(connected.wait(), tapped.wait()), 15)
                    ctx.progress.update(0.3, "warming up: waiting for the first alert")
                    warmup_s = await _warm_up(
                        client, ingest_url, probes, run, 45 * ctx.stretch, pipeline
                    )
                    lag.lags_ms.clear()  # the measured period only: load and wait
                    sent, send_s = await offer_load(ctx, client, ingest_url, probes, run, stats)
                    ctx.note(NAME, f"when the load stopped: {await pipeline.state()}")
                    ctx.progress.update(0.9, "waiting for the last alerts")
                    measured = [p for p in probes.values() if not p.warmup]
                    outcome = await wait_for_stragglers(ctx, pipeline, listener, measured)
                    await _let_tap_catch_up(measured)
                    ctx.note(NAME, f"when the wait ended: {await pipeline.state()}")
                    ctx.note(NAME, summarise(measured))
                    ctx.note(NAME, lag.describe())
                    if stats.post_retries or stats.stream_reconnects:
                        ctx.note(
                            NAME,
                            f"the load client retried {stats.post_retries} POST(s) on broken "
                            f"connections and reconnected to the stream {stats.stream_reconnects} "
                            "time(s); alerts streamed during a reconnect count as never arrived",
                        )
                    await _check_readable(client, stack.url("alerts"), measured)
                finally:
                    listener.cancel()
                    tap.cancel()
                    lag_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                        await listener
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await tap
    finally:
        await groups.stop()
    latencies = [p.latency_ms for p in measured]
    lost = sum(1 for value in latencies if value == math.inf)
    offered = sent / send_s
    ctx.note(
        NAME,
        f"{len(measured)} probe alerts over {ctx.config.e2e_seconds:.0f} s at an offered "
        f"{ctx.config.e2e_rate:,.0f} ev/s (achieved offer {offered:,.0f} ev/s, {sent:,} events); "
        f"{lost} alert(s) never arrived; services started in {startup_s:.1f} s (scorer group "
        f"session {FAST_JOIN_ENV['HEALTHSTREAM_SCORER_SESSION_TIMEOUT_S']} s), the first "
        f"alert came back {warmup_s:.1f} s later",
    )
    result = {
        "e2e_p50_ms": percentile(latencies, 50),
        "e2e_p95_ms": percentile(latencies, 95),
        "e2e_p99_ms": percentile(latencies, 99),
    }
    if any(value == math.inf for value in result.values()):
        arrived = sorted(value for value in latencies if value != math.inf)
        seen = ""
        if arrived:
            seen = (
                f"; those that did: p50 {percentile(arrived, 50):,.0f} ms, "
                f"max {arrived[-1]:,.0f} ms"
            )
        raise RuntimeError(
            f"{lost} of {len(measured)} probe alerts had not arrived when the wait ended, so "
            f"the percentiles are unbounded ({outcome}; offered {offered:,.0f} ev/s){seen}"
        )
    return result


STALL_S = 10.0


async def _let_tap_catch_up(probes: list[Probe], limit_s: float = 2.0) -> None:
    """Our ``risk-alerts`` reader polls every 100 ms: give it time to stamp the last alerts."""
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline and any(
        p.seen_at is not None and p.in_kafka_wall is None for p in probes
    ):
        await asyncio.sleep(0.05)


async def wait_for_stragglers(
    ctx: BenchContext,
    pipeline: Pipeline,
    listener: asyncio.Task[None],
    measured: list[Probe],
) -> str:
    """Wait for missing alerts while the pipeline makes progress; say why the wait ended.

    No fixed grace period (that would be a hidden speed threshold): we wait as
    long as probe alerts keep arriving or any service keeps advancing (its
    metrics, or any consumer group's committed offsets), and stop only when
    nothing moved for ``STALL_S`` seconds (stretched on a busy machine) or the
    measurement's time budget (minus time to stop the services) is used up.
    """
    ctx.progress.update(0.9, "waiting for the last alerts")
    last_progress = time.perf_counter()
    last_seen = -1
    last_state = ""
    next_probe = 0.0
    while any(p.seen_at is None for p in measured):
        raise_if_exited(pipeline.stack)
        raise_if_stopped(listener)
        now = time.perf_counter()
        seen = sum(1 for p in measured if p.seen_at is not None)
        if seen != last_seen:
            last_seen, last_progress = seen, now
        if now >= next_probe:
            state = await pipeline.state()
            if state != last_state:
                last_state, last_progress = state, now
            next_probe = now + 1.0
            missing = len(measured) - seen
            ctx.progress.update(0.9, f"waiting for {missing} alert(s): {state}")
        if now - last_progress > STALL_S * ctx.stretch:
            return f"nothing moved for {STALL_S * ctx.stretch:.0f} s"
        if ctx.remaining() < 12.0:
            return "the measurement's time budget ran out while the pipeline was still moving"
        await asyncio.sleep(0.05)
    return "all arrived"


def metric_sum(text: str, name: str) -> float:
    """Sum of every sample of one metric in a Prometheus text exposition."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


@dataclass
class Pipeline:
    """Where the pipeline stands: says which stage lags, and whether anything still moves."""

    client: httpx.AsyncClient
    stack: ServiceStack
    groups: GroupProgress
    prefix: str

    async def state(self) -> str:
        try:
            scorer = (await self.client.get(f"{self.stack.url('scorer')}/metrics", timeout=5)).text
            alerts = (await self.client.get(f"{self.stack.url('alerts')}/metrics", timeout=5)).text
        except httpx.HTTPError as exc:
            return f"metrics unavailable ({exc})"
        processed = metric_sum(scorer, "healthstream_scorer_events_processed_total")
        lag = metric_sum(scorer, "healthstream_scorer_consumer_lag_messages")
        raised = metric_sum(scorer, "healthstream_scorer_alerts_total")
        dead = metric_sum(scorer, "healthstream_scorer_dlq_messages_total")
        received = metric_sum(alerts, "healthstream_alerts_received_total")
        stored = metric_sum(alerts, "healthstream_alerts_stored_total")
        try:
            committed = describe_groups(await self.groups.snapshot(), self.prefix)
        except Exception as exc:  # the broker's view is extra information, not a requirement
            committed = f"committed offsets unavailable ({exc!r})"
        return (
            f"scorer processed {processed:,.0f} events (lag {lag:,.0f} records, "
            f"{dead:,.0f} sent to the DLQ) and raised {raised:,.0f} alerts; "
            f"alerts service received {received:,.0f} alerts, stored {stored:,.0f}; {committed}"
        )


async def _check_readable(client: httpx.AsyncClient, base: str, probes: list[Probe]) -> None:
    """The stream said it arrived; make sure the API serves it (what a CSM would read)."""
    seen = [p for p in probes if p.seen_at is not None]
    if not seen:
        return
    response = await client.get(
        f"{base}/v1/alerts",
        params={"account_id": seen[-1].account_id},
        headers={"Authorization": f"Bearer {READ_KEY}"},
    )
    response.raise_for_status()
    if not response.json().get("items"):
        raise RuntimeError(
            f"alert for {seen[-1].account_id} was streamed but GET /v1/alerts does not return it"
        )

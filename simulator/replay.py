"""``healthstream replay FILE``: publish an NDJSON file to the event topics.

Each line goes to ``settings.topics.for_type(type)`` keyed by ``account_id``
(so one account's events stay ordered on one partition), as fast as the broker
allows, or paced by ``--rate`` (events per second) or ``--speedup`` (x event time).

Why batches instead of ``producer.send`` per event: a per-message future costs
tens of microseconds in aiokafka; building one record batch per partition with
the same murmur2 partitioner as every Kafka client and keeping many batches in
flight is several times faster, and ordering per partition is preserved because
batches of a partition are sent in order (acks=all, retries keep order when
idempotence is on; without it keep ``--in-flight`` at 1 for strict ordering on retry).

Kafka record timestamps are left to the producer (wall clock) on purpose: event
times can be years old (CDNOW is 1997) and time-based retention would delete
such records immediately. Event time travels inside the event.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from tqdm import tqdm

from healthstream import contract
from healthstream.kafka import make_producer
from healthstream.settings import Settings
from simulator.ndjson import count_lines, iter_lines

#: How long to wait for the cluster to answer at all (topics, first metadata).
CONNECT_TIMEOUT_SECONDS = 15.0

EVENT_TYPES = frozenset(contract.EVENT_TYPES)


class ReplayError(ValueError):
    """A line that cannot be routed; names the line number and the field."""


@dataclass(frozen=True)
class Routed:
    topic_type: str
    key: bytes
    occurred_at: str


def route(number: int, raw: bytes) -> Routed:
    """Extract what routing needs; full validation is the consumer's job (and its DLQ's)."""
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ReplayError(f"line {number}: not valid JSON ({exc})") from None
    if not isinstance(event, dict):
        raise ReplayError(f"line {number}: must be a JSON object")
    account = event.get("account_id")
    if not isinstance(account, str) or not account:
        raise ReplayError(f"line {number}: field account_id must be a non-empty string")
    etype = event.get("type")
    if etype not in EVENT_TYPES:
        raise ReplayError(f"line {number}: field type must be one of {sorted(EVENT_TYPES)}")
    occurred = event.get("occurred_at")
    if not isinstance(occurred, str):
        raise ReplayError(f"line {number}: field occurred_at must be an RFC 3339 string")
    return Routed(etype, account.encode(), occurred)


def _epoch(stamp: str) -> float:
    from datetime import datetime

    text = stamp[:-1] + "+00:00" if stamp[-1] in "Zz" else stamp
    return datetime.fromisoformat(text).timestamp()


@dataclass
class BatchPublisher:
    """One open record batch per (topic, partition); full batches go out with many in flight."""

    producer: AIOKafkaProducer
    max_in_flight: int = 64
    partitions: dict[str, list[int]] = field(default_factory=dict)
    batches: dict[tuple[str, int], Any] = field(default_factory=dict)
    in_flight: deque[asyncio.Future[Any]] = field(default_factory=deque)
    sent: int = 0

    async def _partitions_for(self, topic: str) -> list[int]:
        known = self.partitions.get(topic)
        if known is None:
            found = await self.producer.partitions_for(topic)
            if not found:
                raise ReplayError(f"topic {topic!r} does not exist")
            known = sorted(found)
            self.partitions[topic] = known
        return known

    async def add(self, topic: str, key: bytes, value: bytes) -> None:
        parts = await self._partitions_for(topic)
        partition = DefaultPartitioner()(key, parts, parts)
        slot = (topic, partition)
        batch = self.batches.get(slot)
        if batch is None:
            batch = self.batches[slot] = self.producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:
            await self._ship(slot, batch)
            batch = self.batches[slot] = self.producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                raise ReplayError("event larger than the producer's max batch size")

    async def _ship(self, slot: tuple[str, int], batch: Any) -> None:
        if batch.record_count() == 0:
            return
        count = batch.record_count()
        future = await self.producer.send_batch(batch, slot[0], partition=slot[1])
        self.in_flight.append(future)
        self.sent += count
        while len(self.in_flight) > self.max_in_flight:
            await self.in_flight.popleft()

    async def flush(self) -> None:
        """Send every open batch and wait until the broker acknowledged all of them."""
        for slot, batch in list(self.batches.items()):
            await self._ship(slot, batch)
        self.batches.clear()
        while self.in_flight:
            await self.in_flight.popleft()


@dataclass
class ReplayStats:
    published: int = 0
    invalid: int = 0
    seconds: float = 0.0
    by_topic: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.published / self.seconds if self.seconds > 0 else 0.0


async def replay(
    settings: Settings,
    lines: Iterable[tuple[int, bytes]],
    *,
    rate: float | None = None,
    speedup: float | None = None,
    skip_invalid: bool = False,
    max_in_flight: int = 64,
    progress: tqdm[Any] | None = None,
) -> ReplayStats:
    """Publish ``(line_number, raw)`` lines; raises :class:`ReplayError` on a bad line.

    With ``skip_invalid`` bad lines are counted (and reported on stderr), not published.
    """
    if rate is not None and rate <= 0:
        raise ValueError("rate must be positive")
    if speedup is not None and speedup <= 0:
        raise ValueError("speedup must be positive")
    producer = make_producer(settings, linger_ms=20, max_batch_size=512 * 1024)
    try:
        await producer.start()
    except BaseException:
        await producer.stop()  # a half-started client still holds connections
        raise
    stats = ReplayStats()
    publisher = BatchPublisher(producer, max_in_flight=max_in_flight)
    topics = settings.topics
    started = time.perf_counter()
    first_event_ts: float | None = None
    try:
        for number, raw in lines:
            try:
                routed = route(number, raw)
                event_ts = _epoch(routed.occurred_at) if speedup else 0.0
            except (ReplayError, ValueError) as exc:
                if not skip_invalid:
                    raise ReplayError(str(exc)) from None
                stats.invalid += 1
                print(f"replay: skipped {exc}", file=sys.stderr)
                continue
            if rate is not None or speedup is not None:
                if rate is not None:
                    due = started + stats.published / rate
                else:
                    if first_event_ts is None:
                        first_event_ts = event_ts
                    due = started + (event_ts - first_event_ts) / (speedup or 1.0)
                delay = due - time.perf_counter()
                if delay > 0.005:
                    # Do not let paced events wait in an open batch while we sleep.
                    await publisher.flush()
                    await asyncio.sleep(delay)
            topic = topics.for_type(routed.topic_type)
            await publisher.add(topic, routed.key, raw)
            stats.published += 1
            stats.by_topic[topic] = stats.by_topic.get(topic, 0) + 1
            if progress is not None:
                progress.update(1)
        await publisher.flush()
    finally:
        await producer.stop()
    stats.seconds = time.perf_counter() - started
    return stats


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="NDJSON events (canonical envelope), - for stdin")
    parser.add_argument(
        "--bootstrap-servers",
        default=None,
        help="Kafka to publish to (default: HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS, "
        "else the demo running from this directory)",
    )
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, default=None, help="events per second (default: max)")
    pace.add_argument(
        "--speedup", type=float, default=None, help="replay at N x event time (e.g. 3600)"
    )
    parser.add_argument(
        "--skip-invalid", action="store_true", help="count and skip lines that cannot be routed"
    )
    parser.add_argument(
        "--in-flight", type=int, default=64, help="record batches awaiting acks (64)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from aiokafka.errors import KafkaError, UnknownError

    from healthstream.kafka import ensure_topics
    from healthstream.runtime import NoCluster, Unreachable, check_reachable, client_settings

    # The client library logs every reconnect attempt; this command reports in one line.
    for name in ("aiokafka", "healthstream.kafka"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        settings, origin = client_settings(args.bootstrap_servers, "replay")
        check_reachable(settings.kafka_bootstrap_servers, "replay")
        total = count_lines(args.file)
    except NoCluster as exc:
        print(exc, file=sys.stderr)
        return 1 if isinstance(exc, Unreachable) else 2
    except FileNotFoundError as exc:
        print(f"replay: file not found: {exc.filename}", file=sys.stderr)
        return 2
    if origin is not None:
        print(
            f"replay: publishing to {settings.kafka_bootstrap_servers}, {origin}", file=sys.stderr
        )
    # None: on only when stderr is a terminal, so logs do not fill with redraws.
    disable = True if args.quiet else None
    with tqdm(total=total, unit=" events", desc="replay", disable=disable, mininterval=0.5) as bar:
        try:
            stats = asyncio.run(
                _ensure_topics_then_replay(
                    ensure_topics,
                    settings,
                    iter_lines(args.file),
                    rate=args.rate,
                    speedup=args.speedup,
                    skip_invalid=args.skip_invalid,
                    max_in_flight=args.in_flight,
                    progress=bar,
                )
            )
        except (ReplayError, ValueError) as exc:
            print(f"replay: {exc}", file=sys.stderr)
            return 2
        except (KafkaError, TimeoutError, OSError) as exc:
            reason = (
                f"no answer within {CONNECT_TIMEOUT_SECONDS:.0f} s (is it a Kafka broker?)"
                if isinstance(exc, TimeoutError)
                else f"{type(exc).__name__}: {exc}".rstrip(": ")
            )
            if isinstance(exc, UnknownError) and settings.kafka_enable_idempotence:
                reason += (
                    " (a broker without idempotent producers, such as `healthstream broker`, "
                    "needs HEALTHSTREAM_KAFKA_ENABLE_IDEMPOTENCE=false)"
                )
            print(
                f"replay: Kafka at {settings.kafka_bootstrap_servers} failed: {reason}",
                file=sys.stderr,
            )
            return 1
        except KeyboardInterrupt:
            print(f"replay: interrupted after {bar.n} events", file=sys.stderr)
            return 130
    per_topic = ", ".join(f"{t}={n}" for t, n in sorted(stats.by_topic.items()))
    print(
        f"replay: published {stats.published} events in {stats.seconds:.1f} s "
        f"({stats.rate:,.0f}/s); invalid {stats.invalid}; {per_topic}",
        file=sys.stderr,
    )
    return 0


async def _ensure_topics_then_replay(
    ensure: Callable[[Settings], Awaitable[object]],
    settings: Settings,
    lines: Iterable[tuple[int, bytes]],
    **options: Any,
) -> ReplayStats:
    """Create missing topics, then publish; a broker that stops answering ends it in time."""
    await asyncio.wait_for(ensure(settings), timeout=CONNECT_TIMEOUT_SECONDS)
    return await replay(settings, lines, **options)

"""What a run shares: the broker, the events, the mode, fresh settings per measurement."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from benchmarks.events import EventSet
from benchmarks.progress import Progress
from healthstream.broker import EmbeddedBroker
from healthstream.settings import Settings


class MeasurementUnavailable(RuntimeError):
    """A measurement cannot run (a dependency is missing): reported loudly, never faked."""


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of one run. ``quick`` keeps the whole run under three minutes."""

    quick: bool
    events: int
    accounts: int
    e2e_rate: float
    e2e_seconds: float
    memory_accounts: int
    target_accounts: int = 100_000
    partitions: int = 4
    seed: int = 7

    @classmethod
    def for_mode(cls, quick: bool) -> BenchConfig:
        if quick:
            return cls(
                quick=True,
                events=20_000,
                accounts=500,
                e2e_rate=2_000.0,
                e2e_seconds=10.0,
                memory_accounts=5_000,
            )
        return cls(
            quick=False,
            events=100_000,
            accounts=2_000,
            e2e_rate=2_000.0,
            e2e_seconds=30.0,
            memory_accounts=100_000,
        )


@dataclass
class BenchContext:
    config: BenchConfig
    events: EventSet
    bootstrap_servers: str
    embedded: bool
    progress: Progress
    notes: dict[str, list[str]] = field(default_factory=dict)
    #: ``time.monotonic()`` by which the current measurement must be done.
    deadline: float = float("inf")
    #: How much the time *limits* of the current measurement are stretched because
    #: the machine is busy (see :func:`stretch_for_load`); never touches a measured value.
    stretch: float = 1.0

    def remaining(self) -> float:
        import time

        return self.deadline - time.monotonic()

    def settings(self, measurement: str, **overrides: object) -> Settings:
        """Settings for one measurement: its own topic prefix on the shared broker."""
        prefix = f"bench-{measurement}-{uuid.uuid4().hex[:8]}-"
        values: dict[str, object] = {
            "kafka_bootstrap_servers": self.bootstrap_servers,
            "topic_prefix": prefix,
            "partitions": self.config.partitions,
            "log_level": "WARNING",
        }
        if self.embedded:
            values["kafka_enable_idempotence"] = False
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    def service_env(self, settings: Settings) -> dict[str, str]:
        """Environment for a child service process that must see the same cluster and topics."""
        env = dict(os.environ)
        env.update(
            {
                "HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
                "HEALTHSTREAM_KAFKA_ENABLE_IDEMPOTENCE": str(
                    settings.kafka_enable_idempotence
                ).lower(),
                "HEALTHSTREAM_TOPIC_PREFIX": settings.topic_prefix,
                "HEALTHSTREAM_PARTITIONS": str(settings.partitions),
                "HEALTHSTREAM_LOG_LEVEL": "WARNING",
            }
        )
        return env

    def note(self, measurement: str, text: str) -> None:
        """Something a reader of the results must know (e.g. an extrapolation)."""
        self.notes.setdefault(measurement, []).append(text)


#: Time limits grow with the load, up to this factor (a hang must still end).
MAX_STRETCH = 2.5


def stretch_for_load(load: float, cores: int) -> float:
    """Factor for time limits: 1 on an idle machine, load/cores when it is oversubscribed.

    On a shared 2-core CI runner everything runs slower, start-up included;
    limits sized for an idle machine then fail measurements that were merely
    slow. Measured values are unaffected: only the limits stretch.
    """
    if cores <= 0:
        return 1.0
    return max(1.0, min(MAX_STRETCH, load / cores))


@contextlib.contextmanager
def cluster() -> Iterator[tuple[str, bool]]:
    """The configured cluster, or an embedded broker started for this run only."""
    configured = Settings().kafka_bootstrap_servers.strip()
    if configured:
        yield configured, False
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers, True


def require(module: str, attribute: str, owner: str) -> object:
    """Import ``module.attribute``, or fail the measurement saying what is missing and whose."""
    import importlib

    try:
        loaded = importlib.import_module(module)
    except ImportError as exc:
        raise MeasurementUnavailable(f"{module} is not available yet ({owner}): {exc}") from None
    try:
        return getattr(loaded, attribute)
    except AttributeError:
        raise MeasurementUnavailable(f"{module}.{attribute} does not exist yet ({owner})") from None

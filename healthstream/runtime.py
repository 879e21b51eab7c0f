"""Process-level runtime: make sure a Kafka cluster is there before a command runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator

from healthstream.broker import EmbeddedBroker
from healthstream.kafka import ensure_topics
from healthstream.settings import Settings

log = logging.getLogger(__name__)


@contextlib.contextmanager
def kafka_environment(settings: Settings | None = None) -> Iterator[Settings]:
    """Yield settings that point at a reachable cluster with every topic created.

    With no bootstrap servers configured, an embedded broker is started for the
    duration of the block and advertised to child code (and child processes)
    through the environment, exactly as an operator would configure a real one.
    """
    settings = settings or Settings()
    broker: EmbeddedBroker | None = None
    saved = {k: os.environ.get(k) for k in _ENV_KEYS}
    try:
        if settings.embedded_broker:
            broker = EmbeddedBroker().start()
            os.environ["HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
            os.environ["HEALTHSTREAM_KAFKA_ENABLE_IDEMPOTENCE"] = "false"
            settings = Settings()
            log.warning(
                "no HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS set: started an embedded broker",
                extra={"bootstrap_servers": broker.bootstrap_servers},
            )
        asyncio.run(ensure_topics(settings))
        yield settings
    finally:
        if broker is not None:
            broker.stop()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


_ENV_KEYS = ("HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS", "HEALTHSTREAM_KAFKA_ENABLE_IDEMPOTENCE")


class NoCluster(RuntimeError):
    """No Kafka to talk to, said in one line the user can act on."""


class Unreachable(NoCluster):
    """Kafka is configured, but nothing answers at its address."""


def client_settings(bootstrap_servers: str | None, command: str) -> tuple[Settings, str | None]:
    """Settings for a command that publishes into an existing cluster, and where it came from.

    Order: ``--bootstrap-servers``, ``HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS``, then a
    ``healthstream demo`` running from this directory. Unlike the services, such
    a command never starts an embedded broker of its own: events published into
    a broker nobody else reads would be lost while the command reports success.
    """
    from healthstream import running_demo

    if bootstrap_servers:
        return Settings(kafka_bootstrap_servers=bootstrap_servers), None
    settings = Settings()
    if not settings.embedded_broker:
        return settings, None
    demo, path = running_demo.find()
    if demo is None:
        raise NoCluster(
            f"{command}: no Kafka configured and no running demo ({path} not found or stale): "
            f"pass --bootstrap-servers, set HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS, "
            f"or start `healthstream demo` in this directory"
        )
    demo_settings = Settings(
        kafka_bootstrap_servers=demo.bootstrap_servers,
        kafka_enable_idempotence=demo.kafka_enable_idempotence,
        topic_prefix=demo.topic_prefix,
    )
    return demo_settings, f"the running demo ({path})"


def check_reachable(bootstrap_servers: str, command: str, timeout: float = 3.0) -> None:
    """Fail fast, in one line, when no bootstrap address accepts a connection.

    A Kafka client retries an unreachable cluster for a long time, logging every
    attempt; a command line that was pointed at the wrong address should say so.
    """
    import socket

    errors: list[str] = []
    for address in (a.strip() for a in bootstrap_servers.split(",") if a.strip()):
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout):
                return
        except (OSError, ValueError) as exc:
            errors.append(f"{address} ({getattr(exc, 'strerror', None) or exc})")
    raise Unreachable(
        f"{command}: cannot reach Kafka at {', '.join(errors) or repr(bootstrap_servers)}"
    )

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

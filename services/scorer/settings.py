"""Scorer- and trainer-only knobs, on top of the shared :class:`Settings`.

Every value can be set with a ``HEALTHSTREAM_`` environment variable (e.g.
``HEALTHSTREAM_SCORER_BATCH_MAX=4000``). The Faust timeouts are exposed because
the defaults (60 s session timeout) make a killed worker block its partitions
for a minute; tests and small deployments lower them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from healthstream.settings import Settings


class ScorerSettings(Settings):
    # Faust application id = consumer group id; prefixed with topic_prefix so
    # tenants/tests sharing a cluster never join each other's group.
    scorer_app_id: str = "healthstream-scorer"
    scorer_data_dir: Path = Path("./.healthstream-scorer-data")
    # Records fetched per poll: the batch the scorer processes in one go.
    scorer_batch_max: int = Field(default=4000, ge=1)
    # Decoded AccountState objects kept between batches (LRU); ~5-10 KB each.
    scorer_cache_accounts: int = Field(default=20_000, ge=0)
    scorer_max_fetch_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    # Event-time timer sweep (inactivity, SLA, renewal): wall-clock period and
    # the most accounts ticked per sweep, so a sweep never stalls the stream.
    scorer_sweep_interval_s: float = Field(default=2.0, ge=0.0)
    scorer_sweep_max_accounts: int = Field(default=2000, ge=1)
    # An account is ticked only once no event of it was processed for this long
    # (processing time) and its partition has nothing buffered: a history still
    # arriving is never declared inactive half-way (see processor.sweep).
    scorer_sweep_quiet_s: float = Field(default=10.0, ge=0.0)
    # Event-time alignment of the event topics (see services/scorer/alignment.py):
    # a record passes a caught-up topic with nothing buffered only once a fetch
    # response this long after its publish time said so (Kafka Streams'
    # max.task.idle.ms); a topic the broker still has unfetched records of is
    # waited for up to max_hold_s.
    scorer_max_task_idle_ms: float = Field(default=100.0, ge=0.0)
    scorer_max_hold_s: float = Field(default=30.0, gt=0.0)
    # An event more than this far ahead of its record's publish time cannot have
    # happened yet: dead-lettered, so it can never move the partition's clock.
    scorer_max_future_skew_s: float = Field(default=300.0, ge=0.0)
    # Faust/Kafka group timing.
    # Session timeout: a SIGKILLed worker's partitions wait this long, and the
    # embedded broker answers a JoinGroup after half of it (start-up latency).
    scorer_session_timeout_s: float = Field(default=10.0, gt=0)
    scorer_heartbeat_interval_s: float = Field(default=3.0, gt=0)
    scorer_commit_interval_s: float = Field(default=2.0, gt=0)
    # 0: the scorer builds its own producer batches (one per topic-partition per
    # processing batch) and needs them drained into one request; see
    # Scorer._publish. A linger only delays them.
    scorer_producer_linger_s: float = Field(default=0.0, ge=0)
    # Longest the broker may hold a fetch when little data is ready: bounds the
    # latency an event waits before it is scored (see PromptFetchConsumerThread).
    scorer_fetch_max_wait_ms: int = Field(default=25, ge=0, le=1500)
    scorer_web_enabled: bool = True

    # Trainer: publish a snapshot every N new labels or every T seconds with new labels.
    trainer_group_id: str = "healthstream-trainer"
    trainer_snapshot_every: int = Field(default=500, ge=1)
    trainer_snapshot_interval_s: float = Field(default=30.0, gt=0)
    trainer_port: int = 8083

"""Crash recovery (SIGKILL mid-stream) and the trainer -> model-snapshots -> worker loop."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from healthstream.kafka import ensure_topics
from healthstream.settings import Settings
from schemas import HealthUpdate
from services.scorer.core import AccountState, TrainingExample
from services.scorer.settings import ScorerSettings
from services.scorer.trainer import Trainer, latest_snapshot
from tests.integration.scorer.harness import (
    Worker,
    committed_offsets,
    end_offsets,
    last_by_key,
    metric_value,
    publish,
    read_all,
    running_worker,
    scorer_group,
    wait_consumed,
    wait_until,
)
from tests.integration.scorer.histories import (
    FLEET_KINDS,
    Reference,
    fleet,
    scripted_phases,
    time_ordered,
)

pytestmark = pytest.mark.timeout(300)


def changelog(settings: Settings) -> str:
    return f"{settings.topic_prefix}healthstream-scorer-account-state-changelog"


async def fresh(settings: Settings, suffix: str) -> Settings:
    copy = settings.model_copy(update={"topic_prefix": settings.topic_prefix + suffix})
    copy.__dict__.pop("topics", None)  # cached_property follows the new prefix
    await ensure_topics(copy)
    return copy


async def final_run_state(settings: Settings) -> tuple[dict[bytes, bytes], list[str]]:
    states = last_by_key(await read_all(settings, changelog(settings), timeout=15))
    alerts = await read_all(settings, settings.topics.risk_alerts, timeout=10)
    import orjson

    return states, [orjson.loads(r.value)["alert_id"] for r in alerts]


async def alert_reasons(settings: Settings) -> list[tuple[str, str]]:
    import orjson

    records = await read_all(settings, settings.topics.risk_alerts, timeout=10)
    return [(orjson.loads(r.value)["account_id"], orjson.loads(r.value)["reason"]) for r in records]


def differences(a: AccountState, b: AccountState) -> dict[str, tuple[object, object]]:
    """The fields in which two states differ, for a readable failure."""
    names = AccountState.__slots__
    return {
        n: (getattr(a, n, None), getattr(b, n, None))
        for n in names
        if getattr(a, n, None) != getattr(b, n, None)
    }


def one_more_day(events: list[dict]) -> list[dict]:
    """One login per account after the history: published once the restarted
    worker has caught up, so every account's *recovered* state is applied to
    again. A state the restart lost would then diverge from the calm run's,
    even for an account whose last changelog record happens to be the right one.
    """
    last: dict[str, dict] = {}
    for event in events:
        last[event["account_id"]] = event
    tail = []
    for account, event in sorted(last.items()):
        day = datetime.fromisoformat(event["occurred_at"]) + timedelta(days=1)
        tail.append(
            {
                **event,
                "event_id": f"{account}-after-restart",
                "name": "login",
                "occurred_at": day.isoformat().replace("+00:00", "Z"),
                "properties": {"user_id": "u0"},
            }
        )
    return tail


async def test_sigkill_mid_stream_then_restart_matches_uninterrupted_run(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    """120 accounts over five topics, the timer sweep on (the shipped settings)."""
    events = fleet(120)
    tail = one_more_day(events)
    reference = Reference().apply(time_ordered(events + tail))
    assert reference.alert_ids  # the history does raise alerts
    # Small batches: the kill lands mid-stream and /metrics answers between batches.
    # INFO logs (in tmp_path) name every alert with its event id, for a failure's story.
    small = {
        "HEALTHSTREAM_SCORER_BATCH_MAX": "500",
        "HEALTHSTREAM_LOG_LEVEL": "INFO",
    }
    # Sent the way a client POSTs to ingest: a batch, its acks, the next batch.
    batch = 500

    # 1) uninterrupted run
    calm = await fresh(kafka_settings, "calm-")
    with running_worker(calm, tmp_path / "calm", **small) as worker:
        await worker.wait_ready()
        await publish(calm, events, flush_every=batch)
        await wait_consumed(calm)
        await publish(calm, tail)
        await wait_consumed(calm)
    calm_states, calm_alerts = await final_run_state(calm)

    # 2) the same events, the worker SIGKILLed while it is processing them
    crash = await fresh(kafka_settings, "crash-")
    first = Worker(
        crash,
        tmp_path / "crash" / "data",
        tmp_path / "crash-1.log",
        **small,
    ).start()
    # Two thirds first, the rest after the kill: a worker faster than our polling
    # could otherwise finish everything between "30% done" and the kill.
    first_part, rest = events[: len(events) * 2 // 3], events[len(events) * 2 // 3 :]
    try:
        await first.wait_ready()
        await publish(crash, first_part, flush_every=batch)

        event_tps = list(await end_offsets(crash, crash.topics.events))

        async def midway() -> bool:
            """>= 30% processed and some of it committed: the kill lands mid-stream."""
            try:
                text = await first.metrics()
            except httpx.TimeoutException:  # busy with a batch: not yet
                return False
            if metric_value(text, "healthstream_scorer_events_processed_total") < len(events) * 0.3:
                return False
            committed = await committed_offsets(crash, scorer_group(crash), event_tps)
            return sum(committed.values()) > 0

        await wait_until(midway, 120, interval=0.1, what="30% processed and committed")
        first.kill()
    finally:
        first.kill()
    processed_before_kill = await committed_offsets(
        crash, scorer_group(crash), await end_offsets(crash, crash.topics.events)
    )
    assert 0 < sum(processed_before_kill.values()) < len(events)  # really mid-stream
    await publish(crash, rest, flush_every=batch)
    with running_worker(crash, tmp_path / "crash", name="worker-2", **small) as second:
        await second.wait_ready()
        await wait_consumed(crash, timeout=240)
        await publish(crash, tail)
        await wait_consumed(crash)
        restarted_metrics = await second.metrics()
    crash_states, crash_alerts = await final_run_state(crash)

    # Redelivered events after the restart are recognised as such, never "late".
    assert "healthstream_scorer_events_late_total 0.0" in restarted_metrics
    assert len(calm_states) == 120
    assert set(crash_states) == set(calm_states)
    for key, value in calm_states.items():
        calm_state, crash_state = (
            AccountState.from_bytes(value),
            AccountState.from_bytes(crash_states[key]),
        )
        assert crash_state == calm_state, (
            key,
            differences(crash_state, calm_state),
            processed_before_kill,
        )
    assert sorted(calm_alerts) == sorted(reference.alert_ids)
    duplicates = [a for a, n in Counter(crash_alerts).items() if n > 1]
    assert duplicates == []
    assert sorted(crash_alerts) == sorted(calm_alerts)
    # No false alert on a healthy account, and every scripted trouble is found.
    by_kind = {
        (FLEET_KINDS[int(account[-3:]) % 4], reason)
        for account, reason in set(await alert_reasons(crash))
    }
    assert by_kind == {
        ("fading", "usage_decline"),
        ("failing", "payment_failed"),
        ("ticketed", "ticket_past_sla"),
        ("ticketed", "nps_detractor"),
    }
    assert set(await alert_reasons(crash)) == set(await alert_reasons(calm))


async def test_trainer_publishes_snapshot_that_a_worker_loads_and_uses(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    settings = ScorerSettings(
        **kafka_settings.model_dump(include={"kafka_bootstrap_servers", "topic_prefix"}),
        kafka_enable_idempotence=False,
        partitions=kafka_settings.partitions,
        trainer_snapshot_every=150,
        trainer_snapshot_interval_s=60,
        _env_file=None,
    )
    import prometheus_client

    registry = prometheus_client.CollectorRegistry()
    trainer = Trainer(settings, registry=registry)
    task = asyncio.create_task(trainer.serve())
    try:
        # A learnable signal on real feature names: long inactivity = churn.
        examples = []
        for i in range(300):
            churn = i % 2
            features = {
                "days_inactive": 40.0 + i % 7 if churn else 1.0 + i % 3,
                "usage_trend": -0.8 if churn else 0.1,
                "usage_7d": 0.0 if churn else 30.0,
            }
            # Every account's scorecard said "neutral" (75): the model earns the blend weight.
            examples.append(
                TrainingExample(
                    f"acct{i % 50}", 1.7e9 + i, features, churn, 1.7e9 + i + 86400, scorecard=75.0
                )
            )
        from healthstream.kafka import make_producer

        producer = make_producer(settings)
        await producer.start()
        try:
            for example in examples:
                await producer.send(
                    settings.topics.training_examples,
                    example.to_json_bytes(),
                    key=example.account_id.encode(),
                )
            await producer.send(settings.topics.training_examples, b"garbage", key=b"x")
            await producer.flush()
        finally:
            await producer.stop()

        async def learned_all() -> bool:
            invalid = registry.get_sample_value("healthstream_trainer_examples_invalid_total")
            return (
                trainer.model.labels_seen == 300 and trainer._since_snapshot == 0 and invalid == 1
            )

        await wait_until(learned_all, 60, what="trainer to learn, skip the garbage, snapshot")
        # The garbage record was skipped, not a crash the supervisor had to restart.
        assert trainer.alive()
        restarts = registry.get_sample_value(
            "healthstream_trainer_task_restarts_total", {"task": "trainer-loop"}
        )
        assert restarts in (None, 0.0)
        assert trainer.supervisor.liveness() == {"trainer-loop": True}
    finally:
        trainer.stop()
    await asyncio.wait_for(task, 30)  # stops cleanly: an exception here fails the test
    assert trainer.model.labels_seen == 300
    snapshot = await latest_snapshot(settings)
    assert snapshot is not None
    from services.scorer.core import ChurnModel

    model = ChurnModel.from_snapshot(snapshot)
    assert model.labels_seen == 300
    assert model.rolling_auc is not None and model.rolling_auc > 0.9
    assert (
        model.predict_proba_one({"days_inactive": 45.0, "usage_trend": -0.8, "usage_7d": 0.0}) > 0.5
    )

    # A worker started now loads the latest snapshot and scores with it.
    with running_worker(kafka_settings, tmp_path) as worker:
        await worker.wait_ready()

        async def loaded() -> bool:
            text = await worker.metrics()
            return metric_value(text, "healthstream_scorer_model_labels_seen") == 300

        await wait_until(loaded, 60, what="worker to load the snapshot")
        text = await worker.metrics()
        assert metric_value(text, "healthstream_scorer_model_rolling_auc") > 0.9
        assert metric_value(text, "healthstream_scorer_blend_model_weight") > 0
        await publish(kafka_settings, scripted_phases("with-model")[2][:30])
        await wait_consumed(kafka_settings)
        health = [
            HealthUpdate.model_validate_json(r.value)
            for r in await read_all(kafka_settings, kafka_settings.topics.account_health)
        ]
    assert health
    assert all(u.model_version.endswith(f"+{model.version}") for u in health), health[0]

"""The streaming scorer end to end on the embedded broker: a real ``healthstream scorer``
worker (Faust, table + changelog, batching consumer) reading the event topics."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from healthstream.deadletter import read_headers
from healthstream.settings import Settings
from schemas import HealthUpdate, RiskAlert
from services.scorer.core import AccountState, parse_event
from tests.integration.scorer.harness import (
    Worker,
    last_by_key,
    metric_value,
    publish,
    read_all,
    running_worker,
    wait_consumed,
    wait_until,
)
from tests.integration.scorer.histories import (
    Reference,
    Script,
    fleet,
    scripted_phases,
    time_ordered,
)

pytestmark = pytest.mark.timeout(240)


def changelog(settings: Settings) -> str:
    return f"{settings.topic_prefix}healthstream-scorer-account-state-changelog"


async def test_scripted_history_trajectory_and_exact_alerts(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    phases = scripted_phases("acme")
    reference = Reference().apply(e for phase in phases for e in phase)
    with running_worker(kafka_settings, tmp_path) as worker:
        await worker.wait_ready()
        for phase in phases:  # one topic per phase: consumption order == script order
            await publish(kafka_settings, phase)
            await wait_consumed(kafka_settings)
        health = [
            HealthUpdate.model_validate_json(r.value)
            for r in await read_all(kafka_settings, kafka_settings.topics.account_health)
        ]
        alerts = [
            RiskAlert.model_validate_json(r.value)
            for r in await read_all(kafka_settings, kafka_settings.topics.risk_alerts)
        ]
        metrics = await worker.metrics()

    # The trajectory: healthy and green first, then down into yellow/red.
    trajectory = [(u.account_id, u.score, u.band.value) for u in health]
    assert trajectory == reference.health
    assert trajectory[0][2] == "green"
    assert trajectory[-1][2] in ("yellow", "red")
    assert max(s for _, s, _ in trajectory) - trajectory[-1][1] >= 15
    # Exactly the expected alerts, in order, each once, with stable ids.
    assert [a.reason.value for a in alerts] == [
        "usage_decline",
        "ticket_past_sla",
        "payment_failed",
    ]
    assert [a.alert_id for a in alerts] == reference.alert_ids
    assert all(a.account_id == "acme" and a.drivers for a in alerts)
    assert all(a.csm == "dana@example.com" for a in alerts)
    events = sum(len(p) for p in phases)
    assert metric_value(metrics, "healthstream_scorer_events_processed_total") == events
    assert metric_value(metrics, "healthstream_scorer_alerts_total", 'reason="payment_failed"') == 1
    assert metric_value(metrics, "healthstream_scorer_health_updates_published_total") == len(
        health
    )


async def test_streaming_and_in_process_core_yield_identical_scores(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    from benchmarks.events import load_events

    events = load_events(4000, 40, seed=11).events
    assert len({e["type"] for e in events}) >= 4  # all kinds of topics are exercised
    # The shipped settings: how far one topic runs ahead of another is the consumer's
    # business (it merges them by event time), so nothing may be late.
    reference = Reference().apply(time_ordered(events))
    with running_worker(kafka_settings, tmp_path) as worker:
        await worker.wait_ready()
        await publish(kafka_settings, events)
        await publish(kafka_settings, events[:500])  # redelivered duplicates change nothing
        await wait_consumed(kafka_settings)
        states = last_by_key(await read_all(kafka_settings, changelog(kafka_settings), timeout=10))
        metrics = await worker.metrics()

    assert "healthstream_scorer_events_late_total 0.0" in metrics  # exported, and exactly 0
    assert {k.decode() for k in states} == set(reference.states)
    now = max(state.watermark for state in reference.states.values())
    for account, expected in reference.states.items():
        streamed = AccountState.from_bytes(states[account.encode()])
        assert reference.score(streamed, now) == reference.score(expected, now), account
        # the 500 redelivered events were not counted twice
        assert streamed.events == expected.events, account
    assert metric_value(metrics, "healthstream_scorer_events_processed_total") >= len(events)


async def test_poison_messages_go_to_dlq_and_worker_keeps_running(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    topics = kafka_settings.topics
    not_json = b"\xff\xfe definitely not json"
    no_time = orjson.dumps(
        {"event_id": "bad-1", "account_id": "acme", "type": "ticket", "name": "ticket.opened"}
    )
    # Valid RFC 3339 strings whose UTC value no component can represent (year 10000,
    # year 0): once crashed the worker on every restart.
    out_of_range = [
        orjson.dumps(
            {
                "event_id": f"p{i}",
                "account_id": f"p{i}",
                "type": "usage",
                "name": "login",
                "occurred_at": when,
            }
        )
        for i, when in enumerate(("9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"))
    ]
    good = scripted_phases("after-poison")[0]
    with running_worker(kafka_settings, tmp_path) as worker:
        await worker.wait_ready()
        await publish(kafka_settings, [not_json, *out_of_range], topic_of=topics.usage)
        await publish(kafka_settings, [no_time], topic_of=topics.ticket)
        await publish(kafka_settings, good)
        await wait_consumed(kafka_settings)
        usage_dlq = await read_all(kafka_settings, topics.dlq(topics.usage))
        ticket_dlq = await read_all(kafka_settings, topics.dlq(topics.ticket))
        health = await read_all(kafka_settings, topics.account_health)
        metrics = await worker.metrics()
        assert worker.process is not None and worker.process.poll() is None

    assert [r.value for r in usage_dlq] == [not_json, *out_of_range]
    headers = read_headers(usage_dlq[0].headers)
    assert headers["error_stage"] == "decode"
    assert headers["source_topic"] == topics.usage
    for record in usage_dlq[1:]:
        headers = read_headers(record.headers)
        assert headers["error_stage"] == "schema" and headers["error_field"] == "occurred_at"
        assert "representable range" in headers["error"]
    assert [r.value for r in ticket_dlq] == [no_time]
    headers = read_headers(ticket_dlq[0].headers)
    assert headers["error_stage"] == "schema"
    assert headers["error_field"] == "occurred_at"
    assert [HealthUpdate.model_validate_json(r.value).account_id for r in health] == [
        "after-poison"
    ]
    assert metric_value(metrics, "healthstream_scorer_dlq_messages_total") == 4


async def test_processing_error_goes_to_dlq(kafka_settings: Settings, tmp_path: Path) -> None:
    """An event the engine raises on (stand-in engine, test only) is dead-lettered."""
    topics = kafka_settings.topics
    boom = {
        "event_id": "boom-1",
        "account_id": "acme",
        "type": "usage",
        "name": "boom",
        "occurred_at": "2024-05-01T12:00:00Z",
    }
    fine = {**boom, "event_id": "fine-1", "name": "login"}
    worker = Worker(
        kafka_settings,
        tmp_path / "data",
        tmp_path / "standin.log",
        module="tests.integration.scorer.standin_worker",
    ).start()
    try:
        await worker.wait_ready()
        await publish(kafka_settings, [boom, fine])
        await wait_consumed(kafka_settings)
        dlq = await read_all(kafka_settings, topics.dlq(topics.usage))
        health = await read_all(kafka_settings, topics.account_health)
    finally:
        worker.stop()
    assert [orjson.loads(r.value)["event_id"] for r in dlq] == ["boom-1"]
    headers = read_headers(dlq[0].headers)
    assert headers["error_stage"] == "processing"
    assert "stand-in processing error" in headers["error"]
    assert len(health) == 1


async def test_timer_sweep_fires_inactivity_without_new_events(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    """``quiet`` stops sending; ``busy`` keeps the partition watermarks moving."""
    quiet, busy = Script("quiet"), Script("busy")
    events = []
    for day in range(70):
        if day < 35:
            events.append(quiet.event(day, "usage", "login", user_id="u1"))
            events.append(quiet.event(day, "usage", "feature.used", feature="f1", user_id="u1"))
        events.append(busy.event(day, "usage", "login", user_id="u1"))
    reference = Reference().apply(events)
    assert reference.alert_reasons == []  # events alone raise nothing: only timers can
    last_quiet = max(parse_event(e).ts for e in events if e["account_id"] == "quiet")

    with running_worker(
        kafka_settings, tmp_path, HEALTHSTREAM_SCORER_SWEEP_INTERVAL_S="0.2"
    ) as worker:
        await worker.wait_ready()
        await publish(kafka_settings, events)
        await wait_consumed(kafka_settings)

        async def inactivity_alert() -> bool:
            records = await read_all(kafka_settings, kafka_settings.topics.risk_alerts)
            reasons = [RiskAlert.model_validate_json(r.value).reason.value for r in records]
            return "inactivity" in reasons

        await wait_until(inactivity_alert, 60, what="an inactivity alert from the sweep")
        alerts = [
            RiskAlert.model_validate_json(r.value)
            for r in await read_all(kafka_settings, kafka_settings.topics.risk_alerts)
        ]
        metrics = await worker.metrics()
    assert {a.account_id for a in alerts} == {"quiet"}
    assert all(a.occurred_at.timestamp() > last_quiet for a in alerts)
    assert len({a.alert_id for a in alerts}) == len(alerts)
    assert metric_value(metrics, "healthstream_scorer_timer_ticks_total") > 0


async def test_a_topic_held_back_for_the_whole_history_scores_as_time_ordered(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    """The history is on the broker one topic after another (billing first, usage last)
    before the worker reads any of it: a consumer that took each fetch as it came would
    score every payment before the usage that preceded it. Final states must equal the
    in-process core replaying the history in event-time order, field for field."""
    events = fleet(24, prefix="held")
    reference = Reference().apply(time_ordered(events))
    order = ["billing", "ticket", "feedback", "account", "usage"]
    for kind in order:
        await publish(kafka_settings, [e for e in events if e["type"] == kind], flush_every=500)
    with running_worker(kafka_settings, tmp_path) as worker:
        await worker.wait_ready()
        await wait_consumed(kafka_settings)
        states = last_by_key(await read_all(kafka_settings, changelog(kafka_settings), timeout=10))
        metrics = await worker.metrics()

    assert {k.decode() for k in states} == set(reference.states)
    for account, expected in reference.states.items():
        assert AccountState.from_bytes(states[account.encode()]) == expected, account
    assert "healthstream_scorer_events_late_total 0.0" in metrics
    assert metric_value(metrics, "healthstream_scorer_alignment_reordered_total") > 0

"""``healthstream backtest --from-topics`` against the real embedded broker: the history read
from the event topics is the file's, bounded by event time, the figures equal a backtest of
the file, and a live consumer group's committed offsets are left exactly as they were."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from evaluation.cli import parse_moment
from evaluation.topics import read_topics
from healthstream.cli import main
from healthstream.kafka import make_consumer
from healthstream.settings import Settings
from simulator import generate
from simulator.ndjson import iter_lines, write_events
from simulator.replay import replay

REPO = Path(__file__).resolve().parents[2]
FROM = "2024-02-01"
TO = "2024-05-20"


@pytest.fixture
async def published(kafka_settings: Settings, tmp_path: Path) -> Path:
    """A small simulated history (24 accounts, 150 days, many churners), published."""
    path = tmp_path / "history.ndjson"
    write_events(generate(24, 150, 5, churn_rate=0.6), path)
    stats = await replay(kafka_settings, iter_lines(path), max_in_flight=8)
    assert stats.published > 10_000
    return path


def _ids_between(path: Path, start: float, end: float) -> list[str]:
    from services.scorer.core.events import parse_timestamp

    out = []
    for _, raw in iter_lines(path):
        event = orjson.loads(raw)
        if start <= parse_timestamp(event["occurred_at"]) <= end:
            out.append(event["event_id"])
    return out


async def test_a_time_slice_of_the_topics_is_the_files_slice_in_event_time_order(
    kafka_settings: Settings, published: Path, tmp_path: Path
) -> None:
    start = parse_moment(FROM) - 86399  # from the start of that day
    end = parse_moment(TO)
    target = tmp_path / "read.ndjson"
    stats = await read_topics(
        kafka_settings.kafka_bootstrap_servers,
        kafka_settings.topics.events,
        target,
        start=start,
        end=end,
        margin_seconds=86400,
    )
    expected = _ids_between(published, start, end)
    events = [orjson.loads(raw) for _, raw in iter_lines(target)]
    assert sorted(e["event_id"] for e in events) == sorted(expected)
    assert stats.written == len(expected)
    total = sum(1 for _ in iter_lines(published))
    assert stats.records == total  # record timestamps are wall clock: the whole log is read
    assert stats.before_start + stats.after_end == total - len(expected) > 0
    times = [e["occurred_at"] for e in events]
    assert times == sorted(times)
    # Deterministic: a second read gives the same file, ties included.
    again = tmp_path / "again.ndjson"
    await read_topics(
        kafka_settings.kafka_bootstrap_servers,
        kafka_settings.topics.events,
        again,
        start=start,
        end=end,
        margin_seconds=86400,
    )
    assert again.read_bytes() == target.read_bytes()


async def test_backtest_from_topics_matches_the_file_and_leaves_live_groups_alone(
    kafka_settings: Settings,
    published: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A "live" group that has committed offsets on the usage topic.
    group = f"{kafka_settings.topic_prefix}live-scorer"
    live_tps = [TopicPartition(kafka_settings.topics.usage, p) for p in range(2)]
    live = make_consumer(kafka_settings, group_id=group)
    await live.start()
    try:
        live.assign(live_tps)
        await live.commit({t: OffsetAndMetadata(7, "") for t in live_tps})
        before = {t: await live.committed(t) for t in live_tps}
    finally:
        await live.stop()

    scorecard = REPO / "docs" / "trust" / "sim-worse.toml"
    common = ["--scorecard", str(scorecard), "--from", FROM, "--to", TO]
    common += ["--cutoff", "2024-04-15", "--tick-hours", "168", "--quiet", "--bootstrap", "50"]
    monkeypatch.setenv(
        "HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS", kafka_settings.kafka_bootstrap_servers
    )
    monkeypatch.setenv("HEALTHSTREAM_TOPIC_PREFIX", kafka_settings.topic_prefix)
    from_topics = tmp_path / "topics.json"
    # The CLI runs its own event loop (asyncio.run): give it a thread of its own.
    code_topics = await asyncio.to_thread(
        main, ["backtest", *common, "--from-topics", "--json", str(from_topics)]
    )
    from_file = tmp_path / "file.json"
    code_file = main(["backtest", *common, "--events", str(published), "--json", str(from_file)])
    assert code_topics == code_file == 1  # the survey-only scorecard is worse, both ways
    a = orjson.loads(from_topics.read_bytes())
    b = orjson.loads(from_file.read_bytes())
    assert a["run"]["source"]["kind"] == "topics" and b["run"]["source"]["kind"] == "file"
    assert a["run"]["events"] == b["run"]["events"] > 0
    assert a["verdict"] == "worse"
    for key in ("verdict", "checks", "diff", "reasons", "alerts_per_week", "band_changes"):
        assert a[key] == b[key], key

    checker = make_consumer(kafka_settings, group_id=group)
    await checker.start()
    try:
        checker.assign(live_tps)
        after = {t: await checker.committed(t) for t in live_tps}
    finally:
        await checker.stop()
    assert after == before == dict.fromkeys(live_tps, 7)


def test_from_topics_without_a_broker_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here
    code = main(
        ["backtest", "--scorecard", str(_shipped()), "--from-topics", "--from", FROM, "--quiet"]
    )
    assert code == 2
    assert "HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS" in capsys.readouterr().err


def _shipped() -> Path:
    from services.scorer.core.scorecard import DEFAULT_PATH

    return DEFAULT_PATH

"""``healthstream replay`` as a user types it: it reaches the running demo, or refuses in
one line; it never publishes into a broker of its own that nobody reads."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import orjson

from healthstream.broker import free_port
from healthstream.running_demo import RunningDemo
from healthstream.settings import Settings
from simulator import generate
from simulator.ndjson import write_events
from tests.integration.ingest.test_send_cli import _on_a_terminal
from tests.integration.replay.test_replay import _consume_all


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSTREAM_")}
    return {**env, **extra}


def _replay(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "healthstream.cli", "replay", "events.ndjson", *args],
        cwd=cwd,
        env=_clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _events_file(cwd: Path, count: int = 40) -> list[dict]:
    events = list(generate(3, 20, 5))[:count]
    write_events(events, cwd / "events.ndjson")
    return events


def _demo_file(cwd: Path, pid: int, bootstrap: str, prefix: str = "") -> None:
    (cwd / ".healthstream-demo").mkdir()
    RunningDemo(
        pid=pid,
        bootstrap_servers=bootstrap,
        kafka_enable_idempotence=False,
        topic_prefix=prefix,
        ingest_url="http://127.0.0.1:1",
        alerts_url="http://127.0.0.1:1",
        api_key="unused",
    ).write(cwd / ".healthstream-demo")


def test_without_a_broker_or_a_demo_it_refuses_in_one_line(tmp_path: Path) -> None:
    _events_file(tmp_path)
    done = _replay(tmp_path)
    assert done.returncode == 2, done
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "replay: no Kafka configured and no running demo (.healthstream-demo/demo.json not "
        "found or stale): pass --bootstrap-servers, set HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS, "
        "or start `healthstream demo` in this directory"
    ]


def test_a_stale_demo_file_is_not_a_running_demo(tmp_path: Path) -> None:
    _events_file(tmp_path)
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    _demo_file(tmp_path, int(finished.stdout), "127.0.0.1:9")
    done = _replay(tmp_path)
    assert done.returncode == 2, done
    assert len(done.stderr.splitlines()) == 1 and "no running demo" in done.stderr


def test_a_dead_address_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    _events_file(tmp_path)
    port = free_port()
    for done in (
        _replay(tmp_path, "--bootstrap-servers", f"127.0.0.1:{port}"),
        _replay(tmp_path, HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}"),
    ):
        assert done.returncode == 1, done
        assert done.stderr.splitlines() == [
            f"replay: cannot reach Kafka at 127.0.0.1:{port} (Connection refused)"
        ]


async def test_it_publishes_to_the_running_demo(kafka_settings: Settings, tmp_path: Path) -> None:
    events = _events_file(tmp_path)
    # This test process stands for the demo: alive, with the broker and topics named in the file.
    _demo_file(
        tmp_path, os.getpid(), kafka_settings.kafka_bootstrap_servers, kafka_settings.topic_prefix
    )
    done = await asyncio.to_thread(_replay, tmp_path)
    assert done.returncode == 0, done
    lines = done.stderr.splitlines()
    assert lines[0] == (
        f"replay: publishing to {kafka_settings.kafka_bootstrap_servers}, the running demo "
        "(.healthstream-demo/demo.json)"
    )
    assert lines[1].startswith(f"replay: published {len(events)} events"), lines
    assert len(lines) == 2, "no progress bar when stderr is not a terminal"
    got = await _consume_all(kafka_settings, len(events))
    assert sorted(orjson.loads(value)["event_id"] for _, _, value in got) == sorted(
        e["event_id"] for e in events
    )


async def test_on_a_terminal_replay_shows_a_progress_bar_with_events_per_second(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    events = _events_file(tmp_path)
    bootstrap = kafka_settings.kafka_bootstrap_servers
    code, _, terminal = await asyncio.to_thread(
        _on_a_terminal,
        tmp_path,
        "replay",
        "events.ndjson",
        "--bootstrap-servers",
        bootstrap,
        HEALTHSTREAM_KAFKA_ENABLE_IDEMPOTENCE="false",
        HEALTHSTREAM_TOPIC_PREFIX=kafka_settings.topic_prefix,
    )
    assert code == 0, terminal
    total = len(events)
    assert re.search(rf"replay: 100%\|.*\| {total}/{total} \[.*events/s\]", terminal), terminal

"""`healthstream broker` prints the environment that works, and a producer without it
fails once, clearly, naming the setting: no service left looking alive and doing nothing.

Real processes: the broker command and the ingest service as subprocesses.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka.errors import KafkaError

from healthstream.broker import EmbeddedBroker, free_port
from healthstream.kafka import IDEMPOTENCE_SETTING, IdempotenceUnsupported, make_producer
from healthstream.settings import Settings
from tests.integration.ingest.live import INGEST_KEY, LiveServer, event, ingest_settings

KEY = "env-test-ingest-key"


def clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSTREAM_")}


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture
def broker_command(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """`healthstream broker` running: (the variables it told us to export, its env file)."""
    env_file = tmp_path / "broker.env"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "healthstream.cli",
            "broker",
            "--port",
            str(free_port()),
            "--env-file",
            str(env_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env=clean_environment(),
    )
    try:
        lines: list[str] = []
        assert process.stdout is not None
        while not lines or not lines[-1].startswith("Ctrl-C"):
            line = process.stdout.readline()
            assert line, f"broker exited early: {lines}"
            lines.append(line.rstrip("\n"))
        exported = dict(
            line.removeprefix("export ").split("=", 1)
            for line in lines
            if line.startswith("export ")
        )
        yield exported, env_file
    finally:
        stop(process)


def start_ingest(env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "healthstream.cli", "ingest", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
        env={**clean_environment(), **env, "HEALTHSTREAM_API_KEYS": f"{KEY}:ingest"},
    )
    return process, f"http://127.0.0.1:{port}"


def test_broker_prints_the_environment_that_works(
    broker_command: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    exported, env_file = broker_command
    assert set(exported) == {"HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS", IDEMPOTENCE_SETTING}
    assert exported[IDEMPOTENCE_SETTING] == "false"
    # Exactly the printed values, in a file a service can read as its .env.
    assert env_file.read_text().splitlines() == [f"{k}={v}" for k, v in exported.items()]
    process, url = start_ingest(exported, tmp_path)
    try:

        def ready() -> bool:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, 60, "ingest to be ready")
        event = {
            "event_id": "env-1",
            "account_id": "acme",
            "type": "usage",
            "name": "login",
            "occurred_at": "2024-05-01T12:00:00Z",
        }
        response = httpx.post(
            f"{url}/v1/events", json=event, headers={"Authorization": f"Bearer {KEY}"}, timeout=30
        )
        assert response.status_code == 202 and response.json()["accepted"] == 1
    finally:
        stop(process)


def test_ingest_without_the_setting_exits_naming_it(
    broker_command: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    exported, _ = broker_command
    without = {k: v for k, v in exported.items() if k != IDEMPOTENCE_SETTING}
    process, _ = start_ingest(without, tmp_path)
    try:
        output, _ = process.communicate(timeout=90)
    finally:
        stop(process)
    assert process.returncode != 0
    assert f"Set {IDEMPOTENCE_SETTING}=false" in output
    assert "cannot do idempotent producers" in output


async def test_idempotent_producer_start_fails_once_with_the_setting(
    broker: EmbeddedBroker,
) -> None:
    settings = Settings(kafka_bootstrap_servers=broker.bootstrap_servers, _env_file=None)
    assert settings.kafka_enable_idempotence  # the default, as a new user runs it
    producer = make_producer(settings)
    try:
        with pytest.raises(IdempotenceUnsupported, match=IDEMPOTENCE_SETTING) as info:
            await producer.start()
    finally:
        await producer.stop()
    # A configuration error, not a transient Kafka error that callers would retry.
    assert not isinstance(info.value, KafkaError)
    working = make_producer(settings.model_copy(update={"kafka_enable_idempotence": False}))
    await working.start()
    try:
        await working.send_and_wait("env-test-topic", b"ok")
    finally:
        await working.stop()


async def test_ingest_started_before_such_a_broker_refuses_naming_the_setting(
    tmp_path: Path,
) -> None:
    """Broker down at start-up (ingest keeps running), then up without idempotence:
    every request and both probes refuse, naming the setting."""
    port = free_port()
    base = Settings(kafka_bootstrap_servers=f"127.0.0.1:{port}", _env_file=None)
    # The shipped default (idempotence on); ingest_settings turns it off for tansu.
    settings = ingest_settings(base, kafka_enable_idempotence=True)
    server = LiveServer(settings).start()
    try:
        with EmbeddedBroker(port=port):
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                headers = {"Authorization": f"Bearer {INGEST_KEY}"}
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 60
                while True:
                    response = await client.post("/v1/events", json=event(0), headers=headers)
                    assert response.status_code == 503, response.text
                    if IDEMPOTENCE_SETTING in response.json()["message"]:
                        break
                    assert loop.time() < deadline, response.text
                    await asyncio.sleep(0.1)
                ready = await client.get("/readyz")
                assert ready.status_code == 503
                assert ready.json()["checks"] == {"broker": True, "producer_configuration": False}
                # Persistent, not retried for ever behind a 200: liveness fails too, so the
                # orchestrator restarts the pod, and the restart exits naming the setting.
                live = await client.get("/healthz")
                assert live.status_code == 503, live.text
                assert IDEMPOTENCE_SETTING in live.json()["tasks"]["producer"]
    finally:
        server.stop()

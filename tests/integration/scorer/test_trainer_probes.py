"""The trainer's /readyz is a real probe: ready only while its consume loop is alive.

A real trainer on the embedded broker and its probe server on a free port: not
ready before the loop runs, ready while it consumes, not ready once it stopped
(the probe server still answering), and no metrics on arbitrary paths.
"""

from __future__ import annotations

import asyncio

import httpx
import prometheus_client

from healthstream.broker import free_port
from healthstream.settings import Settings
from services.scorer.settings import ScorerSettings
from services.scorer.trainer import STALE_AFTER_S, ProbeServer, Trainer, probe_app


async def wait_for_status(client: httpx.AsyncClient, status: int, timeout: float = 30.0) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        response = await client.get("/readyz")
        if response.status_code == status:
            return response.json()
        assert loop.time() < deadline, (status, response.status_code, response.text)
        await asyncio.sleep(0.05)


async def test_readyz_follows_the_consume_loop(kafka_settings: Settings) -> None:
    settings = ScorerSettings(
        **kafka_settings.model_dump(include={"kafka_bootstrap_servers", "topic_prefix"}),
        kafka_enable_idempotence=False,
        partitions=kafka_settings.partitions,
        _env_file=None,
    )
    registry = prometheus_client.CollectorRegistry()
    trainer = Trainer(settings, registry=registry)
    port = free_port()
    probes = ProbeServer(probe_app(trainer, registry), "127.0.0.1", port).start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            before = await client.get("/readyz")
            assert before.status_code == 503
            assert before.json()["checks"] == {"consume_loop": False}
            assert (await client.get("/healthz")).status_code == 200

            task = asyncio.create_task(trainer.run())
            try:
                ready = await wait_for_status(client, 200)
                assert ready == {"status": "ready", "checks": {"consume_loop": True}}
                metrics = (await client.get("/metrics")).text
                assert "healthstream_trainer_examples_learned_total 0.0" in metrics
                # prometheus_client's server answered every path with metrics; this one does not.
                assert (await client.get("/anything")).status_code == 404
            finally:
                trainer.stop()
                await asyncio.wait_for(task, 30)
            after = await wait_for_status(client, 503)
            assert after["checks"] == {"consume_loop": False}
    finally:
        probes.stop()


def test_a_stuck_loop_is_not_ready() -> None:
    trainer = Trainer(
        ScorerSettings(_env_file=None), registry=prometheus_client.CollectorRegistry()
    )
    trainer._consuming, trainer._heartbeat = True, 100.0
    assert trainer.alive(now=100.0 + STALE_AFTER_S - 1)
    assert not trainer.alive(now=100.0 + STALE_AFTER_S + 1)

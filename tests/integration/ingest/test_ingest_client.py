"""The Python client and ``healthstream send`` against real HTTP servers."""

from __future__ import annotations

import asyncio
import gzip
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from healthstream.broker import free_port
from healthstream.settings import Settings
from services.ingest.client import IngestClient, IngestError
from tests.integration.ingest.live import INGEST_KEY, LiveServer, event, read_topic


async def run_cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "healthstream.cli",
        "send",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_send_cli_uploads_a_file_in_batches(
    ingest_server: LiveServer, kafka_settings: Settings, tmp_path: Path
) -> None:
    events = [event(i) for i in range(2500)]
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n\n")
    code, out, err = await run_cli(
        str(path), "--url", ingest_server.url, "--api-key", INGEST_KEY, "--batch-size", "1000"
    )
    assert code == 0, err
    assert "2500 accepted, 0 duplicates" in out and "in 3 requests" in out
    assert INGEST_KEY not in out + err
    records = await read_topic(kafka_settings, kafka_settings.topics.usage, expected=2500)
    assert len({orjson.loads(r.value)["event_id"] for r in records}) == 2500 == len(records)

    # Sending the same file again is harmless: everything is a duplicate.
    code, out, _ = await run_cli(str(path), "--url", ingest_server.url, "--api-key", INGEST_KEY)
    assert code == 0 and "0 accepted, 2500 duplicates" in out


async def test_send_cli_reports_invalid_lines_by_line_number(
    ingest_server: LiveServer, tmp_path: Path
) -> None:
    lines = [orjson.dumps(event(i)) for i in range(10)]
    lines[6] = orjson.dumps(event(6, occurred_at="2024-05-01"))
    path = tmp_path / "bad.ndjson"
    path.write_bytes(b"\n".join(lines))
    code, _, err = await run_cli(str(path), "--url", ingest_server.url, "--api-key", INGEST_KEY)
    assert code == 1
    assert "line 7: occurred_at" in err
    code, _, err = await run_cli(str(path), "--url", ingest_server.url)
    assert code == 2 and "API key" in err


class ScriptedServer:
    """A real HTTP server answering from a script, to exercise the client's retry policy."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        app = Starlette(routes=[Route("/v1/events", self.handle, methods=["POST"])])
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    async def handle(self, request: Request) -> JSONResponse:
        self.bodies.append(await request.body())
        self.headers.append(dict(request.headers))
        status = self.statuses.pop(0) if self.statuses else 202
        if status == 202:
            return JSONResponse({"accepted": 2, "duplicates": 0}, status_code=202)
        body: dict[str, Any] = {"error": "x", "message": f"scripted {status}"}
        return JSONResponse(body, status_code=status, headers={"Retry-After": "0"})

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


async def test_client_retries_503_and_429_with_backoff_then_succeeds() -> None:
    with ScriptedServer([503, 429, 503]) as server:
        async with IngestClient(
            f"http://127.0.0.1:{server.port}", "k", backoff_seconds=0.01
        ) as client:
            report = await client.send([event(0), event(1)])
        assert (report.accepted, report.retries, report.batches) == (2, 3, 1)
        assert len(server.bodies) == 4 and len(set(server.bodies)) == 1  # same batch resent
        assert server.headers[0]["content-encoding"] == "gzip"
        assert server.headers[0]["authorization"] == "Bearer k"
        lines = gzip.decompress(server.bodies[0]).splitlines()
        assert [orjson.loads(line)["name"] for line in lines] == ["feature.used"] * 2


async def test_client_does_not_retry_client_errors_and_gives_up_eventually() -> None:
    with ScriptedServer([422]) as server:
        async with IngestClient(f"http://127.0.0.1:{server.port}", "k") as client:
            with pytest.raises(IngestError) as caught:
                await client.send([event(0)])
        assert caught.value.status == 422 and len(server.bodies) == 1
    with ScriptedServer([503] * 10) as server:
        async with IngestClient(
            f"http://127.0.0.1:{server.port}", "k", max_retries=2, backoff_seconds=0.01
        ) as client:
            with pytest.raises(IngestError) as caught:
                await client.send([event(0)])
        assert caught.value.status == 503 and len(server.bodies) == 3

"""``healthstream send`` as a user types it: it finds the running demo, fails fast and in
one line on an address nobody answers, and warns when most of a file was a duplicate."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import orjson

from healthstream.broker import free_port
from healthstream.running_demo import RunningDemo
from tests.integration.ingest.live import INGEST_KEY, LiveServer, event


def _send(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSTREAM_")}
    return subprocess.run(
        [sys.executable, "-m", "healthstream.cli", "send", "events.ndjson", *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _file(cwd: Path, count: int) -> None:
    lines = [orjson.dumps(event(i)) for i in range(count)]
    (cwd / "events.ndjson").write_bytes(b"\n".join(lines) + b"\n")


def test_a_dead_port_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    _file(tmp_path, 3)
    url = f"http://127.0.0.1:{free_port()}"
    for done in (
        _send(tmp_path, "--url", url, "--api-key", INGEST_KEY),
        _send(tmp_path, HEALTHSTREAM_INGEST_URL=url, HEALTHSTREAM_API_KEY=INGEST_KEY),
    ):
        assert done.returncode == 1, done
        assert done.stdout == ""
        assert done.stderr.splitlines() == [
            f"send: cannot reach ingest at {url} (ConnectError: [Errno 111] Connection "
            "refused): is it running? Pass --url or set HEALTHSTREAM_INGEST_URL"
        ]


def test_no_key_and_no_demo_is_one_line(tmp_path: Path) -> None:
    _file(tmp_path, 3)
    done = _send(tmp_path)
    assert done.returncode == 2, done
    assert done.stderr.splitlines() == [
        "send: no API key: pass --api-key, set HEALTHSTREAM_API_KEY, or start "
        "`healthstream demo` in this directory"
    ]


async def test_it_sends_to_the_running_demo_and_warns_on_duplicates(
    ingest_server: LiveServer, tmp_path: Path
) -> None:
    _file(tmp_path, 50)
    (tmp_path / ".healthstream-demo").mkdir()
    # This test process stands for the demo: alive, with the ingest URL and key in the file.
    RunningDemo(
        pid=os.getpid(),
        bootstrap_servers="127.0.0.1:9",
        kafka_enable_idempotence=False,
        topic_prefix="",
        ingest_url=ingest_server.url,
        alerts_url="http://127.0.0.1:9",
        api_key=INGEST_KEY,
    ).write(tmp_path / ".healthstream-demo")
    first = await asyncio.to_thread(_send, tmp_path)
    assert first.returncode == 0, first
    assert first.stdout.splitlines() == [
        "sent 50 events in 1 requests: 50 accepted, 0 duplicates, 0 dead-lettered, 0 retries"
    ]
    assert first.stderr.splitlines() == [
        f"send: sending to {ingest_server.url}, the running demo (.healthstream-demo/demo.json)"
    ], "one line, and no progress bar when stderr is not a terminal"

    again = await asyncio.to_thread(_send, tmp_path)
    assert again.returncode == 0, again
    assert "0 accepted, 50 duplicates" in again.stdout
    assert again.stderr.splitlines()[-1] == (
        "send: warning: 50 of 50 events (100%) were dropped as duplicates: ingest had already "
        "seen their event_id (the same file sent twice, or two files sharing ids)"
    )


def _on_a_terminal(cwd: Path, *args: str, **env: str) -> tuple[int, str, str]:
    """Run ``healthstream ARGS`` with stderr on a pseudo-terminal, as in a shell."""
    leader, follower = pty.openpty()
    # A terminal has a size (a fresh pty is 0 x 0, where nothing fits on a line).
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSTREAM_")}
    with subprocess.Popen(
        [sys.executable, "-m", "healthstream.cli", *args],
        cwd=cwd,
        env={**clean, **env},
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
    ) as process:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed: the process has exited
                break
            if not chunk:
                break
            chunks.append(chunk)
        out = process.stdout.read() if process.stdout else ""
        process.wait(60)
    os.close(leader)
    return process.returncode, out, b"".join(chunks).decode(errors="replace")


async def test_on_a_terminal_send_shows_a_progress_bar_with_events_per_second(
    ingest_server: LiveServer, tmp_path: Path
) -> None:
    _file(tmp_path, 30)
    code, out, terminal = await asyncio.to_thread(
        _on_a_terminal,
        tmp_path,
        "send",
        "events.ndjson",
        "--url",
        ingest_server.url,
        "--api-key",
        INGEST_KEY,
    )
    assert code == 0, terminal
    assert "30 accepted" in out
    assert re.search(r"100%\|.*\| 30/30 \[.*ev/s\]", terminal), terminal

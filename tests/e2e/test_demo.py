"""`healthstream demo` comes up with no configuration and its printed curl produces an alert."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from healthstream.broker import free_port


def _read_banner(process: subprocess.Popen[str], timeout: float) -> str:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError("demo exited before it was up:\n" + "".join(lines))
        lines.append(line)
        if line.startswith("Ctrl-C stops everything"):
            return "".join(lines)
    raise AssertionError("demo did not come up:\n" + "".join(lines))


def test_demo_banner_curl_produces_an_alert(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSTREAM_")}
    env.update(
        {
            "HEALTHSTREAM_INGEST_PORT": str(free_port()),
            "HEALTHSTREAM_ALERTS_PORT": str(free_port()),
            "HEALTHSTREAM_SCORER_PORT": str(free_port()),
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "healthstream.cli", "demo", "--no-feed", "--data-dir", "demo"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        banner = _read_banner(process, timeout=180)
        key = re.search(r"API key\s+(\S+)", banner)
        assert key and key.group(1).startswith("dev-"), banner
        # The two curl commands exactly as printed (continuation lines joined).
        commands = re.findall(r"^  (curl .*?)(?=\n  curl |\n\n)", banner, re.S | re.M)
        assert len(commands) == 2, banner
        post = subprocess.run(
            ["bash", "-c", commands[0] + " -w '\\n%{http_code}'"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert post.stdout.strip().endswith("202"), post.stdout + post.stderr
        deadline = time.monotonic() + 60
        alerts: list[dict] = []
        while time.monotonic() < deadline and not alerts:
            listing = subprocess.run(
                ["bash", "-c", commands[1]], capture_output=True, text=True, timeout=30
            )
            alerts = json.loads(listing.stdout)["items"]
            time.sleep(0.5)
        assert [a["reason"] for a in alerts if a["account_id"] == "acme"] == ["payment_failed"]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            rest, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            rest, _ = process.communicate()
    assert process.returncode == 0, rest
    assert "stopped." in rest

"""`healthstream demo` comes up with no configuration, its printed curl produces an alert,
and Ctrl-C stops it the way a user expects: quickly, completely, without error lines."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.demo_process import Demo, demo_env

#: What must not appear in the demo's output or its services' logs when it stops.
TROUBLE = re.compile(r"\bERROR\b|Traceback|\bCRITICAL\b|Unclosed")


def test_demo_banner_curl_produces_an_alert_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    demo = Demo.start(tmp_path, demo_env(), "--no-feed", "--data-dir", "demo")
    try:
        banner = demo.banner
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
        # Assign on the page can pick the simulated CSMs (the demo writes their routing).
        me = subprocess.run(
            ["bash", "-c", commands[1].replace("/v1/alerts?account_id=acme", "/v1/me")],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "ana@example.com" in json.loads(me.stdout)["assignable"], me.stdout
        # The demo's readable logs name the alert and the account it is about.
        stored = f"alert stored alert_id={alerts[0]['alert_id']} account_id=acme"
        alerts_log = tmp_path / "demo" / "alerts.log"
        deadline = time.monotonic() + 30
        while stored not in alerts_log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert stored in alerts_log.read_text()
        assert (tmp_path / "demo" / "demo.json").is_file()
        logs = {log: log.stat().st_size for log in (tmp_path / "demo").glob("*.log")}
        assert {log.stem for log in logs} == {"ingest", "scorer", "trainer", "alerts"}
    finally:
        rest, took, left = demo.ctrl_c(within=5.0)
    assert not left, f"processes left {took:.1f} s after Ctrl-C: {left}\n{rest}"
    assert demo.process.returncode == 0, rest
    assert "stopped." in rest
    assert not TROUBLE.search(rest), rest
    for log, size in logs.items():
        with log.open() as handle:
            handle.seek(size)
            after_ctrl_c = handle.read()
        assert not TROUBLE.search(after_ctrl_c), f"{log.name}:\n{after_ctrl_c}"
    assert not (tmp_path / "demo" / "demo.json").exists()


def test_a_port_in_use_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    env = demo_env()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env["HEALTHSTREAM_ALERTS_PORT"] = str(port)
        done = subprocess.run(
            [sys.executable, "-m", "healthstream.cli", "demo", "--no-feed"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1, done
    assert done.stderr.splitlines() == [
        f"demo: port {port} on 127.0.0.1 is already in use (another demo?): stop what uses "
        f"it, or set HEALTHSTREAM_ALERTS_PORT to a free port"
    ]
    assert "Traceback" not in done.stdout
    assert not (tmp_path / ".healthstream-demo" / "demo.json").exists()

"""The README's quickstart, run as written against a fresh demo (see readme_steps.py).

What the test changes, and only that: the demo gets free ports (others run tests
on this machine), so ``127.0.0.1:8080``/``8081`` in the commands become the demo's
ports, and ``dev-…`` the key it printed. The demo is started with ``--no-feed``
(the simulated feed costs CPU the suite cannot spare; the README's own events are
what is checked), from a fresh directory whose ``.venv`` is the running
virtualenv, exactly as in a clone where ``make demo`` created it.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaConsumer

from healthstream.settings import Settings
from tests.e2e.demo_process import Demo, clean_env, demo_env
from tests.e2e.readme_steps import Shell, blocks, matches, quickstart, steps

ROOT = Path(__file__).resolve().parents[2]


def _venv_into(workdir: Path) -> None:
    """``workdir/.venv`` is the virtualenv running the tests (as ``make`` would have made)."""
    prefix = Path(sys.prefix)
    if (prefix / "bin" / "activate").is_file():
        (workdir / ".venv").symlink_to(prefix, target_is_directory=True)
        return
    scripts = Path(sys.executable).parent
    (workdir / ".venv" / "bin").mkdir(parents=True)
    (workdir / ".venv" / "bin" / "activate").write_text(f'export PATH="{scripts}:$PATH"\n')


async def _events_on_topics(bootstrap: str, expected: int, timeout: float = 60) -> Counter[str]:
    """How often each event_id is on the demo's five event topics (read from the start)."""
    topics = Settings(kafka_bootstrap_servers=bootstrap, _env_file=None).topics.events
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + timeout
    try:
        while seen.total() < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                seen.update(orjson.loads(r.value)["event_id"] for r in records)
    finally:
        await consumer.stop()
    return seen


def test_makefile_demo_is_the_demo_command() -> None:
    """The test starts ``healthstream demo`` where the README says ``make demo``."""
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo: .*\n\t\$\(BIN\)/healthstream demo$", makefile, re.M), makefile


def test_readme_quickstart_runs_as_written(tmp_path: Path) -> None:
    section = quickstart(ROOT / "README.md")
    fenced = blocks(section)
    assert fenced[0][0] == "" and "make demo" in section.split("```", 1)[0]
    printed_excerpt = [line.strip() for line in fenced[0][1].splitlines() if line.strip()]
    scripts = [body for info, body in fenced if info == "bash"]
    assert len(scripts) == 2, "the quickstart has a curl block and a file block"

    _venv_into(tmp_path)
    env = demo_env()
    demo = Demo.start(tmp_path, env, "--no-feed")
    shell = Shell(tmp_path, clean_env())
    try:
        banner = [line.strip() for line in demo.banner.splitlines()]
        key = next(line.split()[-1] for line in banner if line.startswith("API key"))
        ingest = f"127.0.0.1:{env['HEALTHSTREAM_INGEST_PORT']}"
        alerts = f"127.0.0.1:{env['HEALTHSTREAM_ALERTS_PORT']}"

        def ours(text: str) -> str:
            text = text.replace("127.0.0.1:8080", ingest).replace("127.0.0.1:8081", alerts)
            return text.replace("dev-…", key)

        # Step 1: the banner shows every line of the README's excerpt.
        for documented in printed_excerpt:
            assert any(matches([ours(documented)], [line]) for line in banner), (
                documented,
                demo.banner,
            )
        demo_file = tmp_path / ".healthstream-demo" / "demo.json"
        assert demo_file.is_file() and demo_file.stat().st_mode & 0o077 == 0

        # Steps 2 and 4, command by command, in one shell session.
        outputs: list[list[str]] = []
        for script in scripts:
            for step in steps(script):
                commands, expected = ours(step.commands), [ours(e) for e in step.expected]
                deadline = time.monotonic() + 60
                while True:
                    status, printed = shell.run(commands, timeout=120)
                    done = status == 0 and matches(expected, printed)
                    if done or not step.read_only or time.monotonic() > deadline:
                        break
                    time.sleep(0.5)  # an alert arrives within seconds: ask again
                assert status == 0, (commands, printed)
                assert matches(expected, printed), (commands, expected, printed)
                outputs.append(printed)

        # Step 3: the alerts page the demo printed is there.
        page = httpx.get(f"http://{alerts}/", timeout=10)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]

        # Step 4 reached this demo: every line of the file was accepted by its ingest,
        # and the replay landed on its broker's topics (beside the curl's one event).
        lines = sum(1 for line in (tmp_path / "events.ndjson").open() if line.strip())
        sent = next(line for out in outputs for line in out if line.startswith("sent "))
        assert f"sent {lines} events" in sent and f": {lines} accepted" in sent, sent
        published = next(o for out in outputs for o in out if o.startswith("replay: published"))
        assert f"published {lines} events" in published, published
        bootstrap = next(line.split()[-1] for line in banner if line.startswith("broker"))
        ids = [orjson.loads(line)["event_id"] for line in (tmp_path / "events.ndjson").open()]
        on_topics = asyncio.run(_events_on_topics(bootstrap, 1 + 2 * lines))
        assert on_topics == Counter({"evt-1": 1, **dict.fromkeys(ids, 2)})
    finally:
        shell.close()
        rest, took, left = demo.ctrl_c(within=5.0)
    assert not left, f"still running {took:.1f} s after Ctrl-C: {left}\n{rest}"
    assert demo.process.returncode == 0, rest
    assert not demo_file.exists(), "demo.json outlived the demo"

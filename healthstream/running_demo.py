"""Where a running ``healthstream demo`` says it is, so ``send`` and ``replay`` reach it.

The demo writes ``demo.json`` (broker address, topic prefix, ingest URL, an API
key) into its data directory, ``.healthstream-demo/`` under the working
directory unless ``HEALTHSTREAM_DEMO_DIR`` or ``--data-dir`` says otherwise, and
removes it when it stops. Clients run from the same directory find it there.

The file holds an API key, so it is written readable by its owner only. A file
whose demo process is gone (the demo was killed) is ignored: publishing into a
broker that no longer exists must fail loudly, not look like it worked.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

FILE_NAME = "demo.json"


def default_dir() -> Path:
    """The demo's data directory: ``HEALTHSTREAM_DEMO_DIR`` or ``./.healthstream-demo``."""
    return Path(os.environ.get("HEALTHSTREAM_DEMO_DIR") or ".healthstream-demo")


@dataclass(frozen=True)
class RunningDemo:
    pid: int
    bootstrap_servers: str
    kafka_enable_idempotence: bool
    topic_prefix: str
    ingest_url: str
    alerts_url: str
    api_key: str

    def write(self, directory: Path) -> Path:
        path = directory / FILE_NAME
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2))
        temporary.replace(path)
        return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find(directory: Path | None = None) -> tuple[RunningDemo | None, Path]:
    """The demo running from ``directory`` (default :func:`default_dir`), and the file looked at."""
    path = (directory or default_dir()) / FILE_NAME
    try:
        data = orjson.loads(path.read_bytes())
        demo = RunningDemo(**data)
    except (OSError, ValueError, TypeError):
        return None, path
    return (demo if _alive(demo.pid) else None), path


def remove(directory: Path, pid: int) -> None:
    """Delete the file if it still describes the demo ``pid`` (not a newer one)."""
    path = directory / FILE_NAME
    with contextlib.suppress(OSError, ValueError, TypeError):
        if orjson.loads(path.read_bytes()).get("pid") == pid:
            path.unlink()

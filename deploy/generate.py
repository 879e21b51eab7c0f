"""Generate the Grafana dashboards and the PrometheusRule from one source each.

Why a generator: dashboard JSON is long and repetitive (grid positions, panel ids,
datasource references), and the PrometheusRule must carry exactly the groups of
the plain rules file. Writing both by hand drifts; here the panels are a short,
reviewable list and the CRD is derived, never edited.

    python deploy/generate.py          # rewrite the generated files
    python deploy/generate.py --check  # exit 1 if a generated file is stale (CI)

Outputs (all committed):
    deploy/grafana/dashboards/healthstream-sre.json
    deploy/grafana/dashboards/healthstream-cs-operations.json
    deploy/k8s/base/prometheusrule.yaml
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent
RULES_FILE = DEPLOY / "prometheus" / "healthstream.rules.yaml"
PROMETHEUS_RULE = DEPLOY / "k8s" / "base" / "prometheusrule.yaml"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"

#: Every query is scoped to the namespaces picked in the dashboard's variable.
NS = 'namespace=~"$namespace"'
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
NAMESPACES_QUERY = 'label_values(up{job=~"ingest|scorer|trainer|alerts"}, namespace)'


@dataclass
class Panel:
    title: str
    queries: list[tuple[str, str]]  # (PromQL, legend)
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 8
    height: int = 8
    description: str = ""
    stack: bool = False
    thresholds: list[tuple[float | None, str]] = field(default_factory=list)
    decimals: int | None = None


@dataclass
class Row:
    title: str
    panels: list[Panel]


def sel(metric: str, matchers: str = "") -> str:
    """``metric{namespace=~"$namespace", <matchers>}``."""
    extra = f", {matchers}" if matchers else ""
    return f"{metric}{{{NS}{extra}}}"


def _agg(inner: str, by: str, agg: str) -> str:
    return f"{agg} by ({by}) ({inner})" if by else f"{agg}({inner})"


def rate(metric: str, by: str = "", matchers: str = "", window: str = RATE) -> str:
    """Per-second rate summed over pods (optionally kept apart by ``by`` labels)."""
    return _agg(f"rate({sel(metric, matchers)}[{window}])", by, "sum")


def increase(metric: str, window: str, by: str = "", matchers: str = "") -> str:
    return _agg(f"increase({sel(metric, matchers)}[{window}])", by, "sum")


def total(metric: str, by: str = "", matchers: str = "", agg: str = "sum") -> str:
    return _agg(sel(metric, matchers), by, agg)


def partition_lag(metric: str, by: str = "") -> str:
    """Lag summed over partitions, each partition counted once.

    A worker exports lag only for the partitions it was assigned; right after a
    rebalance the former owner may still show a partition until its gauge is
    refreshed or removed. The max per partition never counts one twice.
    """
    per_partition = f"max by (namespace, topic, partition) ({sel(metric)})"
    return f"sum by ({by}) ({per_partition})" if by else f"sum({per_partition})"


def slo_ratio(histogram: str, le: str, window: str) -> str:
    """Share of observations at or under the SLO bound (a real bucket bound) over ``window``."""
    good = increase(histogram + "_bucket", window, matchers=f'le="{le}"')
    return f"{good} / {increase(histogram + '_count', window)}"


def quantiles(
    metric: str, by: str = "", qs: tuple[float, ...] = (0.5, 0.95, 0.99)
) -> list[tuple[str, str]]:
    """histogram_quantile queries for a classic histogram, one per quantile."""
    group = f"le, {by}" if by else "le"
    legend_by = f" {{{{{by}}}}}" if by else ""
    return [
        (
            f"histogram_quantile({q}, {rate(metric + '_bucket', by=group)})",
            f"p{round(q * 100)}{legend_by}",
        )
        for q in qs
    ]


ING = "healthstream_ingest_"
SCO = "healthstream_scorer_"
TRN = "healthstream_trainer_"
ALR = "healthstream_alerts_"
JOBS = 'job=~"ingest|scorer|trainer|alerts"'
FIVE_XX = 'status=~"5.."'


def sre_dashboard() -> tuple[str, str, str, list[Row]]:
    rows = [
        Row(
            "Overview",
            [
                Panel(
                    "Scrape targets up",
                    [(total("up", by="job", matchers=JOBS), "{{job}}")],
                    kind="stat",
                    width=6,
                    height=5,
                    description="Pods Prometheus can scrape, per component. Zero means down.",
                    thresholds=[(None, "red"), (1, "green")],
                ),
                Panel(
                    "Events accepted / s",
                    [(rate(ING + "events_accepted_total"), "accepted")],
                    unit="ops",
                    kind="stat",
                    width=6,
                    height=5,
                ),
                Panel(
                    "Events scored / s",
                    [(rate(SCO + "events_processed_total"), "scored")],
                    unit="ops",
                    kind="stat",
                    width=6,
                    height=5,
                ),
                Panel(
                    "Scorer lag (records)",
                    [(partition_lag(SCO + "consumer_lag_messages"), "lag")],
                    kind="stat",
                    width=6,
                    height=5,
                    thresholds=[(None, "green"), (1000, "yellow"), (5000, "red")],
                ),
                Panel(
                    "Scoring SLO: events scored within 10 s",
                    [
                        (slo_ratio(SCO + "processing_latency_seconds", "10.0", "1h"), "last 1 h"),
                        (slo_ratio(SCO + "processing_latency_seconds", "10.0", "30d"), "last 30 d"),
                    ],
                    unit="percentunit",
                    kind="stat",
                    width=12,
                    height=5,
                    decimals=2,
                    description="Objective: 99 % of events, event time to health update (30 d).",
                    thresholds=[(None, "red"), (0.99, "green")],
                ),
                Panel(
                    "Delivery SLO: alerts delivered within 60 s of their event",
                    [
                        (slo_ratio(ALR + "event_to_delivery_seconds", "60.0", "1h"), "last 1 h"),
                        (slo_ratio(ALR + "event_to_delivery_seconds", "60.0", "30d"), "last 30 d"),
                    ],
                    unit="percentunit",
                    kind="stat",
                    width=12,
                    height=5,
                    decimals=2,
                    description="Objective: 99 % of alerts, event time to delivered, over 30 days.",
                    thresholds=[(None, "red"), (0.99, "green")],
                ),
            ],
        ),
        Row(
            "Ingest",
            [
                Panel(
                    "Requests / s by status",
                    [(rate(ING + "requests_total", by="status"), "{{status}}")],
                    unit="reqps",
                    stack=True,
                ),
                Panel(
                    "5xx ratio",
                    [
                        (
                            rate(ING + "requests_total", matchers=FIVE_XX)
                            + " / "
                            + rate(ING + "requests_total"),
                            "5xx",
                        )
                    ],
                    unit="percentunit",
                ),
                Panel(
                    "Events accepted / s by source",
                    [(rate(ING + "events_accepted_total", by="source"), "{{source}}")],
                    unit="ops",
                    stack=True,
                ),
                Panel(
                    "Events rejected / s by reason",
                    [(rate(ING + "events_rejected_total", by="reason"), "{{reason}}")],
                    unit="ops",
                    stack=True,
                    description="invalid, duplicate, dead_lettered, unavailable, too_large.",
                ),
                Panel(
                    "Publish latency (batch to broker ack)",
                    quantiles(ING + "publish_latency_seconds"),
                    unit="s",
                ),
                Panel(
                    "In-flight events and batch size",
                    [
                        (total(ING + "in_flight_events"), "in flight"),
                        *quantiles(ING + "batch_size_events", qs=(0.5,)),
                    ],
                ),
                Panel(
                    "Webhook signature failures / s",
                    [(rate(ING + "signature_failures_total", by="source"), "{{source}}")],
                    unit="reqps",
                    description="Forged, expired or missing signatures on source webhooks.",
                ),
            ],
        ),
        Row(
            "Scorer",
            [
                Panel(
                    "Consumer lag by topic",
                    [(partition_lag(SCO + "consumer_lag_messages", by="topic"), "{{topic}}")],
                    description="Records behind the high watermark, summed over partitions.",
                ),
                Panel(
                    "Consumer lag by partition (top 10)",
                    [
                        (
                            "topk(10, "
                            + total(SCO + "consumer_lag_messages", by="topic, partition", agg="max")
                            + ")",
                            "{{topic}}[{{partition}}]",
                        )
                    ],
                    description="One hot partition: a heavy account key or a stuck worker.",
                ),
                Panel(
                    "Event time to health update",
                    quantiles(SCO + "processing_latency_seconds"),
                    unit="s",
                    description="Scoring time minus the event's occurred_at (SLO: 99 % in 10 s).",
                ),
                Panel(
                    "Events scored / s by type",
                    [(rate(SCO + "events_processed_total", by="type"), "{{type}}")],
                    unit="ops",
                    stack=True,
                ),
                Panel(
                    "Outputs / s",
                    [
                        (rate(SCO + "health_updates_published_total"), "health updates"),
                        (rate(SCO + "alerts_total"), "risk alerts"),
                        (rate(SCO + "training_examples_published_total"), "training examples"),
                    ],
                    unit="ops",
                ),
                Panel(
                    "Duplicates, late events, timer ticks / s",
                    [
                        (rate(SCO + "events_duplicate_total"), "duplicate"),
                        (rate(SCO + "events_late_total"), "late"),
                        (rate(SCO + "timer_ticks_total"), "timer ticks"),
                    ],
                    unit="ops",
                ),
                Panel(
                    "Batch size (records)",
                    quantiles(SCO + "batch_size_events", qs=(0.5, 0.99)),
                    description="Small batches under load: starved. Full ones: saturated.",
                ),
            ],
        ),
        Row(
            "Alerts and trainer consumers",
            [
                Panel(
                    "Alerts consumer lag by topic",
                    [(partition_lag(ALR + "consumer_lag_messages", by="topic"), "{{topic}}")],
                    width=12,
                    description=(
                        "Records on risk-alerts, account-health and account-events not yet"
                        " stored by the alerts service, summed over partitions."
                    ),
                ),
                Panel(
                    "Trainer lag (training examples)",
                    [(partition_lag(TRN + "consumer_lag_messages"), "not yet learned")],
                    width=12,
                    description="Labelled examples the trainer has not learned yet.",
                ),
                Panel(
                    "Alert appended to stored",
                    quantiles(ALR + "store_lag_seconds", qs=(0.5, 0.99)),
                    unit="s",
                    description=(
                        "risk-alerts record timestamp to stored and pushed to the CSM page:"
                        " the alerts service's share of the alert latency."
                    ),
                ),
                Panel(
                    "Store batch duration by consumer",
                    quantiles(ALR + "store_batch_seconds", by="kind", qs=(0.5, 0.99)),
                    unit="s",
                    description="One fetch in one database transaction (alerts, or health).",
                ),
                Panel(
                    "Health updates stored / superseded per s",
                    [(rate(ALR + "health_updates_total", by="result"), "{{result}}")],
                    unit="ops",
                    stack=True,
                    description="Only the latest update per account and fetch is written.",
                ),
            ],
        ),
        Row(
            "Errors and dead letters",
            [
                Panel(
                    "Dead-lettered / s",
                    [
                        (rate(SCO + "dlq_messages_total", by="stage"), "scorer {{stage}}"),
                        (
                            rate(ING + "events_rejected_total", matchers='reason="dead_lettered"'),
                            "ingest",
                        ),
                        (rate(ALR + "invalid_messages_total", by="topic"), "alerts {{topic}}"),
                    ],
                    unit="ops",
                    width=12,
                ),
                Panel(
                    "Dead letters, last 24 h",
                    [
                        (increase(SCO + "dlq_messages_total", "24h"), "scorer"),
                        (
                            increase(
                                ING + "events_rejected_total",
                                "24h",
                                matchers='reason="dead_lettered"',
                            ),
                            "ingest",
                        ),
                    ],
                    kind="stat",
                    width=12,
                    thresholds=[(None, "green"), (1, "orange")],
                ),
            ],
        ),
        Row(
            "Alert delivery",
            [
                Panel(
                    "Deliveries / s by channel",
                    [
                        (rate(ALR + "delivered_total", by="channel"), "delivered {{channel}}"),
                        (rate(ALR + "failed_total", by="channel"), "failed {{channel}}"),
                        (rate(ALR + "dead_letters_total", by="channel"), "given up {{channel}}"),
                    ],
                    unit="ops",
                ),
                Panel(
                    "Event time to alert delivered",
                    quantiles(ALR + "event_to_delivery_seconds", by="channel", qs=(0.5, 0.99)),
                    unit="s",
                    description="SLO: 99 % of alerts delivered within 60 s of their event.",
                ),
                Panel(
                    "Stored to delivered",
                    quantiles(ALR + "delivery_latency_seconds", by="channel", qs=(0.5, 0.99)),
                    unit="s",
                ),
                Panel("Outbox depth", [(total(ALR + "outbox_depth"), "pending")]),
                Panel(
                    "Oldest undelivered",
                    [(total(ALR + "outbox_oldest_age_seconds", agg="max"), "age")],
                    unit="s",
                ),
                Panel(
                    "Alerts received, stored, duplicate / s",
                    [
                        (rate(ALR + "received_total"), "received"),
                        (rate(ALR + "stored_total"), "stored"),
                        (rate(ALR + "duplicates_total"), "duplicate"),
                    ],
                    unit="ops",
                ),
            ],
        ),
    ]
    return "healthstream-sre", "healthstream — service health (SRE)", "sre", rows


def cs_dashboard() -> tuple[str, str, str, list[Row]]:
    rows = [
        Row(
            "Portfolio health",
            [
                Panel(
                    "Accounts by band",
                    [(total(SCO + "accounts_by_band", by="band"), "{{band}}")],
                    width=16,
                    height=9,
                    stack=True,
                    description="Accounts in each health band over time (sum over workers).",
                ),
                Panel(
                    "Share of accounts in red",
                    [
                        (
                            total(SCO + "accounts_by_band", matchers='band="red"')
                            + " / "
                            + total(SCO + "accounts_by_band"),
                            "red",
                        )
                    ],
                    unit="percentunit",
                    kind="stat",
                    width=8,
                    height=9,
                    thresholds=[(None, "green"), (0.1, "yellow"), (0.2, "red")],
                ),
            ],
        ),
        Row(
            "Risk alerts",
            [
                Panel(
                    "Alerts raised per hour by reason",
                    [(increase(SCO + "alerts_total", "1h", by="reason"), "{{reason}}")],
                    width=12,
                    stack=True,
                ),
                Panel(
                    "Alerts stored per hour by reason (after dedupe)",
                    [(increase(ALR + "stored_total", "1h", by="reason"), "{{reason}}")],
                    width=12,
                    stack=True,
                ),
                Panel(
                    "Alerts delivered per hour by channel",
                    [(increase(ALR + "delivered_total", "1h", by="channel"), "{{channel}}")],
                ),
                Panel(
                    "Escalations per hour",
                    [(increase(ALR + "escalations_total", "1h"), "escalated")],
                    description="Critical alerts nobody acknowledged in time.",
                ),
                Panel(
                    "CSMs watching live",
                    [(total(ALR + "stream_clients"), "connected")],
                    kind="stat",
                ),
            ],
        ),
        Row(
            "Churn model",
            [
                Panel(
                    "Rolling AUC",
                    [
                        (total(TRN + "model_rolling_auc", agg="max"), "trainer (latest)"),
                        (total(SCO + "model_rolling_auc", agg="min"), "scorer (in use)"),
                    ],
                    unit="none",
                    decimals=3,
                    description="Progressive validation AUC (predict, then learn). 0.5 is chance.",
                    thresholds=[(None, "red"), (0.65, "yellow"), (0.75, "green")],
                ),
                Panel(
                    "Labels learned",
                    [
                        (total(TRN + "model_labels_seen", agg="max"), "trainer"),
                        (total(SCO + "model_labels_seen", agg="min"), "scorer (in use)"),
                    ],
                ),
                Panel(
                    "Training flow per hour",
                    [
                        (increase(TRN + "examples_learned_total", "1h"), "examples learned"),
                        (increase(TRN + "examples_invalid_total", "1h"), "examples invalid"),
                        (increase(TRN + "snapshots_published_total", "1h"), "snapshots published"),
                        (increase(SCO + "model_snapshots_loaded_total", "1h"), "snapshots loaded"),
                    ],
                ),
            ],
        ),
    ]
    return "healthstream-cs", "healthstream — customer health (CS operations)", "cs", rows


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit}
    if panel.decimals is not None:
        defaults["decimals"] = panel.decimals
    if panel.thresholds:
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": color, "value": value} for value, color in panel.thresholds],
        }
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 20 if panel.stack else 0,
            "stacking": {"mode": "normal" if panel.stack else "none", "group": "A"},
            "showPoints": "never",
        }
        options: dict[str, Any] = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    else:
        options = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "auto",
        }
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": [
            {
                "datasource": DATASOURCE,
                "refId": chr(ord("A") + index),
                "expr": expr,
                "legendFormat": legend,
                "range": True,
            }
            for index, (expr, legend) in enumerate(panel.queries)
        ],
    }


def dashboard_json(uid: str, title: str, tag: str, rows: list[Row]) -> dict[str, Any]:
    """Grafana 10/11 dashboard model, importable as is and provisionable unchanged."""
    panels: list[dict[str, Any]] = []
    panel_id = 1
    y = 0
    for row in rows:
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id += 1
        y += 1
        x = 0
        row_height = 0
        for panel in row.panels:
            if x + panel.width > 24:
                x = 0
                y += row_height
                row_height = 0
            panels.append(_panel_json(panel, panel_id, x, y))
            panel_id += 1
            x += panel.width
            row_height = max(row_height, panel.height)
        y += row_height
    return {
        "uid": uid,
        "title": title,
        "tags": ["healthstream", tag],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "links": [],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                    "options": [],
                },
                {
                    "name": "namespace",
                    "label": "Namespace",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": {
                        "query": NAMESPACES_QUERY,
                        "refId": "namespaces",
                    },
                    "definition": NAMESPACES_QUERY,
                    "current": {},
                    "includeAll": True,
                    "allValue": ".*",
                    "multi": True,
                    "hide": 0,
                    "refresh": 2,
                    "regex": "",
                    "sort": 1,
                    "options": [],
                },
            ]
        },
        "panels": panels,
    }


def prometheus_rule(rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "healthstream",
            "labels": {"release": "prometheus", "app.kubernetes.io/name": "healthstream"},
        },
        "spec": {"groups": rules["groups"]},
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL) as literal blocks, so the CRD stays reviewable."""


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_presenter)


def outputs() -> dict[Path, str]:
    files: dict[Path, str] = {}
    for filename, build in (
        ("healthstream-sre.json", sre_dashboard),
        ("healthstream-cs-operations.json", cs_dashboard),
    ):
        model = dashboard_json(*build())
        files[DASHBOARDS / filename] = json.dumps(model, indent=2, ensure_ascii=False) + "\n"
    rules = yaml.safe_load(RULES_FILE.read_text())
    header = (
        "# GENERATED by `python deploy/generate.py`\n"
        "# from deploy/prometheus/healthstream.rules.yaml.\n"
        "# Do not edit: change the plain rules file and regenerate.\n"
    )
    body = yaml.dump(prometheus_rule(rules), Dumper=_Dumper, sort_keys=False, width=120)
    files[PROMETHEUS_RULE] = header + body
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a generated file is stale")
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(DEPLOY.parent)}")
    if stale:
        names = ", ".join(str(p.relative_to(DEPLOY.parent)) for p in stale)
        print(f"stale generated files: {names} (run python deploy/generate.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

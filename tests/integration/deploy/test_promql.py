"""The PromQL metric-name extractor the dashboard test relies on."""

from __future__ import annotations

import pytest

from tests.integration.deploy.promql import (
    PromQLSyntaxError,
    metric_names,
    template_query_metric_names,
)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("up", {"up"}),
        ('up{job=~"ingest|scorer"} == 0', {"up"}),
        (
            'histogram_quantile(0.99, sum by (le, channel) (rate(x_seconds_bucket{le="10.0"}'
            "[$__rate_interval])))",
            {"x_seconds_bucket"},
        ),
        (
            "sum by (namespace, topic) (lag) > 5000 and sum by (topic) (delta(lag[15m])) > 0",
            {"lag"},
        ),
        ("a offset 5m * on(instance) group_left(version) b_info", {"a", "b_info"}),
        ("sum without (pod) (rate(c_total[1h:5m]))", {"c_total"}),
        (
            "(1 - sum(rate(h_bucket[1h])) / sum(rate(h_count[1h]))) > (14.4 * 0.01)",
            {"h_bucket", "h_count"},
        ),
        ('topk(10, max by (topic, partition) (g{namespace=~"$namespace"}))', {"g"}),
        ("d_total / bool ignoring(x) e_total", {"d_total", "e_total"}),
        ("record:rule:rate5m unless absent(f)", {"record:rule:rate5m", "f"}),
        ('count(m{label="by (x) sum(y)"})', {"m"}),
        ("vector(1) + 2e3", set()),
    ],
)
def test_metric_names(expr: str, expected: set[str]) -> None:
    assert metric_names(expr) == expected


def test_label_values_reads_only_the_selector() -> None:
    query = 'label_values(up{job=~"ingest|scorer"}, namespace)'
    assert template_query_metric_names(query) == {"up"}
    assert template_query_metric_names("label_values(namespace)") == set()


@pytest.mark.parametrize("expr", ["sum(rate(x[5m])", 'x{a="b}', "x{a='b'", "x[5m"])
def test_broken_expressions_are_refused(expr: str) -> None:
    with pytest.raises(PromQLSyntaxError):
        metric_names(expr)

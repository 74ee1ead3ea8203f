"""The metric-name extraction the dashboard and alert checks rely on."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.promql import check_expressions, metric_names, promtool, unknown_metrics


def test_metric_names() -> None:
    expr = (
        'sum by (tier, outcome) (rate(job_duration_seconds_count{outcome=~"a|b", x="y{z}"}[5m])) '
        "/ on(tier) group_left max without (instance) (queue_depth) > 0 and time() - up offset 5m"
    )
    assert metric_names(expr) == {"job_duration_seconds_count", "queue_depth", "up"}
    assert metric_names("histogram_quantile(0.95, sum by (le) (rate(x_bucket[1h])))") == {"x_bucket"}


def test_unknown_metrics() -> None:
    assert unknown_metrics("rate(parse_errors_total[5m]) + kube_pod_info + keda_scaler_errors") == set()
    assert unknown_metrics("rate(parse_error_total[5m])") == {"parse_error_total"}
    assert unknown_metrics("queue_depthh") == {"queue_depthh"}


def test_promtool_rejects_a_bad_expression(tmp_path: Path) -> None:
    promtool()
    with pytest.raises(AssertionError):
        check_expressions({"bad": "sum by (le (rate(x[5m]))"}, tmp_path)

"""The PrometheusRule alerts: valid rules, unit-tested with `promtool test rules`, reading
only metrics the platform (or KEDA / kube-state-metrics) exports."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.promql import metric_names, promtool, run_promtool, unknown_metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "percolate-reading-rules.yaml"
CASES = ROOT / "deploy" / "prometheus" / "percolate-reading-rules.test.yaml"
REQUIRED_ALERTS = {
    "PercolateDeadLettersGrowing",
    "PercolateJobErrorRatioHigh",
    "PercolateQueueAgeOverSLO",
    "PercolateScalerErrors",
    "PercolateNoWorkerWhileJobsWait",
    "PercolateGateway5xx",
}


def prometheus_rule() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return doc


def alert_rules() -> list[dict[str, Any]]:
    return [r for g in prometheus_rule()["spec"]["groups"] for r in g["rules"] if "alert" in r]


def write_case(tmp_path: Path, spec: dict[str, Any]) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec))
    shutil.copy(CASES, tmp_path / "test.yaml")


def test_prometheus_rule_shape() -> None:
    doc = prometheus_rule()
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert doc["kind"] == "PrometheusRule"
    assert doc["metadata"]["name"] == "percolate-reading"
    alerts = alert_rules()
    assert {r["alert"] for r in alerts} >= REQUIRED_ALERTS
    for rule in alerts:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["annotations"]["description"], rule["alert"]


def test_alerts_read_only_known_metrics() -> None:
    for rule in alert_rules():
        assert metric_names(rule["expr"]), rule["alert"]
        assert unknown_metrics(rule["expr"]) == set(), rule["alert"]


def test_every_alert_has_a_firing_case() -> None:
    cases = yaml.safe_load(CASES.read_text())
    fired = {
        check["alertname"]
        for test in cases["tests"]
        for check in test.get("alert_rule_test", [])
        if check.get("exp_alerts")
    }
    quiet = {
        check["alertname"]
        for test in cases["tests"]
        for check in test.get("alert_rule_test", [])
        if not check.get("exp_alerts")
    }
    names = {r["alert"] for r in alert_rules()}
    assert fired == names
    assert quiet == names  # and each is also shown not to fire too early or on healthy series


def test_promtool_checks_and_unit_tests_the_rules(tmp_path: Path) -> None:
    promtool()
    write_case(tmp_path, prometheus_rule()["spec"])
    check = run_promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    result = run_promtool("test", "rules", "test.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_unit_tests_catch_a_broken_threshold(tmp_path: Path) -> None:
    # The cases really pin the rules: an SLO off by 10x makes them fail.
    promtool()
    spec = prometheus_rule()["spec"]
    for group in spec["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "PercolateQueueAgeOverSLO":
                rule["expr"] = rule["expr"].replace("> 900", "> 9000")
    write_case(tmp_path, spec)
    result = run_promtool("test", "rules", "test.yaml", cwd=tmp_path)
    assert result.returncode != 0
    assert "PercolateQueueAgeOverSLO" in result.stdout + result.stderr

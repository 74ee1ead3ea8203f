"""deploy/grafana/percolate-reading.json: a well-formed Grafana dashboard whose every query
parses (promtool) and reads only metrics the platform, KEDA or kube-state-metrics export."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.deploy.promql import check_expressions, metric_names, promtool, unknown_metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "percolate-reading.json"
# Grafana's variables, replaced by what they expand to before promtool reads a query.
VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$namespace": "percolate"}
# What the dashboard must show (issue 17), each by a metric it reads.
COVERAGE = {
    "uploads": "http_requests_total",
    "queue depth": "queue_depth",
    "queue age": "queue_oldest_message_age_seconds",
    "KEDA replicas": "kube_horizontalpodautoscaler_status_desired_replicas",
    "parse latency by provider": "parse_duration_seconds_bucket",
    "errors by code": "parse_errors_total",
    "dead letters": "dead_letter_messages",
    "webhooks": "webhook_deliveries_total",
}


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def panels() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for panel in dashboard()["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def queries() -> dict[str, str]:
    """'<panel title>/<refId>' -> the expression with Grafana's variables expanded."""
    out: dict[str, str] = {}
    for panel in panels():
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var, value in VARIABLES.items():
                expr = expr.replace(var, value)
            out[f"{panel['title']}/{target['refId']}"] = expr
    return out


def test_dashboard_structure() -> None:
    doc = dashboard()
    assert doc["uid"] == "percolate-reading"
    assert doc["title"]
    assert isinstance(doc["schemaVersion"], int)
    variables = {v["name"] for v in doc["templating"]["list"]}
    assert {"datasource", "namespace"} <= variables
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    occupied: set[tuple[int, int]] = set()
    for panel in panels():
        pos = panel["gridPos"]
        assert pos["x"] >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        xs, ys = range(pos["x"], pos["x"] + pos["w"]), range(pos["y"], pos["y"] + pos["h"])
        cells = {(x, y) for x in xs for y in ys}
        assert not cells & occupied, f"panel {panel['title']!r} overlaps another"
        occupied |= cells
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs, panel["title"]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]


def test_dashboard_covers_the_platform() -> None:
    read = set().union(*(metric_names(e) for e in queries().values()))
    missing = {what: name for what, name in COVERAGE.items() if name not in read}
    assert missing == {}


def test_every_query_reads_known_metrics() -> None:
    for where, expr in queries().items():
        assert metric_names(expr), where
        assert unknown_metrics(expr) == set(), where
        assert not re.search(r"\$\w", expr), f"{where}: unexpanded variable in {expr}"


def test_every_query_parses(tmp_path: Path) -> None:
    promtool()
    check_expressions(queries(), tmp_path)

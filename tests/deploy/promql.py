"""Helpers for checking PromQL we ship (alert rules, dashboard): promtool, and the metric
names an expression reads compared with what the platform registers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from percolate_reading.metrics import Metrics

# Metrics of other components the dashboard and alerts read, by prefix.
EXTERNAL_PREFIXES = (
    "kube_",  # kube-state-metrics
    "keda_",  # the KEDA operator
)

_FUNCTIONS_AND_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")


def promtool() -> str | None:
    """Path of promtool; None (test skipped) outside CI, a failure under CI=true."""
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("promtool not found: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool not found (apt-get install prometheus); CI=true makes this a failure")
    return found


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    tool = promtool()
    assert tool is not None
    return subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (identifiers that are not functions, keywords,
    label names in groupings, or inside strings/matchers/ranges)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name in _FUNCTIONS_AND_KEYWORDS or re.fullmatch(r"\d\w*", name):
            continue
        names.add(name)
    return names


def registered_metric_names() -> set[str]:
    """Every sample name the platform's Metrics can export."""
    names: set[str] = set()
    for family in Metrics().registry.collect():
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_count", "_sum"))
        else:
            names.add(family.name)
    return names


def unknown_metrics(expr: str) -> set[str]:
    known = registered_metric_names()
    return {n for n in metric_names(expr) if n not in known and not n.startswith(EXTERNAL_PREFIXES)}


def check_expressions(exprs: dict[str, str], tmp_path: Path) -> None:
    """promtool parses each expression (as a recording rule), failing with its message."""
    rules = [{"record": f"check:{i}", "expr": expr} for i, expr in enumerate(exprs.values())]
    path = tmp_path / "exprs.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "exprs", "rules": rules}]}))
    result = run_promtool("check", "rules", path.name, cwd=tmp_path)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{list(exprs)}"

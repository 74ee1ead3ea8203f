"""The example queries in docs/observability.md parse and read only real metric names."""

from __future__ import annotations

import re
from pathlib import Path

from tests.deploy.promql import check_expressions, metric_names, promtool, unknown_metrics

DOC = Path(__file__).resolve().parents[2] / "docs" / "observability.md"


def doc_queries() -> dict[str, str]:
    blocks = re.findall(r"```promql\n(.*?)```", DOC.read_text(), flags=re.S)
    return {f"query {i}": " ".join(block.split()) for i, block in enumerate(blocks)}


def test_documented_queries_use_real_metrics() -> None:
    queries = doc_queries()
    assert len(queries) >= 5
    for where, expr in queries.items():
        assert metric_names(expr), where
        assert unknown_metrics(expr) == set(), f"{where}: {expr}"


def test_documented_queries_parse(tmp_path: Path) -> None:
    promtool()
    check_expressions(doc_queries(), tmp_path)

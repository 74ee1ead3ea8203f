"""`submit`'s pure helpers: where artifacts land, and refusing names that would escape."""

from __future__ import annotations

from pathlib import Path

import pytest

from percolate_reading.cli.submit import Submission, out_dirs
from percolate_reading.client._common import artifact_target
from percolate_reading.errors import ClientError


def test_artifact_paths_stay_inside_the_output_folder(tmp_path: Path) -> None:
    assert artifact_target(tmp_path, "document.md") == tmp_path / "document.md"
    assert artifact_target(tmp_path, "tables/sheet1.csv") == tmp_path / "tables" / "sheet1.csv"
    for bad in ("../x", "/etc/passwd", "a/../../b", "a\\b", "", "a//b"):
        with pytest.raises(ClientError):
            artifact_target(tmp_path, bad)


def test_repeated_stems_get_their_own_folders(tmp_path: Path) -> None:
    subs = [Submission(Path("a/report.pdf")), Submission(Path("b/report.pdf")), Submission(Path("x.xlsx"))]
    out_dirs(subs, tmp_path)
    assert [s.out_dir for s in subs] == [tmp_path / "report", tmp_path / "report-2", tmp_path / "x"]

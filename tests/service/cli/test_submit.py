"""`submit`'s pure helpers: where artifacts land, and refusing names that would escape."""

from __future__ import annotations

from pathlib import Path

from percolate_reading.cli.submit import Submission, out_dirs, safe_artifact_path


def test_artifact_paths_stay_inside_the_output_folder(tmp_path: Path) -> None:
    assert safe_artifact_path(tmp_path, "document.md") == tmp_path / "document.md"
    assert safe_artifact_path(tmp_path, "tables/sheet1.csv") == tmp_path / "tables" / "sheet1.csv"
    for bad in ("../x", "/etc/passwd", "a/../../b", "a\\b", "", "a//b"):
        assert safe_artifact_path(tmp_path, bad) is None, bad


def test_repeated_stems_get_their_own_folders(tmp_path: Path) -> None:
    subs = [Submission(Path("a/report.pdf")), Submission(Path("b/report.pdf")), Submission(Path("x.xlsx"))]
    out_dirs(subs, tmp_path)
    assert [s.out_dir for s in subs] == [tmp_path / "report", tmp_path / "report-2", tmp_path / "x"]

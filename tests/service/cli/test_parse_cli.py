"""`percolate-reading parse` as a user runs it: a real subprocess on real files."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from percolate_reading.cli.parse import assign_output_names, expand_inputs

SAMPLES = Path(__file__).resolve().parents[3] / "service" / "percolate_reading" / "samples"


def _run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERCOLATE_READING_")}
    return subprocess.run(
        [sys.executable, "-m", "percolate_reading", "parse", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=cwd,
        check=False,
    )


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / ".hidden").mkdir()
    shutil.copy(SAMPLES / "sample-report.pdf", src / "report.pdf")
    shutil.copy(SAMPLES / "sample-budget.xlsx", src / "sub" / "budget.xlsx")
    # Same stem as the PDF: must not overwrite its output.
    shutil.copy(SAMPLES / "sample-budget.xlsx", src / "sub" / "report.xlsx")
    data = (SAMPLES / "sample-report.pdf").read_bytes()
    (src / "broken.pdf").write_bytes(data[:400])  # truncated: header only
    (src / ".hidden" / "skipped.pdf").write_bytes(data)
    (src / ".dotfile.pdf").write_bytes(data)
    return src


def test_parse_folder_with_a_broken_file(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _run(inputs, "--out", out, "--jobs", "2", "--no-ocr", "--timeout", "120")
    assert proc.returncode == 1, proc.stderr

    summary = json.loads((out / "summary.json").read_text())
    by_file = {Path(s["file"]).relative_to(inputs).as_posix(): s for s in summary}
    assert set(by_file) == {"report.pdf", "sub/budget.xlsx", "sub/report.xlsx", "broken.pdf"}
    broken = by_file["broken.pdf"]
    assert broken["ok"] is False
    assert broken["error_code"] == "corrupt"
    assert broken["error"]
    assert by_file["report.pdf"]["output"] == "report"
    assert by_file["sub/report.xlsx"]["output"] == "report-2"
    assert by_file["report.pdf"]["extent"] == "3 pages"
    assert by_file["sub/budget.xlsx"]["extent"] == "2 sheets"

    # The summary table names the failure and its reason.
    assert "broken.pdf" in proc.stdout
    assert f"FAILED corrupt: {broken['error'][:40]}" in proc.stdout
    assert "Parsed 3 of 4 files" in proc.stdout

    report = out / "report"
    assert sorted(p.relative_to(report).as_posix() for p in report.rglob("*") if p.is_file()) == [
        "chunks.jsonl",
        "chunks.langchain.jsonl",
        "elements.jsonl",
        "metadata.json",
        "structured.md",
        "tables/1.csv",
    ]
    md = (report / "structured.md").read_text()
    assert md.startswith("<!-- page 1 -->\n\n# Sample Report\n\n## 1. Introduction\n\n")
    assert "<!-- page 3 -->" in md
    assert "| East | 143 | 151 | 294 |" in md
    rows = list(csv.reader(io.StringIO((report / "tables" / "1.csv").read_text(), newline="")))
    assert rows[0] == ["Region", "Q1", "Q2", "Total"]
    assert rows[4] == ["West", "87", "95", "182"]
    meta = json.loads((report / "metadata.json").read_text())
    assert (meta["doc_type"], meta["page_count"]) == ("pdf", 3)
    assert meta["tables"][0]["page"] == 3
    chunks = [json.loads(line) for line in (report / "chunks.jsonl").read_text().splitlines()]
    assert chunks[0]["heading_path"] == ["Sample Report", "1. Introduction"]

    for name in ("budget", "report-2"):
        sheet_md = (out / name / "structured.md").read_text()
        assert "| Toner | 2026-02-03 | 89.99 |" in sheet_md
        assert (
            out / name / "tables" / "2.csv"
        ).read_bytes() == b"Code,Meaning\r\nA,Approved\r\nP,Pending\r\n"
    assert not (out / "broken").exists()
    assert not (out / "skipped").exists()
    assert not (out / ".dotfile").exists()


def test_all_good_exits_zero_and_rerun_replaces_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "sample-report" / "tables").mkdir(parents=True)
    (out / "sample-report" / "tables" / "9.csv").write_text("stale")
    proc = _run(SAMPLES / "sample-report.pdf", "--out", out, "--memory-mb", "1024")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (out / "sample-report" / "tables" / "9.csv").exists()
    assert (out / "sample-report" / "tables" / "1.csv").exists()
    assert "ok -> sample-report/" in proc.stdout


def test_relative_paths_work(tmp_path: Path) -> None:
    shutil.copy(SAMPLES / "sample-budget.xlsx", tmp_path / "b.xlsx")
    proc = _run("b.xlsx", "--out", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| Paper | 2026-01-15 | 120.5 |" in (tmp_path / "out" / "b" / "structured.md").read_text()


def test_missing_input_fails(tmp_path: Path) -> None:
    proc = _run(tmp_path / "nope.pdf", "--out", tmp_path / "out")
    assert proc.returncode == 1
    assert "not_found" in proc.stdout


def test_expand_and_name_helpers(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.pdf").write_bytes(b"%PDF")
    (tmp_path / "a" / ".y.pdf").write_bytes(b"%PDF")
    explicit_hidden = tmp_path / ".z.pdf"
    explicit_hidden.write_bytes(b"%PDF")
    files, missing = expand_inputs(
        [tmp_path / "a", explicit_hidden, tmp_path / "a" / "x.pdf", tmp_path / "q"]
    )
    assert files == [tmp_path / "a" / "x.pdf", explicit_hidden]
    assert missing == [tmp_path / "q"]
    names = [j.out_name for j in assign_output_names([Path("a/r.pdf"), Path("b/r.pdf"), Path("R.xlsx")])]
    assert names == ["r", "r-2", "R-3"]


def test_invalid_limit_is_a_usage_error(tmp_path: Path) -> None:
    proc = _run(SAMPLES / "sample-report.pdf", "--out", tmp_path / "out", "--memory-mb", "10")
    assert proc.returncode == 2
    assert "parse_memory_mb" in proc.stderr


def test_invalid_options_are_one_line_naming_the_flag(tmp_path: Path) -> None:
    for flags, message in [
        (["--language", "klingon"], "invalid option: --language: an ISO 639-1 code"),
        (["--pages", "0"], "invalid option: --pages: the range must start at 1"),
        (["--chunk-size", "5"], "invalid option: --chunk-size: between 20 and 100000"),
    ]:
        proc = _run(SAMPLES / "sample-report.pdf", "--out", tmp_path / "out", *flags)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith(message), lines
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_bundled_samples_flag(tmp_path: Path) -> None:
    proc = _run("--samples", "--out", tmp_path / "out", "--no-ocr")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    names = {Path(s["file"]).name: s for s in summary}
    assert {"sample-report.pdf", "sample-budget.xlsx"} <= names.keys()
    assert names["sample-report.pdf"]["ok"] is True
    assert (tmp_path / "out" / "sample-report" / "structured.md").exists()
    assert proc.returncode == (0 if all(s["ok"] for s in summary) else 1)


def test_no_inputs_is_a_usage_error(tmp_path: Path) -> None:
    proc = _run("--out", tmp_path / "out")
    assert proc.returncode == 2
    assert "--samples" in proc.stderr


def test_out_naming_a_file_is_one_clear_line(tmp_path: Path) -> None:
    taken = tmp_path / "results"
    taken.write_text("not a folder")
    proc = _run(SAMPLES / "sample-report.pdf", "--out", taken)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"parse: --out {taken} is a file, not a folder"]
    assert taken.read_text() == "not a folder"


def test_empty_input_folder_is_one_clear_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = _run(empty, "--out", tmp_path / "out")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"parse: no files to parse in {empty} (hidden files are skipped)"
    ]
    assert proc.stdout == ""


def test_json_summary_on_stdout(tmp_path: Path) -> None:
    proc = _run(SAMPLES / "sample-budget.xlsx", "--out", tmp_path / "out", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary == json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary[0]["ok"] is True


def test_include_images_flag_writes_the_pictures(tmp_path: Path) -> None:
    import base64

    from PIL import Image

    picture = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 20, 20)).save(picture, "PNG")
    uri = "data:image/png;base64," + base64.b64encode(picture.getvalue()).decode()
    page = tmp_path / "page.html"
    page.write_text(f'<html><body><h1>Chart</h1><p>Below.</p><img alt="Red" src="{uri}"></body></html>')
    proc = _run(page, "--out", tmp_path / "out", "--include-images", "true")
    assert proc.returncode == 0, proc.stderr
    (written,) = (tmp_path / "out").rglob("images/1.png")
    assert written.read_bytes() == picture.getvalue()
    assert "(images/1.png)" in (written.parent.parent / "structured.md").read_text()

    refused = _run(page, "--out", tmp_path / "out2", "--include-images", "yes")
    assert refused.returncode == 2
    assert "invalid choice: 'yes' (choose from 'true', 'false')" in refused.stderr
    assert not (tmp_path / "out2").exists()

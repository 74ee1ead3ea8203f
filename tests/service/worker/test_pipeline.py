"""Pure parts of the job pipeline."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from percolate_reading.worker.pipeline import _input_file


def test_input_file_is_private_keeps_the_suffix_and_goes_away() -> None:
    with _input_file("Quarterly Report.PDF") as path:
        assert path.exists()
        assert path.suffix == ".pdf"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        path.write_bytes(b"%PDF-1.7")
        kept = path
    assert not kept.exists()


def _fail_inside(name: str, seen: list[Path]) -> None:
    with _input_file(name) as path:
        seen.append(path)
        raise RuntimeError("parse failed")


def test_input_file_goes_away_on_failure_and_drops_odd_suffixes() -> None:
    seen: list[Path] = []
    with pytest.raises(RuntimeError):
        _fail_inside("scan.p\u00e9f", seen)
    assert seen[0].suffix == ""
    assert not seen[0].exists()

"""Assembly of the bundled Whisper base model from its two packages into a cache directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from percolate_reading.errors import ConfigError
from percolate_reading.parse.providers.whisper_model import (
    BundledParts,
    assemble_bundled_model,
    bundled_parts,
    resolve_whisper_model,
)


def _fake_parts(root: Path) -> BundledParts:
    """Small stand-in files with the bundled layout, to exercise reuse and repair quickly."""
    root.mkdir()
    (root / "model.bin.part1").write_bytes(b"A" * 1000)
    (root / "model.bin.part2").write_bytes(b"B" * 500)
    names = ("config.json", "tokenizer.json", "vocabulary.json")
    for n in names:
        (root / n).write_text(f'{{"name": "{n}"}}')
    return BundledParts(
        part1=root / "model.bin.part1",
        part2=root / "model.bin.part2",
        json_files=tuple(root / n for n in names),
    )


def test_bundled_base_assembles_to_concatenated_size(tmp_path: Path) -> None:
    parts = bundled_parts()
    model_dir = resolve_whisper_model("base", tmp_path / "cache")
    model = model_dir / "model.bin"
    assert model.stat().st_size == parts.part1.stat().st_size + parts.part2.stat().st_size
    with model.open("rb") as f, parts.part2.open("rb") as p2:
        f.seek(parts.part1.stat().st_size)
        assert f.read(4096) == p2.read(4096)  # part2 starts right where part1 ends
    for src in parts.json_files:
        assert (model_dir / src.name).read_bytes() == src.read_bytes()
    # No temporary files left behind.
    assert sorted(p.name for p in model_dir.iterdir()) == [
        "config.json",
        "model.bin",
        "tokenizer.json",
        "vocabulary.json",
    ]


def test_assembly_is_reused(tmp_path: Path) -> None:
    parts = _fake_parts(tmp_path / "pkg")
    first = assemble_bundled_model(tmp_path / "cache", parts)
    model = first / "model.bin"
    assert model.read_bytes() == b"A" * 1000 + b"B" * 500
    before = model.stat()
    second = assemble_bundled_model(tmp_path / "cache", parts)
    after = (second / "model.bin").stat()
    assert second == first
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_truncated_assembly_is_redone(tmp_path: Path) -> None:
    parts = _fake_parts(tmp_path / "pkg")
    target = tmp_path / "cache" / "whisper-base"
    target.mkdir(parents=True)
    (target / "model.bin").write_bytes(b"A" * 10)  # an interrupted earlier copy
    model_dir = assemble_bundled_model(tmp_path / "cache", parts)
    assert (model_dir / "model.bin").read_bytes() == b"A" * 1000 + b"B" * 500


def test_model_directory_is_used_as_is(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"x")
    assert resolve_whisper_model(str(tmp_path), tmp_path / "cache") == tmp_path
    assert not (tmp_path / "cache").exists()


def test_model_names_are_not_downloaded(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not downloaded"):
        resolve_whisper_model("large-v3", tmp_path)
    with pytest.raises(ConfigError, match=r"no model\.bin"):
        resolve_whisper_model(str(tmp_path), tmp_path / "cache")


def test_stale_temp_files_are_removed(tmp_path: Path) -> None:
    parts = _fake_parts(tmp_path / "pkg")
    target = tmp_path / "cache" / "whisper-base"
    target.mkdir(parents=True)
    stale = target / ".model.bin.abc123"
    stale.write_bytes(b"half a model")
    os.utime(stale, (1_000_000, 1_000_000))
    fresh = target / ".model.bin.def456"  # another worker's copy in progress: left alone
    fresh.write_bytes(b"in progress")
    assemble_bundled_model(tmp_path / "cache", parts)
    assert not stale.exists()
    assert fresh.exists()

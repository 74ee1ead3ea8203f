"""The environment the tests run in is exactly the lock: nothing newer, older or extra."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _uv() -> str:
    # The uv that `make setup` installed beside this interpreter (the dev extra locks it).
    uv = Path(sys.executable).parent / "uv"
    if uv.exists():
        return str(uv)
    found = shutil.which("uv")
    if found is None:
        pytest.skip("uv is not installed beside this interpreter: run the tests through `make test`")
    return found


def test_installed_environment_is_the_lock() -> None:
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": sys.prefix, "UV_PYTHON_DOWNLOADS": "never"}
    result = subprocess.run(
        [_uv(), "sync", "--locked", "--extra", "dev", "--check", "--python", sys.executable],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Would make no changes" in result.stdout + result.stderr


def test_lock_pins_the_model_runtimes() -> None:
    # The packages whose updates changed model output: each has exactly one locked version per
    # Python, so no install resolves a newer one behind the tests' back.
    lock = (ROOT / "uv.lock").read_text()
    for name in ("faster-whisper", "ctranslate2", "onnxruntime", "rapidocr-onnxruntime", "tokenizers"):
        assert f'\nname = "{name}"\nversion = "' in lock, name

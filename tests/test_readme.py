"""The README stays true: its commands exist and every setting is documented."""

from __future__ import annotations

import re
from pathlib import Path

from percolate_reading.config import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [
        f"{ENV_PREFIX}{name.upper()}"
        for name in Settings.model_fields
        if f"`{ENV_PREFIX}{name.upper()}`" not in README
    ]
    assert missing == [], f"settings missing from README: {missing}"


def test_ci_runs_the_readme_test_command() -> None:
    commands = re.findall(r"^\s*(make \w+)\s*$", README, flags=re.M)
    assert "make test" in commands
    assert "make demo" in commands
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test:", makefile, flags=re.M)
    assert re.search(r"^demo:", makefile, flags=re.M)

""".ci/run: installs the system packages the image tier needs, then runs `make test`."""

from __future__ import annotations

import re
from pathlib import Path

from tests.image.containers import APT_PACKAGES

CI_RUN = Path(__file__).resolve().parents[2] / ".ci" / "run"


def test_ci_installs_the_image_tiers_packages_and_ends_in_make_test() -> None:
    text = CI_RUN.read_text()
    match = re.search(r"SYSTEM_PACKAGES=\(([^)]*)\)", text)
    assert match, "no SYSTEM_PACKAGES list in .ci/run"
    assert set(APT_PACKAGES) <= set(match.group(1).split())
    assert "apt-get update" in text
    assert "apt-get install -y" in text
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert lines[-1] == "make test"

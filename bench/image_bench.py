"""Image benchmark: size of each image variant and its build times, cold and warm.

    python bench/image_bench.py                 # cpu, cpu-unpruned, audio-ocr; cold + warm
    python bench/image_bench.py --no-cold       # warm rebuilds only (fast)
    python bench/image_bench.py --cold cpu      # cold build of the CPU image only
    python bench/image_bench.py --fresh /tmp/x --variants audio-ocr,cpu  # from nothing

Needs root, buildah, podman, runc, mmdebstrap (as tests/image). Builds with the image tier's
private store (~/.cache/percolate-image, or --store DIR): the mmdebstrap-made stand-in for
python:3.11-slim, buildah --layers --format docker. Per variant:

- cold: `--no-cache`, every Dockerfile step runs again. The package caches mounted into the
  RUN steps (uv's and pip's) stay warm, so this is a rebuild from nothing minus downloads.
  With --fresh DIR: the first build in an empty store with empty download caches (buildah
  keeps its cache mounts under $TMPDIR, pointed into DIR), i.e. a fresh machine as CI's.
- warm: the same build again, every step from the layer cache.
- code change: one file of service/ changed: only the project's own install runs again.

The baseline is `cpu-unpruned`: the CPU image with everything the lock installs for its extras
(PRUNE=""), i.e. without leaving out PyMuPDF 2.0's unused add-ons; sizes are given against
it. Report to stdout and bench/results/image.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import RESULTS, publish  # noqa: E402
from tests.image.containers import BASE_IMAGE, CPU, MEDIA, Containers, Variant  # noqa: E402

UNPRUNED = Variant("cpu-unpruned", {"PRUNE": ""})
VARIANTS = {v.name: v for v in (UNPRUNED, CPU, MEDIA)}
CONTEXT = (
    "Dockerfile",
    ".dockerignore",
    "pyproject.toml",
    "uv.lock",
    "README.md",
    "requirements",
    "service",
    "operator",
)


@dataclass
class Row:
    variant: Variant
    size: int
    cold_s: float | None
    warm_s: float
    change_s: float


def _context_copy(tmp: Path) -> Path:
    """The build context (only what the Dockerfile may copy) in a scratch directory."""
    context = tmp / "context"
    context.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in CONTEXT:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, context / name, ignore=ignore)
        else:
            shutil.copy2(source, context / name)
    return context


def measure(store: Containers, variant: Variant, cold: bool, fresh: bool = False) -> Row:
    """fresh: the store started empty, so the first build is the cold one (no --no-cache)."""
    with tempfile.TemporaryDirectory() as tmp:
        context = _context_copy(Path(tmp))
        cold_s = store.build(variant, context, no_cache=not fresh).seconds if cold else None
        warm = store.build(variant, context)
        marker = context / "service" / "percolate_reading" / "__init__.py"
        marker.write_text(marker.read_text() + f"\n# image_bench {time.time_ns()}\n")
        change = store.build(variant, context)
    return Row(variant, warm.size, cold_s, warm.seconds, change.seconds)


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def report(rows: list[Row], base_seconds: float, fresh: bool = False) -> str:
    baseline = next((r for r in rows if r.variant is UNPRUNED), rows[0])
    tools = subprocess.run(["buildah", "--version"], capture_output=True, text=True).stdout.strip()
    lines = [
        "# Image sizes and build times",
        "",
        f"Measured by `bench/image_bench.py` on {platform.node()} ({platform.machine()}, "
        f"{platform.python_version()} host), {tools}; base `{BASE_IMAGE}` (mmdebstrap stand-in for "
        "python:3.11-slim-bookworm, Debian's apt Python 3.11). Sizes are podman's (uncompressed). "
        "The machine's 2 cores are shared with other sessions: times vary run to run.",
        "",
        "| variant | build args | size (MB) | vs cpu-unpruned | cold build (s) | warm (s) "
        "| code change (s) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        args = ", ".join(f"{k}={v!r}" for k, v in row.variant.build_args.items()) or "(defaults)"
        lines.append(
            f"| {row.variant.name} | {args} | {row.size / 1e6:.0f} | {row.size / baseline.size:.2f} | "
            f"{_s(row.cold_s)} | {_s(row.warm_s)} | {_s(row.change_s)} |"
        )
    cold = (
        "cold: the first build in a fresh store with empty download caches, as on a fresh machine "
        "(it reuses the layers of the variants above it, as the image tier does)."
        if fresh
        else "cold: `--no-cache` (every step runs; uv's download cache warm)."
    )
    lines += [
        "",
        f"{cold} warm: every step from the layer cache. code change: one file under service/ "
        "changed, so only the project's own install step runs again.",
    ]
    if base_seconds:
        lines.append(f"\nThe stand-in base was made in this run: {base_seconds:.0f} s (mmdebstrap).")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma-separated: " + ", ".join(VARIANTS)
    )
    parser.add_argument(
        "--cold", default=None, help="comma-separated variants to build cold too (default: all)"
    )
    parser.add_argument("--no-cold", action="store_true", help="skip the --no-cache builds")
    parser.add_argument("--output", type=Path, default=RESULTS / "image.md")
    parser.add_argument("--store", type=Path, default=None, help="the container store (default: the tier's)")
    parser.add_argument(
        "--fresh",
        type=Path,
        default=None,
        help="a new directory: an empty store and empty download caches there (a fresh machine)",
    )
    args = parser.parse_args()
    if args.fresh is not None:
        args.fresh.mkdir(parents=True)
        # buildah keeps the RUN steps' cache mounts (uv's, pip's downloads) under $TMPDIR.
        (args.fresh / "tmp").mkdir()
        os.environ["TMPDIR"] = str(args.fresh / "tmp")
        store = Containers(root=args.fresh)
    else:
        store = Containers() if args.store is None else Containers(root=args.store)
    base_seconds = store.ensure_base()
    names = args.variants.split(",")
    cold = set() if args.no_cold else set(args.cold.split(",") if args.cold else names)
    fresh = args.fresh is not None
    rows = [measure(store, VARIANTS[name], cold=name in cold, fresh=fresh) for name in names]
    text = report(rows, base_seconds, fresh)
    publish(text, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

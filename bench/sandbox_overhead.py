"""Per-parse cost of the sandbox: the same parse in-process vs in a sandboxed child.

    python bench/sandbox_overhead.py [FILE] [N]

Prints a Markdown table: median wall-clock ms over N runs, and CPU ms per run of this process
and every process under it (the forkserver and its children), after one warm-up that starts
the forkserver. CPU is what bounds throughput on busy cores; writes bench/results/sandbox.md.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from percolate_reading.parse.parsing import parse_file
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.sandbox import PRELOAD_MODULES, SandboxLimits, run_in_sandbox, warm_up

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.procstat import tree_cpu_seconds  # noqa: E402
from bench.support import RESULTS, publish  # noqa: E402

SAMPLE = REPO / "service" / "percolate_reading" / "samples" / "sample-report.pdf"


def _noop() -> None:
    return None


def measure(fn: Callable[[], object], n: int) -> tuple[float, float]:
    """(median wall ms, CPU ms per call of this process tree)."""
    times = []
    cpu0 = tree_cpu_seconds(os.getpid())
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), (tree_cpu_seconds(os.getpid()) - cpu0) * 1000 / n


def main(argv: list[str]) -> str:
    path = Path(argv[0]) if argv else SAMPLE
    n = int(argv[1]) if len(argv) > 1 else 100
    limits = SandboxLimits(memory_mb=2048, timeout_s=120, cpu_s=120)
    options = ParseOptions(ocr_enabled=False)
    t0 = time.perf_counter()
    warm_up()
    start_ms = (time.perf_counter() - t0) * 1000
    parse_file(path, options, None)  # import providers in this process too
    rows = [
        ("empty sandboxed call", measure(lambda: run_in_sandbox(_noop, limits=limits), n)),
        ("parse in-process", measure(lambda: parse_file(path, options, None), n)),
        ("parse sandboxed", measure(lambda: parse_file(path, options, limits), n)),
    ]
    boxed, inproc = rows[2][1], rows[1][1]
    lines = [
        "# Sandbox overhead",
        "",
        f"File: {path.name}, {n} runs each, {os.cpu_count()} CPU cores (shared); forkserver preloads "
        f"{', '.join(PRELOAD_MODULES)}.",
        "",
        "| measure | median wall ms | CPU ms per run |",
        "|---|---:|---:|",
        f"| forkserver start (once, with its warm-up parse) | {start_ms:.1f} | |",
        *(f"| {name} | {wall:.1f} | {cpu:.1f} |" for name, (wall, cpu) in rows),
        f"| sandbox overhead per parse | {boxed[0] - inproc[0]:.1f} | {boxed[1] - inproc[1]:.1f} |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    report = main(sys.argv[1:])
    publish(report, RESULTS / "sandbox.md")

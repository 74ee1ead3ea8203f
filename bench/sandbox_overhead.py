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

from percolate_reading.parsing import parse_file
from percolate_reading.providers.base import ParseOptions
from percolate_reading.sandbox import PRELOAD_MODULES, SandboxLimits, run_in_sandbox, warm_up

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "service" / "percolate_reading" / "samples" / "sample-report.pdf"


def _noop() -> None:
    return None


def tree_cpu_s(root: int) -> float:
    """User+system CPU of `root` and all its descendants, live or reaped by them."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, stack, ticks = 0.0, [root], os.sysconf("SC_CLK_TCK")
    while stack:
        pid = stack.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks
        stack.extend(children.get(pid, []))
    return total


def measure(fn: Callable[[], object], n: int) -> tuple[float, float]:
    """(median wall ms, CPU ms per call of this process tree)."""
    times = []
    cpu0 = tree_cpu_s(os.getpid())
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), (tree_cpu_s(os.getpid()) - cpu0) * 1000 / n


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
    print(report)
    out = REPO / "bench" / "results" / "sandbox.md"
    out.write_text(report + "\n")
    print(f"written to {out}")

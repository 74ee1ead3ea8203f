"""How many CPU threads one parse may use.

OCR (onnxruntime, OpenCV) and speech (CTranslate2) size their thread pools to the machine's
cores by default, and onnxruntime's threads spin while they wait for work. Two OCR parses at
once then run twice as many busy threads as there are cores: on 2 cores they got less done
together than one alone (bench/results/ocr_threads.md). In a container the machine's cores
are not the container's either: a pod limited to 1 CPU on a 64-core node would run 64
threads into its CFS quota.

So each parse gets a share of the CPUs this process may use (its affinity mask, capped by
its cgroup's CPU quota) divided by the parses that run at once, and the sandboxed child sets
its libraries' thread pools to that share (`set_thread_budget`, read by the providers).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

CGROUP_MOUNT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")

# Variables OpenMP and BLAS builds read when they first start their pools in a child.
# OMP_THREAD_LIMIT: Tesseract, run as a program by the OCR of other scripts.
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OMP_THREAD_LIMIT", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

_budget: int | None = None  # this process's threads per parse; None: the libraries' defaults
QUOTA_TTL_S = 30.0
_quota_read: tuple[float, float | None] | None = None  # (when, quota)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _quota_v2(directory: Path) -> float | None:
    # cpu.max: "<quota> <period>" in microseconds, or "max <period>".
    text = _read(directory / "cpu.max")
    if not text:
        return None
    quota, _, period = text.partition(" ")
    if quota == "max" or not period:
        return None
    return int(quota) / int(period)


def _quota_v1(directory: Path) -> float | None:
    quota, period = _read(directory / "cpu.cfs_quota_us"), _read(directory / "cpu.cfs_period_us")
    if not quota or not period or int(quota) <= 0:
        return None
    return int(quota) / int(period)


def _up_to(mount: Path, relative: str) -> list[Path]:
    """The cgroup's directory and its ancestors under `mount`. A path the mount does not have
    (a container without its own cgroup namespace sees its host path) leaves the ancestors
    that exist, down to the mount itself, which is then the container's own cgroup."""
    parts = [p for p in relative.split("/") if p]
    return [mount.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]


def cgroup_cpu_limit(proc_cgroup: Path = PROC_CGROUP, mount: Path = CGROUP_MOUNT) -> float | None:
    """The tightest CPU quota on this process's cgroup and its ancestors, in CPUs (1.5 for
    150 ms per 100 ms); None where there is none or it cannot be read (not Linux)."""
    text = _read(proc_cgroup)
    if text is None:
        return None
    quotas: list[float] = []
    for line in text.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, relative = rest.partition(":")
        if hierarchy == "0" and not controllers:  # cgroup v2
            found = (_quota_v2(d) for d in _up_to(mount, relative))
        elif "cpu" in controllers.split(","):  # cgroup v1, mounted as cpu or cpu,cpuacct
            roots = [mount / controllers, mount / "cpu"]
            found = (_quota_v1(d) for root in roots for d in _up_to(root, relative))
        else:
            continue
        quotas.extend(q for q in found if q is not None)
    return min(quotas) if quotas else None


def _current_quota() -> float | None:
    # Read again at most every QUOTA_TTL_S: a parse asks each time (~0.2 ms of file reads),
    # and a pod's CPU limit can be resized in place.
    global _quota_read
    now = time.monotonic()
    if _quota_read is None or now - _quota_read[0] > QUOTA_TTL_S:
        _quota_read = (now, cgroup_cpu_limit())
    return _quota_read[1]


def available_cpus() -> float:
    """CPUs this process may use: its affinity mask, capped by its cgroup's CPU quota."""
    try:
        cpus = float(len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        cpus = float(os.cpu_count() or 1)
    quota = _current_quota()
    return min(cpus, quota) if quota is not None else cpus


def threads_per_parse(configured: int, parses_at_once: int) -> int:
    """`configured` when set (> 0), else the available CPUs shared by the parses that run at
    once, at least 1."""
    if configured > 0:
        return configured
    return max(1, math.floor(available_cpus() / max(1, parses_at_once)))


def set_thread_budget(threads: int) -> None:
    """In a parse child: the threads its libraries may use (before they start their pools)."""
    global _budget
    _budget = threads
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(threads)


def thread_budget() -> int | None:
    """The threads a library may use in this process; None: its own default."""
    return _budget

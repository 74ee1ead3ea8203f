"""Each parse's share of the CPUs: cgroup quotas read as a container sees them, the share
worked out from the parses at once, and applied in the sandboxed child to the libraries that
size their thread pools (OCR's onnxruntime sessions)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from percolate_reading.config import load_settings
from percolate_reading.parse import cpus
from percolate_reading.parse.cpus import cgroup_cpu_limit, threads_per_parse
from percolate_reading.parse.sandbox import SandboxLimits, run_in_sandbox


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def test_cgroup_v2_quota_is_the_tightest_on_the_path(tmp_path: Path) -> None:
    mount = tmp_path / "cgroup"
    _write(mount / "kubepods" / "cpu.max", "400000 100000")  # the node's pods: 4 CPUs
    _write(mount / "kubepods" / "pod1" / "cpu.max", "150000 100000")  # this pod: 1.5
    _write(mount / "kubepods" / "pod1" / "ctr" / "cpu.max", "max 100000")  # the container: none
    proc = tmp_path / "self-cgroup"
    _write(proc, "0::/kubepods/pod1/ctr")
    assert cgroup_cpu_limit(proc, mount) == 1.5


def test_cgroup_v2_without_a_quota(tmp_path: Path) -> None:
    mount = tmp_path / "cgroup"
    _write(mount / "cpu.max", "max 100000")
    proc = tmp_path / "self-cgroup"
    _write(proc, "0::/")
    assert cgroup_cpu_limit(proc, mount) is None


def test_container_without_its_own_cgroup_namespace_reads_its_mount_root(tmp_path: Path) -> None:
    # /proc/self/cgroup names the host's path, which the container's mount does not have:
    # the mount root is the container's own cgroup.
    mount = tmp_path / "cgroup"
    _write(mount / "cpu.max", "50000 100000")
    proc = tmp_path / "self-cgroup"
    _write(proc, "0::/system.slice/docker-0123.scope")
    assert cgroup_cpu_limit(proc, mount) == 0.5


def test_cgroup_v1_quota_and_unlimited(tmp_path: Path) -> None:
    mount = tmp_path / "cgroup"
    _write(mount / "cpu,cpuacct" / "kubepods" / "cpu.cfs_quota_us", "200000")
    _write(mount / "cpu,cpuacct" / "kubepods" / "cpu.cfs_period_us", "100000")
    _write(mount / "cpu,cpuacct" / "cpu.cfs_quota_us", "-1")
    _write(mount / "cpu,cpuacct" / "cpu.cfs_period_us", "100000")
    proc = tmp_path / "self-cgroup"
    _write(proc, "5:memory:/kubepods\n4:cpu,cpuacct:/kubepods\n0::/")
    assert cgroup_cpu_limit(proc, mount) == 2.0
    _write(proc, "4:cpu,cpuacct:/")  # the root: -1, no quota
    assert cgroup_cpu_limit(proc, mount) is None


def test_no_cgroup_file_means_no_quota(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(tmp_path / "missing", tmp_path) is None


def test_threads_per_parse_shares_the_available_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpus, "available_cpus", lambda: 8.0)
    assert threads_per_parse(0, 1) == 8
    assert threads_per_parse(0, 2) == 4
    assert threads_per_parse(0, 3) == 2
    assert threads_per_parse(0, 16) == 1  # never none
    assert threads_per_parse(5, 2) == 5  # configured wins
    monkeypatch.setattr(cpus, "available_cpus", lambda: 0.5)  # a half-CPU pod
    assert threads_per_parse(0, 1) == 1


def test_available_cpus_follow_the_affinity_mask() -> None:
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(before)})
        assert cpus.available_cpus() <= 1.0
    finally:
        os.sched_setaffinity(0, before)
    assert cpus.available_cpus() <= len(before)


def test_limits_from_settings_divide_by_the_worker_slots() -> None:
    available = cpus.available_cpus()
    two_slots = SandboxLimits.from_settings(load_settings(worker_concurrency=2))
    assert two_slots.threads == max(1, math.floor(available / 2))
    one_at_once = SandboxLimits.from_settings(load_settings(worker_concurrency=2), parses_at_once=1)
    assert one_at_once.threads == max(1, math.floor(available))
    configured = SandboxLimits.from_settings(load_settings(parse_threads=3))
    assert configured.threads == 3


# Run in the sandboxed child (module level: the forkserver imports it by name).


def _budget_in_child() -> tuple[int | None, str | None, str | None]:
    return cpus.thread_budget(), os.environ.get("OMP_NUM_THREADS"), os.environ.get("OMP_THREAD_LIMIT")


def _ocr_session_threads() -> list[int]:
    from percolate_reading.parse.providers import ocr

    engine = ocr._engine()
    sessions = [engine.text_det.infer.session, engine.text_rec.recognizer.session.session]
    return [s.get_session_options().intra_op_num_threads for s in sessions]


def test_the_child_applies_its_budget() -> None:
    limits = SandboxLimits(memory_mb=1024, timeout_s=30, cpu_s=30, threads=3)
    assert run_in_sandbox(_budget_in_child, limits=limits) == (3, "3", "3")
    # 0: the libraries keep their own defaults, nothing is set.
    unset = run_in_sandbox(_budget_in_child, limits=SandboxLimits(memory_mb=1024, timeout_s=30, cpu_s=30))
    assert unset[0] is None


def test_ocr_sessions_use_the_parse_share() -> None:
    pytest.importorskip("rapidocr_onnxruntime")
    limits = SandboxLimits(memory_mb=2048, timeout_s=60, cpu_s=60, threads=1)
    assert run_in_sandbox(_ocr_session_threads, limits=limits) == [1, 1]

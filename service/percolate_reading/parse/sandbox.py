"""Run one parse in a disposable child process with hard resource limits.

The child comes from a multiprocessing *forkserver*: the server process is started once (it
pre-imports PyMuPDF and calamine so each parse does not pay for them) and forks a fresh child
per parse. Forking from the server, not from the caller, keeps this safe to call from a
threaded or asyncio parent. In the child we set RLIMIT_AS (address space) and RLIMIT_CPU,
point TMPDIR at a fresh directory, run the function, and send back the result or the typed
error, pickled over a pipe. The parent enforces the wall-clock limit by killing the child's
process group; whatever the child does, only the child dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import math
import multiprocessing
import multiprocessing.connection
import os
import re
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

from percolate_reading.config import Settings
from percolate_reading.errors import (
    CorruptDocumentError,
    DocumentTooLargeError,
    MemoryLimitError,
    ParseError,
    ParseTimeoutError,
    PercolateError,
    WorkerCrashedError,
)
from percolate_reading.parse.cpus import set_thread_budget, threads_per_parse

T = TypeVar("T")

# Modules the forkserver imports once so children inherit them already loaded. Only what
# parses need: every module here makes each fork copy more page tables (openpyxl, unused by
# the providers, cost ~1 ms a fork).
# A missing optional module is skipped by the forkserver (ImportError is ignored there).
# providers.mupdf comes first: it decides how PyMuPDF is imported (without its layout model).
PRELOAD_MODULES = [
    "percolate_reading.parse.providers.mupdf",
    "percolate_reading.parse.parsing",
    "python_calamine",
    "percolate_reading.parse.providers.pdf",
    "percolate_reading.parse.providers.xlsx",
    # Last: a parse in the server, so children inherit what a first parse loads lazily.
    "percolate_reading.parse.providers.warmup",
]

# Exit codes the child uses when it cannot even send its error back.
_EXIT_MEMORY = 70
_EXIT_SEND_FAILED = 71
_CANCEL_POLL_S = 0.2

# Messages native libraries use when an allocation fails under RLIMIT_AS.
_MEMORY_HINTS = (
    "out of memory",
    "cannot allocate memory",
    "bad_alloc",
    "malloc failed",
    "failed to allocate",
    "failed to map segment",
)
# An unexpected error in a child whose address space peaked this close to the limit is most
# likely an allocation failure that a library reported badly (or swallowed and crashed on).
_NEAR_LIMIT = 0.8


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """Limits of one sandboxed parse. `cpu_s` counts CPU seconds of all threads."""

    memory_mb: int
    timeout_s: float
    cpu_s: float
    scratch_mb: int | None = None  # largest file the child may write; None = 2x memory_mb
    threads: int = 0  # CPU threads the child's libraries may use (parse.cpus); 0: their defaults

    @property
    def scratch_limit_mb(self) -> int:
        return self.scratch_mb if self.scratch_mb is not None else self.memory_mb * 2

    def __post_init__(self) -> None:
        if self.memory_mb < 16 or self.timeout_s <= 0 or self.cpu_s <= 0 or self.threads < 0:
            raise ValueError(f"invalid sandbox limits: {self}")

    @classmethod
    def from_settings(cls, settings: Settings, parses_at_once: int | None = None) -> SandboxLimits:
        """`parses_at_once`: the parses this process runs at the same time, which share its
        CPUs (default: the worker's parse slots)."""
        cpu_s = settings.parse_cpu_s
        if cpu_s is None:
            # Multi-threaded decoders (whisper, OCR) burn CPU faster than the wall clock.
            cpu_s = settings.parse_timeout_s * 2
        threads = threads_per_parse(settings.parse_threads, parses_at_once or settings.worker_concurrency)
        return cls(
            memory_mb=settings.parse_memory_mb,
            timeout_s=settings.parse_timeout_s,
            cpu_s=cpu_s,
            threads=threads,
        )


def _context() -> multiprocessing.context.BaseContext:
    if sys.platform.startswith("linux") or sys.platform == "darwin":
        ctx = multiprocessing.get_context("forkserver")
        # Only takes effect before the server first starts; later calls are harmless no-ops.
        # "__main__" too: the server then loads the main script once (a console script or a
        # benchmark run by path), and children skip multiprocessing's re-run of it in each one.
        ctx.set_forkserver_preload([*PRELOAD_MODULES, "__main__"])
        return ctx
    return multiprocessing.get_context("spawn")


def warm_up() -> None:
    """Start the forkserver now (it imports the heavy modules), so the first parse is fast."""
    run_in_sandbox(_noop, limits=SandboxLimits(memory_mb=4096, timeout_s=120, cpu_s=120))


def _noop() -> None:
    return None


def run_in_sandbox(
    fn: Callable[..., T], *args: Any, limits: SandboxLimits, cancel: threading.Event | None = None
) -> T:
    """Call `fn(*args)` in a sandboxed child and return its result.

    `fn` and `args` must be picklable (a module-level function). Raises the child's
    PercolateError unchanged, MemoryLimitError, ParseTimeoutError or WorkerCrashedError.
    Setting `cancel` (from any thread) kills the child: WorkerCrashedError, so a job
    interrupted by a shutdown is retried elsewhere.
    """
    ctx = _context()
    tmp_dir = tempfile.mkdtemp(prefix="percolate-parse-")
    recv_conn, send_conn = ctx.Pipe(duplex=False)
    proc = ctx.Process(  # type: ignore[attr-defined]
        target=_child_main,
        args=(send_conn, fn, args, limits, tmp_dir),
        name="percolate-parse",
        daemon=True,
    )
    try:
        try:
            proc.start()
        except (OSError, RuntimeError, EOFError) as exc:
            # No child (fork failed, forkserver gone, pids exhausted): may pass, so transient.
            raise WorkerCrashedError(f"could not start the parse child: {exc!r}") from exc
        send_conn.close()  # the child holds the write end now; EOF then means it died
        outcome = _wait_for_outcome(proc, recv_conn, limits, cancel)
    finally:
        recv_conn.close()
        send_conn.close()
        _reap(proc)
        _remove_scratch(tmp_dir)
    status, payload = outcome
    if status == "ok":
        result: T = payload
        return result
    raise payload


def _remove_scratch(tmp_dir: str) -> None:
    # Most parses leave their scratch directory empty: one rmdir, not rmtree's walk.
    try:
        os.rmdir(tmp_dir)
    except OSError:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _wait_for_outcome(
    proc: Any, conn: Connection, limits: SandboxLimits, cancel: threading.Event | None
) -> tuple[str, Any]:
    deadline = time.monotonic() + limits.timeout_s
    while True:
        if cancel is not None and cancel.is_set():
            _kill_group(proc)
            return "err", _killed(
                WorkerCrashedError("parse cancelled (shutting down) and its child killed"), "cancelled"
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            _kill_group(proc)
            why = f"parse exceeded the wall-clock limit of {limits.timeout_s:g} s and was killed"
            return "err", _killed(ParseTimeoutError(why), "wall_timeout")
        # Wake up now and then to notice a cancel request.
        slice_s = remaining if cancel is None else min(remaining, _CANCEL_POLL_S)
        ready = multiprocessing.connection.wait([conn, proc.sentinel], timeout=slice_s)
        if conn in ready or (ready and conn.poll(0)):
            try:
                message: tuple[str, Any] = conn.recv()
            except (EOFError, OSError):
                break  # died mid-send or before sending: judge by its exit status
            except Exception as exc:  # unpickling: a type this process cannot rebuild
                return "err", ParseError(f"parse result could not be read back: {exc!r}")
            if message[0] == "err" and isinstance(message[1], MemoryLimitError):
                _killed(message[1], "memory_limit")  # the child stopped at its RLIMIT_AS
            return message
        if proc.sentinel in ready:
            break
    proc.join()
    return "err", _error_for_exit(proc.exitcode, limits)


def _error_for_exit(exitcode: int | None, limits: SandboxLimits) -> PercolateError:
    if exitcode == _EXIT_MEMORY:
        return _killed(_memory_error(limits), "memory_limit")
    if exitcode is not None and exitcode < 0:
        signum = -exitcode
        if signum == signal.SIGXCPU:
            message = f"parse exceeded the CPU limit of {limits.cpu_s:g} CPU seconds"
            return _killed(ParseTimeoutError(message), "cpu_limit")
        name = _signal_name(signum)
        hint = " (possibly the kernel OOM killer)" if signum == signal.SIGKILL else ""
        return _killed(WorkerCrashedError(f"parse child was killed by signal {name}{hint}"), "signal")
    return WorkerCrashedError(f"parse child exited with status {exitcode} without sending a result")


E = TypeVar("E", bound=ParseError)


def _killed(exc: E, reason: str) -> E:
    """Mark an error as a sandbox limit stopping the child (counted by the worker)."""
    exc.sandbox_kill = reason
    return exc


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _memory_error(limits: SandboxLimits) -> MemoryLimitError:
    return MemoryLimitError(f"parse exceeded the memory limit of {limits.memory_mb} MB")


def _kill_group(proc: Any) -> None:
    # The child leads its own process group, so helpers it started (decoders) die with it.
    if proc.pid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.kill()


def _reap(proc: Any) -> None:
    if proc.pid is None:  # never started
        return
    proc.join(timeout=5)
    if proc.is_alive():
        _kill_group(proc)
        proc.join()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # stray grandchildren
    proc.close()


# --- child side ----------------------------------------------------------------------


def _child_main(
    conn: Connection, fn: Callable[..., Any], args: tuple[Any, ...], limits: SandboxLimits, tmp_dir: str
) -> None:
    # VmPeak is inherited from the forkserver (which has PyMuPDF & co. mapped): only a peak
    # above this one was reached by the parse itself.
    inherited_peak = _peak_address_space()
    try:
        _enter_sandbox(limits, tmp_dir)
        message: tuple[str, Any] = ("ok", fn(*args))
    except MemoryError:
        message = ("err", _memory_error(limits))
    except ParseError as exc:
        # Providers wrap native errors; a wrapped failed allocation is really the memory limit.
        wrapped_alloc = type(exc) in (CorruptDocumentError, ParseError) and _has_memory_hint(exc)
        message = ("err", _memory_error(limits) if wrapped_alloc else exc)
    except PercolateError as exc:
        message = ("err", exc)
    except BaseException as exc:
        message = ("err", _untyped_error(exc, limits, inherited_peak))
    try:
        conn.send(message)
    except MemoryError:
        os._exit(_EXIT_MEMORY)
    except Exception as exc:
        # An unpicklable result or error: report that instead of dying silently.
        try:
            conn.send(("err", ParseError(f"parse result could not be sent back: {exc!r}")))
        except BaseException:
            os._exit(_EXIT_SEND_FAILED)
    finally:
        conn.close()


def _untyped_error(
    exc: BaseException, limits: SandboxLimits, inherited_peak: int | None = None
) -> PercolateError:
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        return DocumentTooLargeError(
            f"parse tried to write a scratch file over the limit of {limits.scratch_limit_mb} MB"
        )
    peak = _peak_address_space()
    near_limit = (
        peak is not None
        and peak > (inherited_peak or 0)
        and peak >= _NEAR_LIMIT * limits.memory_mb * 1024 * 1024
    )
    if _has_memory_hint(exc) or near_limit:
        return _memory_error(limits)
    return ParseError(f"parser failed unexpectedly: {type(exc).__name__}: {exc}")


# MuPDF reports a failed allocation as "malloc (N bytes) failed" / "calloc (N x M bytes) failed".
_ALLOC_FAILED_RE = re.compile(r"\b(?:m|c|re)alloc \([^)]*\) failed")


def _has_memory_hint(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(h in text for h in _MEMORY_HINTS) or _ALLOC_FAILED_RE.search(text) is not None


def _peak_address_space() -> int | None:
    """VmPeak of this process in bytes (Linux), None where unknown."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmPeak:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _enter_sandbox(limits: SandboxLimits, tmp_dir: str) -> None:
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    _limit_malloc_arenas()
    if limits.threads:
        set_thread_budget(limits.threads)
    mem = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    # The soft limit sends SIGXCPU (reported as a CPU timeout); the hard one is a backstop.
    cpu = math.ceil(limits.cpu_s)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    # Scratch files are bounded too, or a decompression bomb fills the node's disk. Python
    # ignores SIGXFSZ, so an oversized write fails with EFBIG instead of killing the child.
    scratch = limits.scratch_limit_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (scratch, scratch))
    # Parsers and their libraries write scratch files via tempfile/TMPDIR: keep them in the
    # per-parse directory the parent deletes afterwards.
    os.environ["TMPDIR"] = tmp_dir
    tempfile.tempdir = tmp_dir
    os.chdir(tmp_dir)
    Path(tmp_dir).chmod(0o700)


def _load_libc() -> Any:
    # find_library may run `ldconfig -p`: done once at import (in the forkserver, which
    # imports this module), not in every child.
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return None
    try:
        return ctypes.CDLL(libc_name)
    except OSError:
        return None


_LIBC = _load_libc()


def _limit_malloc_arenas() -> None:
    # glibc reserves a 64 MiB arena per thread; under RLIMIT_AS that virtual space would
    # count against the limit and make thread-heavy decoders fail far below real usage.
    if _LIBC is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        m_arena_max = -8
        _LIBC.mallopt(m_arena_max, 2)

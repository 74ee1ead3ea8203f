"""The container entrypoint `percolate-reading run`: role selection, refusals, real start-ups."""

from __future__ import annotations

import asyncio
import http.client
import importlib.util
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from percolate_reading.cli.run import (
    EXIT_CONFIG,
    ROLE_VARIABLES,
    Role,
    RoleConfigError,
    health_target,
    resolve_role,
)
from percolate_reading.config import Settings, load_settings
from tests.harness.operator_role import create_small_pool, small_pool_worker_container
from tests.servers import NatsServer, free_port

ROLE_ENV = (
    "PERCOLATE_READING_GATEWAY_MODE",
    "PERCOLATE_READING_WORKER_MODE",
    "PERCOLATE_READING_OPERATOR_MODE",
)


def _cli() -> list[str]:
    # The console script the image's ENTRYPOINT runs; `-m` if the venv has none.
    script = Path(sys.executable).parent / "percolate-reading"
    return [str(script)] if script.exists() else [sys.executable, "-m", "percolate_reading"]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERCOLATE_READING_")}
    env.update(extra)
    return env


@pytest.fixture
def no_role_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PERCOLATE_READING_"):
            monkeypatch.delenv(name)


# --- resolve_role: every combination -------------------------------------------------------


@pytest.mark.usefixtures("no_role_env")
@pytest.mark.parametrize(
    ("gateway", "worker", "operator", "flag"), list(itertools.product([False, True], repeat=4))
)
def test_resolve_role_every_combination(gateway: bool, worker: bool, operator: bool, flag: bool) -> None:
    settings = Settings(gateway_mode=gateway, worker_mode=worker, operator_mode=operator)
    chosen = [
        r
        for r, on in ((Role.GATEWAY, gateway), (Role.WORKER, worker), (Role.OPERATOR, operator or flag))
        if on
    ]
    if len(chosen) == 1:
        assert resolve_role(settings, operator_flag=flag) is chosen[0]
        return
    with pytest.raises(RoleConfigError) as err:
        resolve_role(settings, operator_flag=flag)
    message = str(err.value)
    if chosen:
        assert message.startswith("conflicting roles")
        for role in chosen:
            assert ROLE_VARIABLES[role] in message
    else:
        assert message.startswith("no role selected")
        for variable in ROLE_ENV:
            assert variable in message


@pytest.mark.usefixtures("no_role_env")
@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"PERCOLATE_READING_GATEWAY_MODE": "true"}, Role.GATEWAY),
        ({"PERCOLATE_READING_WORKER_MODE": "1"}, Role.WORKER),
        ({"PERCOLATE_READING_OPERATOR_MODE": "TRUE"}, Role.OPERATOR),
        ({"PERCOLATE_READING_GATEWAY_MODE": "false", "PERCOLATE_READING_WORKER_MODE": "yes"}, Role.WORKER),
    ],
)
def test_resolve_role_reads_the_environment_through_settings(
    monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str], expected: Role
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert resolve_role(load_settings()) is expected


def test_role_variables_are_settings_fields() -> None:
    for role, variable in ROLE_VARIABLES.items():
        field = variable.removeprefix("PERCOLATE_READING_").lower()
        assert field in Settings.model_fields, role
        assert Settings.model_fields[field].description


@pytest.mark.usefixtures("no_role_env")
def test_health_target_per_role(monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = Settings(gateway_mode=True, port=8123)
    assert health_target(gateway, Role.GATEWAY) == ("127.0.0.1", 8123, "/health")
    assert health_target(Settings(host="::", port=8001), Role.GATEWAY) == ("::1", 8001, "/health")
    assert health_target(Settings(host="10.1.2.3", port=8001), Role.GATEWAY) == ("10.1.2.3", 8001, "/health")
    # The worker's health server binds the same host as the gateway would.
    assert health_target(Settings(metrics_port=9191), Role.WORKER) == ("127.0.0.1", 9191, "/health")
    assert health_target(Settings(host="10.1.2.3", metrics_port=9191), Role.WORKER) == (
        "10.1.2.3",
        9191,
        "/health",
    )
    assert health_target(Settings(metrics_port=0), Role.WORKER) is None
    # The operator: kopf's liveness endpoint, from the operator's own settings.
    monkeypatch.delenv("PERCOLATE_OPERATOR_LIVENESS_ENDPOINT", raising=False)
    assert health_target(Settings(), Role.OPERATOR) == ("127.0.0.1", 8080, "/healthz")
    monkeypatch.setenv("PERCOLATE_OPERATOR_LIVENESS_ENDPOINT", "http://10.0.0.7:8181/livez")
    assert health_target(Settings(), Role.OPERATOR) == ("10.0.0.7", 8181, "/livez")


# --- the real command, in a subprocess -------------------------------------------------------


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_cli(), "run", *args], env=env, capture_output=True, text=True, timeout=60)


def test_run_with_both_modes_exits_2_naming_the_variables() -> None:
    env = _clean_env(PERCOLATE_READING_GATEWAY_MODE="true", PERCOLATE_READING_WORKER_MODE="true")
    result = _run([], env)
    assert result.returncode == EXIT_CONFIG
    assert "conflicting roles" in result.stderr
    assert "PERCOLATE_READING_GATEWAY_MODE" in result.stderr
    assert "PERCOLATE_READING_WORKER_MODE" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_with_no_mode_exits_2_naming_the_variables() -> None:
    result = _run([], _clean_env())
    assert result.returncode == EXIT_CONFIG
    assert "no role selected" in result.stderr
    for variable in ROLE_ENV:
        assert variable in result.stderr
    assert "Traceback" not in result.stderr


def test_run_role_flag_conflicting_with_the_environment_exits_2() -> None:
    result = _run(["--role", "operator"], _clean_env(PERCOLATE_READING_WORKER_MODE="true"))
    assert result.returncode == EXIT_CONFIG
    assert "PERCOLATE_READING_OPERATOR_MODE" in result.stderr
    assert "PERCOLATE_READING_WORKER_MODE" in result.stderr


def test_run_with_an_invalid_setting_exits_2_naming_it() -> None:
    result = _run([], _clean_env(PERCOLATE_READING_GATEWAY_MODE="true", PERCOLATE_READING_PORT="not-a-port"))
    assert result.returncode == EXIT_CONFIG
    assert "port" in result.stderr
    assert "Traceback" not in result.stderr


def test_healthcheck_reports_1_not_2_on_a_bad_environment() -> None:
    # Docker reserves exit code 2 for HEALTHCHECK commands.
    assert _run(["--healthcheck"], _clean_env()).returncode == 1


def test_healthcheck_fails_when_nothing_listens() -> None:
    env = _clean_env(PERCOLATE_READING_GATEWAY_MODE="true", PERCOLATE_READING_PORT=str(free_port()))
    assert _run(["--healthcheck"], env).returncode == 1


def test_healthcheck_of_the_operator_role_fails_when_its_liveness_endpoint_is_down() -> None:
    env = _clean_env(PERCOLATE_OPERATOR_LIVENESS_ENDPOINT=f"http://127.0.0.1:{free_port()}/healthz")
    assert _run(["--healthcheck", "--role", "operator"], env).returncode == 1


@pytest.mark.parametrize("kubeconfig", [None, "missing-file"])
def test_operator_role_without_an_api_server_exits_1_naming_the_cause(
    tmp_path: Path, kubeconfig: str | None
) -> None:
    # No kubeconfig (or one naming a missing file), no service account, no
    # PERCOLATE_OPERATOR_K8S_SERVER: a fatal start-up error, so the process exits non-zero
    # instead of retrying every 60 s unseen.
    env = _clean_env(
        HOME=str(tmp_path),
        PERCOLATE_OPERATOR_LIVENESS_ENDPOINT=f"http://127.0.0.1:{free_port()}/healthz",
        PERCOLATE_OPERATOR_NATS_URL=f"nats://127.0.0.1:{free_port()}",
    )
    env.pop("KUBECONFIG", None)
    if kubeconfig:
        env["KUBECONFIG"] = str(tmp_path / kubeconfig)
    result = subprocess.run(
        [*_cli(), "run", "--role", "operator"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "percolate-operator: stopped: no API server" in result.stderr


# --- each role really starts ----------------------------------------------------------------


def _get(port: int, path: str) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        conn.close()


def _wait_for_status(proc: subprocess.Popen[bytes], port: int, path: str, deadline_s: float = 90.0) -> int:
    # A start-up deadline, not a speed assertion: the role imports its stack first.
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} before {path} answered")
        status = _get(port, path)
        if status is not None:
            return status
        time.sleep(0.2)
    raise AssertionError(f"{path} on port {port} did not answer within {deadline_s}s")


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _start(
    env: dict[str, str], log: Path, procs: list[subprocess.Popen[bytes]], *args: str
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        proc = subprocess.Popen([*_cli(), "run", *args], env=env, stdout=out, stderr=subprocess.STDOUT)
    procs.append(proc)
    return proc


def _stop(proc: subprocess.Popen[bytes], log: Path) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"no exit within 60 s of SIGTERM; log:\n{log.read_text()[-3000:]}") from None


GATEWAY_MISSING = importlib.util.find_spec("percolate_reading.gateway.server") is None
WORKER_MISSING = importlib.util.find_spec("percolate_reading.worker.main") is None


@pytest.mark.integration
@pytest.mark.skipif(GATEWAY_MISSING, reason="percolate_reading.gateway.server is not in this tree yet")
def test_gateway_role_serves_health_and_exits_0_on_sigterm(
    fresh_nats_server: NatsServer, tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    env = _clean_env(
        PERCOLATE_READING_GATEWAY_MODE="true",
        PERCOLATE_READING_HOST="127.0.0.1",
        PERCOLATE_READING_PORT=str(port),
        PERCOLATE_READING_NATS_URL=fresh_nats_server.url,
        PERCOLATE_READING_S3_ENABLED="false",
        PERCOLATE_READING_DATA_DIR=str(tmp_path / "data"),
        PERCOLATE_READING_DEV_API_KEY="pr_test_entrypoint_key",
    )
    log = tmp_path / "gateway.log"
    proc = _start(env, log, started)
    assert _wait_for_status(proc, port, "/health") == 200, log.read_text()[-3000:]
    # The image's HEALTHCHECK command, against the live gateway.
    assert _run(["--healthcheck"], env).returncode == 0
    assert _stop(proc, log) == 0, log.read_text()[-3000:]


@pytest.mark.integration
@pytest.mark.skipif(WORKER_MISSING, reason="percolate_reading.worker.main is not in this tree yet")
def test_worker_role_serves_health_and_exits_0_on_sigterm(
    fresh_nats_server: NatsServer, tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    metrics_port = free_port()
    env = _clean_env(
        PERCOLATE_READING_WORKER_MODE="true",
        PERCOLATE_READING_METRICS_PORT=str(metrics_port),
        PERCOLATE_READING_NATS_URL=fresh_nats_server.url,
        PERCOLATE_READING_S3_ENABLED="false",
        PERCOLATE_READING_DATA_DIR=str(tmp_path / "data"),
        PERCOLATE_READING_DRAIN_TIMEOUT_S="5",
    )
    log = tmp_path / "worker.log"
    proc = _start(env, log, started)
    assert _wait_for_status(proc, metrics_port, "/health") == 200, log.read_text()[-3000:]
    assert _run(["--healthcheck"], env).returncode == 0
    assert _stop(proc, log) == 0, log.read_text()[-3000:]


@pytest.mark.integration
async def test_operator_role_reconciles_a_parsepool_and_exits_0_on_sigterm(
    fresh_nats_server: NatsServer, tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    """`run --role operator` against kmock's Kubernetes emulator (tests/operator/cluster.py)
    and a real nats-server: kopf's liveness answers, a ParsePool gets its worker Deployment."""
    import aiohttp

    from tests.operator.cluster import serving_cluster

    liveness_port = free_port()
    async with serving_cluster() as (_, url), aiohttp.ClientSession() as session:
        env = _clean_env(
            PERCOLATE_OPERATOR_K8S_SERVER=url,
            PERCOLATE_OPERATOR_NATS_URL=fresh_nats_server.url,
            PERCOLATE_OPERATOR_LIVENESS_ENDPOINT=f"http://127.0.0.1:{liveness_port}/healthz",
            PERCOLATE_OPERATOR_TENANT_NAMESPACE="percolate",
        )
        log = tmp_path / "operator.log"
        proc = _start(env, log, started, "--role", "operator")

        async def fetch(target: str) -> dict[str, Any] | None:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                async with session.get(target) as resp:
                    return await resp.json() if resp.status == 200 else None  # type: ignore[no-any-return]
            except aiohttp.ClientError:
                return None

        async def poll(target: str) -> dict[str, Any]:
            # A guard against hangs, not a speed assertion.
            for _ in range(900):
                found = await fetch(target)
                if found is not None:
                    return found
                await asyncio.sleep(0.1)
            raise AssertionError(f"{target} never answered; operator log:\n{log.read_text()[-3000:]}")

        await poll(f"http://127.0.0.1:{liveness_port}/healthz")
        # The image's HEALTHCHECK command probes that same endpoint.
        health = await asyncio.to_thread(_run, ["--healthcheck", "--role", "operator"], env)
        assert health.returncode == 0, health.stderr
        await create_small_pool(session, url)
        container = await small_pool_worker_container(session, url, log.read_text)
        assert container.get("command", ["percolate-reading", "run"]) == ["percolate-reading", "run"]
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 60)
        assert code == 0, log.read_text()[-3000:]

"""The operator as users run it: `python -m percolate_operator` with a kubeconfig, here one that
holds a token of its own ServiceAccount (operator/deploy/rbac.yaml), minted with TokenRequest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.kube.controlplane import ROOT, ControlPlane
from tests.servers import NatsServer, free_port, wait_for_port

NS = "percolate"


def install_operator_rbac(cp: ControlPlane, state: Path) -> Path:
    """operator/deploy/rbac.yaml applied; a kubeconfig with a token of its ServiceAccount."""
    cp.kubectl_run("apply", "--server-side", "-f", str(ROOT / "operator" / "deploy" / "rbac.yaml"))
    token = cp.kubectl_run("create", "token", "percolate-operator", "-n", NS, "--duration=2h").stdout.strip()
    assert token.count(".") == 2, "not a JWT"
    path = cp.write_kubeconfig(state / "operator.kubeconfig", token=token)
    # The token is the ServiceAccount, not an admin: it may not, say, list Secrets cluster-wide.
    denied = cp.kubectl_run("get", "secrets", "-A", kubeconfig=path, check=False)
    assert "Forbidden" in denied.stderr, denied.stderr
    return path


class OperatorProcess:
    def __init__(self, kubeconfig: Path, nats: NatsServer, log_dir: Path, **settings: Any) -> None:
        self.kubeconfig = kubeconfig
        self.nats = nats
        self.log_dir = log_dir
        self.settings = settings
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"operator-{self.starts}.log"

    def start(self, **overrides: Any) -> None:
        self.starts += 1
        port = free_port()
        values = {
            "nats_url": self.nats.url,
            "tenant_namespace": NS,
            "keda_monitoring_endpoint": f"127.0.0.1:{self.nats.monitor_port}",
            "liveness_endpoint": f"http://127.0.0.1:{port}/healthz",
            "drift_interval_s": 3,
            "drift_initial_delay_s": 1,
            "nats_retry_delay_s": 1,
            **self.settings,
            **overrides,
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith("PERCOLATE_OPERATOR_")}
        env.update({f"PERCOLATE_OPERATOR_{k.upper()}": str(v) for k, v in values.items()})
        env["KUBECONFIG"] = str(self.kubeconfig)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "percolate_operator"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_for_port(port, timeout=60, proc=self.proc)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        self.proc = None
        return code

    def logs(self) -> str:
        return "".join(
            (self.log_dir / f"operator-{i}.log").read_text(errors="replace")
            for i in range(1, self.starts + 1)
        )


class Kube:
    """kubectl for the tests (as the admin), returning parsed JSON."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp

    def get(self, kind: str, name: str, namespace: str | None = NS) -> dict[str, Any] | None:
        args = ["get", kind, name, "-o", "json"]
        if namespace:
            args += ["-n", namespace]
        done = self.cp.kubectl_run(*args, check=False)
        if done.returncode != 0:
            assert "NotFound" in done.stderr, done.stderr
            return None
        out: dict[str, Any] = json.loads(done.stdout)
        return out

    def run(self, *args: str, input_text: str | None = None) -> str:
        return self.cp.kubectl_run(*args, input_text=input_text).stdout

    def apply(self, manifest: dict[str, Any]) -> None:
        self.run("apply", "--server-side", "-f", "-", input_text=json.dumps(manifest))

    def events(self, reason: str, namespace: str | None = NS) -> list[dict[str, Any]]:
        scope = ["-n", namespace] if namespace else ["-A"]
        items = json.loads(self.run("get", "events", *scope, "-o", "json"))["items"]
        return [e for e in items if e.get("reason") == reason]


def wait_for(check: Callable[[], Any], limit_s: float = 60.0, every_s: float = 0.5) -> Any:
    """Poll until `check` returns something truthy (a guard against hangs, not a speed check)."""
    deadline = time.monotonic() + limit_s
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {limit_s}s (last: {last!r})")
        time.sleep(every_s)

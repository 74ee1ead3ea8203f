"""Layering: roles never import each other, and the shared layers import no role.

Roles are the gateway, the worker and the operator; `cli` is the launcher that starts them
(`run` starts whichever role the container is; `serve` runs a gateway and a worker), so it
imports roles' entry points, and no role imports it. The
shared layers (`contract`, `parse`, `infra` and the top-level modules) import no role at all.
Imports are read from the source (AST), including those inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICE = ROOT / "service" / "percolate_reading"
OPERATOR = ROOT / "operator" / "percolate_operator"

ROLES = {
    "gateway": "percolate_reading.gateway",
    "worker": "percolate_reading.worker",
    "operator": "percolate_operator",
    "cli": "percolate_reading.cli",
}
# What each package must not import.
FORBIDDEN = {
    "gateway": ("worker", "operator", "cli"),
    "worker": ("gateway", "operator", "cli"),
    "operator": ("gateway", "worker", "cli"),
}
SHARED = ("contract", "parse", "infra")


def imported_modules(path: Path) -> set[str]:
    return imported_by(path.read_text(encoding="utf-8"), str(path))


def imported_by(source: str, filename: str = "<source>") -> set[str]:
    tree = ast.parse(source, filename)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # `from percolate_reading import gateway` imports the package too.
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def imports_of(package: Path) -> dict[str, set[str]]:
    return {str(p.relative_to(ROOT)): imported_modules(p) for p in sorted(package.rglob("*.py"))}


def _hits(imports: dict[str, set[str]], banned: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{file}: {name}"
        for file, names in imports.items()
        for name in names
        if any(name == b or name.startswith(b + ".") for b in banned)
    )


def _package_dir(role: str) -> Path:
    return OPERATOR if role == "operator" else SERVICE / role


@pytest.mark.parametrize("role", sorted(FORBIDDEN))
def test_roles_do_not_import_each_other(role: str) -> None:
    banned = tuple(ROLES[other] for other in FORBIDDEN[role])
    assert _hits(imports_of(_package_dir(role)), banned) == []


def test_shared_layers_import_no_role() -> None:
    banned = tuple(ROLES.values())
    files = {
        **{k: v for layer in SHARED for k, v in imports_of(SERVICE / layer).items()},
        **{
            str(p.relative_to(ROOT)): imported_modules(p)
            for p in SERVICE.glob("*.py")
            if p.name not in ("__main__.py",)  # `python -m percolate_reading` runs the CLI
        },
    }
    assert len(files) > 20
    assert _hits(files, banned) == []


def test_the_check_sees_an_import() -> None:
    """The walker finds imports inside functions and `from x import y` forms."""
    source = "def f():\n    from percolate_reading import gateway\n    import percolate_operator.kube\n"
    names = imported_by(source)
    assert {"percolate_reading.gateway", "percolate_operator.kube"} <= names

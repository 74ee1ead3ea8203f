"""What the API server does with a custom resource, done in Python for tests.

- `apply_defaults`: structural defaulting (a property's `default` fills in when absent,
  nested defaults apply inside it), as the API server does before validation.
- `schema_errors`: the openAPIV3Schema checked with jsonschema, unknown fields rejected (what
  `kubectl apply` does with its default strict field validation).
- `cel_errors`: every `x-kubernetes-validations` rule evaluated with cel-python, with `oldSelf`
  for transition rules on updates (only along object properties, where the API server can
  correlate old and new values).
- `python_errors`: the same rules as the operator checks them (its pydantic models).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from pydantic import ValidationError

from percolate_operator import models

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "crds"
EXAMPLES_DIR = ROOT / "k8s" / "examples"
INVALID_DIR = Path(__file__).resolve().parent / "invalid"

CRD_FILES = {"ParsePool": CRD_DIR / "parsepool.yaml", "Tenant": CRD_DIR / "tenant.yaml"}


def load_crd(kind: str) -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load(CRD_FILES[kind].read_text())
    return crd


def crd_schema(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = load_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def load_yaml(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    value = copy.deepcopy(value)
    _default_into(schema, value)
    return value


def _default_into(schema: dict[str, Any], value: Any) -> None:
    if isinstance(value, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                _default_into(sub, value[name])
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            _default_into(schema["items"], item)


def _strict(schema: Any) -> Any:
    """Unknown fields are errors; Kubernetes-only keywords are dropped."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
        if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def schema_errors(kind: str, obj: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(_strict(crd_schema(kind)))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]


@functools.cache
def _cel() -> Any:
    # Imported here so the other helpers work without cel-python (a dev dependency).
    import celpy

    return celpy.Environment()


def _evaluate(rule: str, self_value: Any, old_value: Any) -> bool:
    from celpy.adapter import json_to_cel

    env = _cel()
    program = env.program(env.compile(rule))
    activation = {"self": json_to_cel(self_value)}
    if old_value is not None:
        activation["oldSelf"] = json_to_cel(old_value)
    return bool(program.evaluate(activation))


def cel_errors(kind: str, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    errors: list[str] = []
    _cel_walk(crd_schema(kind), obj, old, "", errors)
    return errors


_MISSING = object()


def _cel_walk(schema: dict[str, Any], value: Any, old: Any, path: str, errors: list[str]) -> None:
    for rule in schema.get("x-kubernetes-validations") or []:
        transition = "oldSelf" in rule["rule"]
        if transition and old is None:
            continue  # transition rules only run on updates, where an old value exists
        if not _evaluate(rule["rule"], value, old if transition else None):
            errors.append(f"{path or '<root>'}: {rule.get('message', rule['rule'])}")
    if isinstance(value, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if name in value:
                old_sub = old.get(name) if isinstance(old, dict) else None
                _cel_walk(sub, value[name], old_sub, f"{path}.{name}", errors)
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            # Items of plain lists cannot be correlated with old ones: no oldSelf below here.
            _cel_walk(schema["items"], item, None, f"{path}[{i}]", errors)


def default_errors(schema: dict[str, Any]) -> list[str]:
    """Every schema `default`, as written, checked against the CEL rules of its node and below.

    The API server does this when the CRD is created (before any nested defaulting), so a
    `default: {}` under a rule reading `self.min` makes it reject the whole CRD.
    """
    errors: list[str] = []

    def visit(schema: dict[str, Any], path: str) -> None:
        if "default" in schema:
            try:
                _cel_walk(schema, schema["default"], None, f"{path} (default)", errors)
            except Exception as exc:  # celpy raises CELEvalError for missing keys etc.
                errors.append(f"{path} (default): {exc}")
        for name, sub in (schema.get("properties") or {}).items():
            visit(sub, f"{path}.{name}")
        if isinstance(schema.get("items"), dict):
            visit(schema["items"], f"{path}[]")
        if isinstance(schema.get("additionalProperties"), dict):
            visit(schema["additionalProperties"], f"{path}{{}}")

    visit(schema, "")
    return errors


def python_errors(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    """The operator's own checks of a (defaulted) object, as error strings."""
    kind = obj["kind"]
    name = obj["metadata"]["name"]
    try:
        if kind == "ParsePool":
            spec = models.parse_pool_spec(obj["spec"])
            models.check_pool_name(name)
            if old is not None:
                return models.pool_immutable_changes(models.parse_pool_spec(old["spec"]), spec)
        else:
            tenant = models.parse_tenant_spec(obj["spec"])
            models.check_tenant_name(name, tenant)
            if old is not None:
                return models.tenant_immutable_changes(models.parse_tenant_spec(old["spec"]), tenant)
    except (ValidationError, ValueError) as exc:
        return [str(exc)]
    return []


def api_server_errors(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    """Defaulting, then schema validation, then CEL (the API server's order)."""
    kind = obj["kind"]
    schema = crd_schema(kind)
    defaulted = apply_defaults(schema, obj)
    errors = schema_errors(kind, defaulted)
    if errors:
        return errors
    return cel_errors(kind, defaulted, apply_defaults(schema, old) if old is not None else None)

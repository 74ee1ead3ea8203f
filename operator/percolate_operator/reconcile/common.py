"""Helpers the ParsePool and Tenant steps share: error translation and status patches."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf
from pydantic import ValidationError

from percolate_operator import builders, models
from percolate_operator.clients.kube import KubeError


def temporary(exc: Exception, delay: float) -> kopf.TemporaryError:
    return kopf.TemporaryError(str(exc), delay=delay)


def kube_error(exc: KubeError, retry_delay: float) -> kopf.TemporaryError | kopf.PermanentError:
    if exc.temporary:
        # Throttled: come back when the API server asked us to, not sooner.
        return kopf.TemporaryError(str(exc), delay=max(retry_delay, exc.retry_after or 0.0))
    return kopf.PermanentError(str(exc))


def conditions(status: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    return list((status or {}).get("conditions") or [])


def describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
    return str(exc)


def invalid(
    body: Any,
    patch: kopf.Patch,
    status: Mapping[str, Any] | None,
    exc: Exception,
    reason: str = "InvalidSpec",
) -> kopf.PermanentError:
    """Ready=False with the reason, one Warning event per new problem, no retry."""
    message = describe(exc)
    previous = conditions(status)
    ready = builders.condition("Ready", False, reason, message, previous)
    # One Warning per new problem, not one per drift check of an unchanged invalid spec.
    if not any(c.get("type") == "Ready" and c.get("message") == message for c in previous):
        kopf.warn(body, reason=reason, message=message)
    if previous != [ready]:
        patch.status["conditions"] = [ready]
    return kopf.PermanentError(f"{reason}: {message}")


def not_ready(
    body: Any,
    patch: kopf.Patch,
    status: Mapping[str, Any] | None,
    reason: str,
    message: str,
    delay: float,
    *child_types: str,
) -> kopf.TemporaryError:
    """Ready=False (and the named child conditions) with the reason, then retry after `delay`:
    for what someone else must fix (a missing Secret, NATS down), visible in `kubectl get`."""
    previous = conditions(status)
    patch.status["conditions"] = [
        builders.condition("Ready", False, reason, message, previous),
        *(builders.condition(t, False, reason, message, previous) for t in child_types),
    ]
    if not any(c.get("type") == "Ready" and c.get("message") == message for c in previous):
        kopf.warn(body, reason=reason, message=message)
    return kopf.TemporaryError(message, delay=delay)


def set_status(patch: kopf.Patch, status: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> None:
    """Patch only the status fields that changed: a drift check that finds everything in
    place then writes nothing (hundreds of objects x every interval otherwise)."""
    current = status or {}
    for key, value in desired.items():
        if current.get(key) != value:
            patch.status[key] = value


def check_immutable(body: Any, patch: kopf.Patch, status: Any, old: Any, spec: Any, kind: str) -> None:
    """The CRD's transition rules, in Python (for an API server that skipped them)."""
    if not old or not old.get("spec"):
        return
    try:
        if kind == "ParsePool":
            changed = models.pool_immutable_changes(
                models.parse_pool_spec(dict(old["spec"])), models.parse_pool_spec(dict(spec))
            )
        else:
            changed = models.tenant_immutable_changes(
                models.parse_tenant_spec(dict(old["spec"])), models.parse_tenant_spec(dict(spec))
            )
    except (ValidationError, ValueError):
        return  # reported by the reconcile that follows
    if changed:
        raise invalid(body, patch, status, ValueError(f"{', '.join(changed)} cannot change after creation"))

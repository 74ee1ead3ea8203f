"""What the ParsePool and Tenant steps share: the event they reconcile, error translation and
the status patch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import kopf
from pydantic import ValidationError

from percolate_operator import builders, models
from percolate_operator.clients.kube import KubeError

Outcome = Literal["created", "updated", "unchanged"]
# The kopf keyword arguments an Event is made of.
_KOPF_FIELDS = ("name", "body", "meta", "spec", "status", "patch")


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


def set_status(patch: kopf.Patch, status: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> None:
    """Patch only the status fields that changed: a drift check that finds everything in
    place then writes nothing (hundreds of objects x every interval otherwise)."""
    current = status or {}
    for key, value in desired.items():
        if current.get(key) != value:
            patch.status[key] = value


@dataclass(frozen=True)
class Event:
    """One ParsePool or Tenant as kopf hands it over: what the reconcile steps read, and the
    patch (status) and events they write."""

    name: str
    body: Any
    meta: Mapping[str, Any]
    spec: Mapping[str, Any]
    status: Mapping[str, Any] | None
    patch: kopf.Patch
    drift: bool  # a timer's look for drift, not a change by a user

    @classmethod
    def from_kopf(cls, kw: Mapping[str, Any], *, drift: bool) -> Event:
        return cls(**{k: kw[k] for k in _KOPF_FIELDS}, drift=drift)

    @property
    def previous(self) -> list[Mapping[str, Any]]:
        """The conditions as they stand (a condition keeps its transition time if unchanged)."""
        return conditions(self.status)

    def owner(self, kind: str) -> dict[str, Any]:
        """An owner reference to this object, for the children it creates."""
        return builders.owner_reference(models.API_VERSION, kind, self.name, str(self.meta.get("uid", "")))

    def condition(self, type_: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
        return builders.condition(type_, ok, reason, message, self.previous)

    def announce(self, outcome: Outcome, kind: str, message: str, *, updated: str = "Updated") -> None:
        """One Normal event for a child created or changed (none when it was in place); a
        change found by the drift timer is a restore."""
        if outcome == "unchanged":
            return
        what = "Created" if outcome == "created" else ("Restored" if self.drift else updated)
        kopf.info(self.body, reason=f"{kind}{what}", message=message)

    def invalid(self, exc: Exception, reason: str = "InvalidSpec") -> kopf.PermanentError:
        """Ready=False with the reason, one Warning event per new problem, no retry."""
        message = describe(exc)
        previous = self.previous
        ready = builders.condition("Ready", False, reason, message, previous)
        self._warn_once(reason, message, previous)
        if previous != [ready]:
            self.patch.status["conditions"] = [ready]
        return kopf.PermanentError(f"{reason}: {message}")

    def not_ready(self, reason: str, message: str, delay: float, *child_types: str) -> kopf.TemporaryError:
        """Ready=False (and the named child conditions) with the reason, then retry after
        `delay`: for what someone else must fix (a missing Secret, NATS down), visible in
        `kubectl get`."""
        previous = self.previous
        self.patch.status["conditions"] = [
            builders.condition("Ready", False, reason, message, previous),
            *(builders.condition(t, False, reason, message, previous) for t in child_types),
        ]
        self._warn_once(reason, message, previous)
        return kopf.TemporaryError(message, delay=delay)

    def _warn_once(self, reason: str, message: str, previous: Sequence[Mapping[str, Any]]) -> None:
        # One Warning per new problem, not one per drift check of an unchanged problem.
        if not any(c.get("type") == "Ready" and c.get("message") == message for c in previous):
            kopf.warn(self.body, reason=reason, message=message)

    def publish_status(self, fields: Mapping[str, Any], children: Sequence[dict[str, Any]]) -> None:
        """The status of a finished reconcile: the kind's own fields, one condition per child
        and Ready over all of them (only what changed is patched)."""
        set_status(
            self.patch,
            self.status,
            {
                "observedGeneration": self.meta.get("generation"),
                **fields,
                "conditions": [builders.ready_condition(children, self.previous), *children],
            },
        )


def check_immutable(event: Event, old: Any, kind: Literal["ParsePool", "Tenant"]) -> None:
    """The CRD's transition rules, in Python (for an API server that skipped them)."""
    if not old or not old.get("spec"):
        return
    try:
        if kind == "ParsePool":
            changed = models.pool_immutable_changes(
                models.parse_pool_spec(dict(old["spec"])), models.parse_pool_spec(dict(event.spec))
            )
        else:
            changed = models.tenant_immutable_changes(
                models.parse_tenant_spec(dict(old["spec"])), models.parse_tenant_spec(dict(event.spec))
            )
    except (ValidationError, ValueError):
        return  # reported by the reconcile that follows
    if changed:
        raise event.invalid(ValueError(f"{', '.join(changed)} cannot change after creation"))

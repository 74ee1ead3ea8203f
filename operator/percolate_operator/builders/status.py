"""Status conditions from what the children report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    type_: str, ok: bool, reason: str, message: str, previous: Sequence[Mapping[str, Any]] = (), now: str = ""
) -> dict[str, Any]:
    """A status condition; lastTransitionTime only moves when the status flips."""
    status = "True" if ok else "False"
    stamp = now or now_iso()
    for old in previous:
        if old.get("type") == type_ and old.get("status") == status and old.get("lastTransitionTime"):
            stamp = str(old["lastTransitionTime"])
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": stamp,
    }


def ready_condition(
    children: Sequence[Mapping[str, Any]], previous: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    failing = [c for c in children if c["status"] != "True"]
    if failing:
        return condition(
            "Ready",
            False,
            str(failing[0]["reason"]),
            "; ".join(f"{c['type']}: {c['message']}" for c in failing),
            previous,
        )
    return condition("Ready", True, "Reconciled", "all children are in place", previous)


def deployment_condition(
    deployment: Mapping[str, Any] | None, previous: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    if deployment is None:
        return condition("DeploymentReady", False, "Missing", "worker Deployment not found", previous)
    status = deployment.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return condition(
                "DeploymentReady", False, "ProgressDeadlineExceeded", str(cond.get("message", "")), previous
            )
    unavailable = int(status.get("unavailableReplicas") or 0)
    if unavailable:
        return condition(
            "DeploymentReady",
            False,
            "ReplicasUnavailable",
            f"{unavailable} replica(s) not available yet",
            previous,
        )
    ready = int(status.get("readyReplicas") or 0)
    return condition("DeploymentReady", True, "Available", f"{ready} replica(s) ready", previous)


def scaled_object_condition(
    scaled_object: Mapping[str, Any] | None, previous: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    if scaled_object is None:
        return condition("ScaledObjectReady", False, "Missing", "KEDA ScaledObject not found", previous)
    for cond in (scaled_object.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") == "False":
            return condition(
                "ScaledObjectReady",
                False,
                str(cond.get("reason") or "KedaNotReady"),
                str(cond.get("message", "")),
                previous,
            )
        if cond.get("type") == "Ready" and cond.get("status") == "True":
            return condition(
                "ScaledObjectReady", True, "KedaReady", str(cond.get("message") or "ready"), previous
            )
    return condition("ScaledObjectReady", True, "Applied", "applied; KEDA has not reported yet", previous)


def deployment_replicas(deployment: Mapping[str, Any] | None) -> tuple[int, int]:
    status = (deployment or {}).get("status") or {}
    return int(status.get("replicas") or 0), int(status.get("readyReplicas") or 0)


def scaling_condition(
    scaled_object: Mapping[str, Any] | None, previous: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Whether KEDA can read the pool's lag: from the ScaledObject's status (per-trigger
    `health`, its `Ready`/`Fallback` conditions). A wrong monitoring endpoint shows here
    instead of a pool that looks Ready while jobs pile up."""
    status = (scaled_object or {}).get("status") or {}
    for trigger, health in sorted((status.get("health") or {}).items()):
        if (health or {}).get("status") == "Failing":
            failures = int(health.get("numberOfFailures") or 0)
            return condition(
                "Scaling",
                False,
                "ScalerFailing",
                f"{trigger}: {failures} failed lag reads in a row",
                previous,
            )
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    ready, fallback = conditions.get("Ready") or {}, conditions.get("Fallback") or {}
    if fallback.get("status") == "True":
        return condition(
            "Scaling", False, "Fallback", str(fallback.get("message") or "fallback active"), previous
        )
    if ready.get("status") == "False":
        message = str(ready.get("message") or "KEDA reports the ScaledObject not ready")
        return condition("Scaling", False, str(ready.get("reason") or "ScalerError"), message, previous)
    if ready.get("status") != "True":
        return condition("Scaling", True, "Pending", "KEDA has not checked the scaler yet", previous)
    active = (conditions.get("Active") or {}).get("status") == "True"
    return condition("Scaling", True, "Active" if active else "Idle", "KEDA reads the consumer lag", previous)

"""`percolate-reading run`: the container entrypoint; the environment picks the role.

One image serves three roles. `PERCOLATE_READING_GATEWAY_MODE=true` runs the HTTP gateway,
`PERCOLATE_READING_WORKER_MODE=true` a queue worker, `PERCOLATE_READING_OPERATOR_MODE=true`
(or `--role operator`) the Kubernetes operator. Exactly one must be chosen: a container
that silently ran the wrong role (or both) would be worse than one that refuses to start.

`run --healthcheck` is the image's HEALTHCHECK: it probes the running role's health endpoint
on the address the role binds (the operator's: kopf's liveness endpoint) and exits 0 or 1,
so the Dockerfile needs no curl.
"""

from __future__ import annotations

import argparse
import http.client
import sys
from enum import StrEnum
from urllib.parse import urlsplit

from pydantic import ValidationError

from percolate_reading.config import ENV_PREFIX, Settings, load_settings
from percolate_reading.logs import setup_logging

# Exit code for a configuration the entrypoint refuses (argparse uses 2 for usage errors too).
EXIT_CONFIG = 2


class Role(StrEnum):
    GATEWAY = "gateway"
    WORKER = "worker"
    OPERATOR = "operator"


# The variable that turns each role on, named in error messages.
ROLE_VARIABLES: dict[Role, str] = {role: f"{ENV_PREFIX}{role.value.upper()}_MODE" for role in Role}


class RoleConfigError(ValueError):
    """The environment selects no role or more than one."""


def resolve_role(settings: Settings, operator_flag: bool = False) -> Role:
    """The one role the settings (and the `--role operator` flag) select.

    Pure: reads only `settings`. Raises RoleConfigError naming the variables when zero or
    several roles are on.
    """
    chosen = [
        role
        for role, on in (
            (Role.GATEWAY, settings.gateway_mode),
            (Role.WORKER, settings.worker_mode),
            (Role.OPERATOR, settings.operator_mode or operator_flag),
        )
        if on
    ]
    if len(chosen) == 1:
        return chosen[0]
    choices = ", ".join(f"{var}=true" for var in ROLE_VARIABLES.values())
    if not chosen:
        raise RoleConfigError(
            f"no role selected: set exactly one of {choices} (or pass --role operator). "
            "Use `percolate-reading serve` to run gateway and worker together on one node."
        )
    names = " and ".join(ROLE_VARIABLES[role] for role in chosen)
    raise RoleConfigError(
        f"conflicting roles: {names} are both on; a container runs exactly one role. "
        f"Set exactly one of {choices}. "
        "Use `percolate-reading serve` to run gateway and worker together on one node."
    )


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--role",
        choices=[r.value for r in Role],
        default=None,
        help=(
            "Turn this role on in addition to the environment (same effect as its "
            f"{ENV_PREFIX}<ROLE>_MODE=true); conflicting roles are still refused."
        ),
    )
    parser.add_argument(
        "--healthcheck",
        action="store_true",
        help="Probe the selected role's health endpoint and exit 0 (healthy) or 1.",
    )


def _settings_for(role_arg: str | None) -> Settings:
    # --role gateway|worker is the same as setting the variable; operator stays a flag so
    # resolve_role sees it explicitly.
    if role_arg in (Role.GATEWAY.value, Role.WORKER.value):
        return load_settings(**{f"{role_arg}_mode": True})
    return load_settings()


def _probe_host(bind_host: str) -> str:
    # A wildcard bind answers on loopback; a specific address must be probed as is.
    if bind_host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if bind_host == "::":
        return "::1"
    return bind_host


def health_target(settings: Settings, role: Role) -> tuple[str, int, str] | None:
    """(host, port, path) the healthcheck probes, or None when the role has none.

    Gateway and worker bind `settings.host` (the worker its health/metrics server on
    `metrics_port`); the operator serves kopf's liveness endpoint from its own settings.
    """
    if role is Role.GATEWAY:
        return _probe_host(settings.host), settings.port, "/health"
    if role is Role.WORKER and settings.metrics_port:
        return _probe_host(settings.host), settings.metrics_port, "/health"
    if role is Role.OPERATOR:
        return _operator_liveness()
    return None


def _operator_liveness() -> tuple[str, int, str] | None:
    # Lazily, like _start: only the operator role needs the operator package.
    from percolate_operator.settings import OperatorSettings

    url = urlsplit(OperatorSettings().liveness_endpoint)
    if not url.hostname or not url.port:
        return None
    return _probe_host(url.hostname), url.port, url.path or "/"


def probe_health(host: str, port: int, path: str = "/health", timeout_s: float = 4.0) -> bool:
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _start(role: Role, settings: Settings) -> int:
    # Imported lazily: each role needs only its own extra (server or operator).
    if role is Role.GATEWAY:
        from percolate_reading.gateway.server import run_gateway

        return int(run_gateway(settings))
    if role is Role.WORKER:
        from percolate_reading.worker.main import run_worker

        return int(run_worker(settings))
    from percolate_operator.__main__ import main as operator_main

    return int(operator_main())


_EXTRA_FOR_ROLE = {Role.GATEWAY: "server", Role.WORKER: "server", Role.OPERATOR: "operator"}


def run(args: argparse.Namespace) -> int:
    # A healthcheck reports 1 for any failure: Docker reserves exit code 2.
    refuse = 1 if args.healthcheck else EXIT_CONFIG
    try:
        settings = _settings_for(args.role)
    except ValidationError as exc:
        print(f"percolate-reading run: invalid {ENV_PREFIX}* settings:\n{exc}", file=sys.stderr)
        return refuse
    try:
        role = resolve_role(settings, operator_flag=args.role == Role.OPERATOR.value)
    except RoleConfigError as exc:
        print(f"percolate-reading run: {exc}", file=sys.stderr)
        return refuse

    if args.healthcheck:
        try:
            target = health_target(settings, role)
        except (ImportError, ValidationError):
            return 1
        return 0 if target is None or probe_health(*target) else 1

    if role is not Role.OPERATOR:
        # kopf configures its own logging; a second root handler would print every line twice.
        setup_logging(settings)
    print(f"percolate-reading run: starting role {role.value}", file=sys.stderr, flush=True)
    try:
        return _start(role, settings)
    except ModuleNotFoundError as exc:
        # A missing dependency of the role (an image built without its extra) is a
        # configuration error, not a crash worth a traceback.
        if exc.name and exc.name.split(".")[0] in ("percolate_reading", "percolate_operator"):
            raise
        extra = _EXTRA_FOR_ROLE[role]
        print(
            f"percolate-reading run: role {role.value} needs the '{extra}' extra "
            f"(missing module {exc.name!r}); install percolate-reading[{extra}] "
            f"or build the image with EXTRAS including {extra}",
            file=sys.stderr,
        )
        return EXIT_CONFIG

"""JetStream naming shared by the gateway, the workers and the operator.

Shared pools consume `jobs.parse.<tier>`; a tenant's dedicated pool consumes
`jobs.parse.<tier>.<tenant>`. NATS filters match whole tokens, so `jobs.parse.small` never
matches `jobs.parse.small.acme`: the two consumers' filters cannot overlap, which a
workqueue stream requires (error 10138 otherwise). Dead letters go to `dlq.parse.<tier>...`
in a stream of their own so they never re-enter the work queue.

A shared pool also has a fair lane, `jobs.parse.<tier>._fair` (consumer
`parse-workers-<tier>--fair`): its workers move the oldest waiting job of an under-served
tenant there so it runs next instead of behind another tenant's burst (worker.fairness).
`_` and a leading `-` never occur in tenant ids, so neither name can be a tenant's.
"""

from __future__ import annotations

import re
from enum import StrEnum

STREAM_NAME = "JOBS"
STREAM_SUBJECTS = ("jobs.>",)
DLQ_STREAM_NAME = "JOBS_DLQ"
DLQ_STREAM_SUBJECTS = ("dlq.>",)
# The server's MAX_DELIVERIES advisories for JOBS, kept until a worker settles the job.
STRANDED_STREAM_NAME = "JOBS_STRANDED"
SHARED_CONSUMER_PREFIX = "parse-workers"
# Consumer metadata key in which the operator records the owning ParsePool ("<ns>/<name>").
CONSUMER_OWNER_KEY = "percolate.dev/owner"

# Tenant ids become subject tokens, bucket prefixes and label values: keep them boring.
TENANT_ID_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class Tier(StrEnum):
    SMALL = "small"
    LARGE = "large"
    GPU = "gpu"


def validate_tenant_id(tenant_id: str) -> str:
    if not TENANT_ID_RE.fullmatch(tenant_id):
        raise ValueError(
            f"invalid tenant id {tenant_id!r}: use 1-63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return tenant_id


def job_subject(tier: Tier | str, dedicated_tenant: str | None = None) -> str:
    """The subject a job for `tier` is published to (and a pool's consumer filters on)."""
    tier = Tier(tier)
    if dedicated_tenant is None:
        return f"jobs.parse.{tier.value}"
    return f"jobs.parse.{tier.value}.{validate_tenant_id(dedicated_tenant)}"


FAIR_LANE_TOKEN = "_fair"  # noqa: S105 (a subject token, not a secret)


def fair_lane_subject(pool_subject: str) -> str:
    """The fair lane of a shared pool: `jobs.parse.small` -> `jobs.parse.small._fair`."""
    parsed = parse_job_subject(pool_subject)
    if parsed is None or parsed[1] is not None or pool_subject.startswith("dlq."):
        raise ValueError(f"not a shared pool's subject: {pool_subject!r}")
    return f"{pool_subject}.{FAIR_LANE_TOKEN}"


def fair_lane_durable(pool_durable: str) -> str:
    """The fair lane's consumer: `parse-workers-small` -> `parse-workers-small--fair`."""
    return f"{pool_durable}--fair"


def pool_subject_of(subject: str) -> str:
    """The pool subject a job belongs to: a fair-lane subject maps back to its pool's."""
    suffix = "." + FAIR_LANE_TOKEN
    return subject[: -len(suffix)] if subject.endswith(suffix) else subject


def dead_letter_subject(job_subject_: str) -> str:
    """`jobs.parse.small[.tenant]` -> `dlq.parse.small[.tenant]`."""
    if not job_subject_.startswith("jobs."):
        raise ValueError(f"not a job subject: {job_subject_!r}")
    return "dlq." + job_subject_[len("jobs.") :]


def consumer_name(tier: Tier | str, dedicated_tenant: str | None = None) -> str:
    """Durable consumer name for a pool: `parse-workers-small`, `parse-workers-small-acme`."""
    tier = Tier(tier)
    if dedicated_tenant is None:
        return f"{SHARED_CONSUMER_PREFIX}-{tier.value}"
    return f"{SHARED_CONSUMER_PREFIX}-{tier.value}-{validate_tenant_id(dedicated_tenant)}"


def tenant_of_subject(subject: str) -> str | None:
    """The dedicated tenant a subject names, or None for a shared-tier subject (or its fair
    lane)."""
    parts = subject.split(".")
    if len(parts) == 4 and parts[:2] == ["jobs", "parse"] and parts[3] != FAIR_LANE_TOKEN:
        return parts[3]
    return None


def max_deliveries_advisory(stream: str, durable: str = "*") -> str:
    """The subject on which the server reports a message of `stream` that ran out of
    deliveries on consumer `durable` ("*": any consumer)."""
    return f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{durable}"


def stranded_consumer_name(durable: str) -> str:
    """The durable that reads the advisories of one pool's consumer."""
    return f"{durable}-stranded"


def pool_consumers(pool_subject: str, pool_durable: str) -> list[tuple[str, str]]:
    """Every JetStream consumer a pool uses, as (stream, durable), its own first: the pool's
    consumer on JOBS (the operator makes it), then what its workers make: the fair lane's
    consumer (shared pools), and the stranded-job consumer of each on JOBS_STRANDED."""
    durables = [pool_durable]
    if tenant_of_subject(pool_subject) is None:
        durables.append(fair_lane_durable(pool_durable))
    return [(STREAM_NAME, d) for d in durables] + [
        (STRANDED_STREAM_NAME, stranded_consumer_name(d)) for d in durables
    ]


def parse_job_subject(subject: str) -> tuple[Tier, str | None] | None:
    """(tier, dedicated tenant or None) of `jobs.parse.<tier>[.<tenant>]` or of its dead-letter
    twin `dlq.parse.<tier>[.<tenant>]`; None for any other subject. A fair lane is its
    shared pool's (tenant None)."""
    parts = subject.split(".")
    if len(parts) not in (3, 4) or parts[0] not in ("jobs", "dlq") or parts[1] != "parse":
        return None
    try:
        tier = Tier(parts[2])
    except ValueError:
        return None
    return tier, parts[3] if len(parts) == 4 and parts[3] != FAIR_LANE_TOKEN else None


def pool_of_subject(subject: str) -> str | None:
    """The consumer (pool) that takes jobs published to `subject`; None for other subjects."""
    parsed = parse_job_subject(subject)
    return consumer_name(*parsed) if parsed is not None else None

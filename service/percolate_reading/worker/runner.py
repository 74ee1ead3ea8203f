"""The pull loop: fetch jobs for free slots, run them, and settle each message.

Settling (after the work, never before):
- success, a cancelled job, or a late duplicate of a finished job -> ack
- permanent error (bad document, rejected message) -> status failed with the reason, term
- transient error -> status back to queued with the error, nak with backoff
- transient error on the last allowed delivery -> status failed, a copy with the reason in
  the dead-letter stream, then term; both retried until they succeed, because JetStream does
  not deliver a message again after max_deliver (a nak there would strand it)
While a job runs, an in-progress ack every ack_wait/3 keeps JetStream from redelivering it.
A message whose last delivery ended with no settlement at all (the worker died or froze) is
reported by the server's MAX_DELIVERIES advisory, which the JOBS_STRANDED stream keeps until
one worker of the pool has marked the job failed, copied it to the dead-letter stream and
deleted it from the queue (so an advisory sent while no worker was connected is not lost).
`drain()` stops fetching, lets in-flight jobs finish within the drain timeout and naks the
rest with no delay so another worker takes them at once.
In a shared pool each free slot first asks `worker.fairness` whether another tenant's job
should go ahead of the queue's head; such a job is taken from the pool's fair lane.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from pydantic import ValidationError

from percolate_reading import tracing
from percolate_reading.config import Settings
from percolate_reading.contract.jobs import JobErrorInfo, JobMessage, JobStatus
from percolate_reading.contract.subjects import (
    STRANDED_STREAM_NAME,
    STREAM_NAME,
    dead_letter_subject,
    parse_job_subject,
    pool_subject_of,
    stranded_consumer_name,
    tenant_of_subject,
)
from percolate_reading.contract.topology import ConsumerLimits, TopologyLimits
from percolate_reading.errors import PercolateError
from percolate_reading.infra.jobs.quota_ledger import QuotaLedger
from percolate_reading.infra.queue.jetstream import publish_dead_letter
from percolate_reading.infra.queue.topology import ensure_pool_consumers
from percolate_reading.logs import job_context
from percolate_reading.worker.fairness import FairLane, message_tenant
from percolate_reading.worker.outage import OutageGate, is_outage
from percolate_reading.worker.pipeline import (
    Services,
    clean_up_failed,
    error_info,
    nak_delay,
    process,
    record_failure,
    requeue,
)

log = logging.getLogger(__name__)

_ACK_TIMEOUT_S = 5.0
# Settling a job's last delivery: retried until it succeeds (see _give_up).
_GIVE_UP_BACKOFF_S = 0.5
_GIVE_UP_BACKOFF_MAX_S = 15.0
_TERM_ATTEMPTS = 5
LOOP_RESTART_S = 1.0
_MAX_HOLDS = 5  # outage holds of one delivery before it takes the transient-failure path


class PullRunner:
    def __init__(self, svc: Services, js: JetStreamContext, *, subject: str, durable: str) -> None:
        self.svc = svc
        self.settings: Settings = svc.settings
        self.js = js
        self.subject = subject
        self.durable = durable
        self._sub: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._task_tenants: dict[asyncio.Task[None], str] = {}
        self.fair: FairLane | None = None
        self.quota: QuotaLedger | None = None
        self._fair_sub: Any = None
        self._slot_freed = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        self._stranded_subs: list[Any] = []
        self._stranded_task: asyncio.Task[None] | None = None
        self.last_loop_at = 0.0
        self.processed = 0
        self.loop_crashes = 0
        self.outage = OutageGate(
            self._probe_dependencies, self.settings.outage_probe_s, self.settings.dependency_outage_budget_s
        )

    async def _probe_dependencies(self) -> None:
        """S3 and the job store (NATS KV) both answer."""
        await self.svc.store.ping()
        await self.svc.jobs.get("outage-probe")

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        limits = ConsumerLimits.from_settings(self.settings)
        await ensure_pool_consumers(self.js, self.subject, self.durable, limits)
        self.quota = await QuotaLedger.open(self.js, TopologyLimits.from_settings(self.settings))
        self._sub = await self.js.pull_subscribe_bind(self.durable, stream=STREAM_NAME)
        durables = [self.durable]
        if self.settings.worker_fair_tenants and tenant_of_subject(self.subject) is None:
            self.fair = FairLane(self.js, self.subject, self.durable)
            await ensure_pool_consumers(self.js, self.fair.subject, self.fair.durable, limits)
            self._fair_sub = await self.js.pull_subscribe_bind(self.fair.durable, stream=STREAM_NAME)
            durables.append(self.fair.durable)
        # The pool's stranded-job reports, shared by its workers (each report goes to one).
        for durable in durables:
            sub = await self.js.pull_subscribe_bind(
                stranded_consumer_name(durable), stream=STRANDED_STREAM_NAME
            )
            self._stranded_subs.append(sub)
        self._loop_task = asyncio.create_task(
            keep_running(self._pull_loop, f"pull loop of {self.durable}", self._crashed),
            name=f"pull-{self.durable}",
        )
        self._stranded_task = asyncio.create_task(
            keep_running(self._stranded_loop, f"stranded-job loop of {self.durable}", self._crashed),
            name=f"stranded-{self.durable}",
        )

    def _crashed(self) -> None:
        self.loop_crashes += 1

    @property
    def alive(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def stop_fetching(self) -> None:
        self._stopping = True
        self._slot_freed.set()
        if self._loop_task is not None:
            # A fetch in progress returns within worker_fetch_timeout_s; anything it brings is
            # handed back at once (see _pull_loop).
            with contextlib.suppress(Exception):
                await self._loop_task

    async def drain(self, timeout_s: float) -> None:
        # Counted before the pull loop stops: that may wait out a long-poll fetch, during
        # which jobs go on finishing.
        log.info("draining %d in-flight job(s) for up to %.1fs", len(self._tasks), timeout_s)
        await self.stop_fetching()
        if self.svc.parse_slots is not None:
            self.svc.parse_slots.close()  # jobs not parsing yet are handed back at once
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
            for task in pending:
                task.cancel()  # the handler naks its message with no delay
            if pending:
                await asyncio.wait(pending)
        if self._stranded_task is not None:
            # Fetches return within worker_fetch_timeout_s; a settlement under way finishes
            # (an unacked report is redelivered to another worker after its ack wait anyway).
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._stranded_task, timeout=max(timeout_s, 5.0))
            self._stranded_task = None
        for sub in [*self._stranded_subs, self._fair_sub, self._sub]:
            if sub is not None:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
        self._stranded_subs, self._fair_sub, self._sub = [], None, None
        await self.outage.close()

    # --- loop --------------------------------------------------------------------------------

    async def _pull_loop(self) -> None:
        settings = self.settings
        while not self._stopping:
            self.last_loop_at = time.monotonic()
            # Parse slots plus prefetch: the extra jobs do their I/O while others parse.
            free = settings.worker_concurrency + settings.worker_prefetch - len(self._tasks)
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            if not self.outage.is_open:
                # No new jobs while S3 or the job store is down: they would only be held too.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.outage.wait_open(), 1.0)
                continue
            msgs = await self._next_messages(free)
            for msg in msgs:
                if self._stopping:
                    await acknowledge("nak", msg.nak(delay=0), msg)
                    continue
                task = asyncio.create_task(self._handle(msg))
                self._tasks.add(task)
                self._task_tenants[task] = message_tenant(msg.data)
                task.add_done_callback(self._task_done)

    async def _next_messages(self, free: int) -> list[Msg]:
        """Messages for the free slots: the queue's head, or (shared pool) one slot at a time,
        each given to the tenant `worker.fairness` says goes next."""
        if self.fair is None:
            return await self._fetch(self._sub, free, f"fetch from {self.durable}")
        lane_has_work = False
        try:
            running = Counter(self._task_tenants.values())
            seq = await self.fair.next_move(running)
            moved = seq is not None and await self.fair.move(seq)
            lane_has_work = moved or await self.fair.lane_pending() > 0
        except Exception as exc:  # fairness is best effort: the queue's order still serves
            log.warning("fair scheduling of %s skipped this time: %r", self.durable, exc)
        if lane_has_work:
            msgs = await self._fetch(self._fair_sub, 1, f"fetch from {self.fair.durable}", timeout_s=0.5)
            if msgs:
                return msgs
        return await self._fetch(self._sub, 1, f"fetch from {self.durable}")

    async def _fetch(self, sub: Any, batch: int, what: str, *, timeout_s: float | None = None) -> list[Msg]:
        """Up to `batch` messages, or none when the fetch timed out or failed (connection
        trouble: the client reconnects by itself; a short pause avoids a busy loop)."""
        try:
            timeout = timeout_s or self.settings.worker_fetch_timeout_s
            msgs: list[Msg] = await sub.fetch(batch, timeout=timeout)
        except (nats.errors.TimeoutError, TimeoutError):
            return []  # the long poll ended with nothing to do: the normal idle case
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s failed: %r", what, exc)
            await asyncio.sleep(1.0)
            return []
        return msgs

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._task_tenants.pop(task, None)
        self._slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("job handler crashed", exc_info=task.exception())

    # --- one message -------------------------------------------------------------------------

    async def _heartbeat(self, msg: Msg) -> None:
        interval = max(self.settings.nats_ack_wait / 3, 0.1)
        while True:
            await asyncio.sleep(interval)
            await acknowledge("in-progress ack", msg.in_progress(), msg)

    async def _handle(self, msg: Msg) -> None:
        metrics = self.svc.metrics
        metrics.jobs_in_flight.inc()
        heartbeat = asyncio.create_task(self._heartbeat(msg))
        try:
            await self._settle_traced(msg)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            metrics.jobs_in_flight.dec()
            self.processed += 1

    async def _settle_traced(self, msg: Msg) -> None:
        """Settle with the job's fields on every log line and in the trace the gateway began
        (its W3C traceparent travels in the message headers)."""
        tenant_id, job_id = _job_ids(msg.data)
        attributes = {"percolate.job_id": job_id or "", "percolate.pool": self.durable}
        with (
            job_context(tenant_id=tenant_id, job_id=job_id, pool=self.durable),
            tracing.continued(msg.headers),
            tracing.span("job", attributes, kind="consumer"),
        ):
            await self._settle(msg)

    async def _settle(self, msg: Msg) -> None:
        metrics = self.svc.metrics
        deliveries = int(msg.metadata.num_delivered or 1)
        try:
            job = JobMessage.model_validate_json(msg.data)
        except ValidationError as exc:
            # Never worth a retry: copy it aside (until that works) and drop it.
            info = JobErrorInfo(code="invalid_message", message=f"not a job message: {exc}", permanent=True)
            await self._give_up(msg, None, info, deliveries)
            return
        holds = 0
        while True:
            try:
                outcome = await process(self.svc, job, pool_subject_of(msg.subject))
                break
            except asyncio.CancelledError:
                # Drain ran out of time: hand the job back for immediate redelivery.
                await asyncio.shield(self._return(msg, job))
                raise
            except BaseException as exc:
                if not isinstance(exc, Exception):
                    raise
                # Bounded per delivery: a store that answers probes but keeps failing this
                # job is not an outage any more.
                holds += 1
                if is_outage(exc) and holds <= _MAX_HOLDS and await self._hold_through_outage(msg, job, exc):
                    continue  # the dependencies answer again: same delivery, once more
                await self._on_error(msg, job, exc, deliveries)
                return
        if outcome not in ("split", "part"):  # a split job ends with its last page range
            await self._release_quota(job)
        try:
            await msg.ack_sync(timeout=_ACK_TIMEOUT_S)
        except Exception as exc:
            # Not lost: JetStream redelivers after ack_wait and the job is then a duplicate.
            log.warning("ack of job %s failed: %s", job.job_id, exc)
        metrics.nats_messages_processed_total.labels(outcome).inc()
        log.info("job %s (%s): %s", job.job_id, job.tenant_id, outcome)

    async def _release_quota(self, job: JobMessage) -> None:
        """The job ended: free its slot of the tenant's active-job quota. Best effort: a
        gateway drops the leases of ended jobs when the tenant reaches its limit."""
        if self.quota is None:
            return
        try:
            await self.quota.release(job.tenant_id, job.job_id)
        except Exception as exc:
            log.warning("quota lease of job %s not released: %s", job.job_id, exc)

    async def _hold_through_outage(self, msg: Msg, job: JobMessage, exc: Exception) -> bool:
        """Hold the job (the heartbeat keeps it ours) until S3 and the job store answer;
        False once the outage outlasts the budget. A drain meanwhile hands it back."""
        if self.outage.budget_s <= 0:
            return False  # holding disabled: the transient-failure path as before
        self.outage.report(exc)
        log.info("job %s held through a dependency outage: %s", job.job_id, exc)
        try:
            return await self.outage.wait_recovered()
        except asyncio.CancelledError:
            await asyncio.shield(self._return(msg, job))
            raise

    async def _return(self, msg: Msg, job: JobMessage) -> None:
        await requeue(
            self.svc, job, JobErrorInfo(code="interrupted", message="worker shut down", permanent=False)
        )
        await acknowledge("nak", msg.nak(delay=0), msg)
        self.svc.metrics.nats_messages_processed_total.labels("returned").inc()

    async def _on_error(self, msg: Msg, job: JobMessage, exc: Exception, deliveries: int) -> None:
        metrics = self.svc.metrics
        info = error_info(exc)
        permanent = isinstance(exc, PercolateError) and exc.permanent
        last = deliveries >= self.settings.nats_max_deliver
        if not isinstance(exc, PercolateError):
            log.exception("job %s: unexpected error", job.job_id, exc_info=exc)
        if permanent:
            log.info("job %s failed permanently: %s: %s", job.job_id, info.code, info.message)
            try:
                await record_failure(self.svc, job, info)
            except Exception as store_exc:
                if not last:
                    log.warning("job %s: cannot record failure (%s); retrying later", job.job_id, store_exc)
                    await acknowledge("nak", msg.nak(delay=nak_delay(self.settings, deliveries)), msg)
                    metrics.nats_messages_processed_total.labels("retried").inc()
                    return
                # Last delivery and no status: the dead-letter copy is the only record left.
                await self._give_up(msg, job, info, deliveries)
                return
            await self._release_quota(job)
            await acknowledge("term", msg.term(), msg)
            outcome = "rejected" if info.code == "rejected" else "failed"
            metrics.nats_messages_processed_total.labels(outcome).inc()
            if outcome == "failed":
                await clean_up_failed(self.svc, job)
            return
        if not last:
            delay = nak_delay(self.settings, deliveries)
            log.info("job %s: transient %s (%s); retry in %.1fs", job.job_id, info.code, info.message, delay)
            await requeue(self.svc, job, info)
            await acknowledge("nak", msg.nak(delay=delay), msg)
            metrics.nats_messages_processed_total.labels("retried").inc()
            return
        final = JobErrorInfo(
            code=info.code,
            message=f"gave up after {deliveries} deliveries: {info.message}",
            permanent=True,
        )
        await self._give_up(msg, job, final, deliveries)

    async def _give_up(self, msg: Msg, job: JobMessage | None, info: JobErrorInfo, deliveries: int) -> None:
        """The last allowed delivery failed: record the failure, copy the message with the
        reason to the dead-letter stream, and only then term it.

        JetStream never delivers a message again once max_deliver is reached (a nak is
        ignored), so nothing here may give up: each step is retried with backoff while the
        heartbeat's in-progress acks keep the message ours (a term after ack_wait still
        removes it). Only a drain that runs out of time stops the retries; the message then
        stays unacked in the stream and the job's status already says failed."""
        metrics = self.svc.metrics
        recorded = job is None  # an unreadable message has no status to record
        copied = False
        attempt = 0
        while True:
            if not recorded:
                assert job is not None
                try:
                    await record_failure(self.svc, job, info)
                    recorded = True
                except Exception as exc:
                    log.warning("job %s: cannot record failure yet: %s", job.job_id, exc)
            if not copied:
                copied = await self._dead_letter_raw(msg, info.code, info.message, deliveries)
            if recorded and copied:
                break
            attempt += 1
            # At least once per ack_wait, so a fault that clears is noticed soon.
            cap = min(_GIVE_UP_BACKOFF_MAX_S, max(self.settings.nats_ack_wait, _GIVE_UP_BACKOFF_S))
            delay = min(_GIVE_UP_BACKOFF_S * 2 ** min(attempt - 1, 6), cap)
            if attempt == 1 or attempt % 10 == 0:
                log.error(
                    "job %s: final failure not settled yet (status %s, dead-letter copy %s); "
                    "retrying every %.1fs, the message stays unacked meanwhile",
                    job.job_id if job is not None else f"seq-{msg.metadata.sequence.stream}",
                    "recorded" if recorded else "pending",
                    "stored" if copied else "pending",
                    delay,
                )
            await asyncio.sleep(delay)
        if job is not None:
            await self._release_quota(job)
        await self._term_confirmed(msg)
        outcome = "rejected" if info.code in ("rejected", "invalid_message") else "dead_lettered"
        metrics.nats_messages_processed_total.labels(outcome).inc()
        self._count_dead_letter(pool_subject_of(msg.subject), info.code)
        if job is not None and outcome == "dead_lettered":
            await clean_up_failed(self.svc, job)

    async def _term_confirmed(self, msg: Msg) -> None:
        """Term once connected. A term sent while disconnected would sit in the client's
        buffer; waiting for the connection first makes the flush below a real confirmation."""
        nc = self.js._nc
        for attempt in range(_TERM_ATTEMPTS):
            if not nc.is_connected:
                await asyncio.sleep(min(_GIVE_UP_BACKOFF_S * 2**attempt, _GIVE_UP_BACKOFF_MAX_S))
                continue
            break
        try:
            await msg.term()
            await nc.flush(timeout=int(_ACK_TIMEOUT_S))
        except Exception as exc:
            # Still buffered by the client and sent on reconnect; the copy is already stored.
            log.warning("term of %s not confirmed: %s", msg.subject, exc)

    async def _dead_letter_raw(self, msg: Msg, code: str, reason: str, deliveries: int) -> bool:
        """Copy the message to the dead-letter stream (idempotent: the copy's Nats-Msg-Id is
        the job id); False if that failed."""
        try:
            job_id = JobMessage.model_validate_json(msg.data).job_id
        except ValidationError:
            job_id = f"seq-{msg.metadata.sequence.stream}"
        try:
            await publish_dead_letter(
                self.js,
                msg.subject,
                dead_letter_subject(pool_subject_of(msg.subject)),
                msg.data,
                job_id=job_id,
                code=code,
                reason=reason,
                deliveries=deliveries,
            )
        except Exception as exc:
            log.warning("dead-letter copy of %s failed: %s", job_id, exc)
            return False
        return True

    # --- stranded messages -----------------------------------------------------------------

    async def _stranded_loop(self) -> None:
        while not self._stopping:
            what = f"fetch of stranded-job reports for {self.durable}"
            # Without a fair lane one long poll; with one, short polls of both in turn.
            timeout_s = None if len(self._stranded_subs) == 1 else 1.0
            for sub in self._stranded_subs:
                for report in await self._fetch(sub, 8, what, timeout_s=timeout_s):
                    await self._on_max_deliveries(report)

    async def _on_max_deliveries(self, report: Msg) -> None:
        """Settle the job one advisory reports, then ack the advisory; on failure it is
        redelivered (to this or another worker) after a backoff."""
        try:
            event = json.loads(report.data)
            seq, deliveries = int(event["stream_seq"]), int(event.get("deliveries", 0))
        except (ValueError, KeyError, TypeError):
            log.warning("dropping an unreadable max-deliveries advisory: %r", report.data[:200])
            await acknowledge("ack", report.ack(), report)
            return
        try:
            await self._settle_stranded(STREAM_NAME, seq, deliveries)
        except nats.js.errors.NotFoundError:
            pass  # settled meanwhile (acked late, or another worker got here first)
        except asyncio.CancelledError:
            await acknowledge("nak", report.nak(delay=0), report)
            raise
        except Exception as exc:
            attempt = int(report.metadata.num_delivered or 1)
            delay = min(_GIVE_UP_BACKOFF_S * 2 ** min(attempt, 8), _GIVE_UP_BACKOFF_MAX_S)
            log.warning("stranded message %d not settled yet (retry in %.1fs): %s", seq, delay, exc)
            await acknowledge("nak", report.nak(delay=delay), report)
            return
        await acknowledge("ack", report.ack(), report)

    async def _settle_stranded(self, stream: str, seq: int, deliveries: int) -> None:
        raw = await self.js.get_msg(stream, seq)
        subject, data = pool_subject_of(raw.subject or self.subject), raw.data or b""
        try:
            job: JobMessage | None = JobMessage.model_validate_json(data)
        except ValidationError:
            job = None
        info = JobErrorInfo(
            code="worker_lost",
            message=f"gave up after {deliveries} deliveries: the last one ended without a result "
            "(worker stopped or lost)",
            permanent=True,
        )
        copy = True
        if job is not None:
            record = await self.svc.jobs.get(job.job_id)
            if record is not None and record.status is JobStatus.FAILED and record.error is not None:
                info = record.error  # the lost worker had recorded why
            elif record is not None and record.status.terminal:
                copy = False  # it did finish; only the ack was lost
            else:
                await record_failure(self.svc, job, info)
        if copy:
            await publish_dead_letter(
                self.js,
                subject,
                dead_letter_subject(subject),
                data,
                job_id=job.job_id if job is not None else f"seq-{seq}",
                code=info.code,
                reason=info.message,
                deliveries=deliveries,
            )
        await self.js.delete_msg(stream, seq)
        if job is not None:
            await self._release_quota(job)
        log.warning(
            "settled stranded message %s/%d (job %s): %s",
            stream,
            seq,
            job.job_id if job is not None else "?",
            "dead-lettered" if copy else "already finished",
        )
        self.svc.metrics.nats_messages_processed_total.labels("dead_lettered" if copy else "duplicate").inc()
        if copy:
            self._count_dead_letter(subject, info.code)

    def _count_dead_letter(self, subject: str, code: str) -> None:
        parsed = parse_job_subject(subject)
        tier = parsed[0].value if parsed is not None else "unknown"
        self.svc.metrics.jobs_dead_lettered_total.labels(tier, code).inc()


async def keep_running(
    loop: Callable[[], Awaitable[None]], what: str, on_crash: Callable[[], None] | None = None
) -> None:
    """Run `loop` until it returns (stop requested). A crash is logged and the loop restarted
    after a pause, so one bad turn does not leave the worker connected but idle for good."""
    while True:
        try:
            await loop()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s crashed; restarting in %.1fs", what, LOOP_RESTART_S)
            if on_crash is not None:
                on_crash()
        await asyncio.sleep(LOOP_RESTART_S)


async def acknowledge(action: str, awaitable: Awaitable[Any], msg: Msg) -> None:
    """Send an ack, nak, term or in-progress. A failure is logged, not raised: JetStream
    redelivers an unsettled message after ack_wait, and the job store's transitions make the
    repeat harmless."""
    try:
        await awaitable
    except nats.errors.MsgAlreadyAckdError:
        log.debug("%s of %s after it was settled: nothing to do", action, msg.subject)
    except Exception as exc:
        log.warning("%s of %s (stream seq %s) failed: %r", action, msg.subject, _seq(msg), exc)


def _seq(msg: Msg) -> object:
    try:
        return msg.metadata.sequence.stream
    except Exception:
        return "?"


def _job_ids(data: bytes) -> tuple[str | None, str | None]:
    """(tenant id, job id) of a message for the log context, without validating it."""
    try:
        fields = json.loads(data)
    except ValueError:
        return None, None
    if not isinstance(fields, dict):
        return None, None
    tenant_id, job_id = fields.get("tenant_id"), fields.get("job_id")
    return (
        tenant_id if isinstance(tenant_id, str) else None,
        job_id if isinstance(job_id, str) else None,
    )

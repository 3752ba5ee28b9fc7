"""The stage workers: claim due jobs, run their step, write the outcome; crash-safe.

One ``StageRunner`` per job kind holds up to ``[workers] <kind>`` jobs at once. It claims as
many due jobs as it has free slots in one statement (``FOR UPDATE SKIP LOCKED``), runs each
one's step as a task, and sleeps until a NOTIFY on ``riven_jobs`` names its kind, a slot
frees while more work was due, the next queued job is due, or the poll interval passes.

Outcomes (see ``steps/base.py``): a ``StepResult`` completes the job and queues its
follow-ups in one statement, or snoozes it (``again_at``); ``Deferred`` snoozes without an
attempt; any other exception is a failed attempt with a jittered backoff, and after the
job's ``max_attempts`` its item is Failed with the reason. Paused items' jobs are not
claimed (the claim query skips them).

Database outages: a claim or an outcome that cannot be written is retried with a doubling
real-time backoff; the job's slot stays held meanwhile, so the stage pauses instead of
spinning, and nothing is lost (a claim never written back is recovered by the lease).
Crash safety: the ``ProcessLease`` takes back claims of dead processes at start-up and
every lease; on a graceful stop running steps are cancelled and their claims given back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from riven_async.config import WorkersSection
from riven_async.core.clock import Clock, wait_event
from riven_async.core.retry import DoublingBackoff
from riven_async.db.jobs import JobsRepo, Recovered
from riven_async.db.notify import CHANNEL_JOBS
from riven_async.db.pool import DB_UNAVAILABLE_ERRORS
from riven_async.domain.queue import Backoff, Job, JobKind, JobStatus
from riven_async.pipeline.lease import ProcessLease
from riven_async.pipeline.runtime import Runtime
from riven_async.pipeline.steps.base import Deferred, Step, StepResult
from riven_async.web.metrics import Labeled, Section

log = logging.getLogger(__name__)

# Errors that mean "the database is away", not "this job is wrong".
OUTAGE_ERRORS = DB_UNAVAILABLE_ERRORS
# An outcome write that fails for another reason is tried this many times, then given up
# (the claim then stays with this process until it restarts; the stall watch reports it).
WRITE_ATTEMPTS = 5
OUTAGE_MIN_S = 0.5
OUTAGE_MAX_S = 30.0
# A supervisor pass (lease renewal, stall watch) at least this often, in real seconds.
SUPERVISE_S = 5.0
# How long a stop waits for the claims to be given back.
RELEASE_TIMEOUT_S = 5.0
ERROR_MAX_CHARS = 2000


def concurrency_of(section: WorkersSection, kind: JobKind) -> int:
    """The configured number of concurrent jobs of ``kind``."""
    value: int = getattr(section, kind.value)
    return value


def describe_error(exc: BaseException) -> str:
    """The reason recorded on a failed job (and shown for a Failed item)."""
    text = str(exc).strip()
    name = type(exc).__name__
    return (f"{name}: {text}" if text else name)[:ERROR_MAX_CHARS]


@dataclass(slots=True)
class StageStats:
    """Counts of one stage since start, for ``/metrics`` and the stall watch."""

    claimed: int = 0
    completed: int = 0
    snoozed: int = 0
    deferred: int = 0
    failed_attempts: int = 0
    failed_for_good: int = 0
    lost_claims: int = 0
    db_errors: int = 0
    due_waiting: bool = False
    progress_at: float = field(default_factory=time.monotonic)
    stalled: bool = False

    def section(self, concurrency: int, running: int) -> Section:
        return {
            "concurrency": concurrency, "running": running, "claimed": self.claimed,
            "completed": self.completed, "snoozed": self.snoozed, "deferred": self.deferred,
            "failed_attempts": self.failed_attempts, "failed_for_good": self.failed_for_good,
            "lost_claims": self.lost_claims, "db_errors": self.db_errors,
            "since_progress_s": round(time.monotonic() - self.progress_at, 3),
            "stalled": int(self.stalled),
        }


class StageRunner:
    """Runs the jobs of one kind with bounded concurrency."""

    def __init__(
        self,
        kind: JobKind,
        step: Step,
        jobs: JobsRepo,
        clock: Clock,
        wake: asyncio.Event,
        settings: Callable[[], WorkersSection],
    ) -> None:
        self.kind = kind
        self._step = step
        self._jobs = jobs
        self._clock = clock
        self._wake = wake
        self._settings = settings
        self._running: dict[asyncio.Task[None], int] = {}
        self._slot_freed = asyncio.Event()
        self.stats = StageStats()

    @property
    def running(self) -> int:
        """How many of this stage's jobs run now."""
        return len(self._running)

    @property
    def running_ids(self) -> list[int]:
        """The ids of the jobs this runner holds right now."""
        return list(self._running.values())

    @property
    def concurrency(self) -> int:
        """Jobs of this kind that may run at once (read per pass: a reload may change it)."""
        return concurrency_of(self._settings(), self.kind)

    async def run(self) -> None:
        """Claim and run until cancelled; on cancellation the running steps are cancelled."""
        outage = DoublingBackoff(OUTAGE_MIN_S, OUTAGE_MAX_S)
        try:
            while True:
                free = self.concurrency - len(self._running)
                if free <= 0:
                    await self._wait_slot()
                    continue
                self._wake.clear()
                self._slot_freed.clear()
                try:
                    claimed = await self._jobs.claim(self.kind, free)
                except OUTAGE_ERRORS as exc:
                    self.stats.db_errors += 1
                    log.debug("%s workers: cannot claim (%r)", self.kind, exc,
                              extra={"action": "worker", "job_kind": str(self.kind)})
                    await asyncio.sleep(outage.next_s())
                    continue
                outage.reset()
                self.stats.claimed += len(claimed)
                for job in claimed:
                    self._start(job)
                # A full claim means more may be due: look again as soon as a slot frees.
                self.stats.due_waiting = len(claimed) == free
                if self.stats.due_waiting:
                    await self._wait_slot()
                else:
                    await self._sleep_until_due()
        finally:
            await self._cancel_running()

    def _start(self, job: Job) -> None:
        task = asyncio.create_task(self._execute(job), name=f"job-{self.kind}-{job.id}")
        self._running[task] = job.id

        def done(finished: asyncio.Task[None]) -> None:
            self._running.pop(finished, None)
            self._slot_freed.set()
            if not finished.cancelled() and finished.exception() is not None:
                log.error("%s job %s: outcome handling crashed", self.kind, job.id,
                          exc_info=finished.exception(),
                          extra={"action": "worker", "job_kind": str(self.kind)})

        task.add_done_callback(done)

    async def _wait_slot(self) -> None:
        await self._slot_freed.wait()
        self._slot_freed.clear()

    async def _sleep_until_due(self) -> None:
        poll_s = self._settings().poll_interval_s
        try:
            due = await self._jobs.next_due_at(self.kind)
        except OUTAGE_ERRORS:
            due = None
        wait_s = poll_s
        if due is not None:
            wait_s = min(poll_s, max(0.0, (due - self._clock.now()).total_seconds()))
        if wait_s <= 0:
            return
        await wait_event(self._wake, self._clock, wait_s)

    async def _execute(self, job: Job) -> None:
        try:
            result = await self._step.run(job)
        except asyncio.CancelledError:
            raise  # stopping: the claim is given back by the lease
        except Deferred as deferred:
            self.stats.deferred += 1
            log.debug("%s job %s (item %s) deferred until %s: %s", self.kind, job.id,
                      job.item_id, deferred.until.isoformat(), deferred.reason,
                      extra={"action": "worker", "job_kind": str(self.kind)})
            await self._write(job, functools.partial(self._snooze, job, deferred.until))
        except OUTAGE_ERRORS as exc:
            # The database went away under the step: not the job's fault. Put it back
            # (no attempt counted) once the database answers again.
            self.stats.db_errors += 1
            log.debug("%s job %s: database unavailable during the step (%r)", self.kind,
                      job.id, exc, extra={"action": "worker", "job_kind": str(self.kind)})
            await self._write(job, functools.partial(self._snooze, job, self._clock.now()))
        except Exception as exc:  # any other step error is a failed attempt
            await self._write(job, functools.partial(self._fail, job, exc))
        else:
            await self._write(job, functools.partial(self._finish, job, result))

    async def _write(self, job: Job, outcome: Callable[[], Awaitable[bool]]) -> None:
        """Write an outcome, waiting out database outages; the slot stays held meanwhile."""
        backoff = DoublingBackoff(OUTAGE_MIN_S, OUTAGE_MAX_S)
        other_failures = 0
        while True:
            try:
                held = await outcome()
            except OUTAGE_ERRORS:
                self.stats.db_errors += 1
                await asyncio.sleep(backoff.next_s())
                continue
            except Exception as exc:
                other_failures += 1
                self.stats.db_errors += 1
                if other_failures >= WRITE_ATTEMPTS:
                    log.error("%s job %s: its outcome could not be written (%r); it stays "
                              "claimed until this process restarts", self.kind, job.id, exc,
                              extra={"action": "worker", "job_kind": str(self.kind)})
                    return
                log.warning("%s job %s: writing its outcome failed (%r); retrying", self.kind,
                            job.id, exc, extra={"action": "worker", "job_kind": str(self.kind)})
                await asyncio.sleep(backoff.next_s())
                continue
            if not held:
                self.stats.lost_claims += 1
                log.warning("%s job %s: claim lost before its outcome was written (the "
                            "lease ran out); it runs again", self.kind, job.id,
                            extra={"action": "worker", "job_kind": str(self.kind)})
            self.stats.progress_at = time.monotonic()
            self.stats.stalled = False
            return

    async def _finish(self, job: Job, result: StepResult) -> bool:
        if result.again_at is not None:
            if result.then:
                await self._jobs.enqueue_many(result.then)
            self.stats.snoozed += 1
            return await self._snooze(job, result.again_at)
        held = await self._jobs.complete(job, result.then)
        if held:
            self.stats.completed += 1
        return held

    async def _snooze(self, job: Job, until: datetime) -> bool:
        return await self._jobs.snooze(job, until) is not None

    async def _fail(self, job: Job, exc: BaseException) -> bool:
        reason = describe_error(exc)
        section = self._settings()
        backoff = Backoff(base_s=section.retry_base_s, cap_s=section.retry_cap_s)
        outcome = await self._jobs.fail(job, reason, backoff=backoff)
        if outcome is None:
            return False
        self.stats.failed_attempts += 1
        if outcome.status is JobStatus.FAILED:
            self.stats.failed_for_good += 1
        else:
            log.info("%s job %s (item %s) attempt %d failed, retry at %s: %s", self.kind,
                     job.id, job.item_id, outcome.attempts, outcome.run_at.isoformat(), reason,
                     extra={"action": "worker", "job_kind": str(self.kind)})
        return True

    async def _cancel_running(self) -> None:
        tasks = list(self._running)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


class StageWorkers:
    """Every stage's runner, the process lease and the stall watch, as one loop."""

    def __init__(self, runtime: Runtime, steps: Mapping[JobKind, Step]) -> None:
        self._runtime = runtime
        self._lease = ProcessLease(runtime.repos.jobs, runtime.settings.workers.lease_s)
        self._orphans_checked = time.monotonic()
        self.runners = {
            kind: StageRunner(
                kind, step, runtime.repos.jobs, runtime.clock,
                runtime.listener.wake_event(CHANNEL_JOBS, kind.value),
                lambda: runtime.settings.workers,
            )
            for kind, step in steps.items()
        }

    async def run(self) -> None:
        """Acquire the lease (waiting out an outage), run every stage, renew, watch stalls."""
        recovered = await self._acquire_lease()
        if recovered.total:
            log.info("re-running %d jobs whose process died", recovered.total,
                     extra={"action": "worker"})
        runners = [asyncio.create_task(r.run(), name=f"stage-{kind}")
                   for kind, r in self.runners.items()]
        try:
            await self._supervise(runners)
        finally:
            for task in runners:
                task.cancel()
            await asyncio.gather(*runners, return_exceptions=True)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(RELEASE_TIMEOUT_S):
                    await asyncio.shield(self._lease.release())

    async def _acquire_lease(self) -> Recovered:
        outage = DoublingBackoff(OUTAGE_MIN_S, OUTAGE_MAX_S)
        while True:
            try:
                return await self._lease.acquire()
            except OUTAGE_ERRORS as exc:
                log.warning("workers: database unavailable at start (%r); waiting", exc,
                            extra={"action": "worker"})
                await asyncio.sleep(outage.next_s())

    async def _supervise(self, runners: list[asyncio.Task[None]]) -> None:
        while True:
            for task in runners:
                if task.done():
                    # A runner never returns: surface its crash to the task monitor.
                    task.result()
                    raise RuntimeError(f"{task.get_name()} returned unexpectedly")
            try:
                await self._lease.renew_if_due()
                await self._release_orphans()
            except OUTAGE_ERRORS as exc:
                # Tried again next pass; a lease that runs out meanwhile is renewed then.
                log.debug("workers: lease renewal failed (%r)", exc, extra={"action": "worker"})
            self._watch_stalls()
            await asyncio.sleep(SUPERVISE_S)

    async def _release_orphans(self) -> None:
        """Give back claims no runner holds (a claim whose reply a broken connection lost),
        at most once per lease and only claims older than a lease (database time)."""
        now = time.monotonic()
        lease_s = self._lease.lease_s
        if now - self._orphans_checked < lease_s:
            return
        self._orphans_checked = now
        running = [i for runner in self.runners.values() for i in runner.running_ids]
        released = await self._runtime.repos.jobs.release_orphans(
            running, datetime.now(UTC) - timedelta(seconds=lease_s))
        if released:
            log.warning("gave back %d job claims no worker held (lost with a broken "
                        "connection)", released, extra={"action": "worker"})

    def _watch_stalls(self) -> None:
        """WARNING once when a stage with due work has made no progress for a while."""
        limit_s = self._runtime.settings.workers.stall_after_s
        now = time.monotonic()
        for kind, runner in self.runners.items():
            stats = runner.stats
            busy = stats.due_waiting or runner.running >= runner.concurrency
            if not busy or stats.stalled or now - stats.progress_at < limit_s:
                continue
            stats.stalled = True
            log.warning("%s stage made no progress for %.0fs with work due (%d running)",
                        kind, now - stats.progress_at, runner.running,
                        extra={"action": "stall_watch", "job_kind": str(kind)})

    async def section(self) -> Section:
        """The ``workers`` metrics section."""
        section = self._runtime.settings.workers
        by_stage: dict[str, Any] = {
            kind.value: runner.stats.section(concurrency_of(section, kind), runner.running)
            for kind, runner in self.runners.items()
        }
        return {"recovered_jobs": self._lease.recovered_jobs,
                "by_stage": Labeled("stage", by_stage)}


TaskStarter = Callable[[str, Callable[[], Awaitable[None]]], None]


def start_workers(
    runtime: Runtime, steps: Mapping[JobKind, Step], start: TaskStarter
) -> StageWorkers:
    """Build the workers for ``steps``, register their metrics and start them as one task."""
    workers = StageWorkers(runtime, steps)
    runtime.metrics.register("workers", workers.section)
    start("workers", workers.run)
    return workers


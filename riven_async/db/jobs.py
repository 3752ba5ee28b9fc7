"""The durable job queue: enqueue with dedupe, claim (SKIP LOCKED), finish, retry, recover."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Self

from riven_async.db import rows
from riven_async.db.executor import Executor
from riven_async.db.queries import QueryFile
from riven_async.db.repository import Now, Repository, ids_array, utc_now
from riven_async.domain.queue import (
    Backoff,
    BootId,
    FailOutcome,
    Job,
    JobId,
    JobKind,
    JobStatus,
    NewJob,
    ProcessInfo,
    new_boot_id,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Enqueued:
    """A queued key: its job id, and whether this call created the row."""

    id: JobId
    dedupe_key: str
    created: bool


@dataclass(frozen=True, slots=True)
class Recovered:
    """Claims taken back from dead processes, per kind."""

    requeued: dict[JobKind, int]
    failed: dict[JobKind, int]

    @property
    def total(self) -> int:
        """Every job whose claim was taken back."""
        return sum(self.requeued.values()) + sum(self.failed.values())


class JobsRepo(Repository):
    """The job queue as seen by one process (``boot_id``): claims carry that identity."""

    FEATURE = "jobs"

    def __init__(
        self,
        executor: Executor,
        queries: QueryFile | None = None,
        *,
        now: Now = utc_now,
        boot_id: BootId | None = None,
    ) -> None:
        super().__init__(executor, queries, now=now)
        self.boot_id = boot_id if boot_id is not None else new_boot_id()
        self._enqueue_many = self._sql("enqueue_many")
        self._claim = self._sql("claim")
        self._complete = self._sql("complete")
        self._complete_many = self._sql("complete_many")
        self._fail = self._sql("fail")
        self._snooze = self._sql("snooze")
        self._release_own = self._sql("release_own")
        self._recover = self._sql("recover")
        self._release_orphans = self._sql("release_orphans")
        self._next_due_at = self._sql("next_due_at")
        self._for_items = self._sql("for_items")
        self._prune_failed = self._sql("prune_failed")
        self._register_process = self._sql("register_process")
        self._heartbeat = self._sql("heartbeat")
        self._mark_stopped = self._sql("mark_stopped")
        self._list_processes = self._sql("list_processes")
        self._prune_processes = self._sql("prune_processes")

    def bound_to(self, executor: Executor) -> Self:
        """The same queue view on another executor (a connection in a transaction)."""
        return type(self)(executor, self._queries, now=self._now, boot_id=self.boot_id)

    # -- producing ----------------------------------------------------------------------

    async def enqueue_many(self, jobs: Iterable[NewJob]) -> list[Enqueued]:
        """Queue jobs in one statement. A key already queued becomes due at the earlier time
        (and the higher priority); a key that is running runs once more after it."""
        args = self._job_arrays(jobs)
        if not args[0]:
            return []
        records = await self._executor.fetch(self._enqueue_many, *args)
        return [Enqueued(JobId(r["id"]), r["dedupe_key"], r["created"]) for r in records]

    # -- consuming ----------------------------------------------------------------------

    async def claim(self, kind: JobKind, limit: int = 1) -> list[Job]:
        """Claim up to ``limit`` due jobs of ``kind``; concurrent claimers never share one."""
        records = await self._executor.fetch(self._claim, self.boot_id, kind, limit,
                                             self._now())
        claimed = [rows.job(r) for r in records]
        claimed.sort(key=lambda j: (-j.priority, j.run_at, j.id))
        return claimed

    async def complete(self, job: Job, then: Iterable[NewJob] = ()) -> bool:
        """Finish a claimed job and queue its follow-ups, atomically.

        False when this process no longer holds the claim (it was recovered after a stall):
        nothing is written then. A follow-up must not reuse the finished job's key; to run
        the same job again later, ``snooze`` it instead.
        """
        follow_ups = list(then)
        if not follow_ups:
            # The lighter statement: no follow-up insert (and its trigger) to run.
            return bool(await self._executor.fetch(self._complete_many, [job.id], self.boot_id))
        if any(f.key == job.dedupe_key for f in follow_ups):
            raise ValueError("a follow-up reuses the finished job's key; snooze the job instead")
        done = await self._executor.fetchval(self._complete, job.id, self.boot_id,
                                             *self._job_arrays(follow_ups))
        return bool(done)

    async def complete_many(self, jobs: Iterable[Job]) -> list[JobId]:
        """Finish several claimed jobs in one statement; returns those still held."""
        records = await self._executor.fetch(self._complete_many,
                                             ids_array([j.id for j in jobs]), self.boot_id)
        return [JobId(r["id"]) for r in records]

    async def fail(
        self,
        job: Job,
        error: str,
        *,
        retry_at: datetime | None = None,
        backoff: Backoff | None = None,
    ) -> FailOutcome | None:
        """Record a failed attempt: the job is queued again after a backoff, or, when its
        attempts are used up, fails for good together with its item (state failed, with
        ``error`` as the reason). None when the claim was lost."""
        if retry_at is None:
            delay_s = (backoff or Backoff()).delay_s(job.attempts)
            retry_at = self._now() + timedelta(seconds=delay_s)
        record = await self._executor.fetchrow(self._fail, job.id, self.boot_id, error[:4000],
                                               retry_at)
        if record is None:
            return None
        outcome = FailOutcome(JobStatus(record["status"]), record["attempts"], record["run_at"])
        if outcome.status is JobStatus.FAILED:
            log.warning("job %s (%s, item %s) failed for good after %d attempts: %s", job.id,
                        job.kind, job.item_id, outcome.attempts, error,
                        extra={"action": "job_failed", "job_kind": str(job.kind)})
        return outcome

    async def snooze(
        self, job: Job, run_at: datetime, payload: dict[str, Any] | None = None
    ) -> datetime | None:
        """Put a claimed job back until ``run_at`` without counting an attempt (nothing to
        do yet: no release found, download not finished); None when the claim was lost."""
        until: datetime | None = await self._executor.fetchval(
            self._snooze, job.id, self.boot_id, run_at, payload
        )
        return until

    async def next_due_at(self, kind: JobKind) -> datetime | None:
        """When the next queued job of ``kind`` is due (None when none is queued)."""
        due: datetime | None = await self._executor.fetchval(self._next_due_at, kind)
        return due

    async def for_items(self, item_ids: Iterable[int]) -> list[Job]:
        """The jobs of some items, newest first."""
        records = await self._executor.fetch(self._for_items, ids_array(list(item_ids)))
        return [rows.job(r) for r in records]

    async def prune_failed(self, before: datetime, limit: int = 10_000) -> int:
        """Delete failed jobs that finished before ``before``; returns how many."""
        return int(await self._executor.fetchval(self._prune_failed, before, limit))

    # -- process identity and crash recovery ---------------------------------------------

    async def register(self, hostname: str | None = None, pid: int | None = None) -> ProcessInfo:
        """Register this process (its boot id) before claiming anything."""
        record = await self._executor.fetchrow(
            self._register_process, self.boot_id, hostname or socket.gethostname(),
            os.getpid() if pid is None else pid,
        )
        assert record is not None
        return rows.process(record)

    async def heartbeat(self) -> bool:
        """Renew this process's lease; False means it was declared dead: stop claiming."""
        return await self._executor.fetchval(self._heartbeat, self.boot_id) is not None

    async def mark_stopped(self, boot_ids: Sequence[BootId]) -> list[BootId]:
        """Declare processes stopped; their claims become recoverable at once."""
        records = await self._executor.fetch(self._mark_stopped, list(boot_ids))
        return [BootId(r["boot_id"]) for r in records]

    async def list_processes(self) -> list[ProcessInfo]:
        """Every registered process."""
        return [rows.process(r) for r in await self._executor.fetch(self._list_processes)]

    async def prune_processes(self, before: datetime) -> int:
        """Forget processes silent since before ``before`` that hold no claims."""
        return int(await self._executor.fetchval(self._prune_processes, before))

    async def release_own(self) -> int:
        """Give back this process's claims (graceful stop); they are due again at once."""
        records = await self._executor.fetch(self._release_own, self.boot_id)
        return sum(r["released"] for r in records)

    async def release_orphans(self, running: Iterable[int], claimed_before: datetime) -> int:
        """Give back this process's claims that no worker runs (their claim's reply was
        lost with a broken connection), claimed before ``claimed_before`` (database time)."""
        records = await self._executor.fetch(self._release_orphans, self.boot_id,
                                             ids_array(list(running)), claimed_before)
        return sum(r["released"] for r in records)

    async def recover(self, lease_s: float) -> Recovered:
        """Take back claims of processes stopped or silent for ``lease_s``; their jobs run
        again (or fail, with their item, when the process died on every attempt)."""
        records = await self._executor.fetch(self._recover, lease_s, self._now())
        result = Recovered(
            {JobKind(r["kind"]): r["requeued"] for r in records if r["requeued"]},
            {JobKind(r["kind"]): r["failed"] for r in records if r["failed"]},
        )
        if result.total:
            log.warning("took back %d job claims of dead processes", result.total,
                        extra={"action": "jobs_recover"})
        return result

    # -- helpers ------------------------------------------------------------------------

    def _job_arrays(self, jobs: Iterable[NewJob]) -> list[list[Any]]:
        """Parallel arrays for ``enqueue_many``/``complete``; one row per key (merged)."""
        now = self._now()
        merged: dict[str, NewJob] = {}
        for job in jobs:
            previous = merged.get(job.key)
            merged[job.key] = job if previous is None else _merge(previous, job, now)
        batch = list(merged.values())
        return [
            [j.kind for j in batch],
            [j.item_id for j in batch],
            [j.key for j in batch],
            [j.run_at or now for j in batch],
            [j.priority for j in batch],
            [j.max_attempts for j in batch],
            [None if j.payload is None else dict(j.payload) for j in batch],
        ]


def _merge(first: NewJob, second: NewJob, now: datetime) -> NewJob:
    """Two requests for one key in one batch: the earlier time, the higher priority."""
    run_at = min(first.run_at or now, second.run_at or now)
    return NewJob(first.kind, first.item_id, run_at, max(first.priority, second.priority),
                  first.max_attempts, first.dedupe_key, first.payload)

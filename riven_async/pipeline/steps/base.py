"""The contract between the stage workers and the steps they run.

A step handles one claimed job of its ``kind``. The worker (``pipeline/worker.py``) owns
the queue bookkeeping, so a step never calls ``complete``/``fail``/``snooze`` itself:

- return ``StepResult(then=...)``: the job is completed and its follow-ups queued in the
  same statement (``JobsRepo.complete``); a follow-up may not reuse the job's own key;
- return ``StepResult(again_at=t)``: nothing to do yet (no release found yet, download
  still converting): the job is snoozed until ``t`` without counting an attempt;
- raise ``Deferred(until, reason)``: an upstream the step needs is paused (429, breaker
  open, traffic cap) or the mount has not caught up: snoozed, no attempt counted, the item
  waits instead of failing;
- raise anything else: a failed attempt, retried with backoff; after ``max_attempts`` the
  job and its item fail for good with the error as the reason.

Steps must be idempotent: a job replayed after a crash (its claim recovered) runs again
from the start and must reach the same result without a second debrid add, a second link
or duplicate rows. Use ``runtime.locks`` (per infohash / per item) around side effects.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from riven_async.domain.queue import Job, JobKind, NewJob
from riven_async.errors import RivenError
from riven_async.pipeline.runtime import Runtime


@dataclass(frozen=True, slots=True)
class StepResult:
    """What a step did: follow-up jobs to queue, or a time to run this job again."""

    then: Sequence[NewJob] = ()
    again_at: datetime | None = None


DONE = StepResult()


class Deferred(RivenError):
    """Nothing failed, but the step cannot proceed before ``until`` (an upstream paused)."""

    def __init__(self, until: datetime, reason: str) -> None:
        super().__init__(reason)
        self.until = until
        self.reason = reason


class Step(Protocol):
    """Runs one job of ``kind``; see the module docstring for the outcomes."""

    @property
    def kind(self) -> JobKind: ...

    async def run(self, job: Job) -> StepResult: ...


class StepFactory(Protocol):
    """Builds a step from the runtime; closes what it opens through ``stack``."""

    async def __call__(self, runtime: Runtime, stack: AsyncExitStack) -> Step: ...

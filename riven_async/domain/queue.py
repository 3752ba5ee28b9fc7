"""The durable work queues: jobs per pipeline stage, the webhook inbox, process identities."""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NewType
from uuid import UUID

from riven_async.domain.states import State

JobId = NewType("JobId", int)
InboxId = NewType("InboxId", int)
# One per process start: claims carry it, so a restarted daemon can tell its own claims
# from those of the process that died before it.
BootId = NewType("BootId", UUID)

DEFAULT_MAX_ATTEMPTS = 5


def new_boot_id() -> BootId:
    """A fresh process identity."""
    return BootId(uuid.uuid4())


class JobKind(StrEnum):
    """A pipeline stage; values equal the SQL enum ``job_kind``."""

    INDEX = "index"
    SCRAPE = "scrape"
    DOWNLOAD = "download"
    LINK = "link"
    SCAN = "scan"


# The job that moves an item on from each working state (retry re-queues it). Other states
# wait for something else: unreleased for its air date, completed for nothing.
JOB_FOR_STATE: Mapping[State, JobKind] = {
    State.REQUESTED: JobKind.INDEX,
    State.INDEXED: JobKind.SCRAPE,
    State.SCRAPED: JobKind.DOWNLOAD,
    State.DOWNLOADED: JobKind.LINK,
    State.LINKED: JobKind.SCAN,
}


class JobStatus(StrEnum):
    """A job row's status; values equal the SQL enum ``job_status``.

    Finished jobs are deleted; a job that used up its attempts stays as ``failed``.
    """

    QUEUED = "queued"
    RUNNING = "running"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to queue. Jobs with the same ``key`` are one job while unfinished.

    Queuing a key that is already queued makes it due at the earlier ``run_at`` (and the
    higher priority); queuing a key that is running asks for one more run after it.
    """

    kind: JobKind
    item_id: int | None = None
    run_at: datetime | None = None
    priority: int = 0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    dedupe_key: str | None = None
    payload: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.dedupe_key is None and self.item_id is None:
            raise ValueError("a job without an item needs a dedupe_key")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not -32768 <= self.priority <= 32767:
            raise ValueError("priority must fit a smallint")
        if self.run_at is not None and self.run_at.tzinfo is None:
            raise ValueError("run_at must be timezone-aware")

    @property
    def key(self) -> str:
        """The dedupe key: given, or ``<kind>:<item id>``."""
        return self.dedupe_key if self.dedupe_key is not None else f"{self.kind}:{self.item_id}"


@dataclass(frozen=True, slots=True)
class Job:
    """A stored job, as claimed by a worker."""

    id: JobId
    kind: JobKind
    item_id: int | None
    dedupe_key: str
    status: JobStatus
    run_at: datetime
    priority: int
    attempts: int
    max_attempts: int
    payload: Mapping[str, Any] | None
    last_error: str | None
    claimed_by: BootId | None
    claimed_at: datetime | None
    created_at: datetime

    @property
    def last_attempt(self) -> bool:
        """True when a failure of this run fails the job for good."""
        return self.attempts >= self.max_attempts


@dataclass(frozen=True, slots=True)
class FailOutcome:
    """What ``fail`` did: queued again at ``run_at``, or failed for good (and its item)."""

    status: JobStatus
    attempts: int
    run_at: datetime


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """A daemon process that claims work; dead when its heartbeat is older than the lease."""

    boot_id: BootId
    hostname: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None


@dataclass(frozen=True, slots=True)
class InboxDelivery:
    """A received webhook to persist before replying 2xx; JSON is passed as text."""

    source: str
    event: str
    delivery_key: str
    payload_json: str
    intents_json: str = "[]"


@dataclass(frozen=True, slots=True)
class InboxMessage:
    """A stored delivery, as claimed by the inbox worker."""

    id: InboxId
    source: str
    event: str
    delivery_key: str
    payload: Any
    intents: list[Any]
    received_at: datetime
    attempts: int
    error: str | None = None
    processed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff, jittered in its upper half so a retry never comes at once.

    After ``n`` failed attempts the wait is ``uniform(c / 2, c)`` with
    ``c = min(cap, base * 2**(n-1))``; the jitter spreads retries of jobs that failed together.
    """

    base_s: float = 30.0
    cap_s: float = 3600.0
    rng: random.Random = field(default_factory=random.Random)

    def delay_s(self, attempts: int) -> float:
        """The wait before attempt ``attempts + 1``, after ``attempts`` failed ones."""
        ceiling = min(self.cap_s, self.base_s * 2 ** max(0, min(attempts - 1, 30)))
        return self.rng.uniform(ceiling / 2, ceiling)

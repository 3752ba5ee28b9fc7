"""This process's lease on the job queue: registered, kept alive, and dead ones' claims taken back.

Every claim (job or inbox row) carries the process's boot id. A process that stops
gracefully gives its claims back; one killed with ``kill -9`` stops renewing its lease, and
the next process to look (itself after a restart, or any other) takes its claims back once
the lease has run out, or at once when the pid is gone from this host.
"""

from __future__ import annotations

import logging
import os
import socket
import time

from riven_async.db.jobs import JobsRepo, Recovered

log = logging.getLogger(__name__)


def pid_alive(pid: int) -> bool:
    """Whether a process of this host still runs as ``pid`` (our own pid: not that one)."""
    if pid == os.getpid():
        # Containers start every daemon as the same pid: the registered one is gone.
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ProcessLease:
    """Register, renew every third of ``lease_s``, recover dead claims every ``lease_s``.

    Times are real (monotonic) seconds: the database's ``now()`` judges liveness, whatever
    clock the pipeline runs on.
    """

    def __init__(self, jobs: JobsRepo, lease_s: float, hostname: str | None = None) -> None:
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        self._jobs = jobs
        self._lease_s = lease_s
        self._hostname = hostname or socket.gethostname()
        self._renewed_at = float("-inf")
        self._recovered_at = float("-inf")
        self.recovered_jobs = 0

    @property
    def lease_s(self) -> float:
        """How long a silent process keeps its claims."""
        return self._lease_s

    async def acquire(self) -> Recovered:
        """Register; declare this host's vanished processes stopped; take back dead claims."""
        await self._jobs.register(self._hostname)
        self._renewed_at = time.monotonic()
        gone = [
            p.boot_id
            for p in await self._jobs.list_processes()
            if p.stopped_at is None
            and p.boot_id != self._jobs.boot_id
            and p.hostname == self._hostname
            and not pid_alive(p.pid)
        ]
        if gone:
            await self._jobs.mark_stopped(gone)
            log.info("%d earlier processes of this host are gone; their claims are taken back",
                     len(gone), extra={"action": "lease"})
        return await self._recover()

    async def renew_if_due(self) -> None:
        """Heartbeat when a third of the lease has passed; recover when a whole one has."""
        now = time.monotonic()
        if now - self._renewed_at >= self._lease_s / 3:
            if not await self._jobs.heartbeat():
                # Silent past the lease (a long outage, a suspended machine): our claims
                # were taken back. Register again; the steps are idempotent.
                log.warning("this process's lease had run out; registering again",
                            extra={"action": "lease"})
                await self._jobs.register(self._hostname)
            self._renewed_at = now
        if now - self._recovered_at >= self._lease_s:
            await self._recover()

    async def release(self) -> int:
        """Give back this process's job claims (graceful stop); returns how many."""
        released = await self._jobs.release_own()
        if released:
            log.info("gave back %d job claims on stop", released, extra={"action": "lease"})
        return released

    async def _recover(self) -> Recovered:
        recovered = await self._jobs.recover(self._lease_s)
        self._recovered_at = time.monotonic()
        self.recovered_jobs += recovered.total
        return recovered

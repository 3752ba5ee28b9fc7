"""Housekeeping: what the daemon writes and no longer needs is deleted, so a home server's
database stays the size of its library, not of its history.

Every ``[maintenance] interval_s``: processed webhook deliveries past ``inbox_keep_s``,
jobs failed for good past ``failed_jobs_keep_s`` and stopped processes past
``processes_keep_s`` are deleted (in bounded batches), the state counters are folded, and
debrid answers older than twice ``[debrid] not_cached_retry_s`` (no reader looks that far
back) are forgotten. A database outage only delays a pass.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from riven_async.core.retry import DoublingBackoff
from riven_async.core.tasks import BackgroundTasks
from riven_async.db.pool import DB_PASS_ERRORS
from riven_async.pipeline.runtime import Runtime
from riven_async.web.metrics import Section

log = logging.getLogger(__name__)

BATCH = 10_000
# A pass deletes at most this many batches of each kind; the rest waits for the next pass.
MAX_BATCHES = 20


@dataclass(slots=True)
class MaintenanceStats:
    """What housekeeping removed since start, for ``/metrics``."""

    passes: int = 0
    inbox_pruned: int = 0
    failed_jobs_pruned: int = 0
    processes_pruned: int = 0
    debrid_checks_pruned: int = 0
    counters_folded: int = 0
    db_errors: int = 0

    def section(self) -> Section:
        return {
            "passes": self.passes, "inbox_pruned": self.inbox_pruned,
            "failed_jobs_pruned": self.failed_jobs_pruned,
            "processes_pruned": self.processes_pruned,
            "debrid_checks_pruned": self.debrid_checks_pruned,
            "counters_folded": self.counters_folded, "db_errors": self.db_errors,
        }


class Maintenance:
    """One housekeeping pass at a time, forever."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self.stats = MaintenanceStats()

    async def run_pass(self) -> None:
        """Delete what is past its keep time; fold the counters."""
        runtime = self._runtime
        section = runtime.settings.maintenance
        repos = runtime.repos
        # Deliveries, jobs and processes carry the database's time; debrid answers the
        # daemon's clock (which a demo may run fast).
        now = datetime.now(UTC)
        self.stats.inbox_pruned += await _batched(
            lambda: repos.inbox.prune_processed(now - timedelta(seconds=section.inbox_keep_s),
                                                BATCH))
        self.stats.failed_jobs_pruned += await _batched(
            lambda: repos.jobs.prune_failed(now - timedelta(seconds=section.failed_jobs_keep_s),
                                            BATCH))
        self.stats.processes_pruned += await repos.jobs.prune_processes(
            now - timedelta(seconds=section.processes_keep_s))
        checks_before = runtime.clock.now() - timedelta(
            seconds=2 * runtime.settings.debrid.not_cached_retry_s)
        self.stats.debrid_checks_pruned += await _batched(
            lambda: repos.downloads.prune_checks(checks_before, BATCH))
        folded, _ = await repos.stats.compact()
        self.stats.counters_folded += folded
        self.stats.passes += 1

    async def run(self) -> None:
        """A pass every ``interval_s`` (of the daemon's clock), the first one at once."""
        backoff = DoublingBackoff(1.0, 60.0)
        while True:
            try:
                await self.run_pass()
                backoff.reset()
                wait_s = self._runtime.settings.maintenance.interval_s
            except DB_PASS_ERRORS as exc:
                self.stats.db_errors += 1
                wait_s = backoff.next_s()
                log.warning("maintenance: database unavailable (%r); again in %.1fs", exc,
                            wait_s, extra={"action": "maintenance"})
            await self._runtime.clock.sleep(wait_s)


async def _batched(delete_batch: Callable[[], Awaitable[int]]) -> int:
    total = 0
    for _ in range(MAX_BATCHES):
        deleted = await delete_batch()
        total += deleted
        if deleted < BATCH:
            break
    return total


async def start(runtime: Runtime, tasks: BackgroundTasks, stack: AsyncExitStack) -> None:
    """The ``maintenance`` loop and its metrics section."""
    maintenance = Maintenance(runtime)

    async def section() -> Section:
        return maintenance.stats.section()

    runtime.metrics.register("maintenance", section)
    tasks.start("maintenance", maintenance.run)

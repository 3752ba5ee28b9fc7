"""Every repository of one process, on one executor and one clock."""

from __future__ import annotations

from dataclasses import dataclass

from riven_async.core.clock import Clock
from riven_async.db.catalog import CatalogRepo
from riven_async.db.downloads import DownloadsRepo
from riven_async.db.executor import Executor
from riven_async.db.inbox import InboxRepo
from riven_async.db.items import ItemsRepo
from riven_async.db.jobs import JobsRepo
from riven_async.db.library import LibraryRepo
from riven_async.db.releases import ReleasesRepo
from riven_async.db.schedule import ScheduleRepo
from riven_async.db.stats import StatsRepo
from riven_async.db.trees import TreesRepo
from riven_async.domain.queue import BootId


@dataclass(frozen=True, slots=True)
class Repos:
    """One repository per feature, all on the same executor and clock."""

    jobs: JobsRepo
    items: ItemsRepo
    trees: TreesRepo
    catalog: CatalogRepo
    schedule: ScheduleRepo
    releases: ReleasesRepo
    downloads: DownloadsRepo
    library: LibraryRepo
    inbox: InboxRepo
    stats: StatsRepo

    @classmethod
    def on(cls, executor: Executor, clock: Clock, boot_id: BootId) -> Repos:
        """Every repository on ``executor``; due times read ``clock`` (scaled in the demo)."""
        now = clock.now
        return cls(
            jobs=JobsRepo(executor, now=now, boot_id=boot_id),
            items=ItemsRepo(executor, now=now),
            trees=TreesRepo(executor, now=now),
            catalog=CatalogRepo(executor, now=now),
            schedule=ScheduleRepo(executor, now=now),
            releases=ReleasesRepo(executor, now=now),
            downloads=DownloadsRepo(executor, now=now),
            library=LibraryRepo(executor, now=now),
            inbox=InboxRepo(executor, now=now, boot_id=boot_id),
            stats=StatsRepo(executor, now=now),
        )

    def bound_to(self, executor: Executor) -> Repos:
        """The same repositories on another executor (a connection in a transaction)."""
        return Repos(
            jobs=self.jobs.bound_to(executor),
            items=self.items.bound_to(executor),
            trees=self.trees.bound_to(executor),
            catalog=self.catalog.bound_to(executor),
            schedule=self.schedule.bound_to(executor),
            releases=self.releases.bound_to(executor),
            downloads=self.downloads.bound_to(executor),
            library=self.library.bound_to(executor),
            inbox=self.inbox.bound_to(executor),
            stats=self.stats.bound_to(executor),
        )

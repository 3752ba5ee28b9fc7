"""When shows and movies are checked again, and when aired items become scrape work."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from riven_async.db.executor import Executor
from riven_async.db.queries import QueryFile
from riven_async.db.repository import Now, Repository, ids_array, utc_now
from riven_async.domain.intents import ExternalIds
from riven_async.domain.media import ItemId, MediaKind


@dataclass(frozen=True, slots=True)
class Reschedule:
    """The next check of one show or movie, and its place among those due at once."""

    item_id: int
    next_check_at: datetime
    priority: int = 0


@dataclass(frozen=True, slots=True)
class DueChecks:
    """What one scheduler pass did: checks taken, index jobs queued (or made sooner)."""

    checks: int
    jobs: int


@dataclass(frozen=True, slots=True)
class Released:
    """Movies and episodes that became due for scraping, and the shows they belong to."""

    item_ids: tuple[ItemId, ...]
    show_ids: tuple[ItemId, ...]


class ScheduleRepo(Repository):
    """The check schedule of shows and movies, and the release of aired items."""

    FEATURE = "schedule"

    def __init__(
        self, executor: Executor, queries: QueryFile | None = None, *, now: Now = utc_now
    ) -> None:
        super().__init__(executor, queries, now=now)
        self._reschedule_many = self._sql("reschedule_many")
        self._check_now = self._sql("check_now")
        self._check_now_by_external_ids = self._sql("check_now_by_external_ids")
        self._enqueue_due_checks = self._sql("enqueue_due_checks")
        self._next_check_at = self._sql("next_check_at")
        self._release_due = self._sql("release_due")
        self._next_release_at = self._sql("next_release_at")

    async def reschedule_many(self, changes: Sequence[Reschedule]) -> list[ItemId]:
        """Set many next checks in one statement; returns the ids that changed."""
        ids = [c.item_id for c in changes]
        if len(set(ids)) != len(ids):
            raise ValueError("reschedule_many: an item is listed twice")
        records = await self._executor.fetch(
            self._reschedule_many, ids_array(ids), [c.next_check_at for c in changes],
            [c.priority for c in changes],
        )
        return [ItemId(r["id"]) for r in records]

    async def check_now(self, item_ids: Iterable[int], priority: int = 0) -> list[ItemId]:
        """Make shows or movies due now (a webhook, the API); wakes the scheduler."""
        records = await self._executor.fetch(self._check_now, ids_array(list(item_ids)),
                                             self._now(), priority)
        return [ItemId(r["id"]) for r in records]

    async def check_now_by_external_ids(
        self, titles: Sequence[tuple[MediaKind, ExternalIds]], priority: int = 0
    ) -> list[ItemId | None]:
        """Make the tracked titles these ids name due now, in one statement.

        Returns each input's item, or None when the title is not tracked: a webhook about
        an unknown show, or a change-feed entry (TMDB ``/tv/changes``) we do not follow.
        """
        records = await self._executor.fetch(
            self._check_now_by_external_ids,
            [kind for kind, _ in titles], [ids.tmdb for _, ids in titles],
            [ids.tvdb for _, ids in titles], [ids.imdb for _, ids in titles],
            [ids.tvmaze for _, ids in titles], self._now(), priority,
        )
        return [None if r["item_id"] is None else ItemId(r["item_id"]) for r in records]

    async def enqueue_due_checks(self, limit: int, fallback_s: float) -> DueChecks:
        """Turn up to ``limit`` due checks into index jobs (SKIP LOCKED).

        Each check is pushed ``fallback_s`` ahead as a safety net: the index job replaces
        it with the real next check, and if that job fails for good, the show is still
        checked again instead of being forgotten.
        """
        now = self._now()
        fallback_at = now + timedelta(seconds=fallback_s)
        record = await self._executor.fetchrow(self._enqueue_due_checks, now, limit,
                                               fallback_at)
        assert record is not None
        return DueChecks(record["checks"], record["jobs"])

    async def next_check_at(self) -> datetime | None:
        """The earliest scheduled check, for the scheduler's sleep."""
        due: datetime | None = await self._executor.fetchval(self._next_check_at)
        return due

    async def release_due(self, delay_s: float, limit: int = 100, priority: int = 0) -> Released:
        """Movies and episodes aired ``delay_s`` ago become indexed with a scrape job each.

        One pass takes up to ``limit`` shows (with all their aired episodes) and ``limit``
        movies, found through small indexes; call it until it returns nothing.
        """
        records = await self._executor.fetch(self._release_due, self._now(), delay_s, limit,
                                             priority)
        show_ids = {r["show_id"] for r in records if r["show_id"] is not None}
        return Released(tuple(ItemId(r["id"]) for r in records),
                        tuple(ItemId(s) for s in sorted(show_ids)))

    async def next_release_at(self, delay_s: float) -> datetime | None:
        """When the next unreleased movie or episode becomes due."""
        due: datetime | None = await self._executor.fetchval(self._next_release_at, delay_s)
        return due

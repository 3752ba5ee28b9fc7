"""When shows and movies are checked again, and when aired items become scrape work."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from riven_async.db.executor import Executor
from riven_async.db.queries import QueryFile
from riven_async.db.repository import Now, Repository, ids_array, utc_now
from riven_async.domain.intents import ExternalIds
from riven_async.domain.media import ItemId, MediaKind

# The priority of a check a webhook or the API asks for: above every rule of the
# scheduler (pipeline.scheduler.CheckPriority.FORCED), so no routine budget holds it back.
FORCED_PRIORITY = 4


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
class FeedMark:
    """Where one change feed was last read (the daemon's clock) and the ids it returned."""

    feed: str
    read_at: datetime
    seen: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class FeedInterest:
    """Which change feeds can name a tracked title (a feed that cannot is not read)."""

    tmdb_shows: bool
    tmdb_movies: bool
    tvmaze_shows: bool


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
        self._enqueue_due_checks_between = self._sql("enqueue_due_checks_between")
        self._next_check_at_from = self._sql("next_check_at_from")
        self._release_roots = self._sql("release_roots")
        self._check_changed = self._sql("check_changed")
        self._feed_interest = self._sql("feed_interest")
        self._feed_marks = self._sql("feed_marks")
        self._save_feed_mark = self._sql("save_feed_mark")

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

    async def check_now(
        self, item_ids: Iterable[int], priority: int = FORCED_PRIORITY
    ) -> list[ItemId]:
        """Make shows or movies due now (a webhook, the API); wakes the scheduler."""
        records = await self._executor.fetch(self._check_now, ids_array(list(item_ids)),
                                             self._now(), priority)
        return [ItemId(r["id"]) for r in records]

    async def check_now_by_external_ids(
        self, titles: Sequence[tuple[MediaKind, ExternalIds]], priority: int = FORCED_PRIORITY
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

    async def enqueue_due_checks(
        self, limit: int, fallback_s: float, *, priorities: tuple[int, int] | None = None
    ) -> DueChecks:
        """Turn up to ``limit`` due checks into index jobs (SKIP LOCKED).

        Each check is pushed ``fallback_s`` ahead as a safety net: the index job replaces
        it with the real next check, and if that job fails for good, the show is still
        checked again instead of being forgotten. ``priorities`` (lowest, highest) takes
        only checks with a priority in that range (routine ones apart from urgent ones).
        """
        now = self._now()
        fallback_at = now + timedelta(seconds=fallback_s)
        if priorities is None:
            record = await self._executor.fetchrow(self._enqueue_due_checks, now, limit,
                                                   fallback_at)
        else:
            record = await self._executor.fetchrow(self._enqueue_due_checks_between, now,
                                                   limit, fallback_at, *priorities)
        assert record is not None
        return DueChecks(record["checks"], record["jobs"])

    async def next_check_at(self, min_priority: int | None = None) -> datetime | None:
        """The earliest scheduled check (of at least ``min_priority``), to sleep until."""
        due: datetime | None
        if min_priority is None:
            due = await self._executor.fetchval(self._next_check_at)
        else:
            due = await self._executor.fetchval(self._next_check_at_from, min_priority)
        return due

    async def release_roots(self, root_ids: Iterable[int], delay_s: float) -> list[ItemId]:
        """Release the aired movies and episodes of these movies and shows, in one statement.

        Unreleased ones aired ``delay_s`` ago become indexed; indexed ones whose air time
        moved past that cutoff (not scraped yet) go back to unreleased; each show's next
        release is set. Returns every released one without a live scrape job (queue one
        each): a replay returns the same items, never one whose job exists.
        """
        records = await self._executor.fetch(self._release_roots, ids_array(list(root_ids)),
                                             self._now(), delay_s)
        return [ItemId(r["id"]) for r in records]

    async def check_changed(
        self,
        *,
        tmdb_shows: Collection[int] = (),
        tmdb_movies: Collection[int] = (),
        tvmaze_updated: Mapping[int, float] | None = None,
        priority: int = 0,
        soon_s: float = 0.0,
        tmdb_checked_since: datetime | None = None,
    ) -> list[ItemId]:
        """Make the tracked titles change feeds name due now, in one statement.

        TMDB's ids are taken as changed, except shows TVMaze follows that were checked at
        or after ``tmdb_checked_since`` (the TV feed's previous read: TMDB names only the
        day, so TVMaze's exact time decides for those); a TVMaze id only when the show was
        not checked since its ``updated`` time (epoch seconds). Titles due within
        ``soon_s`` anyway keep their time and only get ``priority``. Returns the ids changed.
        """
        now = self._now()
        updated = tvmaze_updated or {}
        records = await self._executor.fetch(
            self._check_changed, sorted(tmdb_shows), sorted(tmdb_movies), list(updated),
            [float(stamp) for stamp in updated.values()], priority, now,
            now + timedelta(seconds=soon_s), tmdb_checked_since,
        )
        return [ItemId(r["id"]) for r in records]

    async def feed_interest(self) -> FeedInterest:
        """Whether any show or movie is tracked by the ids each change feed names."""
        record = await self._executor.fetchrow(self._feed_interest)
        assert record is not None
        return FeedInterest(record["tmdb_shows"], record["tmdb_movies"], record["tvmaze_shows"])

    async def feed_marks(self) -> dict[str, FeedMark]:
        """Every change feed's last read, by feed name."""
        records = await self._executor.fetch(self._feed_marks)
        return {r["feed"]: FeedMark(r["feed"], r["read_at"], frozenset(r["seen"]))
                for r in records}

    async def save_feed_mark(self, mark: FeedMark) -> None:
        """Remember one complete read of a change feed."""
        await self._executor.execute(self._save_feed_mark, mark.feed, mark.read_at,
                                     sorted(mark.seen))

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

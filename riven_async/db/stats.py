"""Aggregates for /metrics: each from a maintained summary or an index, never a scan."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from riven_async.db.executor import Executor
from riven_async.db.queries import QueryFile
from riven_async.db.repository import Now, Repository, utc_now
from riven_async.domain.media import ItemId, MediaKind, ShowStatus
from riven_async.domain.queue import JobKind
from riven_async.domain.states import ACTIVE_STATES, State

_ARRIVALS_KEPT_S = 8 * 86400.0


@dataclass(frozen=True, slots=True)
class JobCounts:
    """Jobs of one kind by where they are."""

    due: int
    scheduled: int
    running: int
    failed: int


@dataclass(frozen=True, slots=True)
class InboxCounts:
    """Deliveries not processed yet."""

    waiting: int
    claimed: int
    oldest: datetime | None


@dataclass(frozen=True, slots=True)
class ChecksDue:
    """Show and movie checks due now, within the hour, within the day."""

    now: int
    hour: int
    day: int


@dataclass(frozen=True, slots=True)
class OldestItem:
    """The item that has waited longest in one state, and since when."""

    state: State
    item_id: ItemId
    kind: MediaKind
    title: str
    since: datetime


class StatsRepo(Repository):
    """Read-mostly aggregates; each method is one statement and stays fast at 250k items."""

    FEATURE = "stats"

    def __init__(
        self, executor: Executor, queries: QueryFile | None = None, *, now: Now = utc_now
    ) -> None:
        super().__init__(executor, queries, now=now)
        self._state_counts = self._sql("state_counts")
        self._oldest_in_states = self._sql("oldest_in_states")
        self._job_counts = self._sql("job_counts")
        self._inbox_counts = self._sql("inbox_counts")
        self._shows_by_status = self._sql("shows_by_status")
        self._checks_due = self._sql("checks_due")
        self._new_episodes = self._sql("new_episodes")
        self._compact = self._sql("compact")
        self._oldest_items = self._sql("oldest_items")
        self._database_size = self._sql("database_size")

    async def state_counts(self) -> dict[MediaKind, dict[State, int]]:
        """Items per kind and state (pairs with no items are left out)."""
        out: dict[MediaKind, dict[State, int]] = {}
        for r in await self._executor.fetch(self._state_counts):
            out.setdefault(MediaKind(r["kind"]), {})[State(r["state"])] = r["items"]
        return out

    async def oldest_in_states(
        self, states: Iterable[State] = ACTIVE_STATES
    ) -> dict[State, datetime | None]:
        """When the longest-waiting item of each state entered it (None: state empty)."""
        records = await self._executor.fetch(self._oldest_in_states, sorted(states))
        return {State(r["state"]): r["since"] for r in records}

    async def job_counts(self) -> dict[JobKind, JobCounts]:
        """Jobs per kind: due now, scheduled later, running, failed for good."""
        records = await self._executor.fetch(self._job_counts, self._now())
        return {
            JobKind(r["kind"]): JobCounts(r["due"], r["scheduled"], r["running"], r["failed"])
            for r in records
        }

    async def inbox_counts(self) -> InboxCounts:
        """Deliveries waiting or being processed, and the oldest one's arrival."""
        record = await self._executor.fetchrow(self._inbox_counts)
        assert record is not None
        return InboxCounts(record["waiting"], record["claimed"], record["oldest"])

    async def shows_by_status(self) -> dict[ShowStatus | None, int]:
        """Shows per status (None: not indexed yet)."""
        records = await self._executor.fetch(self._shows_by_status)
        return {
            None if r["status"] is None else ShowStatus(r["status"]): r["shows"]
            for r in records
        }

    async def checks_due(self) -> ChecksDue:
        """Checks due now, within the hour, within the day (the daemon's clock)."""
        record = await self._executor.fetchrow(self._checks_due, self._now())
        assert record is not None
        return ChecksDue(record["now"], record["hour"], record["day"])

    async def new_episodes(self, window_s: float = 86400.0) -> int:
        """Episodes found in the last ``window_s`` seconds (at most a week back)."""
        keep_s = max(window_s, _ARRIVALS_KEPT_S)
        return int(await self._executor.fetchval(self._new_episodes, window_s, keep_s))

    async def compact(self, keep_s: float = _ARRIVALS_KEPT_S) -> tuple[int, int]:
        """Maintenance, every few minutes: fold the state-count rows (writers only append)
        and drop arrival notes older than ``keep_s``; returns (rows folded, notes dropped).
        Reading ``state_counts`` folds too, but a daemon nobody scrapes must not grow them."""
        record = await self._executor.fetchrow(self._compact, keep_s)
        assert record is not None
        return int(record["folded"]), int(record["pruned"])

    async def oldest_items(
        self, states: Iterable[State] = ACTIVE_STATES
    ) -> dict[State, OldestItem]:
        """The longest-waiting item of each state (empty states are left out)."""
        records = await self._executor.fetch(self._oldest_items, sorted(states))
        return {
            State(r["state"]): OldestItem(State(r["state"]), ItemId(r["id"]),
                                          MediaKind(r["kind"]), r["title"], r["since"])
            for r in records
            if r["id"] is not None
        }

    async def database_size(self) -> int:
        """The database's size on disk, in bytes."""
        return int(await self._executor.fetchval(self._database_size))

"""Writing items: requests, state changes, pause and resume, parent states, deletes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from riven_async.db.executor import Executor
from riven_async.db.queries import QueryFile
from riven_async.db.repository import Now, Repository, ids_array, utc_now
from riven_async.domain.intents import RequestMedia
from riven_async.domain.media import (
    ItemId,
    MediaKind,
    RequestId,
    RequestOutcome,
)
from riven_async.domain.states import State, sources_for
from riven_async.errors import RivenError

# A request that lost an insert race to a concurrent one is looked up again; the second
# statement sees the winner's row, so more than one retry means something else is wrong.
_REQUEST_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class StoredRequest:
    """A request as stored: who asked, from where, for which seasons (None: all)."""

    id: RequestId
    item_id: ItemId
    inbox_id: int | None
    received_at: datetime
    requested_seasons: tuple[int, ...] | None
    source: str
    requester: str | None


class ItemsRepo(Repository):
    """Writes to ``items`` (and ``requests``); every method is one statement."""

    FEATURE = "items"

    def __init__(
        self, executor: Executor, queries: QueryFile | None = None, *, now: Now = utc_now
    ) -> None:
        super().__init__(executor, queries, now=now)
        sql = self._sql
        self._request_many = sql("request_many")
        self._requests_for = sql("requests_for")
        self._set_state_many = sql("set_state_many")
        self._fail_many = sql("fail_many")
        self._retry_many = sql("retry_many")
        self._pause_many = sql("pause_many")
        self._resume_many = sql("resume_many")
        self._refresh_parent_states = sql("refresh_parent_states")
        self._record_scrapes = sql("record_scrapes")
        self._delete_many = sql("delete_many")
        self._linked_for_scan = sql("linked_for_scan")
        self._season_links_pending = sql("season_links_pending")

    async def request_many(
        self,
        requests: Sequence[RequestMedia],
        inbox_id: int | None = None,
        *,
        inbox_ids: Sequence[int | None] | None = None,
    ) -> list[RequestOutcome]:
        """Make each request an item at once (state requested) unless its title exists.

        Any number of concurrent requests for one title yield one item. Usually one round
        trip; a request that lost an insert race is looked up again. ``inbox_ids`` gives
        each request its own delivery (the inbox worker's batches) instead of ``inbox_id``.
        """
        for request in requests:
            if request.ids.is_empty():
                raise ValueError("a request needs at least one external id")
        deliveries = list(inbox_ids) if inbox_ids is not None else [inbox_id] * len(requests)
        if len(deliveries) != len(requests):
            raise ValueError("inbox_ids must name one delivery per request")
        outcomes: dict[int, RequestOutcome] = {}
        pending = list(range(len(requests)))
        for _ in range(_REQUEST_ATTEMPTS):
            batch = [requests[i] for i in pending]
            rows = await self._executor.fetch(
                self._request_many, *_request_arrays(batch, [deliveries[i] for i in pending]))
            missed: list[int] = []
            for row in rows:
                index = pending[row["ord"] - 1]
                if row["item_id"] is None:
                    missed.append(index)
                else:
                    outcomes[index] = RequestOutcome(ItemId(row["item_id"]), row["created"])
            if not missed:
                return [outcomes[i] for i in range(len(requests))]
            pending = missed
        raise RivenError(f"request_many: {len(pending)} requests could not be resolved")

    async def requests_for(self, item_ids: Iterable[int]) -> list[StoredRequest]:
        """The requests of these items, oldest first."""
        rows = await self._executor.fetch(self._requests_for, ids_array(list(item_ids)))
        return [
            StoredRequest(
                RequestId(r["id"]), ItemId(r["item_id"]), r["inbox_id"], r["received_at"],
                None if r["requested_seasons"] is None else tuple(r["requested_seasons"]),
                r["source"], r["requester"],
            )
            for r in rows
        ]

    async def set_state_many(
        self, item_ids: Iterable[int], state: State, *, only_from: Iterable[State] | None = None
    ) -> list[ItemId]:
        """Move items to ``state`` where the transition is allowed (and, given ``only_from``,
        the item is in one of those states); returns those moved."""
        allowed = sorted(sources_for(state) if only_from is None
                         else sources_for(state) & set(only_from))
        rows = await self._executor.fetch(self._set_state_many, ids_array(list(item_ids)), state,
                                    allowed)
        return [ItemId(r["id"]) for r in rows]

    async def fail_many(self, item_ids: Iterable[int], error: str) -> list[ItemId]:
        """Mark items failed with ``error``; a retry returns each to the state it failed in."""
        rows = await self._executor.fetch(self._fail_many, ids_array(list(item_ids)), error)
        return [ItemId(r["id"]) for r in rows]

    async def retry_many(self, item_ids: Iterable[int]) -> dict[ItemId, State]:
        """Send failed items back to where they failed; returns each one's new state."""
        rows = await self._executor.fetch(self._retry_many, ids_array(list(item_ids)))
        return {ItemId(r["id"]): State(r["state"]) for r in rows}

    async def pause_many(self, item_ids: Iterable[int]) -> list[ItemId]:
        """Pause items and their descendants; their queued jobs wait until resumed."""
        rows = await self._executor.fetch(self._pause_many, ids_array(list(item_ids)))
        return [ItemId(r["id"]) for r in rows]

    async def resume_many(self, item_ids: Iterable[int]) -> list[ItemId]:
        """Resume paused items and their descendants; their jobs become due now."""
        rows = await self._executor.fetch(self._resume_many, ids_array(list(item_ids)),
                                    self._now())
        return [ItemId(r["id"]) for r in rows]

    async def refresh_parent_states(self, show_ids: Iterable[int]) -> dict[ItemId, State]:
        """Recompute shows' and seasons' states from their episodes; returns the changes."""
        rows = await self._executor.fetch(self._refresh_parent_states, ids_array(list(show_ids)))
        return {ItemId(r["id"]): State(r["state"]) for r in rows}

    async def record_scrapes(self, item_ids: Iterable[int]) -> None:
        """Note that these items were scraped now."""
        await self._executor.execute(self._record_scrapes, ids_array(list(item_ids)),
                               self._now())

    async def linked_for_scan(
        self, item_ids: Iterable[int], show_id: int | None = None, season: int | None = None
    ) -> list[tuple[ItemId, ItemId | None]]:
        """Linked items among ``item_ids`` and the episodes of one season: (id, show id)."""
        rows = await self._executor.fetch(self._linked_for_scan, ids_array(list(item_ids)),
                                          show_id, season)
        return [(ItemId(r["id"]), None if r["show_id"] is None else ItemId(r["show_id"]))
                for r in rows]

    async def season_links_pending(self, show_id: int, season: int) -> int:
        """Episodes of one season downloaded but not linked yet."""
        return int(await self._executor.fetchval(self._season_links_pending, show_id, season))

    async def delete_many(self, item_ids: Iterable[int]) -> int:
        """Delete items with their subtrees and everything referring to them; the count."""
        return int(await self._executor.fetchval(self._delete_many, ids_array(list(item_ids))))


def _request_arrays(
    batch: Sequence[RequestMedia], inbox_ids: Sequence[int | None]
) -> list[list[object]]:
    def seasons(request: RequestMedia) -> str | None:
        if request.seasons is None:
            return None
        return "{" + ",".join(str(int(s)) for s in request.seasons) + "}"

    return [
        [MediaKind(r.kind) for r in batch],
        [r.ids.tmdb for r in batch],
        [r.ids.tvdb for r in batch],
        [r.ids.imdb for r in batch],
        [r.ids.tvmaze for r in batch],
        [r.title for r in batch],
        [r.year for r in batch],
        [r.source for r in batch],
        [r.requester for r in batch],
        [seasons(r) for r in batch],
        list(inbox_ids),
    ]

"""Received webhooks: persisted before the 2xx (group commit), then taken and acted on."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Self

from riven_async.db import rows
from riven_async.db.executor import Executor
from riven_async.db.queries import QueryFile
from riven_async.db.repository import Now, Repository, ids_array, utc_now
from riven_async.domain.queue import BootId, InboxDelivery, InboxId, InboxMessage, new_boot_id

# Senders retry a failed delivery within minutes; an identical body after this long is a
# new event (a second Grab of one release), not a retry.
DEFAULT_RETRY_WINDOW_S = 6 * 3600.0
DEFAULT_MAX_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Accepted:
    """A delivery stored as new work (a retry of a recent delivery is not)."""

    id: InboxId
    source: str
    delivery_key: str


class InboxRepo(Repository):
    """The webhook inbox: group-committed inserts, and takes inside the taker's transaction.

    A take marks deliveries processed in the caller's transaction, so their effects and the
    mark commit together and a rollback (or a crash) leaves them waiting: no claim to lease
    or take back. ``boot_id`` is kept for the repository set; takes need no identity.
    """

    FEATURE = "inbox"

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
        self._insert_many = self._sql("insert_many")
        self._take = self._sql("take")
        self._take_ids = self._sql("take_ids")
        self._retry_later = self._sql("retry_later")
        self._record_errors = self._sql("record_errors")
        self._get_many = self._sql("get_many")
        self._prune_processed = self._sql("prune_processed")

    def bound_to(self, executor: Executor) -> Self:
        """The same inbox view on another executor (a connection in a transaction)."""
        return type(self)(executor, self._queries, now=self._now, boot_id=self.boot_id)

    async def insert_many(
        self, deliveries: Sequence[InboxDelivery], retry_window_s: float = DEFAULT_RETRY_WINDOW_S
    ) -> list[Accepted]:
        """Persist deliveries in one statement; when it returns they are durable.

        A retry of a delivery seen within ``retry_window_s`` is not accepted again (one
        effect per delivery); the same key twice in one batch is stored once.
        """
        unique: dict[tuple[str, str], InboxDelivery] = {}
        for delivery in deliveries:
            unique.setdefault((delivery.source, delivery.delivery_key), delivery)
        batch = list(unique.values())
        if not batch:
            return []
        records = await self._executor.fetch(
            self._insert_many, [d.source for d in batch], [d.event for d in batch],
            [d.delivery_key for d in batch], [d.payload_json for d in batch],
            [d.intents_json for d in batch], retry_window_s,
        )
        return [Accepted(InboxId(r["id"]), r["source"], r["delivery_key"]) for r in records]

    async def take(self, limit: int) -> list[InboxMessage]:
        """Up to ``limit`` waiting deliveries, oldest first, marked processed in the caller's
        transaction (call it on a connection inside one); takers never share one."""
        records = await self._executor.fetch(self._take, limit)
        return sorted((rows.inbox_message(r) for r in records), key=lambda m: m.id)

    async def take_ids(self, message_ids: Iterable[int]) -> list[InboxMessage]:
        """``take`` for these deliveries only (those still waiting and not being taken)."""
        records = await self._executor.fetch(self._take_ids, ids_array(list(message_ids)))
        return sorted((rows.inbox_message(r) for r in records), key=lambda m: m.id)

    async def retry_later(
        self,
        message_id: int,
        error: str,
        retry_after_s: float,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> bool | None:
        """Acting on a delivery failed: it waits ``retry_after_s``, or is given up (True)
        at ``max_attempts``. None when it was no longer waiting."""
        given_up = await self._executor.fetchval(self._retry_later, message_id, error[:4000],
                                                 retry_after_s, max_attempts)
        return None if given_up is None else bool(given_up)

    async def record_errors(self, errors: Sequence[tuple[int, str]]) -> None:
        """Why these taken deliveries had no effect; they stay processed."""
        if errors:
            await self._executor.execute(self._record_errors, ids_array([i for i, _ in errors]),
                                         [e[:4000] for _, e in errors])

    async def get_many(self, message_ids: Iterable[int]) -> list[InboxMessage]:
        """Deliveries by id."""
        records = await self._executor.fetch(self._get_many, ids_array(list(message_ids)))
        return [rows.inbox_message(r) for r in records]

    async def prune_processed(self, before: datetime, limit: int = 10_000) -> int:
        """Delete deliveries processed before ``before``; returns how many."""
        return int(await self._executor.fetchval(self._prune_processed, before, limit))

"""Received webhooks: persisted before the 2xx (group commit), then claimed and processed."""

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


@dataclass(frozen=True, slots=True)
class InboxRecovered:
    """Claims taken back from dead processes: queued again, or given up as poison."""

    requeued: int
    given_up: int


class InboxRepo(Repository):
    """The webhook inbox as seen by one process (``boot_id``): claims carry that identity."""

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
        self._claim = self._sql("claim")
        self._mark_processed = self._sql("mark_processed")
        self._fail = self._sql("fail")
        self._release_own = self._sql("release_own")
        self._recover = self._sql("recover")
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

    async def claim(self, limit: int = 10) -> list[InboxMessage]:
        """Claim up to ``limit`` deliveries, oldest first; claimers never share one."""
        records = await self._executor.fetch(self._claim, self.boot_id, limit)
        return sorted((rows.inbox_message(r) for r in records), key=lambda m: m.id)

    async def mark_processed(self, message_ids: Iterable[int]) -> list[InboxId]:
        """These deliveries took effect; returns the ids this process still held."""
        records = await self._executor.fetch(self._mark_processed,
                                             ids_array(list(message_ids)), self.boot_id)
        return [InboxId(r["id"]) for r in records]

    async def fail(
        self,
        message_id: int,
        error: str,
        retry_after_s: float,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> bool | None:
        """Processing failed: retried later, or given up (True) after ``max_attempts``.

        None when the claim was lost."""
        given_up = await self._executor.fetchval(self._fail, message_id, self.boot_id,
                                                 error[:4000], retry_after_s, max_attempts)
        return None if given_up is None else bool(given_up)

    async def release_own(self) -> int:
        """Give back this process's claims (graceful stop)."""
        return int(await self._executor.fetchval(self._release_own, self.boot_id))

    async def recover(
        self, lease_s: float, max_attempts: int = DEFAULT_MAX_ATTEMPTS
    ) -> InboxRecovered:
        """Take back claims of dead processes; deliveries that killed every attempt are
        given up (kept with an error) instead of crashing the daemon forever."""
        record = await self._executor.fetchrow(self._recover, lease_s, max_attempts)
        assert record is not None
        return InboxRecovered(record["requeued"], record["given_up"])

    async def get_many(self, message_ids: Iterable[int]) -> list[InboxMessage]:
        """Deliveries by id."""
        records = await self._executor.fetch(self._get_many, ids_array(list(message_ids)))
        return [rows.inbox_message(r) for r in records]

    async def prune_processed(self, before: datetime, limit: int = 10_000) -> int:
        """Delete deliveries processed before ``before``; returns how many."""
        return int(await self._executor.fetchval(self._prune_processed, before, limit))

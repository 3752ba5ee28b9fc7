"""Symlinks in the library: one per item, no two items on one path."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import asyncpg

from riven_async.db import rows
from riven_async.db.executor import Executor
from riven_async.db.queries import QueryFile
from riven_async.db.repository import Now, Repository, ids_array, utc_now
from riven_async.domain.releases import LibraryEntry, LinkRecord
from riven_async.errors import RivenError


class LinkPathTaken(RivenError):
    """Another item already has a link at this library path."""


@dataclass(frozen=True, slots=True)
class Recorded:
    """What ``record_many`` wrote: new links, and links that changed."""

    created: int
    changed: int


class LibraryRepo(Repository):
    """Library entries; every method is one statement."""

    FEATURE = "library"

    def __init__(
        self, executor: Executor, queries: QueryFile | None = None, *, now: Now = utc_now
    ) -> None:
        super().__init__(executor, queries, now=now)
        self._record_many = self._sql("record_many")
        self._for_items = self._sql("for_items")
        self._by_link_paths = self._sql("by_link_paths")
        self._page = self._sql("page")
        self._mark_verified = self._sql("mark_verified")
        self._delete_for_items = self._sql("delete_for_items")

    async def record_many(self, links: Sequence[LinkRecord]) -> Recorded:
        """Record symlinks (one per item); re-recording an unchanged link writes nothing."""
        by_item = {link.item_id: link for link in links}
        batch = list(by_item.values())
        if not batch:
            return Recorded(0, 0)
        try:
            records = await self._executor.fetch(
                self._record_many, [b.item_id for b in batch], [b.link_path for b in batch],
                [b.target_path for b in batch], [b.download_id for b in batch],
            )
        except asyncpg.UniqueViolationError as exc:
            raise LinkPathTaken(str(exc)) from exc
        created = sum(1 for r in records if r["created"])
        return Recorded(created, len(records) - created)

    async def for_items(self, item_ids: Iterable[int]) -> list[LibraryEntry]:
        """The links of some items."""
        records = await self._executor.fetch(self._for_items, ids_array(list(item_ids)))
        return [rows.library_entry(r) for r in records]

    async def by_link_paths(self, link_paths: Iterable[str]) -> list[LibraryEntry]:
        """The entries at these library paths."""
        records = await self._executor.fetch(self._by_link_paths, list(link_paths))
        return [rows.library_entry(r) for r in records]

    async def page(self, after_id: int = 0, limit: int = 500) -> list[LibraryEntry]:
        """A keyset page of entries after ``after_id`` (for the broken-link sweep)."""
        records = await self._executor.fetch(self._page, after_id, limit)
        return [rows.library_entry(r) for r in records]

    async def mark_verified(self, entry_ids: Iterable[int]) -> None:
        """The links were checked on disk just now and are fine."""
        await self._executor.execute(self._mark_verified, ids_array(list(entry_ids)),
                                     self._now())

    async def delete_for_items(self, item_ids: Iterable[int]) -> list[LibraryEntry]:
        """Forget the links of some items; returns the entries deleted."""
        records = await self._executor.fetch(self._delete_for_items, ids_array(list(item_ids)))
        return [rows.library_entry(r) for r in records]

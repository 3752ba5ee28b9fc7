"""Releases found by scrapers, ranked per item, and the per-item blacklist."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from riven_async.db import rows
from riven_async.db.executor import Executor
from riven_async.db.queries import QueryFile
from riven_async.db.repository import Now, Repository, ids_array, utc_now
from riven_async.domain.releases import Infohash, Release, ScrapedRelease, normalize_infohash
from riven_async.domain.states import State


@dataclass(frozen=True, slots=True)
class Stored:
    """What ``insert_many`` did: releases new to their item, and ones seen again."""

    inserted: int
    refreshed: int


@dataclass(frozen=True, slots=True)
class BlacklistEntry:
    """A release that must not be used for an item again, and why."""

    item_id: int
    infohash: Infohash
    reason: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SeasonEntry:
    """A season's row (``episode_number`` None) or one of its episodes, with its releases."""

    item_id: int
    episode_number: int | None
    state: State
    aired_at: datetime | None
    scraped_at: datetime | None
    releases: int


class ReleasesRepo(Repository):
    """Releases per item; every method is one statement."""

    FEATURE = "releases"

    def __init__(
        self, executor: Executor, queries: QueryFile | None = None, *, now: Now = utc_now
    ) -> None:
        super().__init__(executor, queries, now=now)
        self._insert_many = self._sql("insert_many")
        self._best_for_items = self._sql("best_for_items")
        self._by_infohashes = self._sql("by_infohashes")
        self._blacklist_many = self._sql("blacklist_many")
        self._blacklist_for = self._sql("blacklist_for")
        self._prune_keep_best = self._sql("prune_keep_best")
        self._season_status = self._sql("season_status")

    async def insert_many(self, found: Iterable[ScrapedRelease]) -> Stored:
        """Store scraped releases in one statement; blacklisted ones are skipped.

        A release listed twice for one item (two scrapers) is stored once, best rank kept.
        """
        best: dict[tuple[int, str], ScrapedRelease] = {}
        for release in found:
            key = (release.item_id, release.infohash)
            if key not in best or release.rank > best[key].rank:
                best[key] = release
        batch = list(best.values())
        if not batch:
            return Stored(0, 0)
        records = await self._executor.fetch(
            self._insert_many,
            [r.item_id for r in batch], [r.infohash for r in batch],
            [r.raw_title for r in batch], [r.rank for r in batch], [r.scraper for r in batch],
            [dict(r.parsed) for r in batch], [r.size_bytes for r in batch],
            [r.seeders for r in batch], [_text_array(r.cached_on) for r in batch], self._now(),
        )
        inserted = sum(1 for r in records if r["created"])
        return Stored(inserted, len(records) - inserted)

    async def best_for_items(
        self, item_ids: Iterable[int], per_item: int = 5
    ) -> dict[int, list[Release]]:
        """The best releases of each item (blacklisted left out), best first."""
        records = await self._executor.fetch(self._best_for_items, ids_array(list(item_ids)),
                                             per_item)
        out: dict[int, list[Release]] = defaultdict(list)
        for record in records:
            release = rows.release(record)
            out[release.item_id].append(release)
        return dict(out)

    async def by_infohashes(self, infohashes: Iterable[str]) -> list[Release]:
        """Every stored release of these torrents, for whichever items each was found."""
        records = await self._executor.fetch(
            self._by_infohashes, sorted({normalize_infohash(h) for h in infohashes}))
        return [rows.release(r) for r in records]

    async def blacklist_many(self, entries: Sequence[tuple[int, str, str]]) -> int:
        """Blacklist (item id, infohash, reason) entries; returns how many were new."""
        unique = {(item_id, normalize_infohash(h)): reason for item_id, h, reason in entries}
        if not unique:
            return 0
        keys = list(unique)
        return int(await self._executor.fetchval(
            self._blacklist_many, [k[0] for k in keys], [k[1] for k in keys],
            [unique[k] for k in keys],
        ))

    async def blacklist_for(self, item_ids: Iterable[int]) -> list[BlacklistEntry]:
        """The blacklist entries of some items."""
        records = await self._executor.fetch(self._blacklist_for, ids_array(list(item_ids)))
        return [
            BlacklistEntry(r["item_id"], Infohash(r["infohash"]), r["reason"], r["created_at"])
            for r in records
        ]

    async def prune_keep_best(self, item_ids: Iterable[int], keep: int) -> int:
        """Keep only the best ``keep`` releases of each item; returns how many went."""
        return int(await self._executor.fetchval(self._prune_keep_best,
                                                 ids_array(list(item_ids)), keep))

    async def season_status(self, show_id: int, season_number: int) -> list[SeasonEntry]:
        """A season's row, then its episodes, each with its count of usable releases."""
        records = await self._executor.fetch(self._season_status, show_id, season_number)
        return [
            SeasonEntry(r["id"], r["episode_number"], State(r["state"]), r["aired_at"],
                        r["scraped_at"], r["releases"])
            for r in records
        ]


def _text_array(values: Sequence[str]) -> str:
    """A text[] literal; each element quoted, so commas and braces in names are safe."""
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"

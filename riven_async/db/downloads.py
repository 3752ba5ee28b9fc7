"""Torrents in debrid accounts: reserve before adding, so no torrent is added twice."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from riven_async.db import rows
from riven_async.db.executor import Executor
from riven_async.db.queries import QueryFile
from riven_async.db.repository import Now, Repository, ids_array, utc_now
from riven_async.domain.releases import (
    Download,
    DownloadId,
    Reservation,
    SelectedFile,
    normalize_infohash,
)
from riven_async.errors import RivenError

# A reservation that lost the insert race is read again; the next statement sees the winner.
_RESERVE_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class DebridCheck:
    """What ``service`` said when asked to add ``infohash`` (for ``item_id`` alone if set)."""

    service: str
    infohash: str
    outcome: str
    reason: str
    checked_at: datetime
    item_id: int | None = None


class DownloadsRepo(Repository):
    """Downloads per (service, infohash); every method is one statement."""

    FEATURE = "downloads"

    def __init__(
        self, executor: Executor, queries: QueryFile | None = None, *, now: Now = utc_now
    ) -> None:
        super().__init__(executor, queries, now=now)
        self._reserve = self._sql("reserve")
        self._mark_added = self._sql("mark_added")
        self._mark_ready = self._sql("mark_ready")
        self._mark_failed = self._sql("mark_failed")
        self._mark_removed = self._sql("mark_removed")
        self._get_many = self._sql("get_many")
        self._for_items = self._sql("for_items")
        self._live_for_infohashes = self._sql("live_for_infohashes")
        self._waiting = self._sql("waiting")
        self._record_ready = self._sql("record_ready")
        self._live_on_services = self._sql("live_on_services")
        self._record_checks = self._sql("record_checks")
        self._recent_checks = self._sql("recent_checks")
        self._prune_checks = self._sql("prune_checks")

    async def reserve(self, item_id: int, service: str, infohash: str) -> Reservation:
        """The live download of this torrent on this service, reserved for ``item_id`` if
        none exists. Only the caller that gets ``created=True`` may add it to the service;
        any number of concurrent callers get the same row."""
        normalized = normalize_infohash(infohash)
        for _ in range(_RESERVE_ATTEMPTS):
            record = await self._executor.fetchrow(self._reserve, item_id, service, normalized)
            if record is not None:
                return Reservation(rows.download(record), bool(record["created"]))
        raise RivenError(f"could not reserve {service} download {normalized}")

    async def mark_added(
        self, download_id: int, torrent_id: str, files: Sequence[SelectedFile]
    ) -> Download | None:
        """The service accepted the torrent; None if the row is no longer live."""
        record = await self._executor.fetchrow(self._mark_added, download_id, torrent_id,
                                               [f.as_json() for f in files])
        return None if record is None else rows.download(record)

    async def mark_ready(self, download_id: int) -> Download | None:
        """The service holds the files; None if the row is no longer live."""
        record = await self._executor.fetchrow(self._mark_ready, download_id)
        return None if record is None else rows.download(record)

    async def mark_failed(self, download_id: int, error: str) -> Download | None:
        """The add failed; frees the slot so another release (or service) can be tried."""
        record = await self._executor.fetchrow(self._mark_failed, download_id, error[:4000])
        return None if record is None else rows.download(record)

    async def mark_removed(self, download_ids: Iterable[int]) -> list[DownloadId]:
        """The torrents were deleted from their accounts."""
        records = await self._executor.fetch(self._mark_removed, ids_array(list(download_ids)))
        return [DownloadId(r["id"]) for r in records]

    async def get_many(self, download_ids: Iterable[int]) -> list[Download]:
        """Downloads by id."""
        records = await self._executor.fetch(self._get_many, ids_array(list(download_ids)))
        return [rows.download(r) for r in records]

    async def for_items(self, item_ids: Iterable[int]) -> list[Download]:
        """Downloads made for some items, newest first per item."""
        records = await self._executor.fetch(self._for_items, ids_array(list(item_ids)))
        return [rows.download(r) for r in records]

    async def live_for_infohashes(self, service: str, infohashes: Iterable[str]) -> list[Download]:
        """Live downloads of ``service`` among these torrents (reuse before adding)."""
        hashes = sorted({normalize_infohash(h) for h in infohashes})
        records = await self._executor.fetch(self._live_for_infohashes, service, hashes)
        return [rows.download(r) for r in records]

    async def waiting(self, service: str, before: datetime, limit: int = 100) -> list[Download]:
        """Downloads still adding or downloading, untouched since ``before``, oldest first."""
        records = await self._executor.fetch(self._waiting, service, before, limit)
        return [rows.download(r) for r in records]

    async def record_ready(
        self, download_id: int, torrent_id: str, files: Sequence[SelectedFile]
    ) -> Download | None:
        """The service holds the torrent ready with ``files`` (merged with those recorded for
        the same torrent); None if the row is no longer live."""
        record = await self._executor.fetchrow(self._record_ready, download_id, torrent_id,
                                               [f.as_json() for f in files])
        return None if record is None else rows.download(record)

    async def live_on_services(
        self, services: Iterable[str], infohashes: Iterable[str]
    ) -> list[Download]:
        """Live downloads of these torrents on any of ``services``, oldest first."""
        hashes = sorted({normalize_infohash(h) for h in infohashes})
        records = await self._executor.fetch(self._live_on_services, sorted(set(services)),
                                             hashes)
        return [rows.download(r) for r in records]

    async def record_checks(self, checks: Sequence[DebridCheck]) -> None:
        """Remember services' answers (the latest per service, hash and item)."""
        if not checks:
            return
        await self._executor.execute(
            self._record_checks,
            [c.service for c in checks],
            [normalize_infohash(c.infohash) for c in checks],
            [c.item_id for c in checks],
            [c.outcome for c in checks],
            [c.reason[:1000] for c in checks],
            [c.checked_at for c in checks],
        )

    async def prune_checks(self, before: datetime, limit: int = 10_000) -> int:
        """Forget debrid answers given before ``before``; returns how many."""
        return int(await self._executor.fetchval(self._prune_checks, before, limit))

    async def recent_checks(
        self, services: Iterable[str], infohashes: Iterable[str], item_id: int, since: datetime
    ) -> list[DebridCheck]:
        """Answers given after ``since`` about these hashes, for every item or for ``item_id``."""
        hashes = sorted({normalize_infohash(h) for h in infohashes})
        records = await self._executor.fetch(self._recent_checks, sorted(set(services)), hashes,
                                             item_id, since)
        return [DebridCheck(r["service"], r["infohash"], r["outcome"], r["reason"],
                            r["checked_at"], r["item_id"]) for r in records]

"""Releases found by scrapers, the debrid downloads made from them, and the library links."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NewType

ReleaseId = NewType("ReleaseId", int)
DownloadId = NewType("DownloadId", int)
LibraryEntryId = NewType("LibraryEntryId", int)
Infohash = NewType("Infohash", str)

_HEX40_RE = re.compile(r"^[0-9a-fA-F]{40}$")
_BASE32_RE = re.compile(r"^[A-Za-z2-7]{32}$")


def normalize_infohash(value: str) -> Infohash:
    """A BitTorrent v1 infohash as 40 lowercase hex digits (hex or base32 accepted)."""
    text = value.strip()
    if _HEX40_RE.match(text):
        return Infohash(text.lower())
    if _BASE32_RE.match(text):
        try:
            return Infohash(base64.b32decode(text.upper()).hex())
        except binascii.Error:
            pass
    raise ValueError(f"not an infohash: {value[:64]!r}")


@dataclass(frozen=True, slots=True)
class ScrapedRelease:
    """A release a scraper found for an item, ranked; what ``insert_many`` stores."""

    item_id: int
    infohash: Infohash
    raw_title: str
    rank: int
    scraper: str
    parsed: Mapping[str, Any] = field(default_factory=dict)
    size_bytes: int | None = None
    seeders: int | None = None
    cached_on: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Release:
    """A stored release of one item."""

    id: ReleaseId
    item_id: int
    infohash: Infohash
    raw_title: str
    rank: int
    scraper: str
    parsed: Mapping[str, Any]
    size_bytes: int | None
    seeders: int | None
    cached_on: tuple[str, ...]
    found_at: datetime
    seen_at: datetime


class DownloadStatus(StrEnum):
    """A torrent's life in a debrid account; values equal the SQL enum ``download_status``.

    ``adding`` reserves the (service, infohash) pair before the API call, so concurrent
    workers never add the same torrent twice.
    """

    ADDING = "adding"
    DOWNLOADING = "downloading"
    READY = "ready"
    FAILED = "failed"
    REMOVED = "removed"


LIVE_DOWNLOAD_STATUSES = frozenset(
    {DownloadStatus.ADDING, DownloadStatus.DOWNLOADING, DownloadStatus.READY}
)


@dataclass(frozen=True, slots=True)
class SelectedFile:
    """A file chosen in a torrent, and which item (episode or movie) it is for."""

    file_id: str
    path: str
    size_bytes: int
    item_id: int | None = None

    def as_json(self) -> dict[str, Any]:
        """The JSON object stored in ``downloads.selected_files``."""
        return {"file_id": self.file_id, "path": self.path, "size_bytes": self.size_bytes,
                "item_id": self.item_id}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SelectedFile:
        """Read back what ``as_json`` stored."""
        item_id = data.get("item_id")
        return cls(str(data["file_id"]), str(data["path"]), int(data["size_bytes"]),
                   None if item_id is None else int(item_id))


@dataclass(frozen=True, slots=True)
class Download:
    """One torrent in one debrid account."""

    id: DownloadId
    item_id: int
    service: str
    infohash: Infohash
    status: DownloadStatus
    torrent_id: str | None
    selected_files: tuple[SelectedFile, ...]
    error: str | None
    created_at: datetime
    updated_at: datetime
    ready_at: datetime | None


@dataclass(frozen=True, slots=True)
class Reservation:
    """The live download for a (service, infohash), and whether this call created it."""

    download: Download
    created: bool


@dataclass(frozen=True, slots=True)
class LinkRecord:
    """A symlink to record: ``link_path`` in the library points at ``target_path``."""

    item_id: int
    link_path: str
    target_path: str
    download_id: int | None = None


@dataclass(frozen=True, slots=True)
class LibraryEntry:
    """A stored symlink of one item."""

    id: LibraryEntryId
    item_id: int
    link_path: str
    target_path: str
    download_id: int | None
    created_at: datetime
    updated_at: datetime
    verified_at: datetime | None

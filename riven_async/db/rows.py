"""Map asyncpg records to the domain's frozen dataclasses, column by column."""

from __future__ import annotations

from typing import Any, Protocol

from riven_async.domain.intents import ExternalIds
from riven_async.domain.media import (
    NO_IDS,
    CheckSchedule,
    ItemId,
    ItemSummary,
    MediaItem,
    MediaKind,
    ShowStatus,
)
from riven_async.domain.queue import (
    BootId,
    InboxId,
    InboxMessage,
    Job,
    JobId,
    JobKind,
    JobStatus,
    ProcessInfo,
)
from riven_async.domain.releases import (
    Download,
    DownloadId,
    DownloadStatus,
    Infohash,
    LibraryEntry,
    LibraryEntryId,
    Release,
    ReleaseId,
    SelectedFile,
)
from riven_async.domain.states import State


class Row(Protocol):
    """What an asyncpg Record (and a composite value it decodes) offers: lookup by name."""

    def __getitem__(self, key: str, /) -> Any: ...



# Enum members by value: a dict lookup is ten times cheaper than State(value), and these
# run for every row of every page and tree.
_KINDS = {k.value: k for k in MediaKind}
_STATES: dict[str | None, State | None] = {s.value: s for s in State}
_STATES[None] = None
_STATUSES: dict[str | None, ShowStatus | None] = {s.value: s for s in ShowStatus}
_STATUSES[None] = None


def media_item(row: Row) -> MediaItem:
    """An ``items`` row (all columns); positional, because this is the hottest mapping."""
    kind = _KINDS[row["kind"]]
    state = _STATES[row["state"]]
    assert state is not None
    show_id = row["show_id"]
    if kind is MediaKind.SEASON or kind is MediaKind.EPISODE:
        ids, schedule = NO_IDS, None
    else:
        ids = ExternalIds(row["tmdb_id"], row["tvdb_id"], row["imdb_id"], row["tvmaze_id"])
        schedule = CheckSchedule(
            _STATUSES[row["status"]], row["status_checked_at"], row["next_check_at"],
            row["check_priority"], row["last_air_at"], row["next_air_at"], row["air_timezone"],
            row["release_due_at"],
        )
    return MediaItem(
        ItemId(row["id"]), kind, row["title"], state, row["state_changed_at"],
        row["created_at"], row["updated_at"], ids,
        None if show_id is None else ItemId(show_id), row["season_number"],
        row["episode_number"], row["year"], _STATES[row["resume_state"]], row["last_error"],
        row["aired_at"], row["air_date"], row["fingerprint"], row["scraped_at"],
        row["scrape_count"], schedule,
    )


def item_summary(row: Row) -> ItemSummary:
    """The ``SUMMARY`` columns of an ``items`` row (see catalog.sql)."""
    kind = _KINDS[row["kind"]]
    state = _STATES[row["state"]]
    assert state is not None
    show_id = row["show_id"]
    ids = (NO_IDS if kind is MediaKind.SEASON or kind is MediaKind.EPISODE else
           ExternalIds(row["tmdb_id"], row["tvdb_id"], row["imdb_id"], row["tvmaze_id"]))
    return ItemSummary(
        ItemId(row["id"]), kind, row["title"], state, row["state_changed_at"], ids,
        None if show_id is None else ItemId(show_id), row["season_number"],
        row["episode_number"], row["year"], row["aired_at"], row["last_error"],
    )


def release(row: Row) -> Release:
    """A ``releases`` row."""
    return Release(
        id=ReleaseId(row["id"]),
        item_id=row["item_id"],
        infohash=Infohash(row["infohash"]),
        raw_title=row["raw_title"],
        rank=row["rank"],
        scraper=row["scraper"],
        parsed=row["parsed"],
        size_bytes=row["size_bytes"],
        seeders=row["seeders"],
        cached_on=tuple(row["cached_on"]),
        found_at=row["found_at"],
        seen_at=row["seen_at"],
    )


def node_releases(row: Row) -> tuple[Release, ...]:
    """The releases a tree row carries as parallel ``release_*`` arrays, best first."""
    ids = row["release_ids"]
    if not ids:
        return ()
    item_id = row["id"]
    found = [
        Release(ReleaseId(rid), item_id, Infohash(infohash), title, rank, scraper, parsed, size,
                seeders, tuple(cached.split(",")) if cached else (), found_at, seen_at)
        for rid, infohash, title, rank, scraper, parsed, size, seeders, cached, found_at, seen_at
        in zip(ids, row["release_infohashes"], row["release_titles"], row["release_ranks"],
               row["release_scrapers"], row["release_parsed"], row["release_sizes"],
               row["release_seeders"], row["release_cached_on"], row["release_found_at"],
               row["release_seen_at"], strict=True)
    ]
    found.sort(key=lambda r: (-r.rank, r.id))
    return tuple(found)


def download(row: Row) -> Download:
    """A ``downloads`` row."""
    return Download(
        id=DownloadId(row["id"]),
        item_id=row["item_id"],
        service=row["service"],
        infohash=Infohash(row["infohash"]),
        status=DownloadStatus(row["status"]),
        torrent_id=row["torrent_id"],
        selected_files=tuple(SelectedFile.from_json(f) for f in row["selected_files"]),
        error=row["error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        ready_at=row["ready_at"],
    )


def library_entry(row: Row) -> LibraryEntry:
    """A ``library_entries`` row."""
    return LibraryEntry(
        id=LibraryEntryId(row["id"]),
        item_id=row["item_id"],
        link_path=row["link_path"],
        target_path=row["target_path"],
        download_id=row["download_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        verified_at=row["verified_at"],
    )


def job(row: Row) -> Job:
    """A ``jobs`` row."""
    claimed_by = row["claimed_by"]
    return Job(
        id=JobId(row["id"]),
        kind=JobKind(row["kind"]),
        item_id=row["item_id"],
        dedupe_key=row["dedupe_key"],
        status=JobStatus(row["status"]),
        run_at=row["run_at"],
        priority=row["priority"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        payload=row["payload"],
        last_error=row["last_error"],
        claimed_by=None if claimed_by is None else BootId(claimed_by),
        claimed_at=row["claimed_at"],
        created_at=row["created_at"],
    )


def process(row: Row) -> ProcessInfo:
    """A ``processes`` row."""
    return ProcessInfo(
        boot_id=BootId(row["boot_id"]),
        hostname=row["hostname"],
        pid=row["pid"],
        started_at=row["started_at"],
        heartbeat_at=row["heartbeat_at"],
        stopped_at=row["stopped_at"],
    )


def inbox_message(row: Row) -> InboxMessage:
    """An ``inbox`` row."""
    return InboxMessage(
        id=InboxId(row["id"]),
        source=row["source"],
        event=row["event"],
        delivery_key=row["delivery_key"],
        payload=row["payload"],
        intents=list(row["intents"]),
        received_at=row["received_at"],
        attempts=row["attempts"],
        error=row["error"],
        processed_at=row["processed_at"],
    )

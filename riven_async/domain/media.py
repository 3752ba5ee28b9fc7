"""Media items: kinds, show status, ids, the trees the indexer hands over, the stored rows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import NewType

from riven_async.domain.intents import ExternalIds
from riven_async.domain.releases import Release
from riven_async.domain.states import State

ItemId = NewType("ItemId", int)
TmdbId = NewType("TmdbId", int)
TvdbId = NewType("TvdbId", int)
ImdbId = NewType("ImdbId", str)
TvmazeId = NewType("TvmazeId", int)
RequestId = NewType("RequestId", int)


class MediaKind(StrEnum):
    """What an item is; values equal the SQL enum ``media_kind``."""

    MOVIE = "movie"
    SHOW = "show"
    SEASON = "season"
    EPISODE = "episode"

    @property
    def is_root(self) -> bool:
        """Movies and shows stand alone; seasons and episodes belong to a show."""
        return self in (MediaKind.MOVIE, MediaKind.SHOW)


class ShowStatus(StrEnum):
    """Whether a show still airs; values equal the SQL enum ``show_status``."""

    ONGOING = "ongoing"
    ENDED = "ended"
    HIATUS = "hiatus"
    UNKNOWN = "unknown"


def _require_aware(name: str, value: datetime | None) -> None:
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")


@dataclass(frozen=True, slots=True)
class EpisodeRecord:
    """One episode as the indexer knows it; ``aired_at`` is exact when the source says so."""

    number: int
    title: str
    aired_at: datetime | None = None
    air_date: date | None = None

    def __post_init__(self) -> None:
        if self.number < 0:
            raise ValueError(f"episode number {self.number} is negative")
        _require_aware("aired_at", self.aired_at)


@dataclass(frozen=True, slots=True)
class SeasonRecord:
    """One season with its episodes; ``fingerprint`` lets the indexer skip unchanged seasons."""

    number: int
    title: str
    episodes: tuple[EpisodeRecord, ...] = ()
    air_date: date | None = None
    fingerprint: str | None = None

    def __post_init__(self) -> None:
        if self.number < 0:
            raise ValueError(f"season number {self.number} is negative")
        numbers = [e.number for e in self.episodes]
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"season {self.number} lists an episode number twice")


@dataclass(frozen=True, slots=True)
class ShowTree:
    """A show with the seasons the indexer fetched (all, or only the changed ones).

    The upsert never deletes: seasons and episodes missing here are left as they are.
    ``next_check_at`` comes from the scheduler's rules, so one call also reschedules.
    """

    ids: ExternalIds
    title: str
    next_check_at: datetime
    status: ShowStatus = ShowStatus.UNKNOWN
    year: int | None = None
    last_air_at: datetime | None = None
    next_air_at: datetime | None = None
    air_timezone: str | None = None
    fingerprint: str | None = None
    seasons: tuple[SeasonRecord, ...] = ()

    def __post_init__(self) -> None:
        if self.ids.tmdb is None:
            raise ValueError("a show tree needs its tmdb id")
        for name in ("next_check_at", "last_air_at", "next_air_at"):
            _require_aware(name, getattr(self, name))
        numbers = [s.number for s in self.seasons]
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"show tmdb {self.ids.tmdb} lists a season number twice")

    @property
    def episode_count(self) -> int:
        """Episodes in this tree (what an upsert of it writes at most, besides seasons)."""
        return sum(len(s.episodes) for s in self.seasons)


@dataclass(frozen=True, slots=True)
class MovieRecord:
    """A movie as the indexer knows it; ``released_at`` is when it can be found."""

    ids: ExternalIds
    title: str
    next_check_at: datetime
    year: int | None = None
    released_at: datetime | None = None
    release_date: date | None = None
    fingerprint: str | None = None

    def __post_init__(self) -> None:
        if self.ids.tmdb is None:
            raise ValueError("a movie record needs its tmdb id")
        _require_aware("next_check_at", self.next_check_at)
        _require_aware("released_at", self.released_at)


@dataclass(frozen=True, slots=True)
class CheckSchedule:
    """When a show or movie was indexed and is checked next (``status``: shows only).

    ``release_due_at`` (shows) is the air time of the earliest episode still unreleased.
    """

    status: ShowStatus | None
    status_checked_at: datetime | None
    next_check_at: datetime | None
    check_priority: int = 0
    last_air_at: datetime | None = None
    next_air_at: datetime | None = None
    air_timezone: str | None = None
    release_due_at: datetime | None = None


NO_IDS = ExternalIds()


@dataclass(frozen=True, slots=True)
class MediaItem:
    """One stored item (any kind). Seasons and episodes have no ids and no ``schedule``."""

    id: ItemId
    kind: MediaKind
    title: str
    state: State
    state_changed_at: datetime
    created_at: datetime
    updated_at: datetime
    ids: ExternalIds = NO_IDS
    show_id: ItemId | None = None
    season_number: int | None = None
    episode_number: int | None = None
    year: int | None = None
    resume_state: State | None = None
    last_error: str | None = None
    aired_at: datetime | None = None
    air_date: date | None = None
    fingerprint: str | None = None
    scraped_at: datetime | None = None
    scrape_count: int = 0
    schedule: CheckSchedule | None = None


@dataclass(frozen=True, slots=True)
class ItemSummary:
    """What a list of items shows of each (pages, search); the full row is ``MediaItem``."""

    id: ItemId
    kind: MediaKind
    title: str
    state: State
    state_changed_at: datetime
    ids: ExternalIds = NO_IDS
    show_id: ItemId | None = None
    season_number: int | None = None
    episode_number: int | None = None
    year: int | None = None
    aired_at: datetime | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class ItemNode:
    """An item with its current best releases (blacklisted ones left out)."""

    item: MediaItem
    releases: tuple[Release, ...] = ()


@dataclass(frozen=True, slots=True)
class ItemTree:
    """An item with everything below it: a show's seasons and episodes, a season's episodes."""

    root: ItemNode
    children: tuple[ItemNode, ...] = ()

    def seasons(self) -> Iterator[ItemNode]:
        """The season nodes, in season order."""
        return (n for n in self.children if n.item.kind is MediaKind.SEASON)

    def episodes(self, season_number: int | None = None) -> Iterator[ItemNode]:
        """The episode nodes (of one season when given), in order."""
        return (
            n for n in self.children
            if n.item.kind is MediaKind.EPISODE
            and (season_number is None or n.item.season_number == season_number)
        )


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    """What a request became: the item it names, and whether this request created it."""

    item_id: ItemId
    created: bool


@dataclass(frozen=True, slots=True)
class ShowUpsertResult:
    """What one show's upsert wrote."""

    show_id: ItemId
    tmdb_id: TmdbId
    created: bool
    children_inserted: int
    children_updated: int

"""What the indexers hand back: pure records, and how they become the tree upsert's input."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from enum import StrEnum

from riven_async.domain import media
from riven_async.domain.intents import ExternalIds
from riven_async.errors import RivenError

_FINGERPRINT_VERSION = "v1"


class MetadataNotFound(RivenError):
    """The upstream has no such show, movie or id (TMDB 404 code 34, an empty /find, ...)."""

    def __init__(self, service: str, what: str) -> None:
        self.service = service
        self.what = what
        super().__init__(f"{service}: {what} not found")


class AirTimeSource(StrEnum):
    """How exact an episode's ``air_at`` is; the scheduler may trust the first two."""

    EXACT = "exact"  # TVMaze's airstamp (UTC)
    SCHEDULE = "schedule"  # TVMaze's local date and time, or the show's slot, in its zone
    FALLBACK = "fallback"  # the air date at the configured local time in the network's zone
    UTC = "utc"  # the air date at the configured time in UTC: no zone known


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a request's ids name on TMDB."""

    kind: media.MediaKind
    tmdb_id: media.TmdbId


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One title search result."""

    kind: media.MediaKind
    tmdb_id: media.TmdbId
    title: str
    year: int | None
    original_title: str | None = None


@dataclass(frozen=True, slots=True)
class EpisodeAiring:
    """TVMaze's view of one episode's airing; ``air_at`` only when TVMaze gives an airstamp."""

    season: int
    number: int
    air_date: date | None
    air_time: time | None
    air_at: datetime | None
    runtime_min: int | None = None
    tvmaze_id: int | None = None


@dataclass(frozen=True, slots=True)
class TvmazeShowInfo:
    """A show on TVMaze: its ids, network time zone, weekly slot and episode airings."""

    tvmaze_id: media.TvmazeId
    title: str
    status: str | None
    timezone: str | None
    schedule_time: time | None
    tvdb_id: int | None
    imdb_id: str | None
    updated: int | None
    airings: tuple[EpisodeAiring, ...] = ()

    def airings_by_number(self) -> dict[tuple[int, int], EpisodeAiring]:
        """Airings keyed by (season, episode)."""
        return {(a.season, a.number): a for a in self.airings}


@dataclass(frozen=True, slots=True)
class IndexedEpisode:
    """One episode: TMDB's data with the best air time known."""

    season: int
    number: int
    title: str
    air_date: date | None
    air_at: datetime | None
    air_source: AirTimeSource | None
    runtime_min: int | None = None
    tmdb_id: int | None = None
    episode_type: str | None = None

    def to_record(self) -> media.EpisodeRecord:
        return media.EpisodeRecord(
            number=self.number, title=self.title, aired_at=self.air_at, air_date=self.air_date
        )


@dataclass(frozen=True, slots=True)
class SeasonFingerprint:
    """What decides whether a season must be fetched again (stored as text per season).

    ``episode_count`` and ``air_date`` come from the show's details, so they can be compared
    without fetching the season; ``last_air_date`` and ``pending`` (some episode had no
    date, or fewer episodes were listed than counted) from its episodes.
    """

    episode_count: int
    air_date: date | None
    last_air_date: date | None
    pending: bool

    def encode(self) -> str:
        parts = (
            _FINGERPRINT_VERSION,
            str(self.episode_count),
            self.air_date.isoformat() if self.air_date else "",
            self.last_air_date.isoformat() if self.last_air_date else "",
            "pending" if self.pending else "settled",
        )
        return "|".join(parts)

    @classmethod
    def parse(cls, text: str | None) -> SeasonFingerprint | None:
        """The fingerprint in ``text``, or None when it is missing or not ours."""
        if not text:
            return None
        parts = text.split("|")
        if len(parts) != 5 or parts[0] != _FINGERPRINT_VERSION:
            return None
        if parts[4] not in ("pending", "settled"):
            return None
        try:
            return cls(
                episode_count=int(parts[1]),
                air_date=date.fromisoformat(parts[2]) if parts[2] else None,
                last_air_date=date.fromisoformat(parts[3]) if parts[3] else None,
                pending=parts[4] == "pending",
            )
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class SeasonSummary:
    """A season as the show's details list it (fetched this time or not)."""

    number: int
    episode_count: int
    air_date: date | None


@dataclass(frozen=True, slots=True)
class IndexedSeason:
    """One fetched season with its episodes."""

    number: int
    title: str
    episode_count: int
    air_date: date | None
    episodes: tuple[IndexedEpisode, ...]
    fingerprint: str

    def to_record(self) -> media.SeasonRecord:
        return media.SeasonRecord(
            number=self.number,
            title=self.title,
            episodes=tuple(e.to_record() for e in self.episodes),
            air_date=self.air_date,
            fingerprint=self.fingerprint,
        )


@dataclass(frozen=True, slots=True)
class IndexedShow:
    """A show as indexed now: status, next/last episode, and the seasons that were fetched.

    ``seasons`` holds only what was fetched (all on a first index, the changed ones on a
    re-check); ``listed`` names every season the details list. The tree upsert leaves
    seasons that are missing here untouched. ``fingerprint`` digests TMDB's show-level
    data (status, next and last episode, each season's count and date): equal digests mean
    nothing changed at that level.
    """

    ids: ExternalIds
    title: str
    year: int | None
    tmdb_status: str | None
    status: media.ShowStatus
    in_production: bool
    next_episode: IndexedEpisode | None
    last_episode: IndexedEpisode | None
    next_air_at: datetime | None
    last_air_at: datetime | None
    air_timezone: str | None
    seasons: tuple[IndexedSeason, ...]
    listed: tuple[SeasonSummary, ...]
    fingerprint: str
    indexed_at: datetime

    @property
    def tmdb_id(self) -> media.TmdbId:
        assert self.ids.tmdb is not None
        return media.TmdbId(self.ids.tmdb)

    @property
    def fetched_seasons(self) -> tuple[int, ...]:
        return tuple(s.number for s in self.seasons)

    def to_tree(self, next_check_at: datetime) -> media.ShowTree:
        """The record the tree upsert takes; ``next_check_at`` comes from the scheduler."""
        return media.ShowTree(
            ids=self.ids,
            title=self.title,
            next_check_at=next_check_at,
            status=self.status,
            year=self.year,
            last_air_at=self.last_air_at,
            next_air_at=self.next_air_at,
            air_timezone=self.air_timezone,
            fingerprint=self.fingerprint,
            seasons=tuple(s.to_record() for s in self.seasons),
        )


@dataclass(frozen=True, slots=True)
class ReleaseDates:
    """A movie's earliest release of each TMDB type (across the regions considered)."""

    premiere: datetime | None = None
    theatrical_limited: datetime | None = None
    theatrical: datetime | None = None
    digital: datetime | None = None
    physical: datetime | None = None
    tv: datetime | None = None


class ReleaseBasis(StrEnum):
    """What a movie's ``released_at`` rests on."""

    DIGITAL = "digital"
    PHYSICAL = "physical"
    ESTIMATE = "estimate"  # theatrical date plus the configured delay: no home release listed


@dataclass(frozen=True, slots=True)
class IndexedMovie:
    """A movie as indexed now; ``released_at`` is when releases worth grabbing can exist."""

    ids: ExternalIds
    title: str
    year: int | None
    tmdb_status: str | None
    release_date: date | None
    runtime_min: int | None
    releases: ReleaseDates
    released_at: datetime | None
    released_basis: ReleaseBasis | None
    fingerprint: str
    indexed_at: datetime

    @property
    def tmdb_id(self) -> media.TmdbId:
        assert self.ids.tmdb is not None
        return media.TmdbId(self.ids.tmdb)

    def to_record(self, next_check_at: datetime) -> media.MovieRecord:
        """The record the movie upsert takes; ``next_check_at`` comes from the scheduler."""
        return media.MovieRecord(
            ids=self.ids,
            title=self.title,
            next_check_at=next_check_at,
            year=self.year,
            released_at=self.released_at,
            release_date=self.release_date,
            fingerprint=self.fingerprint,
        )

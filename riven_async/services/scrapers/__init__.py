"""The scraper contract: what is asked (``ScrapeQuery``), what comes back, and the errors."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlsplit

from riven_async.core.breaker import CircuitOpen
from riven_async.core.http import HttpClient
from riven_async.errors import RivenError

ScrapeKind = Literal["movie", "episode", "season"]

_HEX40_RE = re.compile(r"[0-9a-fA-F]{40}")
_BASE32_RE = re.compile(r"[A-Za-z2-7]{32}")
_IMDB_RE = re.compile(r"tt\d{1,12}")
_BTIH_RE = re.compile(r"(?i)^urn:btih:([0-9a-f]{40}|[a-z2-7]{32})$")
MAX_MAGNET_CHARS = 64 * 1024


class ScraperError(RivenError):
    """A scraper could not read what an upstream sent; never carries a credential."""


class ParseError(ScraperError, ValueError):
    """One title line, magnet, torrent file or record cannot be read."""


@dataclass(frozen=True, slots=True)
class ScrapeQuery:
    """What to look for: a movie, one episode, or a whole season (ids as the upstreams use them).

    ``imdb_id`` is ``tt`` plus digits. ``season`` is required for episodes and seasons,
    ``episode`` for episodes only. ``title``/``year`` serve the text-search fallbacks.
    """

    kind: ScrapeKind
    imdb_id: str | None = None
    tmdb_id: int | None = None
    tvdb_id: int | None = None
    title: str = ""
    year: int | None = None
    season: int | None = None
    episode: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("movie", "episode", "season"):
            raise ValueError(f"kind must be movie, episode or season, not {self.kind!r}")
        if self.imdb_id is not None and not _IMDB_RE.fullmatch(self.imdb_id):
            raise ValueError(f"imdb_id must look like 'tt0903747', not {self.imdb_id[:32]!r}")
        if self.kind == "movie" and (self.season is not None or self.episode is not None):
            raise ValueError("a movie query takes no season or episode")
        if self.kind != "movie" and (self.season is None or self.season < 0):
            raise ValueError(f"an {self.kind} query needs a season >= 0")
        if self.kind == "season" and self.episode is not None:
            raise ValueError("a season query takes no episode")
        if self.kind == "episode" and (self.episode is None or self.episode < 1):
            raise ValueError("an episode query needs an episode >= 1")

    @classmethod
    def for_movie(
        cls,
        *,
        imdb_id: str | None = None,
        tmdb_id: int | None = None,
        title: str = "",
        year: int | None = None,
    ) -> ScrapeQuery:
        return cls("movie", imdb_id=imdb_id, tmdb_id=tmdb_id, title=title, year=year)

    @classmethod
    def for_episode(
        cls,
        season: int,
        episode: int,
        *,
        imdb_id: str | None = None,
        tmdb_id: int | None = None,
        tvdb_id: int | None = None,
        title: str = "",
        year: int | None = None,
    ) -> ScrapeQuery:
        return cls(
            "episode",
            imdb_id=imdb_id,
            tmdb_id=tmdb_id,
            tvdb_id=tvdb_id,
            title=title,
            year=year,
            season=season,
            episode=episode,
        )

    @classmethod
    def for_season(
        cls,
        season: int,
        *,
        imdb_id: str | None = None,
        tmdb_id: int | None = None,
        tvdb_id: int | None = None,
        title: str = "",
        year: int | None = None,
    ) -> ScrapeQuery:
        return cls(
            "season",
            imdb_id=imdb_id,
            tmdb_id=tmdb_id,
            tvdb_id=tvdb_id,
            title=title,
            year=year,
            season=season,
        )

    def describe(self) -> str:
        """``tt0903747 S01E02`` / ``tt0903747 S01`` / ``Title (2008)``, for logs."""
        who = self.imdb_id or (f"tmdb:{self.tmdb_id}" if self.tmdb_id else repr(self.title))
        if self.kind == "episode":
            return f"{who} S{self.season:02d}E{self.episode:02d}"
        if self.kind == "season":
            return f"{who} S{self.season:02d}"
        return who + (f" ({self.year})" if self.year else "")


@dataclass(frozen=True, slots=True)
class ScrapedRelease:
    """One torrent a scraper offered for a query.

    ``size_bytes`` is the whole torrent's size when the upstream states it;
    ``file_size_bytes`` the size of the file that plays the query (stremio addons report
    that one for packs). ``source`` is the scraper that found it; after a fan-out merge,
    ``sources`` lists every scraper that did, ``source`` first. ``cached_on`` names the
    debrid services a cached marker (``[RD+]``) said hold it.
    """

    infohash: str
    raw_title: str
    source: str
    file_name: str | None = None
    file_idx: int | None = None
    size_bytes: int | None = None
    file_size_bytes: int | None = None
    seeders: int | None = None
    provider: str | None = None
    cached_hint: bool = False
    sources: tuple[str, ...] = field(default=())
    cached_on: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not (len(self.infohash) == 40 and _HEX40_RE.fullmatch(self.infohash)):
            raise ValueError(f"infohash must be 40 hex digits, not {self.infohash[:48]!r}")
        if self.infohash != self.infohash.lower():
            raise ValueError("infohash must be lower case (use normalize_infohash)")
        if not self.sources:
            object.__setattr__(self, "sources", (self.source,))
        elif self.sources[0] != self.source:
            raise ValueError("sources must start with source")


@dataclass(frozen=True, slots=True)
class ScrapeResult:
    """What one scraper found; ``soft_failure`` says why an empty answer is not "nothing".

    A soft failure is an answer that carries no results for a reason other than there
    being none (a notice stream: scraping in progress, obsolete config, rate-limited).
    Releases may come with one when only part of a scraper answered (one indexer of many).
    """

    releases: tuple[ScrapedRelease, ...] = ()
    soft_failure: str | None = None


class Scraper(Protocol):
    """One release source behind the project's HTTP client."""

    @property
    def name(self) -> str:
        """The scraper's name: ``ScrapedRelease.source``, health and metrics key."""
        ...

    def supports(self, query: ScrapeQuery) -> bool:
        """Whether this scraper can search for ``query`` at all (it has the ids it needs)."""
        ...

    def blocked_for(self) -> float:
        """Seconds before a request could go out (a 429 pause, an open breaker); 0 if now."""
        ...

    def saturated(self) -> bool:
        """Whether a request would queue for a rate-limit slot now (a window is full)."""
        ...

    async def scrape(self, query: ScrapeQuery) -> ScrapeResult:
        """Search once; raise ``UpstreamError`` or ``ScraperError`` when it fails."""
        ...


@runtime_checkable
class WarmUp(Protocol):
    """A scraper with start-up work (Torznab's caps); ``start`` logs failures, never raises."""

    async def start(self) -> None: ...


def merge_releases(releases: Iterable[ScrapedRelease]) -> tuple[ScrapedRelease, ...]:
    """One record per infohash, in first-seen order, as rich as all the copies together.

    The first copy gives the title; the first known size, file and provider fill the
    gaps; seeders are the highest seen; cached if any copy says so; ``sources`` lists
    every scraper that offered it.
    """
    merged: dict[str, ScrapedRelease] = {}
    for release in releases:
        seen = merged.get(release.infohash)
        merged[release.infohash] = release if seen is None else _richer(seen, release)
    return tuple(merged.values())


def _richer(seen: ScrapedRelease, other: ScrapedRelease) -> ScrapedRelease:
    has_file = seen.file_name is not None or seen.file_idx is not None
    file_name, file_idx = (
        (seen.file_name, seen.file_idx) if has_file else (other.file_name, other.file_idx)
    )
    seeders = [s for s in (seen.seeders, other.seeders) if s is not None]
    sources = seen.sources + tuple(s for s in other.sources if s not in seen.sources)
    return ScrapedRelease(
        infohash=seen.infohash,
        raw_title=seen.raw_title,
        source=seen.source,
        file_name=file_name,
        file_idx=file_idx,
        size_bytes=seen.size_bytes if seen.size_bytes is not None else other.size_bytes,
        file_size_bytes=(
            seen.file_size_bytes if seen.file_size_bytes is not None else other.file_size_bytes
        ),
        seeders=max(seeders) if seeders else None,
        provider=seen.provider if seen.provider is not None else other.provider,
        cached_hint=seen.cached_hint or other.cached_hint,
        sources=sources,
        cached_on=seen.cached_on + tuple(c for c in other.cached_on if c not in seen.cached_on),
    )


def client_blocked_for(client: HttpClient) -> float:
    """Seconds until ``client`` would send: its limiter's pause or its breaker's wait."""
    wait = client.limiter.paused_for()
    try:
        client.breaker.check()
    except CircuitOpen as exc:
        # A half-open breaker with its probe in flight reports 0 s: still refused now.
        wait = max(wait, exc.retry_in_s, 1e-3)
    return wait


def client_saturated(client: HttpClient) -> bool:
    """Whether ``client``'s limiter has no free place in some window (or has waiters)."""
    stats = client.limiter.stats()
    return stats.waiters > 0 or any(w.used >= w.limit for w in stats.windows)


def normalize_infohash(text: str) -> str:
    """A v1 infohash as 40 lower-case hex digits, from hex or base32; ``ParseError`` else."""
    value = text.strip()
    if len(value) == 40 and _HEX40_RE.fullmatch(value):
        return value.lower()
    if len(value) == 32 and _BASE32_RE.fullmatch(value):
        try:
            return base64.b32decode(value.upper()).hex()
        except binascii.Error:
            pass
    raise ParseError(f"not an infohash: {value[:48]!r}")


def infohash_from_magnet(uri: str) -> str | None:
    """The v1 infohash of a ``magnet:?xt=urn:btih:…`` link, or None if it names none."""
    if len(uri) > MAX_MAGNET_CHARS or uri[:7].lower() != "magnet:":
        return None
    try:
        query = urlsplit(uri).query
    except ValueError:
        return None
    for key, value in parse_qsl(query, keep_blank_values=False):
        if key.lower().startswith("xt"):
            match = _BTIH_RE.match(value.strip())
            if match is not None:
                return normalize_infohash(match[1])
    return None

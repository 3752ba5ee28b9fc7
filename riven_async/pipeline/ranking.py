"""Rank scraped releases for one item: parsett parses, rank-torrent-name scores, we check fit."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, assert_never

from riven_async import config

with warnings.catch_warnings():
    # RTN's models still use pydantic's class-based Config, deprecated since pydantic 2.0;
    # the warning is about RTN's code and would fail any run with warnings as errors.
    warnings.simplefilter("ignore", DeprecationWarning)
    from RTN import DefaultRanking, SettingsModel, check_fetch, get_lev_ratio, get_rank, parse
    from RTN.models import CustomRanksConfig, LanguagesConfig, OptionsConfig, ResolutionConfig

log = logging.getLogger(__name__)

MAX_TITLE_CHARS = 512
PARSE_CACHE_SIZE = 4096
RESOLUTION_WEIGHT = 1_000_000
PREFERRED_CODEC_BONUS = 500
YIELD_SLICE_S = 0.005
_MB = 1_000_000
_GB = 1_000_000_000

TargetKind = Literal["movie", "episode", "season"]

# RTN's own buckets (RTN.fetch.fetch_resolution keeps this map private).
_RESOLUTION_BUCKET = {
    "2160p": "2160p", "4k": "2160p",
    "1440p": "1080p", "1080p": "1080p",
    "720p": "720p",
    "576p": "480p", "480p": "480p",
    "360p": "360p", "240p": "360p",
}  # fmt: skip
_TRASH_KEYS: dict[str, str] = {
    "CAM": "cam", "TS": "telesync", "TC": "telecine", "SCR": "screener", "R5": "r5",
    "PDTV": "pdtv",
}  # fmt: skip
# parsett's names for the qualities above; the profile alone decides about these.
_TRASH_QUALITIES = frozenset({"CAM", "TeleSync", "TeleCine", "SCR", "R5", "PDTV"})
_HDR_FALLBACKS = frozenset({"HDR", "HDR10+"})


@dataclass(frozen=True, slots=True)
class Candidate:
    """One scraped release, before ranking."""

    infohash: str
    raw_title: str
    size_bytes: int | None = None
    seeders: int | None = None
    source: str = ""
    cached_hint: bool = False


@dataclass(frozen=True, slots=True)
class Target:
    """What the releases must fit: a movie, one episode, or a whole season.

    ``episode_count`` is the number of episodes in the season, when known; it turns a
    season pack's size into a size per episode for the profile's bounds.
    """

    kind: TargetKind
    title: str
    aliases: tuple[str, ...] = ()
    year: int | None = None
    season: int | None = None
    episode: int | None = None
    episode_count: int | None = None

    def __post_init__(self) -> None:
        if not self.title.strip():
            raise ValueError("a target needs a title")
        if self.kind != "movie" and (self.season is None or self.season < 0):
            raise ValueError(f"a {self.kind} target needs a season >= 0")
        if self.kind == "episode" and (self.episode is None or self.episode < 1):
            raise ValueError("an episode target needs an episode >= 1")
        if self.episode_count is not None and self.episode_count < 1:
            raise ValueError("episode_count must be >= 1")

    @classmethod
    def for_movie(cls, title: str, year: int | None, aliases: Iterable[str] = ()) -> Target:
        return cls("movie", title, tuple(aliases), year)

    @classmethod
    def for_episode(
        cls,
        title: str,
        season: int,
        episode: int,
        *,
        year: int | None = None,
        aliases: Iterable[str] = (),
        episode_count: int | None = None,
    ) -> Target:
        return cls("episode", title, tuple(aliases), year, season, episode, episode_count)

    @classmethod
    def for_season(
        cls,
        title: str,
        season: int,
        *,
        year: int | None = None,
        aliases: Iterable[str] = (),
        episode_count: int | None = None,
    ) -> Target:
        return cls("season", title, tuple(aliases), year, season, None, episode_count)


@dataclass(frozen=True, slots=True)
class RankedRelease:
    """A candidate after ranking: parsed, scored, and either fitting or rejected with a reason.

    ``rank`` orders releases: the profile's resolution preference first (in steps of
    ``RESOLUTION_WEIGHT``), then RTN's score (``rtn_rank``). ``reject_reason`` is a short
    stable code (``wrong_season``, ``size_too_large``, ``profile:trash_cam`` ...).
    """

    infohash: str
    raw_title: str
    parsed: dict[str, Any] = field(hash=False)
    rank: int
    rtn_rank: int
    resolution: str
    is_pack: bool
    seasons: tuple[int, ...]
    episodes: tuple[int, ...]
    size_bytes: int | None
    seeders: int | None
    source: str
    cached_hint: bool
    title_ratio: float
    fits: bool
    reject_reason: str | None


@dataclass(frozen=True, slots=True)
class ParseCacheStats:
    hits: int
    misses: int
    entries: int
    max_entries: int


@dataclass(frozen=True, slots=True)
class _Parsed:
    """The target-independent half of a ranking, cached per title."""

    summary: dict[str, Any] | None  # RTN's ParsedData as JSON, None when parsett failed
    title: str
    year: int | None
    resolution: str
    seasons: tuple[int, ...]
    episodes: tuple[int, ...]
    complete: bool
    rtn_rank: int
    failed: str | None

    @property
    def is_pack(self) -> bool:
        if len(self.episodes) > 1 or len(self.seasons) > 1:
            return True
        return not self.episodes and (bool(self.seasons) or self.complete)


_UNPARSEABLE = _Parsed(None, "", None, "unknown", (), (), False, 0, "unparseable")


class Ranker:
    """Rank candidates for a target by one ranking profile; parses are cached per title.

    Parsing is CPU-bound (about a millisecond and a half per new title) and runs on the
    caller's thread: ``rank_async`` yields to the loop between slices of work so thousands
    of titles never stall it, and identical titles (the same release from several
    scrapers, or on a re-scrape) are parsed once, kept in a bounded LRU.
    """

    def __init__(
        self, profile: config.RankingSection, *, cache_size: int = PARSE_CACHE_SIZE
    ) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be >= 1")
        self.profile = profile
        self._settings = _rtn_settings(profile)
        self._model = DefaultRanking()
        self._resolution_order: dict[str, int] = {
            res: i for i, res in enumerate(profile.resolutions)
        }
        self._cache_size = cache_size
        self._parse = functools.lru_cache(maxsize=cache_size)(self._parse_uncached)

    def rank(self, target: Target, candidates: Sequence[Candidate]) -> list[RankedRelease]:
        """The fitting releases, best first, at most ``max_results`` of them."""
        return self._select(self.evaluate(target, candidates))

    async def rank_async(
        self, target: Target, candidates: Sequence[Candidate], *, slice_s: float = YIELD_SLICE_S
    ) -> list[RankedRelease]:
        """Like ``rank``, yielding to the event loop every ``slice_s`` of parsing."""
        assessed: list[RankedRelease] = []
        ratios: dict[str, float] = {}
        started = time.perf_counter()
        for candidate in _merged(candidates):
            assessed.append(self._assess(target, candidate, ratios))
            if time.perf_counter() - started >= slice_s:
                await asyncio.sleep(0)
                started = time.perf_counter()
        return self._select(_ordered(assessed))

    def evaluate(self, target: Target, candidates: Sequence[Candidate]) -> list[RankedRelease]:
        """Every distinct candidate, fitting ones first (best first), rejected ones flagged."""
        ratios: dict[str, float] = {}
        return _ordered([self._assess(target, c, ratios) for c in _merged(candidates)])

    def cache_stats(self) -> ParseCacheStats:
        info = self._parse.cache_info()
        return ParseCacheStats(info.hits, info.misses, info.currsize, self._cache_size)

    def _select(self, ordered: list[RankedRelease]) -> list[RankedRelease]:
        kept = [r for r in ordered if r.fits][: self.profile.max_results]
        log.debug(
            "ranked %d releases, kept %d",
            len(ordered),
            len(kept),
            extra={"action": "rank", "candidates": len(ordered), "kept": len(kept)},
        )
        return kept

    def _assess(
        self, target: Target, candidate: Candidate, ratios: dict[str, float]
    ) -> RankedRelease:
        """Rank one candidate; ``ratios`` memoises title similarity within one call."""
        title = candidate.raw_title.strip()
        if not title:
            return _rejected(candidate, "empty_title")
        if len(title) > MAX_TITLE_CHARS:
            return _rejected(candidate, "title_too_long")
        parsed = self._parse(title)
        if parsed.summary is None:
            return _rejected(candidate, "unparseable")
        ratio = ratios.get(parsed.title)
        if ratio is None:
            ratio = ratios[parsed.title] = self._title_ratio(target, parsed.title)
        reason = (
            parsed.failed
            or (None if ratio >= self.profile.title_similarity else "title_mismatch")
            or _fit_reason(target, parsed)
            or self._size_reason(target, parsed, candidate.size_bytes)
            or self._seeders_reason(candidate)
        )
        order = self._resolution_order.get(parsed.resolution, len(self._resolution_order))
        return RankedRelease(
            infohash=candidate.infohash,
            raw_title=candidate.raw_title,
            parsed={k: list(v) if isinstance(v, list) else v for k, v in parsed.summary.items()},
            rank=(len(self._resolution_order) - order) * RESOLUTION_WEIGHT + parsed.rtn_rank,
            rtn_rank=parsed.rtn_rank,
            resolution=parsed.resolution,
            is_pack=parsed.is_pack,
            seasons=parsed.seasons,
            episodes=parsed.episodes,
            size_bytes=candidate.size_bytes,
            seeders=candidate.seeders,
            source=candidate.source,
            cached_hint=candidate.cached_hint,
            title_ratio=ratio,
            fits=reason is None,
            reject_reason=reason,
        )

    def _parse_uncached(self, title: str) -> _Parsed:
        try:
            data = parse(title)
            fetch, failed_keys = check_fetch(data, self._settings, True)
            raw_rank = int(get_rank(data, self._settings, self._model))
        except Exception:  # parsett on untrusted text: a bad title is a rejection, not a crash
            log.debug("cannot parse %r", title, exc_info=True, extra={"action": "rank_parse"})
            return _UNPARSEABLE
        limit = RESOLUTION_WEIGHT // 2 - 1
        rtn_rank = max(-limit, min(limit, raw_rank))
        failed: str | None = None
        if not fetch:
            failed = "profile:" + ",".join(sorted(str(key) for key in failed_keys))
        elif data.trash and data.quality not in _TRASH_QUALITIES:
            failed = "trash"
        elif "DV" in data.hdr and not _HDR_FALLBACKS.intersection(data.hdr):
            failed = None if self.profile.allow_dolby_vision_only else "dolby_vision_only"
        elif rtn_rank < self.profile.min_rank:
            failed = "rank_too_low"
        year = data.year
        return _Parsed(
            # A slim JSON dump, not the pydantic model: a quarter of the memory per entry.
            summary=data.model_dump(
                mode="json", exclude_defaults=True, exclude={"raw_title", "normalized_title"}
            ),
            title=str(data.parsed_title or ""),
            year=int(year) if isinstance(year, int) else None,
            resolution=_RESOLUTION_BUCKET.get(str(data.resolution).lower(), "unknown"),
            seasons=tuple(int(s) for s in data.seasons),
            episodes=tuple(int(e) for e in data.episodes),
            complete=bool(data.complete),
            rtn_rank=rtn_rank,
            failed=failed,
        )

    def _title_ratio(self, target: Target, parsed_title: str) -> float:
        if not parsed_title:
            return 0.0
        try:
            ratio = get_lev_ratio(
                target.title,
                parsed_title,
                self.profile.title_similarity,
                {"aliases": list(target.aliases)},
            )
        except ValueError:  # RTN refuses titles that normalise to nothing
            return 0.0
        return float(ratio)

    def _size_reason(self, target: Target, parsed: _Parsed, size: int | None) -> str | None:
        if size is None:
            return None
        profile = self.profile
        count: int | None
        if target.kind == "movie":
            low, high, count = profile.movie_min_size_mb, profile.movie_max_size_gb, 1
        else:
            low, high = profile.episode_min_size_mb, profile.episode_max_size_gb
            count = _episodes_covered(target, parsed)
        if count is None:  # a multi-season pack: only its whole size can be too small
            return "size_too_small" if size < low * _MB else None
        per_episode = size / count
        if per_episode < low * _MB:
            return "size_too_small"
        if high > 0 and per_episode > high * _GB:
            return "size_too_large"
        return None

    def _seeders_reason(self, candidate: Candidate) -> str | None:
        minimum = self.profile.min_seeders
        if minimum <= 0 or candidate.cached_hint or candidate.seeders is None:
            return None
        return "too_few_seeders" if candidate.seeders < minimum else None


def summary_is_pack(parsed: Mapping[str, Any]) -> bool:
    """Whether a stored ``RankedRelease.parsed`` describes a pack (as ``RankedRelease.is_pack``)."""
    seasons, episodes = parsed.get("seasons") or [], parsed.get("episodes") or []
    if len(episodes) > 1 or len(seasons) > 1:
        return True
    return not episodes and (bool(seasons) or bool(parsed.get("complete")))


def _fit_reason(target: Target, parsed: _Parsed) -> str | None:
    match target.kind:
        case "movie":
            return _movie_fit(target, parsed)
        case "episode" | "season":
            return _show_fit(target, parsed)
        case _:
            assert_never(target.kind)


def _movie_fit(target: Target, parsed: _Parsed) -> str | None:
    if parsed.seasons or parsed.episodes:
        return "not_a_movie"
    if target.year is not None and parsed.year is not None and abs(parsed.year - target.year) > 1:
        return "wrong_year"
    return None


def _show_fit(target: Target, parsed: _Parsed) -> str | None:
    if target.year is not None and parsed.year is not None and parsed.year < target.year - 1:
        return "wrong_year"  # older than the show itself: another show of the same name
    seasons, episodes = parsed.seasons, parsed.episodes
    if not seasons and not episodes:
        return None if parsed.complete else "no_season"
    if not seasons:
        # Bare episode numbers ("Show - 05") only say something about a first season.
        if target.season != 1:
            return "no_season"
        seasons = (1,)
    if target.season not in seasons:
        return "wrong_season"
    if target.kind == "episode":
        return None if not episodes or target.episode in episodes else "wrong_episode"
    if not episodes:
        return None
    if target.episode_count is not None and set(range(1, target.episode_count + 1)) <= set(
        episodes
    ):
        return None
    return "partial_season"


def _episodes_covered(target: Target, parsed: _Parsed) -> int | None:
    if parsed.episodes:
        return len(parsed.episodes)
    if len(parsed.seasons) == 1:  # a season pack
        return target.episode_count
    return None


def _merged(candidates: Sequence[Candidate]) -> list[Candidate]:
    """One candidate per infohash (case-insensitive): cached if any source said so."""
    by_hash: dict[str, Candidate] = {}
    for candidate in candidates:
        key = candidate.infohash.lower()
        seen = by_hash.get(key)
        if seen is None:
            by_hash[key] = candidate
            continue
        seeders = [s for s in (seen.seeders, candidate.seeders) if s is not None]
        by_hash[key] = Candidate(
            infohash=seen.infohash,
            raw_title=seen.raw_title,
            size_bytes=seen.size_bytes if seen.size_bytes is not None else candidate.size_bytes,
            seeders=max(seeders) if seeders else None,
            source=seen.source,
            cached_hint=seen.cached_hint or candidate.cached_hint,
        )
    return list(by_hash.values())


def _ordered(assessed: list[RankedRelease]) -> list[RankedRelease]:
    return sorted(
        assessed,
        key=lambda r: (
            r.fits,
            r.rank,
            r.cached_hint,
            -1 if r.seeders is None else r.seeders,
            r.infohash,
        ),
        reverse=True,
    )


def _rejected(candidate: Candidate, reason: str) -> RankedRelease:
    return RankedRelease(
        infohash=candidate.infohash,
        raw_title=candidate.raw_title,
        parsed={},
        rank=0,
        rtn_rank=0,
        resolution="unknown",
        is_pack=False,
        seasons=(),
        episodes=(),
        size_bytes=candidate.size_bytes,
        seeders=candidate.seeders,
        source=candidate.source,
        cached_hint=candidate.cached_hint,
        title_ratio=0.0,
        fits=False,
        reject_reason=reason,
    )


def _rtn_settings(profile: config.RankingSection) -> Any:
    """RTN's SettingsModel for a profile; what the profile does not set keeps RTN's defaults."""
    wanted = set(profile.resolutions)
    base = DefaultRanking()
    count = len(profile.preferred_codecs)
    quality = {
        codec: {
            "fetch": True,
            "use_custom_rank": True,
            "rank": int(getattr(base, codec)) + PREFERRED_CODEC_BONUS * (count - index),
        }
        for index, codec in enumerate(profile.preferred_codecs)
    }
    trash = {
        key: {"fetch": name not in profile.exclude_qualities} for name, key in _TRASH_KEYS.items()
    }
    # Dolby Vision is judged here (hybrids with an HDR fallback are fine), not by RTN.
    hdr = {"dolby_vision": {"fetch": True}}
    return SettingsModel(
        name="riven_async",
        exclude=list(profile.exclude_terms),
        preferred=list(profile.preferred_terms),
        resolutions=ResolutionConfig(
            r2160p="2160p" in wanted,
            r1080p="1080p" in wanted,
            r720p="720p" in wanted,
            r480p="480p" in wanted,
            r360p="360p" in wanted,
            unknown="unknown" in wanted,
        ),
        # remove_all_trash would also drop CAM/TS/... that the profile chose to allow;
        # the other trash flags are applied in _parse_uncached.
        options=OptionsConfig(
            title_similarity=profile.title_similarity,
            remove_all_trash=False,
            remove_ranks_under=profile.min_rank,
        ),
        languages=LanguagesConfig(
            exclude=list(profile.exclude_languages),
            preferred=list(profile.preferred_languages),
        ),
        custom_ranks=CustomRanksConfig.model_validate(
            {"quality": quality, "trash": trash, "hdr": hdr}
        ),
    )

"""The synthetic catalog every sim serves: shows, movies and their releases, from one seed."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from riven_async.sim import names
from riven_async.sim.infohash import HashCodec, Scope
from riven_async.sim.movies import IMDB_BASE, MOVIE_BASE_TMDB, Movie, build_movie
from riven_async.sim.releases import Release, ReleaseFactory
from riven_async.sim.shows import (
    TV_BASE_TMDB,
    TVDB_BASE,
    TVDB_STRIDE,
    TVMAZE_BASE,
    Show,
    build_show,
)

_TITLE_STRIDE = 7919  # prime, coprime with the title space: spreads titles over patterns


class Catalog:
    """``shows`` shows and ``movies`` movies generated from ``seed`` around ``origin``.

    Shows and movies are built on first use and kept; episodes and releases are computed on
    demand, so a 10,000-show catalog costs only what is asked of it. Identifiers are
    arithmetic in the index, so every cross-id lookup is O(1) without an index in memory.
    """

    def __init__(
        self,
        seed: int = 1,
        shows: int = 100,
        movies: int = 100,
        origin: datetime | None = None,
        infringing_ratio: float = 0.02,
    ) -> None:
        if shows < 0 or movies < 0:
            raise ValueError("shows and movies must not be negative")
        self.seed = seed
        self.show_count = shows
        self.movie_count = movies
        self.origin = (origin or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        self.infringing_ratio = infringing_ratio
        self._origin_s = int(self.origin.timestamp())
        self.codec = HashCodec(seed)
        self.releases = ReleaseFactory(seed, self.codec)
        self._title_offset = int(self.codec.uniform("titles") * names.title_space())
        self._shows: dict[int, Show] = {}
        self._movies: dict[int, Movie] = {}
        self._title_index: list[tuple[frozenset[str], str, bool, int]] | None = None

    # -- titles and records -------------------------------------------------------------

    def _title(self, ordinal: int) -> str:
        space = names.title_space()
        lap, rest = divmod(ordinal, space)
        return names.title_for((rest * _TITLE_STRIDE + self._title_offset) % space + lap * space)

    def show_title(self, index: int) -> str:
        return self._title(2 * index)

    def movie_title(self, index: int) -> str:
        return self._title(2 * index + 1)

    def show(self, index: int) -> Show:
        if not 0 <= index < self.show_count:
            raise IndexError(f"no show {index} in a catalog of {self.show_count}")
        found = self._shows.get(index)
        if found is None:
            found = build_show(self.seed, index, self.show_title(index), self._origin_s)
            self._shows[index] = found
        return found

    def movie(self, index: int) -> Movie:
        if not 0 <= index < self.movie_count:
            raise IndexError(f"no movie {index} in a catalog of {self.movie_count}")
        found = self._movies.get(index)
        if found is None:
            found = build_movie(self.seed, index, self.movie_title(index), self._origin_s)
            self._movies[index] = found
        return found

    def shows(self) -> Iterator[Show]:
        return (self.show(i) for i in range(self.show_count))

    def movies(self) -> Iterator[Movie]:
        return (self.movie(i) for i in range(self.movie_count))

    def find_show(self, predicate: Callable[[Show], bool]) -> Show | None:
        """The first show (by index) matching ``predicate``: handy for tests."""
        return next((show for show in self.shows() if predicate(show)), None)

    def find_movie(self, predicate: Callable[[Movie], bool]) -> Movie | None:
        return next((movie for movie in self.movies() if predicate(movie)), None)

    # -- cross-id lookups ---------------------------------------------------------------

    def show_by_tmdb(self, tmdb_id: int) -> Show | None:
        return self._show_at(tmdb_id - TV_BASE_TMDB)

    def show_by_tvmaze(self, tvmaze_id: int) -> Show | None:
        return self._show_at(tvmaze_id - TVMAZE_BASE)

    def show_by_tvdb(self, tvdb_id: int) -> Show | None:
        offset = tvdb_id - TVDB_BASE
        return self._show_at(offset // TVDB_STRIDE) if offset % TVDB_STRIDE == 0 else None

    def show_by_imdb(self, imdb_id: str) -> Show | None:
        number = _imdb_number(imdb_id)
        if number is None or (number - IMDB_BASE) % 2:
            return None
        return self._show_at((number - IMDB_BASE) // 2)

    def movie_by_tmdb(self, tmdb_id: int) -> Movie | None:
        index = tmdb_id - MOVIE_BASE_TMDB
        return self.movie(index) if 0 <= index < self.movie_count else None

    def movie_by_imdb(self, imdb_id: str) -> Movie | None:
        number = _imdb_number(imdb_id)
        if number is None or (number - IMDB_BASE) % 2 != 1:
            return None
        index = (number - IMDB_BASE) // 2
        return self.movie(index) if 0 <= index < self.movie_count else None

    def _show_at(self, index: int) -> Show | None:
        return self.show(index) if 0 <= index < self.show_count else None

    # -- search and change feeds --------------------------------------------------------

    def search(self, query: str, movies: bool) -> list[int]:
        """Indexes of shows (or movies) whose title holds every word of ``query``."""
        words = _normalise(query).split()
        if not words:
            return []
        if self._title_index is None:
            index = [(self.show_title(i), False, i) for i in range(self.show_count)]
            index += [(self.movie_title(i), True, i) for i in range(self.movie_count)]
            self._title_index = [
                (frozenset(_normalise(t).split()), " ".join(_normalise(t).split()), m, i)
                for t, m, i in index
            ]
        wanted = " ".join(words)
        hits = [
            (joined != wanted, index)
            for title_words, joined, is_movie, index in self._title_index
            if is_movie is movies and title_words.issuperset(words)
        ]
        return [index for _, index in sorted(hits)]

    def materialize(self) -> None:
        """Build every show and movie now (a start-up cost instead of a stall mid-run)."""
        for _ in self.shows():
            pass
        for _ in self.movies():
            pass

    def changed_shows(self, start: datetime, end: datetime) -> list[Show]:
        """Shows whose data changed in ``[start, end]`` (announcements, airings, revivals)."""
        lo, hi = start.timestamp(), end.timestamp()
        out = []
        for show in self.shows():
            changes = show.change_epochs()
            i = bisect_left(changes, lo)
            if i < len(changes) and changes[i] <= hi:
                out.append(show)
        return out

    def changed_movies(self, start: datetime, end: datetime) -> list[Movie]:
        lo, hi = start.timestamp(), end.timestamp()
        return [m for m in self.movies() if any(lo <= t <= hi for t in m.change_epochs())]

    # -- releases -----------------------------------------------------------------------

    def episode_releases(
        self, show: Show, season: int, episode: int, now: datetime
    ) -> list[Release]:
        """Published releases holding ``SxxEyy``: single episodes, season and series packs."""
        plan = show.season(season)
        if plan is None or not 1 <= episode <= len(plan.air_epochs) or season == 0:
            return []
        found = self.releases.episodes(show, plan, episode)
        found += self.releases.season(show, plan)
        found += self.releases.series(show)
        return _published(found, now, lambda r: (season, episode) in r.episodes)

    def season_releases(self, show: Show, season: int, now: datetime) -> list[Release]:
        """Published packs of a season, then its episodes' releases."""
        plan = show.season(season)
        if plan is None or season == 0:
            return []
        found = self.releases.season(show, plan) + self.releases.series(show)
        for number in range(1, len(plan.air_epochs) + 1):
            found += self.releases.episodes(show, plan, number)
        return _published(found, now, lambda r: any(s == season for s, _ in r.episodes))

    def show_releases(self, show: Show, now: datetime) -> list[Release]:
        found = self.releases.series(show)
        for plan in show.seasons:
            if plan.number > 0:
                found += self.releases.season(show, plan)
        return _published(found, now, lambda r: True)

    def movie_releases(self, movie: Movie, now: datetime) -> list[Release]:
        return _published(self.releases.movie(movie), now, lambda r: True)

    def release(self, infohash_hex: str) -> Release | None:
        """The release behind an infohash (published or not), or None for a foreign hash."""
        key = self.codec.decode(infohash_hex.lower())
        if key is None:
            return None
        candidates: list[Release] = []
        if key.scope is Scope.MOVIE:
            if key.title_index < self.movie_count:
                candidates = self.releases.movie(self.movie(key.title_index))
        elif key.title_index < self.show_count:
            show = self.show(key.title_index)
            plan = show.season(key.season)
            if key.scope is Scope.SERIES:
                candidates = self.releases.series(show)
            elif plan is not None and key.scope is Scope.SEASON:
                candidates = self.releases.season(show, plan)
            elif plan is not None and 1 <= key.episode <= len(plan.air_epochs):
                candidates = self.releases.episodes(show, plan, key.episode)
        return candidates[key.variant] if key.variant < len(candidates) else None

    def cached_on(
        self, service: str, infohash_hex: str, now: datetime, release: Release | None = None
    ) -> bool:
        """Whether ``service`` already holds this torrent at ``now`` (catalog's own view).

        Pass ``release`` when it is at hand: it saves regenerating it from the hash.
        """
        found = release if release is not None else self.release(infohash_hex)
        if found is None:
            return False
        since = self.releases.cached_from(found, service)
        return since is not None and since <= now.timestamp()

    def blocked(self, infohash_hex: str) -> bool:
        """Hashes Real-Debrid refuses with 451 ``infringing_file`` (``infringing_ratio``)."""
        return self.codec.uniform("451", infohash_hex.lower()) < self.infringing_ratio


def _published(
    found: list[Release], now: datetime, keep: Callable[[Release], bool]
) -> list[Release]:
    now_s = now.timestamp()
    return [r for r in found if r.published_s <= now_s and keep(r)]


def _imdb_number(imdb_id: str) -> int | None:
    digits = imdb_id.removeprefix("tt")
    return int(digits) if digits.isdigit() else None


def _normalise(text: str) -> str:
    return "".join(ch if ch.isalnum() else " " for ch in text.lower())

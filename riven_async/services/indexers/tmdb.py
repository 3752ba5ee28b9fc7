"""TMDB v3 indexer: resolve ids, index shows (changed seasons only) and movies, change feeds.

Everything goes through the project's ``HttpClient`` (limits, retries, 429 pauses, the
cache); this module only decides what to ask and turns the answers into pure records.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Collection, Coroutine, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Final, Literal, TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    NonNegativeInt,
    ValidationError as PydanticValidationError,
)

from riven_async.core.clock import Clock, SystemClock
from riven_async.core.http import HttpClient, Response
from riven_async.domain import media
from riven_async.domain.intents import ExternalIds
from riven_async.errors import UpstreamPayloadError
from riven_async.services.indexers import status as show_statuses
from riven_async.services.indexers.records import (
    IndexedEpisode,
    IndexedMovie,
    IndexedSeason,
    IndexedShow,
    MetadataNotFound,
    ReleaseBasis,
    ReleaseDates,
    Resolved,
    SearchHit,
    SeasonFingerprint,
    SeasonSummary,
    TvmazeShowInfo,
)
from riven_async.services.indexers.tvmaze import AirTimeRule, TvmazeClient, find_airings

log = logging.getLogger(__name__)

SERVICE = "tmdb"
DAY_S = 86_400.0
# Episodes that aired this recently may still change (title, runtime, a moved date).
DEFAULT_SETTLE_S = 7 * DAY_S
# No digital or physical release listed: assume one this long after the theatrical date.
DEFAULT_RELEASE_ESTIMATE_S = 90 * DAY_S
# TMDB serves at most 14 days of changes per request; the end date counts whole.
CHANGES_SPAN_DAYS = 14
MAX_PAGE = 500
# release_dates types: 1 premiere, 2 limited, 3 theatrical, 4 digital, 5 physical, 6 TV.
_RELEASE_TYPES: Final = {
    1: "premiere",
    2: "theatrical_limited",
    3: "theatrical",
    4: "digital",
    5: "physical",
    6: "tv",
}
_IMDB_ID = re.compile(r"tt\d{5,12}")

KindLike = media.MediaKind | Literal["movie", "show"]
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


# -- TMDB's bodies (only the fields we read) ---------------------------------------------


def _blank_is_none(value: Any) -> Any:
    return None if value == "" else value


def _zero_is_none(value: Any) -> Any:
    return None if value == 0 else value


_Date = Annotated[date | None, BeforeValidator(_blank_is_none)]
_Text = Annotated[str | None, BeforeValidator(_blank_is_none)]
_Id = Annotated[int | None, BeforeValidator(_zero_is_none)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Episode(_Model):
    id: int | None = None
    name: _Text = None
    air_date: _Date = None
    episode_number: NonNegativeInt
    season_number: NonNegativeInt
    episode_type: _Text = None
    runtime: int | None = None


class _SeasonEntry(_Model):
    season_number: NonNegativeInt
    episode_count: int = 0
    air_date: _Date = None
    name: _Text = None


class _ExternalIds(_Model):
    imdb_id: _Text = None
    tvdb_id: _Id = None


class _Network(_Model):
    origin_country: _Text = None


class _TvDetails(_Model):
    id: int
    name: str
    first_air_date: _Date = None
    status: _Text = None
    in_production: bool = False
    seasons: tuple[_SeasonEntry, ...] = ()
    next_episode_to_air: _Episode | None = None
    last_episode_to_air: _Episode | None = None
    external_ids: _ExternalIds | None = None
    networks: tuple[_Network, ...] = ()
    origin_country: tuple[str, ...] = ()


class _SeasonDetails(_Model):
    season_number: NonNegativeInt
    name: _Text = None
    air_date: _Date = None
    episodes: tuple[_Episode, ...] = ()


class _ReleaseDate(_Model):
    release_date: datetime
    type: int


class _CountryReleases(_Model):
    iso_3166_1: str
    release_dates: tuple[_ReleaseDate, ...] = ()


class _ReleaseDates(_Model):
    results: tuple[_CountryReleases, ...] = ()


class _MovieDetails(_Model):
    id: int
    title: str
    release_date: _Date = None
    status: _Text = None
    runtime: int | None = None
    imdb_id: _Text = None
    external_ids: _ExternalIds | None = None
    release_dates: _ReleaseDates | None = None


class _ListItem(_Model):
    id: int
    name: _Text = None
    title: _Text = None
    original_name: _Text = None
    original_title: _Text = None
    first_air_date: _Date = None
    release_date: _Date = None


class _Find(_Model):
    movie_results: tuple[_ListItem, ...] = ()
    tv_results: tuple[_ListItem, ...] = ()


class _Page(_Model):
    page: int = 1
    total_pages: int = 1
    results: tuple[_ListItem, ...] = ()


class _ChangedItem(_Model):
    id: int


class _ChangesPage(_Model):
    page: int = 1
    total_pages: int = 1
    results: tuple[_ChangedItem, ...] = ()


def _parse(model: type[M], response: Response) -> M:
    try:
        return model.model_validate_json(response.body)
    except PydanticValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        reason = f"unexpected {model.__name__.lstrip('_')} body: {where}: {first['msg']}"
        raise UpstreamPayloadError(
            response.service, response.status, response.url, reason, method=response.method
        ) from None


# -- pure rules ---------------------------------------------------------------------------


def plan_season_fetches(
    listed: Iterable[SeasonSummary],
    known: Mapping[int, str] | None,
    *,
    always: Collection[int] = (),
    today: date,
    settle_days: int = 7,
) -> tuple[int, ...]:
    """The seasons to fetch: all when nothing is known, else the new and changed ones.

    A season is fetched when it is in ``always`` (the next/last episode's season, hints;
    even when the details do not list it yet), is new or has no fingerprint of ours, its
    episode count or air date differs from the fingerprint, some of its episodes had no
    date, or its last episode airs after (or aired within ``settle_days`` of) ``today``.
    Seasons listed with no episodes are not fetched unless asked for: nothing to read yet.
    """
    seasons = tuple(listed)
    wanted: list[int] = []
    for season in seasons:
        if season.number in always:
            wanted.append(season.number)
        elif season.episode_count <= 0:
            continue
        elif known is None or _changed(season, known.get(season.number), today, settle_days):
            wanted.append(season.number)
    unlisted = set(always).difference(s.number for s in seasons)
    return (*wanted, *sorted(unlisted))


def _changed(season: SeasonSummary, stored: str | None, today: date, settle_days: int) -> bool:
    seen = SeasonFingerprint.parse(stored)
    if seen is None or seen.pending:
        return True
    if (seen.episode_count, seen.air_date) != (season.episode_count, season.air_date):
        return True
    return seen.last_air_date is None or seen.last_air_date >= today - timedelta(settle_days)


def best_match(hits: Sequence[SearchHit], title: str, year: int | None) -> SearchHit | None:
    """The hit whose title is ``title`` (same year, then a year off, then any), else the first."""
    wanted = _normalise(title)
    exact = [
        h for h in hits if wanted in (_normalise(h.title), _normalise(h.original_title or h.title))
    ]
    groups: list[list[SearchHit]] = []
    if year is not None:
        groups.append([h for h in exact if h.year == year])
        groups.append([h for h in exact if h.year is not None and abs(h.year - year) == 1])
    groups.append(exact)
    if year is not None:
        groups.append([h for h in hits if h.year == year])
    groups.append(list(hits))
    return next((group[0] for group in groups if group), None)


def _release_dates(body: _ReleaseDates | None, regions: Collection[str] = ()) -> ReleaseDates:
    """The earliest date of each release type, over ``regions`` (all when empty)."""
    earliest: dict[str, datetime] = {}
    wanted = {r.upper() for r in regions}
    for country in body.results if body is not None else ():
        if wanted and country.iso_3166_1.upper() not in wanted:
            continue
        for entry in country.release_dates:
            name = _RELEASE_TYPES.get(entry.type)
            if name is None:
                continue
            at = entry.release_date.astimezone(UTC)
            if name not in earliest or at < earliest[name]:
                earliest[name] = at
    return ReleaseDates(**earliest)


def released_at(
    releases: ReleaseDates, release_date: date | None, estimate_s: float
) -> tuple[datetime | None, ReleaseBasis | None]:
    """When a movie can be found: its digital or physical release, else an estimate."""
    home = [
        (at, basis)
        for at, basis in (
            (releases.digital, ReleaseBasis.DIGITAL),
            (releases.physical, ReleaseBasis.PHYSICAL),
        )
        if at is not None
    ]
    if home:
        return min(home, key=lambda pair: pair[0])
    cinema = releases.theatrical or releases.theatrical_limited
    if cinema is None and release_date is not None:
        cinema = datetime.combine(release_date, time(), UTC)
    if cinema is None:
        return None, None
    return cinema + timedelta(seconds=estimate_s), ReleaseBasis.ESTIMATE


def _normalise(text: str) -> str:
    return " ".join("".join(ch if ch.isalnum() else " " for ch in text.casefold()).split())


def _digest(*parts: object) -> str:
    return hashlib.blake2b(repr(parts).encode(), digest_size=12).hexdigest()


def _day_spans(first: date, last: date, span_days: int) -> Iterator[tuple[date, date]]:
    start = first
    while start <= last:
        end = min(last, start + timedelta(days=span_days - 1))
        yield start, end
        start = end + timedelta(days=1)


def _kind(kind: KindLike | None) -> media.MediaKind | None:
    if kind is None:
        return None
    found = media.MediaKind(kind)
    if not found.is_root:
        raise ValueError(f"only movies and shows can be resolved, not {found}")
    return found


async def _all(coros: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    """Run concurrently; on the first failure cancel the rest and raise it."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


# -- the indexer --------------------------------------------------------------------------


class TmdbIndexer:
    """Resolve, index and watch shows and movies on TMDB; exact air times from TVMaze.

    ``fresh=True`` on ``show``/``movie`` bypasses the cache (scheduler re-checks); without
    it details and seasons may come from the cache (their TTLs are in ``[upstreams.tmdb]``).
    ``settle_s`` (whole days: TMDB dates are days) is how long after airing an episode's
    season is still re-read; ``release_estimate_s`` dates a movie's home release from its
    cinema release when TMDB lists neither a digital nor a physical one.
    """

    def __init__(
        self,
        http: HttpClient,
        *,
        tvmaze: TvmazeClient | None = None,
        clock: Clock | None = None,
        air_times: AirTimeRule | None = None,
        hiatus_after_s: float = show_statuses.DEFAULT_HIATUS_AFTER_S,
        settle_s: float = DEFAULT_SETTLE_S,
        include_specials: bool = False,
        language: str | None = "en-US",
        release_regions: Collection[str] = (),
        release_estimate_s: float = DEFAULT_RELEASE_ESTIMATE_S,
    ) -> None:
        if hiatus_after_s <= 0 or settle_s < 0 or release_estimate_s < 0:
            raise ValueError("hiatus_after_s must be positive; settle_s, release_estimate_s >= 0")
        self._http = http
        self._tvmaze = tvmaze
        self._clock = clock or SystemClock()
        self._air = air_times or AirTimeRule()
        self._hiatus_after_s = hiatus_after_s
        self._settle_days = max(0, round(settle_s / DAY_S))
        self._include_specials = include_specials
        self._language = language
        self._regions = frozenset(r.upper() for r in release_regions)
        self._release_estimate_s = release_estimate_s

    # -- resolving ------------------------------------------------------------------------

    async def resolve(
        self,
        ids: ExternalIds,
        kind: KindLike | None = None,
        *,
        title: str | None = None,
        year: int | None = None,
    ) -> Resolved:
        """The TMDB movie or show these ids (or this title) name; ``MetadataNotFound`` if none.

        A TMDB id with a kind costs nothing; IMDb and TVDB ids cost one ``/find`` each, tried
        in that order; a TVMaze id goes through TVMaze's externals; a title is searched last.
        """
        wanted = _kind(kind)
        if ids.tmdb is not None and wanted is not None:
            return Resolved(wanted, media.TmdbId(ids.tmdb))
        found = await self._resolve_external(ids, wanted)
        if found is None and title:
            found = await self._resolve_title(title, year, wanted)
        if found is not None:
            return found
        if ids.tmdb is not None:
            raise ValueError(f"tmdb id {ids.tmdb} names a movie or a show: give the kind")
        what = ", ".join(f"{k} {v}" for k, v in ids.as_dict().items()) or f"title {title!r}"
        raise MetadataNotFound(SERVICE, what)

    async def _resolve_external(
        self, ids: ExternalIds, wanted: media.MediaKind | None
    ) -> Resolved | None:
        imdb = ids.imdb
        if imdb is not None and _IMDB_ID.fullmatch(imdb):
            found = await self._find(imdb, "imdb_id", wanted)
            if found is not None:
                return found
        show_ok = wanted is not media.MediaKind.MOVIE
        if ids.tvdb is not None and show_ok:
            found = await self._find(str(ids.tvdb), "tvdb_id", media.MediaKind.SHOW)
            if found is not None:
                return found
        if ids.tvmaze is not None and show_ok and self._tvmaze is not None:
            try:
                maze = await self._tvmaze.show(ids.tvmaze)
            except MetadataNotFound:
                return None
            if maze.tvdb_id is not None or maze.imdb_id is not None:
                found_ids = ExternalIds(tvdb=maze.tvdb_id, imdb=maze.imdb_id)
                return await self._resolve_external(found_ids, media.MediaKind.SHOW)
        return None

    async def _find(
        self, external_id: str, source: str, wanted: media.MediaKind | None
    ) -> Resolved | None:
        response = await self._http.get(
            f"/find/{quote(external_id, safe='')}",
            params=self._params(external_source=source),
            cache_namespace="find",
        )
        body = _parse(_Find, response)
        shows = [Resolved(media.MediaKind.SHOW, media.TmdbId(r.id)) for r in body.tv_results]
        movies = [Resolved(media.MediaKind.MOVIE, media.TmdbId(r.id)) for r in body.movie_results]
        ordered = movies + shows if wanted is media.MediaKind.MOVIE else shows + movies
        if ordered and wanted is not None and ordered[0].kind is not wanted:
            log.warning(
                "%s %s is a %s on tmdb, not a %s",
                source,
                external_id,
                ordered[0].kind,
                wanted,
                extra={"action": "tmdb_resolve", "external_id": external_id},
            )
        return ordered[0] if ordered else None

    async def _resolve_title(
        self, title: str, year: int | None, wanted: media.MediaKind | None
    ) -> Resolved | None:
        kinds = [wanted] if wanted is not None else [media.MediaKind.SHOW, media.MediaKind.MOVIE]
        for kind in kinds:
            search = self.search_shows if kind is media.MediaKind.SHOW else self.search_movies
            hit = best_match(await search(title, year), title, year)
            if hit is not None:
                return Resolved(hit.kind, hit.tmdb_id)
        return None

    async def search_shows(self, title: str, year: int | None = None) -> tuple[SearchHit, ...]:
        """``/search/tv`` by title (and first-air year): the first page of hits."""
        params = self._params(query=title, page=1, include_adult=False)
        if year is not None:
            params["first_air_date_year"] = year
        body = _parse(_Page, await self._http.get("/search/tv", params=params))
        return tuple(
            SearchHit(
                kind=media.MediaKind.SHOW,
                tmdb_id=media.TmdbId(r.id),
                title=r.name or r.original_name or "",
                year=r.first_air_date.year if r.first_air_date else None,
                original_title=r.original_name,
            )
            for r in body.results
        )

    async def search_movies(self, title: str, year: int | None = None) -> tuple[SearchHit, ...]:
        """``/search/movie`` by title (and year): the first page of hits."""
        params = self._params(query=title, page=1, include_adult=False)
        if year is not None:
            params["year"] = year
        body = _parse(_Page, await self._http.get("/search/movie", params=params))
        return tuple(
            SearchHit(
                kind=media.MediaKind.MOVIE,
                tmdb_id=media.TmdbId(r.id),
                title=r.title or r.original_title or "",
                year=r.release_date.year if r.release_date else None,
                original_title=r.original_title,
            )
            for r in body.results
        )

    # -- shows ----------------------------------------------------------------------------

    async def show(
        self,
        tmdb_id: int,
        *,
        known_seasons: Mapping[int, str] | None = None,
        seasons: Iterable[int] = (),
        fresh: bool = False,
        tvmaze_id: int | None = None,
        only_seasons: Collection[int] | None = None,
    ) -> IndexedShow:
        """The show with the seasons worth fetching, and exact air times where TVMaze has them.

        ``known_seasons`` maps season number to the fingerprint stored from the last index
        (None: first index, fetch everything); ``seasons`` forces seasons (a webhook's
        hint); ``only_seasons`` (a request for some seasons) leaves every other season
        unfetched. TVMaze is asked only when some season is fetched, by ``tvmaze_id`` if
        known.
        """
        details = await self._tv_details(tmdb_id, fresh)
        now = self._clock.now()
        listed = tuple(
            SeasonSummary(s.season_number, s.episode_count, s.air_date) for s in details.seasons
        )
        always = self._always_fetch(details, seasons, now.date())
        if only_seasons is not None:
            always.intersection_update(only_seasons)
        plan = plan_season_fetches(
            (
                s
                for s in listed
                if (s.number > 0 or self._include_specials)
                and (only_seasons is None or s.number in only_seasons)
            ),
            known_seasons,
            always=always,
            today=now.date(),
            settle_days=self._settle_days,
        )
        ids = _show_ids(details, tvmaze_id)
        maze_task = (
            asyncio.ensure_future(find_airings(self._tvmaze, ids, fresh=fresh)) if plan else None
        )
        try:
            bodies = await _all([self._season(tmdb_id, n, fresh) for n in plan])
            maze = await maze_task if maze_task is not None else None
        finally:
            if maze_task is not None and not maze_task.done():
                maze_task.cancel()
                await asyncio.gather(maze_task, return_exceptions=True)
        indexed = self._build_show(details, listed, [b for b in bodies if b], maze, ids, now)
        log.info(
            "indexed show %d %r: %s, fetched seasons %s of %d",
            tmdb_id,
            indexed.title,
            indexed.status,
            list(indexed.fetched_seasons),
            len(listed),
            extra={
                "action": "index_show",
                "tmdb_id": tmdb_id,
                "status": str(indexed.status),
                "fetched": list(indexed.fetched_seasons),
                "tvmaze": maze is not None,
            },
        )
        return indexed

    def _always_fetch(self, details: _TvDetails, forced: Iterable[int], today: date) -> set[int]:
        always = set(forced)
        upcoming, last = details.next_episode_to_air, details.last_episode_to_air
        if upcoming is not None:
            always.add(upcoming.season_number)
        settled = today - timedelta(days=self._settle_days)
        if last is not None and (last.air_date is None or last.air_date >= settled):
            always.add(last.season_number)
        if not self._include_specials:
            always.discard(0)
        return always

    async def _tv_details(self, tmdb_id: int, fresh: bool) -> _TvDetails:
        response = await self._http.get(
            f"/tv/{tmdb_id}",
            params=self._params(append_to_response="external_ids"),
            cache_namespace="tv",
            bypass_cache=fresh,
            accept=(404,),
        )
        if response.status == 404:
            raise MetadataNotFound(SERVICE, f"tv {tmdb_id}")
        return _parse(_TvDetails, response)

    async def _season(self, tmdb_id: int, number: int, fresh: bool) -> _SeasonDetails | None:
        response = await self._http.get(
            f"/tv/{tmdb_id}/season/{number}",
            params=self._params(),
            cache_namespace="season",
            bypass_cache=fresh,
            accept=(404,),
        )
        if response.status == 404:
            # Listed in the details but not served (TMDB lags between the two): next time.
            log.warning(
                "tmdb tv %d lists season %d but has no such season",
                tmdb_id,
                number,
                extra={"action": "index_show", "tmdb_id": tmdb_id, "season": number},
            )
            return None
        return _parse(_SeasonDetails, response)

    def _build_show(
        self,
        details: _TvDetails,
        listed: Sequence[SeasonSummary],
        bodies: Sequence[_SeasonDetails],
        maze: TvmazeShowInfo | None,
        ids: ExternalIds,
        now: datetime,
    ) -> IndexedShow:
        countries = [n.origin_country for n in details.networks if n.origin_country]
        zone = self._air.zone(maze, [*countries, *details.origin_country])
        episode = _EpisodeBuilder(self._air, maze, zone)
        counts = {s.number: s for s in listed}
        seasons = tuple(_season(body, counts.get(body.season_number), episode) for body in bodies)
        upcoming = episode(details.next_episode_to_air)
        last = episode(details.last_episode_to_air)
        next_air_at = upcoming.air_at if upcoming is not None else None
        last_air_at = last.air_at if last is not None else None
        if upcoming is not None and next_air_at is not None and next_air_at <= now and any(
            (s.number, e.number) == (upcoming.season, upcoming.number)
            for s in seasons for e in s.episodes
        ):
            # TMDB moves its next episode on by date, hours after the broadcast: aired by
            # its exact time and stored with its season, it is the last episode, not data
            # still missing (which would re-check it until TMDB's day turns).
            last_air_at = max(next_air_at, last_air_at or next_air_at)
            next_air_at = None
        if next_air_at is None:
            future = [e.air_at for s in seasons for e in s.episodes if e.air_at and e.air_at > now]
            next_air_at = min(future, default=None)
        status = show_statuses.show_status(
            details.status,
            next_announced=upcoming is not None,
            last_aired_at=last_air_at,
            now=now,
            hiatus_after_s=self._hiatus_after_s,
        )
        if maze is not None:
            ids = ExternalIds(tmdb=ids.tmdb, tvdb=ids.tvdb, imdb=ids.imdb, tvmaze=maze.tvmaze_id)
        fingerprint = _digest(
            details.status,
            details.in_production,
            _brief(details.next_episode_to_air),
            _brief(details.last_episode_to_air),
            tuple((s.number, s.episode_count, s.air_date) for s in listed),
        )
        return IndexedShow(
            ids=ids,
            title=details.name,
            year=details.first_air_date.year if details.first_air_date else None,
            tmdb_status=details.status,
            status=status,
            in_production=details.in_production,
            next_episode=upcoming,
            last_episode=last,
            next_air_at=next_air_at,
            last_air_at=last_air_at,
            air_timezone=zone.key if zone is not None else None,
            seasons=seasons,
            listed=tuple(listed),
            fingerprint=fingerprint,
            indexed_at=now,
        )

    # -- movies ---------------------------------------------------------------------------

    async def movie(self, tmdb_id: int, *, fresh: bool = False) -> IndexedMovie:
        """The movie with its ids and release dates (one call)."""
        response = await self._http.get(
            f"/movie/{tmdb_id}",
            params=self._params(append_to_response="external_ids,release_dates"),
            cache_namespace="movie",
            bypass_cache=fresh,
            accept=(404,),
        )
        if response.status == 404:
            raise MetadataNotFound(SERVICE, f"movie {tmdb_id}")
        body = _parse(_MovieDetails, response)
        releases = _release_dates(body.release_dates, self._regions)
        at, basis = released_at(releases, body.release_date, self._release_estimate_s)
        imdb = body.external_ids.imdb_id if body.external_ids else None
        first = body.release_date or (releases.theatrical.date() if releases.theatrical else None)
        movie = IndexedMovie(
            ids=ExternalIds(tmdb=body.id, imdb=imdb or body.imdb_id),
            title=body.title,
            year=first.year if first else None,
            tmdb_status=body.status,
            release_date=body.release_date,
            runtime_min=body.runtime or None,
            releases=releases,
            released_at=at,
            released_basis=basis,
            fingerprint=_digest(body.title, body.status, body.release_date, releases),
            indexed_at=self._clock.now(),
        )
        log.info(
            "indexed movie %d %r: %s, released %s (%s)",
            tmdb_id,
            movie.title,
            movie.tmdb_status,
            at.isoformat() if at else "unknown",
            basis,
            extra={"action": "index_movie", "tmdb_id": tmdb_id},
        )
        return movie

    # -- change feeds ---------------------------------------------------------------------

    async def changed_shows(
        self, start: datetime, end: datetime | None = None
    ) -> frozenset[media.TmdbId]:
        """Ids of shows changed from ``start`` to ``end`` (now): every page, 14 days per call.

        TMDB takes whole UTC days, so the result covers every day touched (a superset).
        """
        return await self._changes("/tv/changes", start, end)

    async def changed_movies(
        self, start: datetime, end: datetime | None = None
    ) -> frozenset[media.TmdbId]:
        """Ids of movies changed from ``start`` to ``end`` (now); see ``changed_shows``."""
        return await self._changes("/movie/changes", start, end)

    async def _changes(
        self, path: str, start: datetime, end: datetime | None
    ) -> frozenset[media.TmdbId]:
        until = end if end is not None else self._clock.now()
        if start.tzinfo is None or until.tzinfo is None:
            raise ValueError("start and end must be timezone-aware")
        if start > until:
            raise ValueError("start must not be after end")
        first, last = start.astimezone(UTC).date(), until.astimezone(UTC).date()
        found: set[media.TmdbId] = set()
        for span_start, span_end in _day_spans(first, last, CHANGES_SPAN_DAYS):
            dates = {"start_date": span_start.isoformat(), "end_date": span_end.isoformat()}
            head = await self._changes_page(path, dates, 1)
            pages = min(head.total_pages, MAX_PAGE)
            if head.total_pages > MAX_PAGE:
                log.warning(
                    "%s %s..%s has %d pages; TMDB serves %d, the rest is lost",
                    path,
                    span_start,
                    span_end,
                    head.total_pages,
                    MAX_PAGE,
                    extra={"action": "tmdb_changes", "path": path},
                )
            rest = await _all([self._changes_page(path, dates, p) for p in range(2, pages + 1)])
            found.update(media.TmdbId(r.id) for page in (head, *rest) for r in page.results)
        log.debug(
            "%s %s..%s: %d ids",
            path,
            first,
            last,
            len(found),
            extra={"action": "tmdb_changes", "path": path, "count": len(found)},
        )
        return frozenset(found)

    async def _changes_page(self, path: str, dates: Mapping[str, str], page: int) -> _ChangesPage:
        return _parse(_ChangesPage, await self._http.get(path, params={**dates, "page": page}))

    def _params(self, **extra: str | int | bool) -> dict[str, str | int | bool]:
        params: dict[str, str | int | bool] = {}
        if self._language:
            params["language"] = self._language
        params.update(extra)
        return params


def _show_ids(details: _TvDetails, tvmaze_id: int | None) -> ExternalIds:
    external = details.external_ids
    return ExternalIds(
        tmdb=details.id,
        tvdb=external.tvdb_id if external else None,
        imdb=external.imdb_id if external else None,
        tvmaze=tvmaze_id,
    )


def _brief(episode: _Episode | None) -> tuple[int, int, date | None] | None:
    if episode is None:
        return None
    return (episode.season_number, episode.episode_number, episode.air_date)


class _EpisodeBuilder:
    """Turns TMDB episodes into records with the best air time known for the show."""

    def __init__(
        self, rule: AirTimeRule, maze: TvmazeShowInfo | None, zone: ZoneInfo | None
    ) -> None:
        self._rule = rule
        self._airings = maze.airings_by_number() if maze is not None else {}
        self._slot = maze.schedule_time if maze is not None else None
        self._zone = zone

    def __call__(self, episode: _Episode | None) -> IndexedEpisode | None:
        if episode is None:
            return None
        airing = self._airings.get((episode.season_number, episode.episode_number))
        at, source = self._rule.air_time(episode.air_date, airing, self._zone, self._slot)
        return IndexedEpisode(
            season=episode.season_number,
            number=episode.episode_number,
            title=episode.name or f"Episode {episode.episode_number}",
            air_date=episode.air_date or (airing.air_date if airing is not None else None),
            air_at=at,
            air_source=source,
            runtime_min=episode.runtime or (airing.runtime_min if airing is not None else None),
            tmdb_id=episode.id,
            episode_type=episode.episode_type,
        )


def _season(
    body: _SeasonDetails, listed: SeasonSummary | None, episode: _EpisodeBuilder
) -> IndexedSeason:
    by_number: dict[int, IndexedEpisode] = {}
    for raw in body.episodes:
        built = episode(raw)
        # A number listed twice is an upstream slip; the tree holds each number once.
        if built is not None and built.number not in by_number:
            by_number[built.number] = built
    episodes = tuple(by_number.values())
    count = listed.episode_count if listed is not None else len(episodes)
    air_date = listed.air_date if listed is not None else body.air_date
    dates = [e.air_date for e in episodes if e.air_date is not None]
    fingerprint = SeasonFingerprint(
        episode_count=count,
        air_date=air_date,
        last_air_date=max(dates, default=None),
        # Undated episodes, or fewer than the details promise: read it again next time.
        pending=len(dates) < len(episodes) or len(episodes) != count,
    )
    return IndexedSeason(
        number=body.season_number,
        title=body.name or f"Season {body.season_number}",
        episode_count=count,
        air_date=air_date,
        episodes=episodes,
        fingerprint=fingerprint.encode(),
    )

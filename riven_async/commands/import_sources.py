"""Reading what Sonarr, Radarr and Overseerr hold, as requests: their list APIs and shapes.

Sonarr (``GET /api/v3/series``) and Radarr (``GET /api/v3/movie``) answer with the whole
library in one response (v3 has no paging for these); Overseerr (``GET /api/v1/request``)
pages with ``take``/``skip``. Each entry becomes a request, or a skip with its reason.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from riven_async.core.http import HttpClient
from riven_async.domain.intents import ExternalIds, RequestMedia
from riven_async.errors import UpstreamPayloadError

SourceName = Literal["sonarr", "radarr", "overseerr"]
MAX_EXTERNAL_ID = 2**31 - 1
OVERSEERR_APPROVED = 2
_IMDB_RE = re.compile(r"^tt\d{5,12}$")
_DEFAULT_PAGE_SIZE = 250


@dataclass(frozen=True, slots=True)
class Entry:
    """One listed title: the request it becomes, or why it is skipped."""

    label: str
    request: RequestMedia | None
    skipped: str | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """Entries read so far in one go, and how many the source lists in all (if it says)."""

    entries: list[Entry]
    total: int | None


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """What to take: unmonitored titles too (Sonarr/Radarr), Overseerr's page size."""

    include_unmonitored: bool = False
    page_size: int = _DEFAULT_PAGE_SIZE


# -- shapes ------------------------------------------------------------------------------------


def _loose_id(value: Any) -> int | None:
    """A TMDB/TVDB/TVMaze id; 0, "", junk or out-of-range values mean unknown."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and 0 < value <= MAX_EXTERNAL_ID:
        return value
    return None


def _loose_imdb(value: Any) -> str | None:
    if isinstance(value, str) and _IMDB_RE.match(value.strip()):
        return value.strip()
    return None


class _Camel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, alias_generator=to_camel,
                              populate_by_name=True)


class _HasIds(_Camel):
    tmdb_id: int | None = None
    tvdb_id: int | None = None
    tv_maze_id: int | None = None
    imdb_id: str | None = None

    @field_validator("tmdb_id", "tvdb_id", "tv_maze_id", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> int | None:
        return _loose_id(value)

    @field_validator("imdb_id", mode="before")
    @classmethod
    def _imdb(cls, value: Any) -> str | None:
        return _loose_imdb(value)

    def ids(self) -> ExternalIds:
        return ExternalIds(tmdb=self.tmdb_id, tvdb=self.tvdb_id, imdb=self.imdb_id,
                           tvmaze=self.tv_maze_id)


class _Titled(_HasIds):
    id: int = 0
    title: str = ""
    year: int | None = None
    monitored: bool = True

    @field_validator("year", mode="before")
    @classmethod
    def _year(cls, value: Any) -> int | None:
        # Sonarr and Radarr send 0 for an unknown year.
        return value if isinstance(value, int) and 1800 <= value <= 2200 else None


class ArrSeason(_Camel):
    season_number: int
    monitored: bool = True


class ArrSeries(_Titled):
    seasons: list[ArrSeason] = Field(default_factory=list)


class ArrMovie(_Titled):
    pass


class OverseerrMedia(_HasIds):
    media_type: str | None = None


class OverseerrSeason(_Camel):
    season_number: int


class OverseerrUser(_Camel):
    display_name: str | None = None


class OverseerrRequest(_Camel):
    id: int
    status: int
    type: str
    media: OverseerrMedia | None = None
    seasons: list[OverseerrSeason] = Field(default_factory=list)
    requested_by: OverseerrUser | None = None


class OverseerrPageInfo(_Camel):
    results: int = 0


_SERIES = TypeAdapter(ArrSeries)
_MOVIE = TypeAdapter(ArrMovie)
_REQUEST = TypeAdapter(OverseerrRequest)


# -- reading -----------------------------------------------------------------------------------


async def read_source(
    name: SourceName, client: HttpClient, options: ReadOptions
) -> AsyncIterator[Batch]:
    """Every entry the source lists, in batches as they arrive."""
    if name == "sonarr":
        listed = await _get_list(client, "/series")
        yield Batch([series_entry(item, options) for item in listed], len(listed))
    elif name == "radarr":
        listed = await _get_list(client, "/movie")
        yield Batch([movie_entry(item, options) for item in listed], len(listed))
    else:
        async for batch in _overseerr_pages(client, options):
            yield batch


async def _get_list(client: HttpClient, path: str) -> list[Any]:
    response = await client.get(path, timeout_s=600.0)
    listed = response.json()
    if not isinstance(listed, list):
        raise UpstreamPayloadError(client.name, response.status, response.url,
                                   "expected a JSON list")
    return listed


async def _overseerr_pages(client: HttpClient, options: ReadOptions) -> AsyncIterator[Batch]:
    # Newest first; a request added while paging shifts the pages by one, so an entry can
    # be listed twice (dropped here by request id) but none is missed.
    seen: set[int] = set()
    skip = 0
    while True:
        response = await client.get(
            "/request",
            params={"take": options.page_size, "skip": skip, "filter": "approved",
                    "sort": "added"},
        )
        page = response.json()
        if not isinstance(page, dict) or not isinstance(page.get("results"), list):
            raise UpstreamPayloadError(client.name, response.status, response.url,
                                       "expected {pageInfo, results}")
        results: list[Any] = page["results"]
        total = _total(page.get("pageInfo"))
        entries = []
        for item in results:
            ident = item.get("id") if isinstance(item, dict) else None
            if isinstance(ident, int) and ident in seen:
                continue
            if isinstance(ident, int):
                seen.add(ident)
            entries.append(overseerr_entry(item))
        yield Batch(entries, total)
        skip += len(results)
        if not results or (total is not None and skip >= total):
            return


def _total(info: Any) -> int | None:
    try:
        return OverseerrPageInfo.model_validate(info).results if info is not None else None
    except ValidationError:
        return None


# -- mapping -----------------------------------------------------------------------------------


def series_entry(raw: Any, options: ReadOptions) -> Entry:
    """A Sonarr series: the whole show when every season is monitored, else those seasons."""
    try:
        series = _SERIES.validate_python(raw)
    except ValidationError as exc:
        return Entry(_raw_label(raw), None, f"unreadable entry ({_first_error(exc)})")
    label = _label(series.title, series.year)
    if not series.monitored and not options.include_unmonitored:
        return Entry(label, None, "not monitored")
    ids = series.ids()
    if ids.is_empty():
        return Entry(label, None, "no TVDB, TMDB or IMDb id")
    numbered = [s for s in series.seasons if s.season_number > 0]
    wanted = [s.season_number for s in numbered
              if s.monitored or options.include_unmonitored]
    if numbered and not wanted:
        return Entry(label, None, "no season monitored")
    seasons = None if len(wanted) == len(numbered) else tuple(sorted(set(wanted)))
    return Entry(label, RequestMedia(
        kind="show", ids=ids, title=series.title or None, year=series.year, seasons=seasons,
        source="sonarr", source_ref=str(series.id) if series.id else None,
    ))


def movie_entry(raw: Any, options: ReadOptions) -> Entry:
    """A Radarr movie."""
    try:
        movie = _MOVIE.validate_python(raw)
    except ValidationError as exc:
        return Entry(_raw_label(raw), None, f"unreadable entry ({_first_error(exc)})")
    label = _label(movie.title, movie.year)
    if not movie.monitored and not options.include_unmonitored:
        return Entry(label, None, "not monitored")
    ids = movie.ids()
    if ids.tmdb is None and ids.imdb is None:
        return Entry(label, None, "no TMDB or IMDb id")
    return Entry(label, RequestMedia(
        kind="movie", ids=ExternalIds(tmdb=ids.tmdb, imdb=ids.imdb),
        title=movie.title or None, year=movie.year, seasons=None, source="radarr",
        source_ref=str(movie.id) if movie.id else None,
    ))


def overseerr_entry(raw: Any) -> Entry:
    """An approved Overseerr request: a movie, or a show with the seasons it asked for."""
    try:
        request = _REQUEST.validate_python(raw)
    except ValidationError as exc:
        return Entry(_raw_label(raw), None, f"unreadable entry ({_first_error(exc)})")
    media = request.media
    label = f"request {request.id} ({request.type})"
    if media is not None and media.tmdb_id is not None:
        label = f"request {request.id} ({request.type} tmdb {media.tmdb_id})"
    if request.status != OVERSEERR_APPROVED:
        return Entry(label, None, "not approved")
    if request.type not in ("movie", "tv"):
        return Entry(label, None, f"unknown type {request.type!r}")
    if media is None:
        return Entry(label, None, "no media")
    requester = request.requested_by.display_name if request.requested_by else None
    if request.type == "movie":
        if media.tmdb_id is None and media.imdb_id is None:
            return Entry(label, None, "no TMDB or IMDb id")
        ids = ExternalIds(tmdb=media.tmdb_id, imdb=media.imdb_id)
        return Entry(label, RequestMedia(kind="movie", ids=ids, title=None, year=None,
                                         seasons=None, source="overseerr",
                                         requester=requester, source_ref=str(request.id)))
    ids = ExternalIds(tmdb=media.tmdb_id, tvdb=media.tvdb_id, imdb=media.imdb_id)
    if ids.is_empty():
        return Entry(label, None, "no TMDB or TVDB id")
    seasons = tuple(sorted({s.season_number for s in request.seasons if s.season_number >= 0}))
    return Entry(label, RequestMedia(kind="show", ids=ids, title=None, year=None,
                                     seasons=seasons or None, source="overseerr",
                                     requester=requester, source_ref=str(request.id)))


def _label(title: str, year: int | None) -> str:
    title = title or "(untitled)"
    return f"{title} ({year})" if year else title


def _raw_label(raw: Any) -> str:
    if isinstance(raw, dict):
        title, ident = raw.get("title"), raw.get("id")
        if isinstance(title, str) and title:
            return title
        if ident is not None:
            return f"entry {ident}"
    return "an entry"


def _first_error(exc: ValidationError) -> str:
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def normalise_base_url(name: SourceName, url: str) -> str:
    """``host:8989``, ``http://host:8989/`` or ``.../api/v3`` -> ``http://host:8989/api/v3``."""
    text = url.strip().rstrip("/")
    if "://" not in text:
        text = "http://" + text
    suffix = "/api/v1" if name == "overseerr" else "/api/v3"
    return text if text.endswith(suffix) else text + suffix


def request_keys(request: RequestMedia) -> Sequence[tuple[str, str, object]]:
    """Every id the request names, as keys that say "the same title"."""
    return [(request.kind, name, value) for name, value in request.ids.as_dict().items()]

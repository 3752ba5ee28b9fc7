"""TMDB v3: tv/season/movie details, /find, /search and the change feeds, with TMDB's errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from aiohttp import hdrs, web

from riven_async.sim import tmdb_shapes as shapes
from riven_async.sim.harness import Sim
from riven_async.sim.limits import Verdict
from riven_async.sim.responses import JSON_UTF8, json_response

PAGE_SIZE = 20
CHANGES_PAGE_SIZE = 100
MAX_PAGE = 500
MAX_APPENDS = 20
MAX_CHANGES_RANGE = timedelta(days=14)

_MESSAGES = {
    7: "Invalid API key: You must be granted a valid key.",
    34: "The resource you requested could not be found.",
    20: "Invalid date range: Should be a range no longer than 14 days.",
    22: "Invalid page: Pages start at 1 and max at 500. They are expected to be an integer.",
    27: "Too many append to response objects: The maximum number of remote calls is 20.",
    5: "Invalid parameters: Your request parameters are incorrect.",
    11: "Internal error: Something went wrong, contact TMDb.",
    9: "Service offline: This service is temporarily offline, try again later.",
    24: "Your request to the backend server timed out. Try again.",
}
_STATUS_CODES = {500: 11, 502: 9, 503: 9, 504: 24}


def tmdb_error(status: int, code: int, message: str | None = None) -> web.Response:
    body = {"success": False, "status_code": code, "status_message": message or _MESSAGES[code]}
    return json_response(body, status=status, content_type=JSON_UTF8)


class TmdbSim(Sim):
    """``https://api.themoviedb.org/3``: Bearer token or ``api_key``, ~40 requests a second."""

    name = "tmdb"
    prefix = "/3"
    default_limits = ("40/1s",)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        p = self.prefix
        router.add_get(p + r"/tv/{id:\d+}", self.tv)
        router.add_get(p + r"/tv/{id:\d+}/external_ids", self.tv_external_ids)
        router.add_get(p + r"/tv/{id:\d+}/season/{season:\d+}", self.season)
        router.add_get(p + r"/tv/{id:\d+}/season/{season:\d+}/episode/{episode:\d+}", self.episode)
        router.add_get(p + r"/movie/{id:\d+}", self.movie)
        router.add_get(p + r"/movie/{id:\d+}/external_ids", self.movie_external_ids)
        router.add_get(p + r"/movie/{id:\d+}/release_dates", self.movie_release_dates)
        router.add_get(p + "/find/{external_id}", self.find)
        router.add_get(p + "/search/tv", self.search_tv)
        router.add_get(p + "/search/movie", self.search_movie)
        router.add_get(p + "/tv/changes", self.tv_changes)
        router.add_get(p + "/movie/changes", self.movie_changes)

    # -- harness hooks ------------------------------------------------------------------

    def authenticate(self, request: web.Request) -> web.StreamResponse | None:
        bearer = request.headers.get(hdrs.AUTHORIZATION, "")
        key = bearer.removeprefix("Bearer ").strip() if bearer.startswith("Bearer ") else ""
        if key == self.api_key or request.query.get("api_key") == self.api_key:
            return None
        return tmdb_error(401, 7)

    def rate_limited(self, request: web.Request, verdict: Verdict) -> web.StreamResponse:
        limit = verdict.window.limit if verdict.window else 40
        response = tmdb_error(
            429, 25, f"Your request count (#) is over the allowed limit of ({limit})."
        )
        response.headers[hdrs.RETRY_AFTER] = verdict.retry_after_header
        return response

    def server_error(self, request: web.Request, status: int) -> web.StreamResponse:
        return tmdb_error(status, _STATUS_CODES.get(status, 11))

    def not_found(self, request: web.Request) -> web.StreamResponse:
        return tmdb_error(404, 34)

    # -- tv -----------------------------------------------------------------------------

    async def tv(self, request: web.Request) -> web.Response:
        appends = _appends(request)
        if appends is None:
            return tmdb_error(400, 27)
        show = self.world.catalog.show_by_tmdb(int(request.match_info["id"]))
        if show is None:
            return tmdb_error(404, 34)
        body = shapes.tv_details(show, self.world.now())
        if "external_ids" in appends:
            body["external_ids"] = shapes.tv_external_ids(show)
        return json_response(body, content_type=JSON_UTF8)

    async def tv_external_ids(self, request: web.Request) -> web.Response:
        show = self.world.catalog.show_by_tmdb(int(request.match_info["id"]))
        if show is None:
            return tmdb_error(404, 34)
        return json_response(shapes.tv_external_ids(show), content_type=JSON_UTF8)

    async def season(self, request: web.Request) -> web.Response:
        show = self.world.catalog.show_by_tmdb(int(request.match_info["id"]))
        number = int(request.match_info["season"])
        now = self.world.now()
        if show is None or not show.episodes(number, now):
            return tmdb_error(404, 34)
        return json_response(shapes.season_details(show, number, now), content_type=JSON_UTF8)

    async def episode(self, request: web.Request) -> web.Response:
        show = self.world.catalog.show_by_tmdb(int(request.match_info["id"]))
        now = self.world.now()
        season, number = int(request.match_info["season"]), int(request.match_info["episode"])
        found = show.episode(season, number, now) if show is not None else None
        if show is None or found is None:
            return tmdb_error(404, 34)
        body = shapes.episode_brief(show, found, now)
        return json_response(body, content_type=JSON_UTF8)

    # -- movies -------------------------------------------------------------------------

    async def movie(self, request: web.Request) -> web.Response:
        appends = _appends(request)
        if appends is None:
            return tmdb_error(400, 27)
        movie = self.world.catalog.movie_by_tmdb(int(request.match_info["id"]))
        if movie is None:
            return tmdb_error(404, 34)
        body = shapes.movie_details(movie, self.world.now())
        if "external_ids" in appends:
            body["external_ids"] = shapes.movie_external_ids(movie)
        if "release_dates" in appends:
            body["release_dates"] = shapes.movie_release_dates(movie)
        return json_response(body, content_type=JSON_UTF8)

    async def movie_external_ids(self, request: web.Request) -> web.Response:
        movie = self.world.catalog.movie_by_tmdb(int(request.match_info["id"]))
        if movie is None:
            return tmdb_error(404, 34)
        return json_response(shapes.movie_external_ids(movie), content_type=JSON_UTF8)

    async def movie_release_dates(self, request: web.Request) -> web.Response:
        movie = self.world.catalog.movie_by_tmdb(int(request.match_info["id"]))
        if movie is None:
            return tmdb_error(404, 34)
        body = {"id": movie.tmdb_id, **shapes.movie_release_dates(movie)}
        return json_response(body, content_type=JSON_UTF8)

    # -- find and search ----------------------------------------------------------------

    async def find(self, request: web.Request) -> web.Response:
        source = request.query.get("external_source", "")
        external_id = request.match_info["external_id"]
        catalog, now = self.world.catalog, self.world.now()
        body: dict[str, list[Any]] = {
            "movie_results": [],
            "person_results": [],
            "tv_results": [],
            "tv_episode_results": [],
            "tv_season_results": [],
        }
        if source == "imdb_id":
            show = catalog.show_by_imdb(external_id)
            movie = catalog.movie_by_imdb(external_id)
            if show is not None:
                body["tv_results"].append(shapes.tv_list_item(show, now, media_type=True))
            if movie is not None:
                body["movie_results"].append(shapes.movie_list_item(movie, media_type=True))
        elif source == "tvdb_id":
            show = catalog.show_by_tvdb(int(external_id)) if external_id.isdigit() else None
            if show is not None:
                body["tv_results"].append(shapes.tv_list_item(show, now, media_type=True))
        elif source not in (
            "facebook_id",
            "instagram_id",
            "tiktok_id",
            "twitter_id",
            "wikidata_id",
            "youtube_id",
        ):
            return tmdb_error(400, 5)
        return json_response(body, content_type=JSON_UTF8)

    async def search_tv(self, request: web.Request) -> web.Response:
        page = _page(request)
        if page is None:
            return tmdb_error(400, 22)
        catalog, now = self.world.catalog, self.world.now()
        year = request.query.get("first_air_date_year") or request.query.get("year")
        hits = [catalog.show(i) for i in catalog.search(request.query.get("query", ""), False)]
        if year and year.isdigit():
            hits = [s for s in hits if s.year == int(year)]
        items = [shapes.tv_list_item(s, now, media_type=False) for s in hits]
        return json_response(_paged(items, page, PAGE_SIZE), content_type=JSON_UTF8)

    async def search_movie(self, request: web.Request) -> web.Response:
        page = _page(request)
        if page is None:
            return tmdb_error(400, 22)
        catalog = self.world.catalog
        year = request.query.get("year") or request.query.get("primary_release_year")
        hits = [catalog.movie(i) for i in catalog.search(request.query.get("query", ""), True)]
        if year and year.isdigit():
            hits = [m for m in hits if m.year == int(year)]
        items = [shapes.movie_list_item(m, media_type=False) for m in hits]
        return json_response(_paged(items, page, PAGE_SIZE), content_type=JSON_UTF8)

    # -- change feeds -------------------------------------------------------------------

    async def tv_changes(self, request: web.Request) -> web.Response:
        return self._changes(request, movies=False)

    async def movie_changes(self, request: web.Request) -> web.Response:
        return self._changes(request, movies=True)

    def _changes(self, request: web.Request, movies: bool) -> web.Response:
        now = self.world.now()
        page = _page(request)
        if page is None:
            return tmdb_error(400, 22)
        try:
            start = _moment(request.query.get("start_date"), end=False)
            end = _moment(request.query.get("end_date"), end=True)
        except ValueError:
            return tmdb_error(400, 5)
        end = min(end or now, now)
        start = start or end - timedelta(days=1)
        if end - start > MAX_CHANGES_RANGE:
            return tmdb_error(422, 20)
        catalog = self.world.catalog
        ids = (
            [m.tmdb_id for m in catalog.changed_movies(start, end)]
            if movies
            else [s.tmdb_id for s in catalog.changed_shows(start, end)]
        )
        items = [{"id": ident, "adult": False} for ident in ids]
        return json_response(_paged(items, page, CHANGES_PAGE_SIZE), content_type=JSON_UTF8)


def _appends(request: web.Request) -> set[str] | None:
    raw = request.query.get("append_to_response", "")
    items = {part.strip() for part in raw.split(",") if part.strip()}
    return None if len(items) > MAX_APPENDS else items


def _page(request: web.Request) -> int | None:
    raw = request.query.get("page", "1")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        return None
    return int(raw)


def _paged(items: list[dict[str, Any]], page: int, size: int) -> dict[str, Any]:
    total_pages = max(1, -(-len(items) // size))
    return {
        "page": page,
        "results": items[(page - 1) * size : page * size],
        "total_pages": total_pages,
        "total_results": len(items),
    }


def _moment(text: str | None, end: bool) -> datetime | None:
    """``YYYY-MM-DD`` (a whole day: its start, or the next day's start for ``end_date``)."""
    if not text:
        return None
    if len(text) == 10:
        day = date.fromisoformat(text)
        return datetime.combine(day + timedelta(days=1 if end else 0), time(), UTC)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

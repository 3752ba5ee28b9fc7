"""TVMaze: shows with exact air times (``airstamp``), lookups by TVDB/IMDb, the updates feed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import hdrs, web

from riven_async.sim import names, tmdb_shapes
from riven_async.sim.harness import Sim
from riven_async.sim.limits import Verdict
from riven_async.sim.responses import JSON_UTF8, json_response
from riven_async.sim.shows import DAY_S, Episode, Show

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_SINCE_S = {"day": DAY_S, "week": 7 * DAY_S, "month": 30 * DAY_S}
_EPISODE_ID_BASE = 2_000_000


def _tvmaze_error(status: int, name: str, message: str = "") -> web.Response:
    body = {"name": name, "message": message, "code": 0, "status": status}
    return json_response(body, status=status, content_type=JSON_UTF8)


class TvmazeSim(Sim):
    """``https://api.tvmaze.com``: no key, 20 calls per 10 seconds per IP."""

    name = "tvmaze"
    default_limits = ("20/10s",)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/lookup/shows", self.lookup)
        router.add_get(r"/shows/{id:\d+}", self.show)
        router.add_get(r"/shows/{id:\d+}/episodes", self.episodes)
        router.add_get(r"/shows/{id:\d+}/seasons", self.seasons)
        router.add_get(r"/shows/{id:\d+}/episodebynumber", self.episode_by_number)
        router.add_get(r"/episodes/{id:\d+}", self.episode)
        router.add_get("/updates/shows", self.updates)
        router.add_get("/search/shows", self.search)
        router.add_get("/singlesearch/shows", self.single_search)

    def rate_limited(self, request: web.Request, verdict: Verdict) -> web.StreamResponse:
        response = _tvmaze_error(429, "Too Many Requests", "Rate limit exceeded.")
        response.headers[hdrs.RETRY_AFTER] = verdict.retry_after_header
        return response

    def server_error(self, request: web.Request, status: int) -> web.StreamResponse:
        return _tvmaze_error(status, "Internal Server Error", "An internal server error occurred.")

    def not_found(self, request: web.Request) -> web.StreamResponse:
        return _tvmaze_error(404, "Not Found")

    # -- handlers -----------------------------------------------------------------------

    async def lookup(self, request: web.Request) -> web.StreamResponse:
        catalog = self.world.catalog
        show: Show | None = None
        if "thetvdb" in request.query and request.query["thetvdb"].isdigit():
            show = catalog.show_by_tvdb(int(request.query["thetvdb"]))
        elif "imdb" in request.query:
            show = catalog.show_by_imdb(request.query["imdb"])
        if show is None:
            return self.not_found(request)
        raise web.HTTPFound(f"{_origin(request)}/shows/{show.tvmaze_id}")

    async def show(self, request: web.Request) -> web.StreamResponse:
        show = self._show(request)
        if show is None:
            return self.not_found(request)
        now = self.world.now()
        body = self._show_json(request, show, now)
        embeds = set(request.query.getall("embed", [])) | set(request.query.getall("embed[]", []))
        embedded: dict[str, Any] = {}
        if "episodes" in embeds:
            embedded["episodes"] = [
                self._episode_json(request, show, e, now) for e in show.all_episodes(now)
            ]
        for key, episode in (
            ("nextepisode", show.next_to_air(now)),
            ("previousepisode", show.last_aired(now)),
        ):
            if key in embeds and episode is not None:
                embedded[key] = self._episode_json(request, show, episode, now)
        if embedded:
            body["_embedded"] = embedded
        return json_response(body, content_type=JSON_UTF8)

    async def episodes(self, request: web.Request) -> web.StreamResponse:
        show = self._show(request)
        if show is None:
            return self.not_found(request)
        now = self.world.now()
        specials = request.query.get("specials") == "1"
        listed = show.all_episodes(now, specials=specials)
        return json_response(
            [self._episode_json(request, show, e, now) for e in listed], content_type=JSON_UTF8
        )

    async def seasons(self, request: web.Request) -> web.StreamResponse:
        show = self._show(request)
        if show is None:
            return self.not_found(request)
        now = self.world.now()
        out = []
        for plan in show.visible_seasons(now):
            if plan.number == 0:
                continue
            listed = show.episodes(plan.number, now)
            ident = 500_000 + show.index * 32 + plan.number
            out.append(
                {
                    "id": ident,
                    "url": f"https://www.tvmaze.com/seasons/{ident}/{names.slug(show.title)}",
                    "number": plan.number,
                    "name": "",
                    "episodeOrder": len(listed),
                    "premiereDate": _airdate(show, listed[0]) or None,
                    "endDate": _airdate(show, listed[-1]) or None,
                    "network": self._network(show),
                    "webChannel": None,
                    "image": None,
                    "summary": None,
                    "_links": {"self": {"href": f"{_origin(request)}/seasons/{ident}"}},
                }
            )
        return json_response(out, content_type=JSON_UTF8)

    async def episode_by_number(self, request: web.Request) -> web.StreamResponse:
        show = self._show(request)
        season, number = request.query.get("season", ""), request.query.get("number", "")
        if show is None or not season.isdigit() or not number.isdigit():
            return self.not_found(request)
        now = self.world.now()
        found = show.episode(int(season), int(number), now)
        if found is None:
            return self.not_found(request)
        return json_response(self._episode_json(request, show, found, now), content_type=JSON_UTF8)

    async def episode(self, request: web.Request) -> web.StreamResponse:
        key = int(request.match_info["id"]) - _EPISODE_ID_BASE
        show = self.world.catalog.show_by_tvmaze(key // 1000 + 1) if key >= 0 else None
        now = self.world.now()
        rest = key % 1000
        found = show.episode(rest // 32, rest % 32, now) if show is not None else None
        if show is None or found is None:
            return self.not_found(request)
        return json_response(self._episode_json(request, show, found, now), content_type=JSON_UTF8)

    async def updates(self, request: web.Request) -> web.Response:
        since = request.query.get("since")
        if since is not None and since not in _SINCE_S:
            return _tvmaze_error(400, "Bad Request", "Invalid value for since.")
        now = self.world.now()
        horizon = now.timestamp() - _SINCE_S[since] if since else float("-inf")
        body = {}
        for show in self.world.catalog.shows():
            updated = show.last_change(now)
            if updated >= horizon:
                body[str(show.tvmaze_id)] = updated
        return json_response(body, content_type=JSON_UTF8)

    async def search(self, request: web.Request) -> web.Response:
        catalog, now = self.world.catalog, self.world.now()
        hits = catalog.search(request.query.get("q", ""), movies=False)[:10]
        body = [
            {
                "score": round(1 - rank * 0.05, 3),
                "show": self._show_json(request, catalog.show(i), now),
            }
            for rank, i in enumerate(hits)
        ]
        return json_response(body, content_type=JSON_UTF8)

    async def single_search(self, request: web.Request) -> web.StreamResponse:
        catalog = self.world.catalog
        hits = catalog.search(request.query.get("q", ""), movies=False)
        if not hits:
            return self.not_found(request)
        show = catalog.show(hits[0])
        return json_response(
            self._show_json(request, show, self.world.now()), content_type=JSON_UTF8
        )

    # -- shapes -------------------------------------------------------------------------

    def _show(self, request: web.Request) -> Show | None:
        return self.world.catalog.show_by_tvmaze(int(request.match_info["id"]))

    def _network(self, show: Show) -> dict[str, Any]:
        network = show.network
        return {
            "id": network.tvmaze_id,
            "name": network.name,
            "country": {
                "name": network.country_name,
                "code": network.country,
                "timezone": network.timezone,
            },
            "officialSite": None,
        }

    def _show_json(self, request: web.Request, show: Show, now: datetime) -> dict[str, Any]:
        origin = _origin(request)
        listed = show.all_episodes(now)
        status = show.tvmaze_status(now)
        latest = listed[-1] if listed else None
        weekday = _WEEKDAYS[show.local_air(latest).weekday()] if latest else ""
        links: dict[str, Any] = {"self": {"href": f"{origin}/shows/{show.tvmaze_id}"}}
        for key, episode in (
            ("previousepisode", show.last_aired(now)),
            ("nextepisode", show.next_to_air(now)),
        ):
            if episode is not None:
                links[key] = {
                    "href": f"{origin}/episodes/{episode.tvmaze_id}",
                    "name": episode.name,
                }
        language = names.COUNTRY_LANGUAGE.get(show.network.country, "en")
        return {
            "id": show.tvmaze_id,
            "url": f"https://www.tvmaze.com/shows/{show.tvmaze_id}/{names.slug(show.title)}",
            "name": show.title,
            "type": "Scripted",
            "language": names.LANGUAGE_NAMES.get(language, "English"),
            "genres": [name for _, name in show.genres],
            "status": status,
            "runtime": show.runtime,
            "averageRuntime": show.runtime,
            "premiered": (_airdate(show, listed[0]) or None) if listed else None,
            "ended": (_airdate(show, latest) or None) if latest and status == "Ended" else None,
            "officialSite": f"https://www.example.tv/{names.slug(show.title)}",
            "schedule": {"time": show.airtime, "days": [weekday] if weekday else []},
            "rating": {"average": show.vote_average},
            "weight": int(show.popularity) % 100,
            "network": self._network(show),
            "webChannel": None,
            "dvdCountry": None,
            "externals": {"tvrage": None, "thetvdb": show.tvdb_id, "imdb": show.imdb_id},
            "image": _image(show.tvmaze_id),
            "summary": f"<p><b>{show.title}</b> airs on {show.network.name}.</p>",
            "updated": show.last_change(now),
            "_links": links,
        }

    def _episode_json(
        self, request: web.Request, show: Show, episode: Episode, now: datetime
    ) -> dict[str, Any]:
        origin = _origin(request)
        aired = episode.aired(now.timestamp())
        special = episode.season == 0
        return {
            "id": episode.tvmaze_id,
            "url": f"https://www.tvmaze.com/episodes/{episode.tvmaze_id}/"
            f"{names.slug(show.title)}-{episode.season}x{episode.number:02d}",
            "name": episode.name,
            "season": episode.season,
            "number": None if special else episode.number,
            "type": "significant_special" if special else "regular",
            "airdate": _airdate(show, episode),
            "airtime": show.local_air(episode).strftime("%H:%M") if episode.date_known else "",
            "airstamp": (episode.air_at.isoformat() if episode.date_known else None),
            "runtime": episode.runtime,
            "rating": {"average": round(6 + episode.tvmaze_id % 35 / 10, 1) if aired else None},
            "image": _image(episode.tvmaze_id) if aired else None,
            "summary": f"<p>{episode.name}.</p>" if aired else None,
            "_links": {
                "self": {"href": f"{origin}/episodes/{episode.tvmaze_id}"},
                "show": {"href": f"{origin}/shows/{show.tvmaze_id}", "name": show.title},
            },
        }


def _airdate(show: Show, episode: Episode) -> str:
    return tmdb_shapes.local_date(show, episode) or ""


def _image(ident: int) -> dict[str, str]:
    path = tmdb_shapes.image("tvmaze", ident).lstrip("/")
    return {
        "medium": f"https://static.tvmaze.com/uploads/images/medium_portrait/{path}",
        "original": f"https://static.tvmaze.com/uploads/images/original_untouched/{path}",
    }


def _origin(request: web.Request) -> str:
    return str(request.url.origin())

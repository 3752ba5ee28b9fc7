"""Sonarr (``GET /api/v3/series``) and Radarr (``GET /api/v3/movie``) over part of the catalog."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from riven_async.sim import names, tmdb_shapes
from riven_async.sim.harness import Sim
from riven_async.sim.movies import Movie
from riven_async.sim.responses import empty_response, iso_z, json_response
from riven_async.sim.shows import Show
from riven_async.sim.world import SimWorld


def _language() -> dict[str, Any]:
    return {"id": 1, "name": "English"}


def _images(ident: int) -> list[dict[str, Any]]:
    return [
        {
            "coverType": kind,
            "url": f"/MediaCover/{ident}/{kind}.jpg",
            "remoteUrl": f"https://image.tmdb.org/t/p/original{tmdb_shapes.image(kind, ident)}",
        }
        for kind in ("poster", "fanart")
    ]


class ArrSim(Sim):
    """A Sonarr (``radarr=False``) or Radarr library holding every ``stride``-th title."""

    prefix = "/api/v3"

    def __init__(
        self, world: SimWorld, api_key: str, radarr: bool = False, stride: int = 5
    ) -> None:
        super().__init__(world, api_key)
        self.radarr = radarr
        self.name = "radarr" if radarr else "sonarr"
        self.stride = max(1, stride)
        # Catalog indexes listed as not monitored, and per show the seasons that are not
        # (tests of importers; a real library has both).
        self.unmonitored: set[int] = set()
        self.unmonitored_seasons: dict[int, set[int]] = {}

    def add_routes(self, router: web.UrlDispatcher) -> None:
        if self.radarr:
            router.add_get(self.prefix + "/movie", self.movies)
        else:
            router.add_get(self.prefix + "/series", self.series)
        router.add_get(self.prefix + "/system/status", self.system_status)

    def authenticate(self, request: web.Request) -> web.StreamResponse | None:
        if self.api_key in (request.headers.get("X-Api-Key"), request.query.get("apikey")):
            return None
        return empty_response(401)

    async def system_status(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "appName": self.name.capitalize(),
                "version": "5.14.0.9383" if self.radarr else "4.0.11.2680",
                "isDebug": False,
                "authentication": "forms",
                "urlBase": "",
            }
        )

    async def series(self, request: web.Request) -> web.Response:
        catalog, now = self.world.catalog, self.world.now()
        shows = [catalog.show(i) for i in range(0, catalog.show_count, self.stride)]
        return json_response([self._series(show, now, n + 1) for n, show in enumerate(shows)])

    async def movies(self, request: web.Request) -> web.Response:
        catalog, now = self.world.catalog, self.world.now()
        films = [catalog.movie(i) for i in range(0, catalog.movie_count, self.stride)]
        return json_response([self._movie(movie, now, n + 1) for n, movie in enumerate(films)])

    def _series(self, show: Show, now: datetime, ident: int) -> dict[str, Any]:
        listed = show.all_episodes(now)
        last, upcoming = show.last_aired(now), show.next_to_air(now)
        status = show.status(now)
        sonarr_status = (
            "ended"
            if status in ("Ended", "Canceled")
            else "upcoming"
            if status == "In Production"
            else "continuing"
        )
        folder = f"{show.title} ({show.year})"
        added = self.world.catalog.origin - timedelta(days=30 + show.index % 300)
        seasons = []
        for plan in show.visible_seasons(now):
            episodes = show.episodes(plan.number, now)
            aired = sum(1 for e in episodes if e.aired(now.timestamp()))
            skipped = self.unmonitored_seasons.get(show.index, set())
            seasons.append(
                {
                    "seasonNumber": plan.number,
                    "monitored": plan.number > 0 and plan.number not in skipped,
                    "statistics": {
                        "episodeFileCount": 0,
                        "episodeCount": aired,
                        "totalEpisodeCount": len(episodes),
                        "sizeOnDisk": 0,
                        "percentOfEpisodes": 0.0,
                    },
                }
            )
        body: dict[str, Any] = {
            "title": show.title,
            "alternateTitles": [],
            "sortTitle": show.title.lower(),
            "status": sonarr_status,
            "ended": sonarr_status == "ended",
            "overview": f"{show.title} airs on {show.network.name}.",
            "network": show.network.name,
            "airTime": show.airtime,
            "images": _images(show.tvdb_id),
            "originalLanguage": _language(),
            "seasons": seasons,
            "year": show.year,
            "path": f"/tv/{folder}",
            "qualityProfileId": 1,
            "seasonFolder": True,
            "monitored": show.index not in self.unmonitored,
            "monitorNewItems": "all",
            "useSceneNumbering": False,
            "runtime": show.runtime,
            "tvdbId": show.tvdb_id,
            "tvRageId": 0,
            "tvMazeId": show.tvmaze_id,
            "tmdbId": show.tmdb_id,
            "firstAired": iso_z(show.first_air_at),
            "lastAired": iso_z(last.air_at) if last else None,
            "seriesType": "standard",
            "cleanTitle": "".join(ch for ch in show.title.lower() if ch.isalnum()),
            "imdbId": show.imdb_id,
            "titleSlug": names.slug(show.title),
            "rootFolderPath": "/tv/",
            "certification": "TV-14",
            "genres": [name for _, name in show.genres],
            "tags": [],
            "added": iso_z(added),
            "ratings": {"votes": show.vote_count, "value": show.vote_average},
            "statistics": {
                "seasonCount": sum(1 for s in show.visible_seasons(now) if s.number > 0),
                "episodeFileCount": 0,
                "episodeCount": len(listed),
                "totalEpisodeCount": len(listed),
                "sizeOnDisk": 0,
                "percentOfEpisodes": 0.0,
            },
            "languageProfileId": 1,
            "id": ident,
        }
        if last is not None:
            body["previousAiring"] = iso_z(last.air_at)
        if upcoming is not None and upcoming.date_known:
            body["nextAiring"] = iso_z(upcoming.air_at)
        return body

    def _movie(self, movie: Movie, now: datetime, ident: int) -> dict[str, Any]:
        now_s = now.timestamp()
        status = (
            "released"
            if now_s >= movie.digital_s
            else "inCinemas"
            if now_s >= movie.theatrical_s
            else "announced"
        )
        folder = f"{movie.title} ({movie.year})"
        added = self.world.catalog.origin - timedelta(days=10 + movie.index % 200)
        return {
            "title": movie.title,
            "originalTitle": movie.title,
            "originalLanguage": _language(),
            "alternateTitles": [],
            "secondaryYearSourceId": 0,
            "sortTitle": movie.title.lower(),
            "sizeOnDisk": 0,
            "status": status,
            "overview": f"{movie.title} ({movie.year}).",
            "inCinemas": _stamp(movie.theatrical_s),
            "physicalRelease": _stamp(movie.physical_s),
            "digitalRelease": _stamp(movie.digital_s),
            "images": _images(movie.tmdb_id),
            "website": f"https://www.example.com/movies/{names.slug(movie.title)}",
            "year": movie.year,
            "youTubeTrailerId": "",
            "studio": "Sim Pictures",
            "path": f"/movies/{folder}",
            "qualityProfileId": 1,
            "hasFile": False,
            "movieFileId": 0,
            "monitored": movie.index not in self.unmonitored,
            "minimumAvailability": "released",
            "isAvailable": status == "released",
            "folderName": f"/movies/{folder}",
            "runtime": movie.runtime,
            "cleanTitle": "".join(ch for ch in movie.title.lower() if ch.isalnum()),
            "imdbId": movie.imdb_id,
            "tmdbId": movie.tmdb_id,
            "titleSlug": f"{names.slug(movie.title)}-{movie.tmdb_id}",
            "rootFolderPath": "/movies/",
            "certification": movie.certification,
            "genres": [name for _, name in movie.genres],
            "tags": [],
            "added": iso_z(added),
            "ratings": {
                "imdb": {"votes": movie.vote_count, "value": movie.vote_average, "type": "user"},
                "tmdb": {"votes": movie.vote_count, "value": movie.vote_average, "type": "user"},
            },
            "popularity": movie.popularity,
            "statistics": {"movieFileCount": 0, "sizeOnDisk": 0, "releaseGroups": []},
            "id": ident,
        }


def _stamp(epoch: int) -> str:
    return iso_z(datetime.fromtimestamp(epoch, UTC))

"""Zilean (DMM hash lists): ``/dmm/filtered``, ``/dmm/search``, ``/healthchecks/ping``, Torznab."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import hdrs, web

from riven_async.sim import torznab_feed as feed
from riven_async.sim.harness import Sim
from riven_async.sim.infohash import Scope
from riven_async.sim.limits import Verdict
from riven_async.sim.releases import Release
from riven_async.sim.responses import json_response, text_response
from riven_async.sim.torznab_feed import FeedStyle, Query

MAX_RESULTS = 200
_CODECS = {"x265": "hevc", "H.265": "hevc", "HEVC": "hevc", "x264": "avc", "H.264": "avc"}
_AUDIO = {
    "DDP5.1": (["Dolby Digital Plus"], ["5.1"]),
    "AAC5.1": (["AAC"], ["5.1"]),
    "AAC2.0": (["AAC"], ["2.0"]),
    "DTS5.1": (["DTS Lossy"], ["5.1"]),
    "TrueHD.Atmos.7.1": (["TrueHD", "Atmos"], ["7.1"]),
}


class ZileanSim(Sim):
    """Self-hosted Zilean: no auth on the search routes, errors swallowed into ``[]``."""

    name = "zilean"
    default_limits = ("500/60s",)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/dmm/filtered", self.filtered)
        router.add_post("/dmm/search", self.search)
        router.add_post("/imdb/search", self.imdb_search)
        router.add_get("/healthchecks/ping", self.ping)
        router.add_get("/torznab/api", self.torznab)

    def rate_limited(self, request: web.Request, verdict: Verdict) -> web.StreamResponse:
        return json_response(
            {"title": "Too Many Requests", "status": 429},
            status=429,
            headers={hdrs.RETRY_AFTER: verdict.retry_after_header},
            content_type="application/problem+json",
        )

    def server_error(self, request: web.Request, status: int) -> web.StreamResponse:
        return json_response(
            {"title": "An error occurred while processing your request.", "status": status},
            status=status,
            content_type="application/problem+json",
        )

    async def ping(self, request: web.Request) -> web.Response:
        return text_response(f"[{self.world.now():%Y-%m-%d %H:%M:%S}]: Pong!")

    async def filtered(self, request: web.Request) -> web.Response:
        params = {key.lower(): value for key, value in request.query.items()}
        imdb = params.get("imdbid", "")
        if imdb and not imdb.startswith("tt"):
            imdb = "tt" + imdb
        category = params.get("category", "").lower()
        query = Query(
            function="movie" if category == "movie" else "search",
            text=params.get("query", ""),
            season=_int(params.get("season")),
            episode=_int(params.get("episode")),
            imdb=imdb or None,
            limit=MAX_RESULTS,
        )
        releases = feed.search(self.world.catalog, query, self.world.now())
        if category == "tvseries":
            releases = [r for r in releases if r.key.scope is not Scope.MOVIE]
        resolution = params.get("resolution")
        if resolution:
            releases = [r for r in releases if r.resolution == resolution]
        return json_response([self._torrent_info(r) for r in releases])

    async def search(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return json_response([])
        text = body.get("queryText", "") if isinstance(body, dict) else ""
        query = Query(function="search", text=str(text), limit=MAX_RESULTS)
        releases = feed.search(self.world.catalog, query, self.world.now())
        return json_response([self._torrent_info(r) for r in releases])

    async def imdb_search(self, request: web.Request) -> web.Response:
        params = {key.lower(): value for key, value in request.query.items()}
        catalog = self.world.catalog
        movies = params.get("category", "").lower() == "movie"
        out = []
        for rank, index in enumerate(catalog.search(params.get("query", ""), movies=movies)[:10]):
            title = catalog.movie(index) if movies else catalog.show(index)
            out.append(
                {
                    "title": title.title,
                    "imdbId": title.imdb_id,
                    "year": title.year,
                    "score": round(1 - rank * 0.05, 3),
                    "category": "movie" if movies else "tvSeries",
                }
            )
        return json_response(out)

    async def torznab(self, request: web.Request) -> web.Response:
        function = request.query.get("t", "")
        if function == "caps":
            return feed.caps_xml("Zilean")
        releases = feed.search(
            self.world.catalog, Query.from_params(dict(request.query)), self.world.now()
        )
        style = FeedStyle("", str(request.url.origin()), "")
        return feed.rss_xml(self.world.catalog, releases, style, "Zilean")

    def _torrent_info(self, release: Release) -> dict[str, Any]:
        catalog = self.world.catalog
        movie = release.key.scope is Scope.MOVIE
        index = release.key.title_index
        title = catalog.movie(index) if movie else catalog.show(index)
        imdb = feed.imdb_of(catalog, release)
        category = "movie" if movie else "tvSeries"
        seasons = sorted({s for s, _ in release.episodes})
        audio, channels = _AUDIO.get(release.audio, ([], []))
        ingested = datetime.fromtimestamp(release.published_s, UTC) + timedelta(hours=1)
        return {
            "raw_title": release.title,
            "parsed_title": title.title,
            "normalized_title": title.title.lower(),
            "cleaned_parsed_title": title.title,
            "trash": release.junk,
            "year": title.year if movie else None,
            "resolution": release.resolution or "unknown",
            "seasons": seasons,
            "episodes": [e for _, e in release.episodes]
            if release.key.scope is Scope.EPISODE
            else [],
            "complete": release.key.scope is Scope.SERIES,
            "volumes": [],
            "languages": [code for code in release.languages if code not in ("en", "multi")],
            "quality": release.source,
            "hdr": list(release.hdr),
            "codec": _CODECS.get(release.codec, release.codec.lower()),
            "audio": audio,
            "channels": channels,
            "dubbed": "multi" in release.languages,
            "subbed": False,
            "date": None,
            "group": release.group,
            "edition": None,
            "bit_depth": None,
            "bitrate": None,
            "network": None,
            "extended": False,
            "converted": False,
            "hardcoded": False,
            "region": None,
            "ppv": False,
            "_3d": False,
            "site": None,
            "size": str(release.size),
            "proper": False,
            "repack": False,
            "retail": False,
            "upscaled": False,
            "remastered": False,
            "unrated": False,
            "documentary": False,
            "episode_code": None,
            "country": None,
            "container": None,
            "extension": None,
            "torrent": False,
            "category": category,
            "imdb_id": imdb,
            "imdb": None
            if imdb is None
            else {
                "imdbId": imdb,
                "category": category,
                "title": title.title,
                "adult": False,
                "year": title.year,
            },
            "info_hash": release.infohash,
            "adult": False,
            "ingested_at": ingested.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None

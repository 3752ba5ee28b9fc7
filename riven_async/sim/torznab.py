"""Torznab indexers on one port: Jackett's and Prowlarr's paths, XML feeds and JSON APIs."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import hdrs, web

from riven_async.sim import torznab_feed as feed
from riven_async.sim.harness import Sim
from riven_async.sim.limits import Verdict
from riven_async.sim.releases import Release
from riven_async.sim.responses import empty_response, iso_z, json_response
from riven_async.sim.torznab_feed import INDEXERS, FeedStyle, Indexer, Query

JACKETT = "/api/v2.0/indexers"
PROWLARR_API = "/api/v1/"
AGGREGATES = ("all", "test:passed", "status:healthy")
FUNCTIONS = ("search", "tvsearch", "movie", "tv-search", "movie-search")


class TorznabSim(Sim):
    """Jackett (``/api/v2.0/indexers/{id}/results/torznab/api``) and Prowlarr (``/{id}/api``).

    ``base_url`` points at Jackett's aggregate feed; a client appends ``/api?t=…``.
    Jackett answers a bad key with HTTP 200 and ``<error code="100"/>``; Prowlarr with 401.
    """

    name = "torznab"
    prefix = JACKETT + "/all/results/torznab"
    default_limits = ("300/60s",)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get(JACKETT + "/{indexer}/results/torznab/api", self.jackett_torznab)
        router.add_get(JACKETT + "/{indexer}/results/torznab/", self.jackett_torznab)
        router.add_get(JACKETT + "/{indexer}/results", self.jackett_results)
        router.add_get("/dl/{indexer}/", self.download)
        router.add_get(r"/{indexer_id:\d+}/api", self.prowlarr_torznab)
        router.add_get(r"/api/v1/indexer/{indexer_id:\d+}/newznab", self.prowlarr_torznab)
        router.add_get(r"/{indexer_id:\d+}/download", self.download)
        router.add_get("/api/v1/indexer", self.prowlarr_indexers)
        router.add_get("/api/v1/indexerstatus", self.prowlarr_status)
        router.add_get("/api/v1/search", self.prowlarr_search)

    # -- harness hooks ------------------------------------------------------------------

    def authenticate(self, request: web.Request) -> web.StreamResponse | None:
        query, path = request.query, request.path
        if path.startswith("/dl/"):
            ok = query.get("jackett_apikey") == self.api_key
        elif path.startswith(JACKETT):
            ok = self.api_key in (query.get("apikey"), query.get("passkey"))
            if not ok and "/torznab" in path:
                return feed.error_xml(100, "Invalid API Key")
        else:
            ok = self.api_key in (query.get("apikey"), request.headers.get("X-Api-Key"))
        return None if ok else empty_response(401)

    def rate_limited(self, request: web.Request, verdict: Verdict) -> web.StreamResponse:
        headers = {hdrs.RETRY_AFTER: verdict.retry_after_header}
        if request.path.startswith(PROWLARR_API):
            return json_response({"message": "Too Many Requests"}, status=429, headers=headers)
        response = feed.error_xml(900, "Request limit reached", status=429)
        response.headers.update(headers)
        return response

    def server_error(self, request: web.Request, status: int) -> web.StreamResponse:
        if request.path.startswith(PROWLARR_API):
            return json_response({"message": "Internal Server Error"}, status=status)
        return feed.error_xml(900, "Internal server error", status=status)

    def not_found(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith(PROWLARR_API):
            return json_response({"message": "NotFound"}, status=404)
        return feed.error_xml(201, "Indexer is not configured", status=404)

    # -- Jackett ------------------------------------------------------------------------

    async def jackett_torznab(self, request: web.Request) -> web.Response:
        key = request.match_info["indexer"]
        indexer = _jackett_indexer(key)
        if indexer is None and key not in AGGREGATES:
            return feed.error_xml(201, "Indexer is not configured")
        style = FeedStyle("jackettindexer", str(request.url.origin()), self.api_key)
        return self._torznab(request, indexer, style, "Jackett")

    async def jackett_results(self, request: web.Request) -> web.Response:
        key = request.match_info["indexer"]
        indexer = _jackett_indexer(key)
        if indexer is None and key not in AGGREGATES:
            return json_response({"error": "Indexer is not configured"}, status=404)
        params = {"t": "search", "q": request.query.get("Query", "")}
        cats = request.query.getall("Category[]", []) + request.query.getall("Category", [])
        if cats:
            params["cat"] = ",".join(cats)
        releases = self._releases(Query.from_params(params), indexer)
        trackers = set(request.query.getall("Tracker[]", []))
        if trackers:
            releases = [r for r in releases if feed.indexer_for(r).key in trackers]
        origin = str(request.url.origin())
        style = FeedStyle("jackettindexer", origin, self.api_key)
        results = [self._jackett_result(r, style) for r in releases]
        used = [i for i in INDEXERS if indexer in (None, i)]
        return json_response(
            {
                "Results": results,
                "Indexers": [
                    {
                        "ID": i.key,
                        "Name": i.name,
                        "Status": 2,
                        "Results": sum(1 for r in releases if feed.indexer_for(r) is i),
                        "Error": None,
                        "ElapsedTime": 120 + i.prowlarr_id * 37,
                    }
                    for i in used
                ],
            }
        )

    def _jackett_result(self, release: Release, style: FeedStyle) -> dict[str, Any]:
        indexer = feed.indexer_for(release)
        cat = feed.category(release)
        imdb = feed.imdb_of(self.world.catalog, release)
        return {
            "FirstSeen": "0001-01-01T00:00:00",
            "Tracker": indexer.name,
            "TrackerId": indexer.key,
            "TrackerType": "public",
            "CategoryDesc": feed.CATEGORY_NAMES[cat],
            "BlackholeLink": None,
            "Title": release.title,
            "Guid": f"{indexer.site}torrent/{int(release.infohash[:7], 16)}/",
            "Link": style.link(release),
            "Details": f"{indexer.site}torrent/{int(release.infohash[:7], 16)}/",
            "PublishDate": datetime.fromtimestamp(release.published_s, UTC).isoformat(),
            "Category": [cat],
            "Size": release.size,
            "Files": len(release.files) if release.multi_file else None,
            "Grabs": release.seeders * 7 + 3,
            "Description": None,
            "RageID": None,
            "TVDBId": None,
            "Imdb": int(imdb[2:]) if imdb else None,
            "TMDb": None,
            "TVMazeId": None,
            "TraktId": None,
            "DoubanId": None,
            "Genres": None,
            "Languages": [],
            "Subs": [],
            "Year": None,
            "Author": None,
            "BookTitle": None,
            "Publisher": None,
            "Artist": None,
            "Album": None,
            "Label": None,
            "Track": None,
            "Seeders": release.seeders,
            "Peers": release.peers,
            "Poster": None,
            "InfoHash": release.infohash if release.indexed_hash else None,
            "MagnetUri": release.magnet if release.indexed_hash else None,
            "MinimumRatio": None,
            "MinimumSeedTime": None,
            "DownloadVolumeFactor": 0.0,
            "UploadVolumeFactor": 1.0,
            "Gain": round(release.size / 1024**3 * release.seeders, 2),
        }

    async def download(self, request: web.Request) -> web.StreamResponse:
        token = request.query.get("path") or request.query.get("link") or ""
        infohash = feed.token_hash(token)
        release = self.world.catalog.release(infohash) if infohash else None
        if release is None:
            return self.not_found(request)
        raise web.HTTPFound(release.magnet)

    # -- Prowlarr -----------------------------------------------------------------------

    async def prowlarr_torznab(self, request: web.Request) -> web.Response:
        ident = int(request.match_info["indexer_id"])
        indexer = next((i for i in INDEXERS if i.prowlarr_id == ident), None)
        if indexer is None:
            return feed.error_xml(201, "Indexer is not configured", status=404)
        style = FeedStyle("prowlarrindexer", str(request.url.origin()), self.api_key)
        return self._torznab(request, indexer, style, "Prowlarr")

    async def prowlarr_indexers(self, request: web.Request) -> web.Response:
        return json_response([_prowlarr_indexer(i) for i in INDEXERS])

    async def prowlarr_status(self, request: web.Request) -> web.Response:
        return json_response([])

    async def prowlarr_search(self, request: web.Request) -> web.Response:
        params = {"t": request.query.get("type", "search"), "q": request.query.get("query", "")}
        for name in ("season", "ep", "limit", "offset"):
            if name in request.query:
                params[name] = request.query[name]
        if "episode" in request.query:
            params["ep"] = request.query["episode"]
        cats = request.query.getall("categories", [])
        if cats:
            params["cat"] = ",".join(cats)
        if params["t"] not in FUNCTIONS:
            return json_response({"message": "Function Not Available"}, status=400)
        wanted = {
            int(i)
            for p in request.query.getall("indexerIds", [])
            for i in p.split(",")
            if i.strip().lstrip("-").isdigit() and int(i) > 0
        }
        releases = self._releases(Query.from_params(params), None)
        if wanted:
            releases = [r for r in releases if feed.indexer_for(r).prowlarr_id in wanted]
        origin, now = str(request.url.origin()), self.world.now()
        style = FeedStyle("prowlarrindexer", origin, self.api_key)
        return json_response([self._prowlarr_release(r, style, now) for r in releases])

    def _prowlarr_release(
        self, release: Release, style: FeedStyle, now: datetime
    ) -> dict[str, Any]:
        indexer = feed.indexer_for(release)
        cat = feed.category(release)
        age_minutes = max(0.0, (now.timestamp() - release.published_s) / 60)
        imdb = feed.imdb_of(self.world.catalog, release)
        info = f"{indexer.site}torrent/{int(release.infohash[:7], 16)}/"
        return {
            "guid": info,
            "age": int(age_minutes // 1440),
            "ageHours": round(age_minutes / 60, 1),
            "ageMinutes": round(age_minutes, 1),
            "size": release.size,
            "files": len(release.files),
            "grabs": release.seeders * 7 + 3,
            "indexerId": indexer.prowlarr_id,
            "indexer": indexer.name,
            "title": release.title,
            "sortTitle": " ".join(re.split(r"[\W_]+", release.title.lower())).strip(),
            "imdbId": int(imdb[2:]) if imdb else 0,
            "tmdbId": 0,
            "tvdbId": 0,
            "tvMazeId": 0,
            "publishDate": iso_z(datetime.fromtimestamp(release.published_s, UTC)),
            "downloadUrl": style.link(release),
            "infoUrl": info,
            "indexerFlags": [],
            "categories": [{"id": cat, "name": feed.CATEGORY_NAMES[cat], "subCategories": []}],
            "magnetUrl": release.magnet if release.indexed_hash else None,
            "infoHash": release.infohash if release.indexed_hash else None,
            "seeders": release.seeders,
            "leechers": release.peers - release.seeders,
            "protocol": "torrent",
            "fileName": f"{release.title}.torrent",
        }

    # -- shared -------------------------------------------------------------------------

    def _torznab(
        self, request: web.Request, indexer: Indexer | None, style: FeedStyle, server: str
    ) -> web.Response:
        function = request.query.get("t", "")
        if function == "caps":
            return feed.caps_xml(server)
        if function not in FUNCTIONS:
            status = 400 if server == "Prowlarr" else 200
            return feed.error_xml(
                202 if function else 200,
                "Function Not Available" if function else "Missing parameter (t)",
                status=status,
            )
        releases = self._releases(Query.from_params(dict(request.query)), indexer)
        title = indexer.name if indexer is not None else "AggregateSearch"
        return feed.rss_xml(self.world.catalog, releases, style, title)

    def _releases(self, query: Query, indexer: Indexer | None) -> list[Release]:
        releases = feed.search(self.world.catalog, query, self.world.now())
        if indexer is not None:
            releases = [r for r in releases if feed.indexer_for(r) is indexer]
        return releases


def _jackett_indexer(key: str) -> Indexer | None:
    return next((i for i in INDEXERS if i.key == key), None)


def _prowlarr_indexer(indexer: Indexer) -> dict[str, Any]:
    def cats(top: int, subs: tuple[int, ...]) -> dict[str, Any]:
        return {
            "id": top,
            "name": feed.CATEGORY_NAMES[top],
            "subCategories": [
                {"id": s, "name": feed.CATEGORY_NAMES[s], "subCategories": []} for s in subs
            ],
        }

    return {
        "id": indexer.prowlarr_id,
        "name": indexer.name,
        "enable": True,
        "protocol": "torrent",
        "privacy": "public",
        "implementationName": "Cardigann",
        "implementation": "Cardigann",
        "definitionName": indexer.key,
        "supportsRss": True,
        "supportsSearch": True,
        "priority": 25,
        "appProfileId": 1,
        "tags": [],
        "added": "2024-06-01T12:00:00Z",
        "sortName": indexer.key,
        "capabilities": {
            "id": 0,
            "limitsMax": feed.MAX_LIMIT,
            "limitsDefault": feed.MAX_LIMIT,
            "supportsRawSearch": False,
            "categories": [cats(2000, (2030, 2040, 2045)), cats(5000, (5030, 5040, 5045, 5070))],
            "searchParams": ["q"],
            "tvSearchParams": ["q", "season", "ep", "imdbId", "tvdbId"],
            "movieSearchParams": ["q", "imdbId", "tmdbId"],
            "musicSearchParams": [],
            "bookSearchParams": [],
        },
    }

"""Stremio addons: Torrentio, and the Comet and MediaFusion variants where they differ."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import orjson
from aiohttp import hdrs, web

from riven_async.sim import names
from riven_async.sim.harness import Sim
from riven_async.sim.limits import Verdict
from riven_async.sim.releases import Release
from riven_async.sim.responses import json_response, text_response
from riven_async.sim.world import SimWorld

TORRENTIO_CACHE = {"cacheMaxAge": 3600, "staleRevalidate": 14400, "staleError": 604800}
EMPTY_CACHE = {"cacheMaxAge": 60, "staleRevalidate": 14400, "staleError": 604800}
DEBRID_SHORT = {
    "realdebrid": "RD",
    "premiumize": "PM",
    "alldebrid": "AD",
    "debridlink": "DL",
    "easydebrid": "ED",
    "offcloud": "OC",
    "torbox": "TB",
    "putio": "Putio",
}
SIMULATED_DEBRIDS = ("realdebrid", "alldebrid", "torbox")
_QUALITY_FILTERS = {
    "4k": ("2160p",),
    "1080p": ("1080p",),
    "720p": ("720p",),
    "480p": ("480p",),
    "cam": ("CAM", "TS"),
    "scr": ("SCR",),
    "unknown": ("",),
}


@dataclass(frozen=True, slots=True)
class Candidate:
    """A release offered for one id, and which of its files plays it (None: the only file)."""

    release: Release
    file_index: int | None
    season: int | None
    episode: int | None

    @property
    def filename(self) -> str | None:
        if self.file_index is None:
            return None
        return self.release.files[self.file_index].name

    @property
    def video_size(self) -> int:
        if self.file_index is None:
            return self.release.size
        return self.release.files[self.file_index].size


def find_candidates(world: SimWorld, kind: str, stremio_id: str) -> list[Candidate] | None:
    """Releases for ``tt…`` (movie) or ``tt…:S:E`` (series); None for an id addons reject."""
    catalog, now = world.catalog, world.now()
    parts = stremio_id.split(":")
    if kind == "movie" and len(parts) == 1 and parts[0].startswith("tt"):
        movie = catalog.movie_by_imdb(parts[0])
        if movie is None:
            return []
        return [
            Candidate(r, r.main_video_index() if r.multi_file else None, None, None)
            for r in catalog.movie_releases(movie, now)
        ]
    if kind == "series" and len(parts) == 3 and parts[0].startswith("tt"):
        if not (parts[1].isdigit() and parts[2].isdigit()):
            return None
        show = catalog.show_by_imdb(parts[0])
        if show is None:
            return []
        season, episode = int(parts[1]), int(parts[2])
        out = []
        for release in catalog.episode_releases(show, season, episode, now):
            index = release.file_index(season, episode) if release.multi_file else None
            out.append(Candidate(release, index, season, episode))
        return out
    return None


def human_size(size: int) -> str:
    """``1.17 GB``: base 1024, two decimals, as Torrentio prints sizes."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024:
            return f"{value:.2f} {unit}"
        value /= 1024
    return f"{value:.2f} TB"


def quality(release: Release) -> str:
    if release.source in ("CAM", "TS"):
        return release.source
    return "4k" if release.resolution == "2160p" else release.resolution or "unknown"


def hdr_label(release: Release) -> str:
    return " | ".join(sorted(release.hdr, key=lambda tag: tag != "HDR"))


def flags(release: Release) -> str:
    return " / ".join(names.LANGUAGE_FLAGS.get(code, code) for code in release.languages)


def sources(release: Release) -> list[str]:
    return [f"tracker:{url}" for url in names.ANNOUNCE_URLS[:2]] + [f"dht:{release.infohash}"]


def _stream_path(router: web.UrlDispatcher, prefix: str, handler: Any) -> None:
    router.add_get(prefix + "/stream/{type}/{id}.json", handler)
    router.add_get(prefix + "/stream/{type}/{id}/{extra}.json", handler)


class TorrentioSim(Sim):
    """Torrentio: ``/{config}/stream/{type}/{id}.json``; ``[RD+]`` names with a debrid key."""

    name = "torrentio"
    default_limits = ("150/60s", "5000/1d")

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/manifest.json", self.manifest)
        router.add_get("/{config}/manifest.json", self.manifest)
        _stream_path(router, "", self.streams)
        _stream_path(router, "/{config}", self.streams)
        router.add_get("/resolve/{moch}/{key}/{hash}/{cached}/{file}/{name}", self.resolve)

    def rate_limited(self, request: web.Request, verdict: Verdict) -> web.StreamResponse:
        window = verdict.window
        limit, span = (window.limit, int(window.span_s)) if window else (5000, 86400)
        retry = verdict.retry_after_header
        return text_response(
            "Too many requests, please try again later.",
            status=429,
            content_type="text/html",
            headers={
                hdrs.RETRY_AFTER: retry,
                "RateLimit-Policy": f"{limit};w={span}",
                "RateLimit-Limit": str(limit),
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": retry,
            },
        )

    def server_error(self, request: web.Request, status: int) -> web.StreamResponse:
        return json_response({"err": "handler error"}, status=status)

    def not_found(self, request: web.Request) -> web.StreamResponse:
        return json_response({"err": "not found"}, status=404)

    async def manifest(self, request: web.Request) -> web.Response:
        origin = str(request.url.origin())
        return json_response(
            {
                "id": "com.stremio.torrentio.addon",
                "version": "0.0.15",
                "name": "Torrentio",
                "description": "Provides torrent streams from scraped torrent providers.",
                "catalogs": [],
                "resources": [
                    {
                        "name": "stream",
                        "types": ["movie", "series", "anime"],
                        "idPrefixes": ["tt", "kitsu"],
                    }
                ],
                "types": ["movie", "series", "anime", "other"],
                "background": f"{origin}/images/background_v1.jpg",
                "logo": f"{origin}/images/logo_v1.png",
                "behaviorHints": {"configurable": True, "configurationRequired": False},
            }
        )

    async def streams(self, request: web.Request) -> web.Response:
        options = _torrentio_options(request.match_info.get("config", ""))
        found = find_candidates(self.world, request.match_info["type"], request.match_info["id"])
        if found is None:
            return json_response({"streams": []})
        excluded = {
            q
            for key in options.get("qualityfilter", "").split(",")
            for q in _QUALITY_FILTERS.get(key.strip().lower(), ())
        }
        found = [c for c in found if _filter_key(c.release) not in excluded]
        found.sort(key=_sorter(options.get("sort", "quality")))
        if options.get("limit", "").isdigit():
            found = _limit_per_quality(found, int(options["limit"]))
        debrid = next(((m, options[m]) for m in DEBRID_SHORT if options.get(m)), None)
        origin = str(request.url.origin())
        streams = [self._stream(c, debrid, origin) for c in found]
        return json_response({"streams": streams, **(TORRENTIO_CACHE if streams else EMPTY_CACHE)})

    async def resolve(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        raise web.HTTPFound(
            f"https://download.sim.invalid/{info['moch']}/{info['hash']}/{info['file']}/"
            f"{quote(unquote(info['name']))}"
        )

    def _stream(
        self, candidate: Candidate, debrid: tuple[str, str] | None, origin: str
    ) -> dict[str, Any]:
        release = candidate.release
        label = quality(release) + (f" {hdr_label(release)}" if release.hdr else "")
        lines = [release.title]
        if candidate.filename is not None and candidate.filename != release.title:
            lines.append(candidate.filename)
        lines.append(
            f"👤 {release.seeders} 💾 {human_size(candidate.video_size)} ⚙️ {release.tracker}"
        )
        if release.languages != ("en",):
            lines.append(flags(release))
        hints: dict[str, Any] = {"bingeGroup": _binge_group(candidate)}
        if candidate.filename is not None:
            hints["filename"] = candidate.filename
        if debrid is None:
            stream: dict[str, Any] = {
                "name": f"Torrentio\n{label}",
                "title": "\n".join(lines),
                "infoHash": release.infohash,
            }
            if candidate.file_index is not None:
                stream["fileIdx"] = candidate.file_index
            stream["behaviorHints"] = hints
            stream["sources"] = sources(release)
            return stream
        moch, key = debrid
        cached = moch in SIMULATED_DEBRIDS and self.world.is_cached(
            moch, release.infohash, release=release
        )
        tag = f"[{DEBRID_SHORT[moch]}{'+' if cached else ' download'}]"
        file_part = "undefined" if candidate.file_index is None else str(candidate.file_index)
        url = (
            f"{origin}/resolve/{moch}/{key}/{release.infohash}/null/{file_part}/"
            f"{quote(candidate.filename or release.title)}"
        )
        return {
            "name": f"{tag} Torrentio\n{label}",
            "title": "\n".join(lines),
            "url": url,
            "behaviorHints": hints,
        }


def _torrentio_options(config: str) -> dict[str, str]:
    options = {}
    for part in unquote(config).split("|"):
        key, _, value = part.partition("=")
        if key and value:
            options[key.strip().lower()] = value.strip()
    return options


def _filter_key(release: Release) -> str:
    return release.source if release.source in ("CAM", "TS") else release.resolution


def _sorter(sort: str) -> Any:
    ranks = {"2160p": 0, "1080p": 1, "720p": 2, "480p": 3, "": 4}

    def rank(candidate: Candidate) -> tuple[int, int]:
        release = candidate.release
        quality_rank = 5 if release.source in ("CAM", "TS") else ranks.get(release.resolution, 4)
        if sort == "seeders":
            return (-release.seeders, quality_rank)
        if sort == "size":
            return (-candidate.video_size, quality_rank)
        if sort == "qualitysize":
            return (quality_rank, -candidate.video_size)
        return (quality_rank, -release.seeders)

    return rank


def _limit_per_quality(found: list[Candidate], limit: int) -> list[Candidate]:
    seen: dict[str, int] = {}
    out = []
    for candidate in found:
        key = quality(candidate.release)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] <= limit:
            out.append(candidate)
    return out


def _binge_group(candidate: Candidate) -> str:
    release = candidate.release
    if len([f for f in release.files if f.is_video]) > 1:
        return f"torrentio|{release.infohash}"
    if candidate.season is None:
        parts = [quality(release), release.source, release.codec, *release.hdr]
    else:
        parts = [quality(release), *sorted(release.hdr, key=lambda t: t != "HDR"), release.group]
    return "|".join(["torrentio", *(p for p in parts if p)])


def decode_config(segment: str) -> dict[str, Any] | None:
    """Comet's and MediaFusion's config segment: URL-safe base64 of a JSON object."""
    text = segment.removeprefix("D-")
    try:
        data = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError):
        return None
    return data if isinstance(data, dict) else None


def encode_config(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")

"""Comet: the Stremio protocol with a base64 JSON config and 200-with-notice errors."""

from __future__ import annotations

from typing import Any

from aiohttp import hdrs, web

from riven_async.sim.harness import Sim
from riven_async.sim.limits import Verdict
from riven_async.sim.responses import json_response
from riven_async.sim.stremio import (
    DEBRID_SHORT,
    SIMULATED_DEBRIDS,
    Candidate,
    decode_config,
    find_candidates,
    flags,
    human_size,
    sources,
)

NOTICE_URL = "https://comet.feels.legal"
_AUDIO = {"DDP5.1": "DDP", "AAC5.1": "AAC", "DTS5.1": "DTS", "TrueHD.Atmos.7.1": "TrueHD"}


def notice(symbol: str, description: str) -> web.Response:
    """Comet's way of failing: 200 with one stream that has no ``infoHash``."""
    stream = {"name": f"[{symbol}] Comet", "description": description, "url": NOTICE_URL}
    return json_response({"streams": [stream]})


class CometSim(Sim):
    """Comet: ``/{b64config}/stream/{type}/{id}.json``; ``[RD⚡]`` when cached on the debrid."""

    name = "comet"
    default_limits = ("300/60s",)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/manifest.json", self.manifest)
        router.add_get("/{config}/manifest.json", self.manifest)
        router.add_get("/stream/{type}/{id}.json", self.streams)
        router.add_get("/{config}/stream/{type}/{id}.json", self.streams)

    def rate_limited(self, request: web.Request, verdict: Verdict) -> web.StreamResponse:
        return json_response(
            {"detail": "Too Many Requests"},
            status=429,
            headers={hdrs.RETRY_AFTER: verdict.retry_after_header},
        )

    def server_error(self, request: web.Request, status: int) -> web.StreamResponse:
        return json_response({"detail": "Internal Server Error"}, status=status)

    def not_found(self, request: web.Request) -> web.StreamResponse:
        return json_response({"detail": "Not Found"}, status=404)

    async def manifest(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "id": "comet.elfhosted.com",
                "version": "2.0.0",
                "name": "Comet",
                "description": "Stremio's fastest torrent/debrid search add-on.",
                "catalogs": [],
                "resources": [
                    {"name": "stream", "types": ["movie", "series"], "idPrefixes": ["tt", "kitsu"]}
                ],
                "types": ["movie", "series", "anime", "other"],
                "behaviorHints": {"configurable": True, "configurationRequired": False},
            }
        )

    async def streams(self, request: web.Request) -> web.Response:
        origin = str(request.url.origin())
        segment = request.match_info.get("config", "")
        config = decode_config(segment) if segment else None
        if config is None:
            return notice("❌", f"⚠️ OBSOLETE CONFIGURATION, PLEASE RE-CONFIGURE ON {origin} ⚠️")
        kind, stremio_id = request.match_info["type"], request.match_info["id"]
        found = find_candidates(self.world, kind, stremio_id)
        if found is None or (not found and not self._known(kind, stremio_id)):
            return notice("⚠️", "Unable to get metadata.")
        movie = self.world.catalog.movie_by_imdb(stremio_id) if kind == "movie" else None
        if movie is not None and not movie.digitally_released(self.world.now()):
            return notice("🚫", "Content not digitally released yet.")
        service = str(config.get("debridService", "torrent")).lower()
        debrid = service if service in DEBRID_SHORT else None
        streams = []
        for candidate in found:
            release = candidate.release
            cached = debrid in SIMULATED_DEBRIDS and self.world.is_cached(
                debrid, release.infohash, release=release
            )
            if config.get("cachedOnly") and debrid is not None and not cached:
                continue
            streams.append(self._stream(candidate, debrid, cached, segment, origin))
        return json_response({"streams": streams})

    def _known(self, kind: str, stremio_id: str) -> bool:
        imdb = stremio_id.split(":")[0]
        catalog = self.world.catalog
        if kind == "movie":
            return catalog.movie_by_imdb(imdb) is not None
        return catalog.show_by_imdb(imdb) is not None

    def _stream(
        self, candidate: Candidate, debrid: str | None, cached: bool, segment: str, origin: str
    ) -> dict[str, Any]:
        release = candidate.release
        resolution = release.resolution or "Unknown"
        video = release.codec + (
            f" | 🔊 {_AUDIO[release.audio]}" if release.audio in _AUDIO else ""
        )
        lines = [
            f"📄 {release.title}",
            f"📹 {video}",
            f"⭐ {release.source} | 🏷️ {release.group}",
            f"👤 {release.seeders} 💾 {human_size(candidate.video_size)} 🔎 {release.tracker}",
        ]
        if not release.junk:
            lines.append(flags(release))
        hints = {
            "bingeGroup": f"comet|{debrid or 'torrent'}|{release.infohash}",
            "filename": candidate.filename or release.title,
            "videoSize": candidate.video_size,
        }
        if debrid is None:
            stream: dict[str, Any] = {
                "name": f"[TORRENT🧲] Comet {resolution}",
                "description": "\n".join(lines),
                "behaviorHints": hints,
                "infoHash": release.infohash,
            }
            if candidate.file_index is not None:
                stream["fileIdx"] = candidate.file_index
                stream["sources"] = sources(release)
            return stream
        short = DEBRID_SHORT[debrid]
        file_part = "n" if candidate.file_index is None else str(candidate.file_index)
        season = "n" if candidate.season is None else str(candidate.season)
        episode = "n" if candidate.episode is None else str(candidate.episode)
        return {
            "name": f"[{short}{'⚡' if cached else '⬇️'}] Comet {resolution}",
            "description": "\n".join(lines),
            "behaviorHints": hints,
            "url": f"{origin}/{segment}/playback/{release.infohash}/{debrid}/{file_part}/"
            f"{season}/{episode}",
        }

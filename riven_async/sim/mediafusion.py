"""MediaFusion: encrypted user data, then the Stremio stream route; limits answer with a notice."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from riven_async.sim.harness import Sim
from riven_async.sim.limits import Verdict
from riven_async.sim.responses import json_response
from riven_async.sim.stremio import (
    DEBRID_SHORT,
    SIMULATED_DEBRIDS,
    Candidate,
    decode_config,
    encode_config,
    find_candidates,
    human_size,
    sources,
)


class MediaFusionSim(Sim):
    """MediaFusion: ``POST /encrypt-user-data`` then ``/{encrypted}/stream/{type}/{id}.json``.

    Over its per-user limit MediaFusion still answers 200, with a stream whose name says
    "rate-limit exceeded" (clients must look for it); the sim counts the violation all the same.
    """

    name = "mediafusion"
    default_limits = ("1000/60s",)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/encrypt-user-data", self.encrypt_user_data)
        router.add_get("/manifest.json", self.manifest)
        router.add_get("/{config}/manifest.json", self.manifest)
        router.add_get("/{config}/stream/{type}/{id}.json", self.streams)

    def rate_limited(self, request: web.Request, verdict: Verdict) -> web.StreamResponse:
        origin = str(request.url.origin())
        stream = {
            "name": "🚫 Streams rate-limit exceeded",
            "description": "Too many requests. Please try again later.",
            "url": f"{origin}/static/exceptions/rate_limit_exceeded.mp4",
        }
        return json_response({"streams": [stream]})

    def server_error(self, request: web.Request, status: int) -> web.StreamResponse:
        return json_response({"detail": "Internal Server Error"}, status=status)

    def not_found(self, request: web.Request) -> web.StreamResponse:
        return json_response({"detail": "Not Found"}, status=404)

    async def encrypt_user_data(self, request: web.Request) -> web.Response:
        try:
            data = await request.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return json_response(
                {"status": "error", "encrypted_str": None, "message": "Invalid user data"},
                status=422,
            )
        return json_response(
            {"status": "success", "encrypted_str": "D-" + encode_config(data), "message": None}
        )

    async def manifest(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "id": "stremio.addons.mediafusion|elfhosted",
                "version": "4.3.0",
                "name": "MediaFusion",
                "description": "Universal Stremio add-on for movies and series.",
                "catalogs": [],
                "resources": [
                    {"name": "stream", "types": ["movie", "series"], "idPrefixes": ["tt"]}
                ],
                "types": ["movie", "series"],
                "behaviorHints": {"configurable": True, "configurationRequired": False},
            }
        )

    async def streams(self, request: web.Request) -> web.Response:
        config = decode_config(request.match_info["config"])
        found = find_candidates(self.world, request.match_info["type"], request.match_info["id"])
        if config is None or found is None:
            return json_response({"streams": []})
        provider = config.get("streaming_provider")
        service = str(provider.get("service", "")).lower() if isinstance(provider, dict) else ""
        debrid = service if service in DEBRID_SHORT else None
        return json_response({"streams": [self._stream(c, debrid) for c in found]})

    def _stream(self, candidate: Candidate, debrid: str | None) -> dict[str, Any]:
        release = candidate.release
        resolution = release.resolution or "Unknown"
        name = f"MediaFusion {resolution}"
        if debrid is not None:
            cached = debrid in SIMULATED_DEBRIDS and self.world.is_cached(
                debrid, release.infohash, release=release
            )
            name = f"MediaFusion {DEBRID_SHORT[debrid]} {'⚡️' if cached else '⏳'} {resolution}"
        filename = candidate.filename or release.files[release.main_video_index()].name
        return {
            "name": name,
            "description": (
                f"📂 {release.title} ┈➤ {filename}\n"
                f"💾 {human_size(candidate.video_size)} 👤 {release.seeders}\n"
                f"🔗 {release.tracker}"
            ),
            "infoHash": release.infohash,
            "fileIdx": candidate.file_index
            if candidate.file_index is not None
            else release.main_video_index(),
            "behaviorHints": {
                "bingeGroup": f"MediaFusion-{resolution}",
                "filename": filename,
                "videoSize": candidate.video_size,
            },
            "sources": sources(release),
        }

"""Plex Media Server: identity, library sections (XML or JSON) and partial scans by path."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

from aiohttp import web

from riven_async.sim.harness import Sim
from riven_async.sim.responses import epoch_s, json_response, text_response, xml_response
from riven_async.sim.world import LibraryScan, SimWorld

_UNAUTHORIZED = (
    "<html><head><title>Unauthorized</title></head><body><h1>401 Unauthorized</h1></body></html>"
)
_NOT_FOUND = "<html><head><title>Not Found</title></head><body><h1>404 Not Found</h1></body></html>"


class PlexSim(Sim):
    """A local PMS (``X-Plex-Token``): one show and one movie section over the library root.

    Every ``/library/sections/{key}/refresh`` is kept in ``scans``; ``matched`` says whether
    the path lies under that section's locations (a wrong mapping would scan nothing).
    """

    name = "plex"

    def __init__(self, world: SimWorld, api_key: str) -> None:
        super().__init__(world, api_key)
        self.scans: list[LibraryScan] = []
        self.machine_id = hashlib.blake2b(
            f"plex:{world.catalog.seed}".encode(), digest_size=20
        ).hexdigest()
        layout = world.library
        self.sections = (
            _Section(
                "1",
                "show",
                "TV Shows",
                "tv.plex.agents.series",
                "Plex TV Series",
                ((1, layout.shows_path),),
            ),
            _Section(
                "2",
                "movie",
                "Movies",
                "tv.plex.agents.movie",
                "Plex Movie",
                ((2, layout.movies_path),),
            ),
        )

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/identity", self.identity)
        router.add_get("/library/sections", self.list_sections)
        router.add_get("/library/sections/{key}/refresh", self.refresh)

    def authenticate(self, request: web.Request) -> web.StreamResponse | None:
        if request.path == "/identity":
            return None
        token = request.headers.get("X-Plex-Token") or request.query.get("X-Plex-Token")
        if token == self.api_key:
            return None
        return text_response(_UNAUTHORIZED, status=401, content_type="text/html")

    def server_error(self, request: web.Request, status: int) -> web.StreamResponse:
        title = {500: "Internal Server Error", 503: "Service Unavailable"}.get(status, "Error")
        body = (
            f"<html><head><title>{title}</title></head><body><h1>{status} {title}</h1>"
            "</body></html>"
        )
        return text_response(body, status=status, content_type="text/html")

    def not_found(self, request: web.Request) -> web.StreamResponse:
        return text_response(_NOT_FOUND, status=404, content_type="text/html")

    def stats(self) -> dict[str, Any]:
        return {
            "scans": [
                {
                    "section": s.section,
                    "path": s.path,
                    "kind": s.kind,
                    "at": s.at.isoformat(),
                    "matched": s.matched,
                }
                for s in self.scans
            ]
        }

    async def identity(self, request: web.Request) -> web.Response:
        return xml_response(
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<MediaContainer size="0" apiVersion="1.1.1" claimed="1" '
            f'machineIdentifier="{self.machine_id}" version="1.41.4.9463-630c9f557">\n'
            "</MediaContainer>\n"
        )

    async def list_sections(self, request: web.Request) -> web.Response:
        stamp = epoch_s(self.world.now())
        if "application/json" in request.headers.get("Accept", ""):
            return json_response(
                {
                    "MediaContainer": {
                        "size": len(self.sections),
                        "allowSync": False,
                        "title1": "Plex Library",
                        "Directory": [s.to_json(stamp) for s in self.sections],
                    }
                }
            )
        directories = "".join(s.to_xml(stamp) for s in self.sections)
        return xml_response(
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<MediaContainer size="{len(self.sections)}" allowSync="0" title1="Plex Library">\n'
            f"{directories}</MediaContainer>\n"
        )

    async def refresh(self, request: web.Request) -> web.Response:
        section = next((s for s in self.sections if s.key == request.match_info["key"]), None)
        if section is None:
            return text_response(_NOT_FOUND, status=404, content_type="text/html")
        path = request.query.get("path")
        matched = path is None or any(
            self.world.library.contains(folder, path) for _, folder in section.locations
        )
        kind = "forced" if request.query.get("force") == "1" else "partial" if path else "full"
        self.scans.append(LibraryScan("plex", path, kind, self.world.now(), section.key, matched))
        return web.Response(status=200)


@dataclass(frozen=True, slots=True)
class _Section:
    """One library section and both of its serialisations."""

    key: str
    kind: str
    title: str
    agent: str
    scanner: str
    locations: tuple[tuple[int, str], ...]

    @property
    def uuid(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"plex-section:{self.key}:{self.title}"))

    def _attrs(self, stamp: int) -> dict[str, Any]:
        return {
            "allowSync": True,
            "art": f"/:/resources/{self.kind}-fanart.jpg",
            "composite": f"/library/sections/{self.key}/composite/{stamp}",
            "filters": True,
            "refreshing": False,
            "thumb": f"/:/resources/{self.kind}.png",
            "key": self.key,
            "type": self.kind,
            "title": self.title,
            "agent": self.agent,
            "scanner": self.scanner,
            "language": "en-US",
            "uuid": self.uuid,
            "updatedAt": stamp,
            "createdAt": stamp - 86400 * 400,
            "scannedAt": stamp,
            "content": True,
            "directory": True,
            "contentChangedAt": stamp % 100_000,
            "hidden": 0,
        }

    def to_json(self, stamp: int) -> dict[str, Any]:
        return {
            **self._attrs(stamp),
            "Location": [{"id": ident, "path": path} for ident, path in self.locations],
        }

    def to_xml(self, stamp: int) -> str:
        attrs = " ".join(
            f"{k}={quoteattr(str(int(v)) if isinstance(v, bool) else str(v))}"
            for k, v in self._attrs(stamp).items()
        )
        locations = "".join(
            f'<Location id="{ident}" path={quoteattr(path)} />\n' for ident, path in self.locations
        )
        return f"<Directory {attrs}>\n{locations}</Directory>\n"

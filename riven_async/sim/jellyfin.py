"""Jellyfin, and Emby where it differs: media-updated notifications by path, library scans."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from aiohttp import web

from riven_async.sim.harness import Sim
from riven_async.sim.responses import empty_response, json_response
from riven_async.sim.world import LibraryScan, SimWorld

UPDATE_TYPES = ("Created", "Modified", "Deleted")
_TOKEN = re.compile(r'Token="([^"]*)"')


class JellyfinSim(Sim):
    """Jellyfin (``Authorization: MediaBrowser Token="…"``) or, with ``emby=True``, Emby.

    Jellyfin also takes the legacy ``X-Emby-Token``/``api_key`` forms (10.11 still does,
    12.0 will not): each use is counted in ``legacy_auth_uses``, and
    ``accept_legacy_auth = False`` refuses them as 12.0 will. Every notified path is kept in
    ``scans`` (``kind`` = the ``UpdateType``; ``"full"`` for ``/Library/Refresh``).
    """

    def __init__(self, world: SimWorld, api_key: str, emby: bool = False) -> None:
        super().__init__(world, api_key)
        self.emby = emby
        self.name = "emby" if emby else "jellyfin"
        self.accept_legacy_auth = True
        self.legacy_auth_uses = 0
        self.scans: list[LibraryScan] = []
        self.server_id = hashlib.blake2b(
            f"{self.name}:{world.catalog.seed}".encode(), digest_size=16
        ).hexdigest()

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/System/Info/Public", self.public_info)
        router.add_get("/Library/VirtualFolders", self.virtual_folders)
        router.add_post("/Library/Media/Updated", self.media_updated)
        router.add_post("/Library/Refresh", self.refresh)
        router.add_get("/Users", self.users)

    def authenticate(self, request: web.Request) -> web.StreamResponse | None:
        if request.path == "/System/Info/Public":
            return None
        modern, legacy = self._tokens(request)
        if modern == self.api_key:
            return None
        if legacy == self.api_key and (self.emby or self.accept_legacy_auth):
            if not self.emby:
                self.legacy_auth_uses += 1
            return None
        return empty_response(401)

    def _tokens(self, request: web.Request) -> tuple[str | None, str | None]:
        """(the scheme this server prefers, a legacy form) as found on the request."""
        headers, query = request.headers, request.query
        authorization = headers.get("Authorization", "")
        scheme_token = (
            _token(authorization) if authorization.startswith(("MediaBrowser ", "Emby ")) else None
        )
        emby_auth = _token(headers.get("X-Emby-Authorization", ""))
        header_token = headers.get("X-Emby-Token") or headers.get("X-MediaBrowser-Token")
        if self.emby:
            return header_token or query.get("api_key") or scheme_token or emby_auth, None
        modern = scheme_token if authorization.startswith("MediaBrowser ") else None
        return modern or query.get("ApiKey"), header_token or emby_auth or query.get("api_key")

    def stats(self) -> dict[str, Any]:
        return {
            "scans": [{"path": s.path, "kind": s.kind, "at": s.at.isoformat()} for s in self.scans],
            "legacy_auth_uses": self.legacy_auth_uses,
        }

    async def public_info(self, request: web.Request) -> web.Response:
        host = request.url.origin()
        if self.emby:
            return json_response(
                {
                    "LocalAddress": str(host),
                    "WanAddress": "",
                    "ServerName": "emby",
                    "Version": "4.8.10.0",
                    "Id": self.server_id,
                }
            )
        return json_response(
            {
                "LocalAddress": str(host),
                "ServerName": "jellyfin",
                "Version": "10.11.6",
                "ProductName": "Jellyfin Server",
                "OperatingSystem": "",
                "Id": self.server_id,
                "StartupWizardCompleted": True,
            }
        )

    async def virtual_folders(self, request: web.Request) -> web.Response:
        layout = self.world.library
        return json_response(
            [
                self._folder("Movies", layout.movies_path, "movies"),
                self._folder("Shows", layout.shows_path, "tvshows"),
            ]
        )

    def _folder(self, name: str, path: str, collection: str) -> dict[str, Any]:
        item_id = hashlib.blake2b(f"{self.name}:{path}".encode(), digest_size=16).hexdigest()
        return {
            "Name": name,
            "Locations": [path],
            "CollectionType": collection,
            "LibraryOptions": {
                "Enabled": True,
                "EnableRealtimeMonitor": False,
                "PathInfos": [{"Path": path}],
            },
            "ItemId": item_id,
            "PrimaryImageItemId": item_id,
            "RefreshStatus": "Idle",
        }

    async def media_updated(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _problem(400, "The request body is not valid JSON.")
        updates = body.get("Updates") if isinstance(body, dict) else None
        if not isinstance(updates, list) or not all(
            isinstance(u, dict) and isinstance(u.get("Path"), str) for u in updates
        ):
            return _problem(400, "Updates must be a list of {Path, UpdateType}.")
        now = self.world.now()
        for update in updates:
            kind = str(update.get("UpdateType") or "Created")
            if kind not in UPDATE_TYPES:
                return _problem(400, f"UpdateType {kind!r} is not one of {UPDATE_TYPES}.")
        layout = self.world.library
        for update in updates:
            path = update["Path"]
            matched = any(layout.contains(f, path) for f in (layout.movies_path, layout.shows_path))
            self.scans.append(
                LibraryScan(
                    self.name, path, str(update.get("UpdateType") or "Created"), now, None, matched
                )
            )
        return empty_response(204)

    async def refresh(self, request: web.Request) -> web.Response:
        self.scans.append(LibraryScan(self.name, None, "full", self.world.now()))
        return empty_response(204)

    async def users(self, request: web.Request) -> web.Response:
        user_id = hashlib.blake2b(f"{self.name}:admin".encode(), digest_size=16).hexdigest()
        return json_response(
            [
                {
                    "Name": "admin",
                    "ServerId": self.server_id,
                    "Id": user_id,
                    "HasPassword": True,
                    "HasConfiguredPassword": True,
                    "Policy": {"IsAdministrator": True, "IsDisabled": False},
                }
            ]
        )


def _token(header: str) -> str | None:
    match = _TOKEN.search(header)
    return match.group(1) if match else None


def _problem(status: int, detail: str) -> web.Response:
    body = {
        "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
        "title": "One or more validation errors occurred.",
        "status": status,
        "detail": detail,
    }
    return json_response(body, status=status, content_type="application/problem+json")

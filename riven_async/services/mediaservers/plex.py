"""Plex: map each folder to the library section holding it, then a partial scan of it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath, PurePosixPath
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from riven_async.core.http import HttpClient, Response
from riven_async.errors import UpstreamPayloadError
from riven_async.services.mediaservers import PathMap

log = logging.getLogger(__name__)

NAME: Final = "plex"
# The GET /library/sections cache namespace: [upstreams.plex] cache_ttl_s = {sections = 300}.
SECTIONS_CACHE: Final = "sections"
_JSON = {"Accept": "application/json"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class _Location(_Model):
    path: str


class _Directory(_Model):
    key: str
    type: str = ""
    title: str = ""
    locations: list[_Location] = Field(default_factory=list, alias="Location")


class _Container(_Model):
    directories: list[_Directory] = Field(default_factory=list, alias="Directory")


class _Sections(_Model):
    container: _Container = Field(alias="MediaContainer")


@dataclass(frozen=True, slots=True)
class PlexSection:
    key: str
    kind: str
    title: str
    locations: tuple[PurePosixPath, ...]

    def depth_of(self, path: PurePosixPath) -> int | None:
        """How many parts the longest of this section's locations holding ``path`` has."""
        depths = [
            len(location.parts)
            for location in self.locations
            if path == location or location in path.parents
        ]
        return max(depths) if depths else None


class Plex:
    """The Plex client: ``/library/sections/{key}/refresh?path=`` per folder.

    The sections list (``Accept: application/json``) goes through the HTTP core's cache
    under ``sections``, so it is fetched at most once per TTL; a folder no section holds
    refetches it once, in case a library was added since. ``X-Plex-Token`` is added by
    the client's auth policy.
    """

    def __init__(
        self, client: HttpClient, *, name: str = NAME, path_map: PathMap | None = None
    ) -> None:
        self._client = client
        self._name = name
        self._path_map = path_map or PathMap()

    def __repr__(self) -> str:
        return f"<Plex {self._name}>"

    @property
    def name(self) -> str:
        return self._name

    async def sections(self, *, fresh: bool = False) -> tuple[PlexSection, ...]:
        response = await self._client.get(
            "/library/sections", headers=_JSON, cache_namespace=SECTIONS_CACHE, bypass_cache=fresh
        )
        parsed = _parse(response)
        return tuple(
            PlexSection(
                d.key, d.type, d.title, tuple(PurePosixPath(loc.path) for loc in d.locations)
            )
            for d in parsed.container.directories
        )

    async def scan(self, paths: Sequence[PurePath]) -> None:
        if not paths:
            return
        folders = list(dict.fromkeys(self._path_map.to_server(p) for p in paths))
        sections = await self.sections()
        targets = {folder: _section_for(sections, folder) for folder in folders}
        if any(section is None for section in targets.values()):
            sections = await self.sections(fresh=True)
            targets = {folder: _section_for(sections, folder) for folder in folders}
        for folder, section in targets.items():
            if section is None:
                log.warning(
                    "%s: no library section holds %s; not scanned",
                    self._name,
                    folder,
                    extra={"action": "mediaserver_scan", "server": self._name},
                )
                continue
            await self._client.get(
                f"/library/sections/{section.key}/refresh", params={"path": str(folder)}
            )
            log.debug(
                "%s: section %s scans %s",
                self._name,
                section.key,
                folder,
                extra={"action": "mediaserver_scan", "server": self._name},
            )


def _section_for(sections: Sequence[PlexSection], folder: PurePosixPath) -> PlexSection | None:
    """The section whose location is the longest prefix of ``folder`` (None if none is)."""
    best: tuple[int, PlexSection] | None = None
    for section in sections:
        depth = section.depth_of(folder)
        if depth is not None and (best is None or depth > best[0]):
            best = (depth, section)
    return best[1] if best else None


def _parse(response: Response) -> _Sections:
    try:
        return _Sections.model_validate(response.json())
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise UpstreamPayloadError(
            response.service,
            response.status,
            response.url,
            f"unexpected shape at {where}: {first['msg']}",
            method=response.method,
        ) from None

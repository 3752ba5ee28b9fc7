"""Jellyfin: one ``POST /Library/Media/Updated`` names every folder to look at."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import PurePath
from typing import Final, Literal

from riven_async.core.http import HttpClient
from riven_async.services.mediaservers import PathMap

log = logging.getLogger(__name__)

NAME: Final = "jellyfin"
UpdateType = Literal["Created", "Modified", "Deleted"]


class MediaUpdated:
    """``POST /Library/Media/Updated`` with ``{"Updates": [{Path, UpdateType}, ...]}``.

    Jellyfin and Emby share the endpoint and the body; only the auth differs, and the
    HTTP client's policy adds it (``Authorization: MediaBrowser Token="..."`` for
    Jellyfin, whose 12.0 drops the legacy forms; ``X-Emby-Token`` for Emby).
    """

    def __init__(
        self,
        client: HttpClient,
        *,
        name: str,
        path_map: PathMap | None = None,
        update_type: UpdateType = "Created",
    ) -> None:
        self._client = client
        self._name = name
        self._path_map = path_map or PathMap()
        self.update_type: UpdateType = update_type

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name}>"

    @property
    def name(self) -> str:
        return self._name

    async def scan(self, paths: Sequence[PurePath]) -> None:
        folders = list(dict.fromkeys(str(self._path_map.to_server(p)) for p in paths))
        if not folders:
            return
        body = {"Updates": [{"Path": f, "UpdateType": self.update_type} for f in folders]}
        # Telling the server twice is harmless, so a timed-out POST may be repeated.
        await self._client.post("/Library/Media/Updated", json=body, idempotent=True)
        log.debug(
            "%s: notified %d folders",
            self._name,
            len(folders),
            extra={"action": "mediaserver_scan", "server": self._name},
        )


class Jellyfin(MediaUpdated):
    def __init__(
        self,
        client: HttpClient,
        *,
        name: str = NAME,
        path_map: PathMap | None = None,
        update_type: UpdateType = "Created",
    ) -> None:
        super().__init__(client, name=name, path_map=path_map, update_type=update_type)

"""Emby: the same ``/Library/Media/Updated`` call as Jellyfin, with its own token header."""

from __future__ import annotations

from typing import Final

from riven_async.core.http import HttpClient
from riven_async.services.mediaservers import PathMap
from riven_async.services.mediaservers.jellyfin import MediaUpdated, UpdateType

NAME: Final = "emby"


class Emby(MediaUpdated):
    """Emby (``X-Emby-Token``, added by the client's auth policy)."""

    def __init__(
        self,
        client: HttpClient,
        *,
        name: str = NAME,
        path_map: PathMap | None = None,
        update_type: UpdateType = "Created",
    ) -> None:
        super().__init__(client, name=name, path_map=path_map, update_type=update_type)

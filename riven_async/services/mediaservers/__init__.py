"""The MediaServer protocol and the path mapping the media-server clients share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath, PurePosixPath
from typing import Protocol


class MediaServer(Protocol):
    """A media server that can be told to look at some folders of the library."""

    @property
    def name(self) -> str: ...

    async def scan(self, paths: Sequence[PurePath]) -> None:
        """Ask for a scan of each folder (one request per server where the API allows).

        Raises the HTTP core's ``UpstreamError`` subclasses when the server refuses.
        """
        ...


@dataclass(frozen=True, slots=True)
class PathMap:
    """Library paths as the daemon sees them -> as the media server sees them.

    Docker setups mount the library elsewhere in the server's container
    (``/mnt/library`` here, ``/data/library`` there); the longest matching prefix wins,
    and a path no rule matches is passed on unchanged.
    """

    rules: tuple[tuple[PurePosixPath, PurePosixPath], ...] = ()

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, str]) -> PathMap:
        rules = [(PurePosixPath(local), PurePosixPath(remote)) for local, remote in mapping.items()]
        if any(not local.is_absolute() or not remote.is_absolute() for local, remote in rules):
            raise ValueError("path_map needs absolute paths on both sides")
        rules.sort(key=lambda rule: len(rule[0].parts), reverse=True)
        return cls(tuple(rules))

    def to_server(self, path: PurePath) -> PurePosixPath:
        local = PurePosixPath(path.as_posix())
        for prefix, remote in self.rules:
            if local == prefix or prefix in local.parents:
                return remote / local.relative_to(prefix)
        return local

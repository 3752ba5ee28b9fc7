"""State the sims share: the catalog, the clock, the mount, and what the debrids downloaded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath

from riven_async.core.clock import Clock
from riven_async.sim.catalog import Catalog
from riven_async.sim.mount import DebridMount
from riven_async.sim.releases import Release


@dataclass(frozen=True, slots=True)
class LibraryLayout:
    """Where the daemon builds its symlink library; media servers' libraries point there."""

    root: str = "/mnt/library"
    movies_dir: str = "Movies"
    shows_dir: str = "Shows"

    @property
    def movies_path(self) -> str:
        return str(PurePosixPath(self.root) / self.movies_dir)

    @property
    def shows_path(self) -> str:
        return str(PurePosixPath(self.root) / self.shows_dir)

    def contains(self, folder: str, path: str) -> bool:
        """Whether ``path`` is ``folder`` or inside it."""
        return (
            PurePosixPath(path) == PurePosixPath(folder)
            or PurePosixPath(folder) in PurePosixPath(path).parents
        )


@dataclass(frozen=True, slots=True)
class LibraryScan:
    """One scan a media server was asked for: which path (None: everything), how, and when."""

    server: str
    path: str | None
    kind: str
    at: datetime
    section: str | None = None
    matched: bool = True


class DownloadLedger:
    """Torrents a debrid sim downloads (uncached ones): once finished they are cached there."""

    def __init__(self) -> None:
        self._done: dict[tuple[str, str], dict[str, float]] = {}

    def record(self, service: str, infohash: str, torrent_id: str, done_at: datetime) -> None:
        self._done.setdefault((service, infohash.lower()), {})[torrent_id] = done_at.timestamp()

    def forget(self, service: str, infohash: str, torrent_id: str, now: datetime) -> None:
        """A torrent deleted before it finished never makes its hash cached."""
        pending = self._done.get((service, infohash.lower()))
        if pending is not None and pending.get(torrent_id, 0.0) > now.timestamp():
            del pending[torrent_id]

    def cached_since(self, service: str, infohash: str) -> float | None:
        pending = self._done.get((service, infohash.lower()))
        return min(pending.values()) if pending else None


class SimWorld:
    """One catalog, one clock, one mount: every sim in a cluster sees the same world."""

    def __init__(
        self,
        catalog: Catalog,
        clock: Clock,
        mount: DebridMount,
        library: LibraryLayout | None = None,
    ) -> None:
        self.catalog = catalog
        self.clock = clock
        self.mount = mount
        self.library = library or LibraryLayout()
        self.downloads = DownloadLedger()

    def now(self) -> datetime:
        return self.clock.now().astimezone(UTC)

    def is_cached(
        self,
        service: str,
        infohash: str,
        now: datetime | None = None,
        release: Release | None = None,
    ) -> bool:
        """Whether ``service`` serves ``infohash`` at once (cached, or downloaded before)."""
        moment = now or self.now()
        since = self.downloads.cached_since(service, infohash)
        if since is not None and since <= moment.timestamp():
            return True
        return self.catalog.cached_on(service, infohash, moment, release)

    def mount_release(
        self,
        owner: str,
        folder: str,
        release: Release,
        selected: Sequence[int],
        done_at: datetime,
    ) -> None:
        """Schedule the ``selected`` files (indexes into ``release.files``) onto the mount."""
        files = []
        for index in selected:
            item = release.files[index]
            inside = item.path.split("/", 1)[1] if "/" in item.path else item.path
            files.append((inside, item.size))
        self.mount.schedule(owner, folder, files, done_at)

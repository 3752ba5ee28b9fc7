"""The LINK step: a downloaded item's file on the mount, linked into the Plex-style library.

The download row names the file (``<torrent name>/<path inside it>``); the ``MountIndex``
finds it on the mount. A file not there yet means the mount has not caught up: the job is
deferred with a growing pause (no attempt counted) until ``mount_wait_timeout_s``, then
fails as an attempt. The link is made atomically by the ``Linker`` (re-linking a correct
link changes nothing), recorded, the item moves to linked, and a SCAN of the link's folder
is queued under a per-folder key: a season's episodes linked within the media servers'
coalesce window share one scan.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path, PurePath
from typing import Any

import anyio.to_thread

from riven_async import config
from riven_async.domain.media import MediaItem, MediaKind
from riven_async.domain.queue import Job, JobKind, NewJob
from riven_async.domain.releases import Download, DownloadStatus, LinkRecord, SelectedFile
from riven_async.domain.states import State
from riven_async.errors import RivenError
from riven_async.pipeline import library
from riven_async.pipeline.runtime import Runtime
from riven_async.pipeline.steps.base import DONE, Deferred, Step, StepResult
from riven_async.web.metrics import Section

log = logging.getLogger(__name__)

# Items waiting for the mount are remembered (for their backoff) up to this many.
MAX_WAITING = 100_000


class LinkError(RivenError):
    """The item cannot be linked (no id to name its folder, a file name without extension)."""


def scan_job(
    folder: PurePath, item: MediaItem, *, window_s: float, runtime: Runtime
) -> NewJob:
    """The SCAN of ``folder``: one job per folder, due at the end of the coalesce window."""
    payload: dict[str, Any] = {"folder": str(folder)}
    if item.kind is MediaKind.EPISODE:
        payload.update(show_id=item.show_id, season=item.season_number)
    else:
        payload["items"] = [item.id]
    return NewJob(
        JobKind.SCAN, item_id=None, dedupe_key=f"scan:{folder}",
        run_at=runtime.clock.now() + timedelta(seconds=window_s), payload=payload,
    )


class _Library:
    """The layout, linker and mount index of one ``[library]`` section."""

    def __init__(self, section: config.LibrarySection, runtime: Runtime) -> None:
        self.section = section
        self.layout = library.LibraryLayout.from_section(section)
        self.linker = library.Linker.from_section(section)
        self.mount = library.MountIndex.from_section(section, runtime.clock)


class LinkStep:
    """Runs LINK jobs; see the module docstring."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._library: _Library | None = None
        # item id -> when (clock.monotonic) the mount first lacked its file
        self._waiting: dict[int, float] = {}
        self.counts: Counter[str] = Counter()

    @property
    def kind(self) -> JobKind:
        return JobKind.LINK

    def library(self) -> _Library:
        """Layout, linker and mount index for the ``[library]`` settings in force."""
        section = self._runtime.settings.library
        if self._library is None or self._library.section != section:
            self._library = _Library(section, self._runtime)
        return self._library

    async def run(self, job: Job) -> StepResult:
        if job.item_id is None:
            raise LinkError(f"link job {job.id} names no item")
        repos = self._runtime.repos
        item = await repos.catalog.get(job.item_id)
        if item is None:
            return DONE
        if item.kind not in (MediaKind.MOVIE, MediaKind.EPISODE):
            raise LinkError(f"item {item.id} is a {item.kind}; only movies and episodes")
        if item.state is State.LINKED:
            return await self._scan_again(item)  # a replay after the state moved
        if item.state is not State.DOWNLOADED:
            log.info("item %d is %s: nothing to link", item.id, item.state,
                     extra={"action": "link_skip", "item_id": item.id})
            return DONE
        download = await self._download(item, job.payload or {})
        if download is None:
            return await self._download_again(item)
        file = _file_for(download, item.id)
        assert file is not None  # _download only returns downloads with a file for the item
        target = await self._find(item, file)
        link_path = await self._link_path(item, download, file, target)
        lib = self.library()
        result = await lib.linker.link(target, link_path)
        await self._record(item, download, link_path, target)
        async with self._runtime.pool.acquire() as conn, conn.transaction():
            tx = repos.bound_to(conn)
            moved = await tx.items.set_state_many([item.id], State.LINKED,
                                                  only_from=[State.DOWNLOADED])
            if item.show_id is not None and moved:
                await tx.items.refresh_parent_states([item.show_id])
        self.counts[f"link_{result}"] += 1
        if not moved:
            return DONE
        window_s = self._runtime.settings.mediaservers.coalesce_window_s
        return StepResult(then=[scan_job(link_path.parent, item, window_s=window_s,
                                         runtime=self._runtime)])

    # -- the download and its file --------------------------------------------------------

    async def _download(self, item: MediaItem, payload: Mapping[str, Any]) -> Download | None:
        """The ready download with a file for the item: the one the job names, else the
        newest recorded for one of the item's releases."""
        repos = self._runtime.repos
        wanted = payload.get("download_id")
        if isinstance(wanted, int):
            for download in await repos.downloads.get_many([wanted]):
                if _usable(download, item.id):
                    return download
        releases = (await repos.releases.best_for_items([item.id], 50)).get(item.id, [])
        found = await repos.downloads.live_on_services(
            self._runtime.settings.debrid.services, [r.infohash for r in releases])
        usable = [d for d in found if _usable(d, item.id)]
        return max(usable, key=lambda d: (d.ready_at is not None, d.ready_at, d.id),
                   default=None)

    async def _download_again(self, item: MediaItem) -> StepResult:
        """No ready download has the item's file any more: back to scraped, download again."""
        moved = await self._runtime.repos.items.set_state_many(
            [item.id], State.SCRAPED, only_from=[State.DOWNLOADED])
        self.counts["download_gone"] += 1
        log.warning("item %d: its download is gone; downloading again", item.id,
                    extra={"action": "link_redownload", "item_id": item.id})
        if not moved:
            return DONE
        return StepResult(then=[NewJob(JobKind.DOWNLOAD, item_id=item.id)])

    async def _find(self, item: MediaItem, file: SelectedFile) -> Path:
        """The file on the mount; ``Deferred`` while the mount has not caught up."""
        lib = self.library()
        name, _, relative = file.path.partition("/")
        entry = await lib.mount.find([name])
        if entry is not None:
            # A single file shows bare, or in a folder named like itself.
            inside = relative or name
            match = next((f for f in entry.files if f.relative == inside), None)
            if match is not None:
                self._waiting.pop(item.id, None)
                return match.path
        raise self._not_there(item, file, lib.section)

    def _not_there(
        self, item: MediaItem, file: SelectedFile, section: config.LibrarySection
    ) -> RivenError:
        """What to raise for a file not on the mount: wait (``Deferred``), or time out."""
        clock = self._runtime.clock
        now = clock.monotonic()
        if item.id not in self._waiting and len(self._waiting) >= MAX_WAITING:
            self._waiting.pop(next(iter(self._waiting)))  # oldest first; it starts over
        first = self._waiting.setdefault(item.id, now)
        waited = now - first
        if waited >= section.mount_wait_timeout_s:
            self._waiting.pop(item.id, None)
            self.counts["mount_timeout"] += 1
            return library.MountTimeoutError(
                f"{file.path} not on the mount {section.mount_dir} after {waited:.0f}s")
        # Doubling in effect: each pause is as long as the wait so far, within bounds.
        pause = min(library.WAIT_MAX_S, max(library.WAIT_INITIAL_S, waited))
        self.counts["mount_wait"] += 1
        return Deferred(clock.now() + timedelta(seconds=pause),
                       f"{file.path} is not on the mount yet (waited {waited:.1f}s)")

    # -- the link -------------------------------------------------------------------------

    async def _link_path(
        self, item: MediaItem, download: Download, file: SelectedFile, target: Path
    ) -> Path:
        layout = self.library().layout
        ext = target.suffix
        try:
            if item.kind is MediaKind.MOVIE:
                if item.ids.tmdb is None:
                    raise LinkError(f"movie {item.id} has no TMDB id to name its folder")
                return layout.movie_path(item.title, item.year, item.ids.tmdb, ext)
            show = await self._runtime.repos.catalog.get(item.show_id or 0)
            if show is None or item.season_number is None or item.episode_number is None:
                raise LinkError(f"episode {item.id} has no show, season or episode number")
            # Plex names show folders by TVDB id; a show TVDB does not list goes by TMDB's.
            id_kind: library.ShowIdKind
            if show.ids.tvdb is not None:
                show_key, id_kind = show.ids.tvdb, "tvdb"
            elif show.ids.tmdb is not None:
                show_key, id_kind = show.ids.tmdb, "tmdb"
            else:
                raise LinkError(f"show {show.id} has neither a TVDB nor a TMDB id")
            episodes = await self._episodes_in(download, file, item)
            return layout.episode_path(show.title, show.year, show_key, item.season_number,
                                       episodes, ext, id_kind)
        except ValueError as exc:  # an extension or number the layout refuses
            raise LinkError(f"item {item.id}: {exc}") from None

    async def _episodes_in(
        self, download: Download, file: SelectedFile, item: MediaItem
    ) -> Sequence[int]:
        """Episode numbers one file holds (``S01E01E02``: both get the one link)."""
        sharing = {f.item_id for f in download.selected_files
                   if f.file_id == file.file_id and f.item_id is not None} - {item.id}
        numbers = [item.episode_number or 0]
        if sharing:
            for other in await self._runtime.repos.catalog.get_many(sharing):
                if other.episode_number is not None and other.season_number == item.season_number:
                    numbers.append(other.episode_number)
        return sorted(set(numbers))

    async def _record(
        self, item: MediaItem, download: Download, link_path: Path, target: Path
    ) -> None:
        """Store the link; drop the item's previous link if it lived elsewhere (upgrade)."""
        repos = self._runtime.repos
        path = str(link_path)
        at_path = await repos.library.by_link_paths([path])
        if any(e.item_id != item.id and e.target_path == str(target) for e in at_path):
            return  # one file of several episodes: its other episode holds the entry
        previous = await repos.library.for_items([item.id])
        await repos.library.record_many([LinkRecord(item.id, path, str(target), download.id)])
        for entry in previous:
            if entry.link_path != path:
                await self._unlink(Path(entry.link_path))

    async def _unlink(self, link: Path) -> None:
        lib = self.library()
        if not lib.layout.contains(link):
            return
        removed: bool = await anyio.to_thread.run_sync(_remove_symlink, link)
        if removed:
            log.info("removed the old link %s", link, extra={"action": "unlink",
                                                              "path": str(link)})

    async def _scan_again(self, item: MediaItem) -> StepResult:
        """The SCAN follow-up of an item already linked (its folder from its link)."""
        entries = await self._runtime.repos.library.for_items([item.id])
        if not entries:
            return DONE
        entry = entries[0]
        window_s = self._runtime.settings.mediaservers.coalesce_window_s
        return StepResult(then=[scan_job(PurePath(entry.link_path).parent, item,
                                         window_s=window_s, runtime=self._runtime)])

    async def metrics_section(self) -> Section:
        """The ``library`` metrics: links made, mount waits, mount scans."""
        lib = self._library
        return {"links": dict(sorted(self.counts.items())),
                "waiting_for_mount": len(self._waiting),
                "mount_scans": 0 if lib is None else lib.mount.scans}


def _usable(download: Download, item_id: int) -> bool:
    return download.status is DownloadStatus.READY and _file_for(download, item_id) is not None


def _file_for(download: Download, item_id: int) -> SelectedFile | None:
    files = [f for f in download.selected_files if f.item_id == item_id]
    return max(files, key=lambda f: f.size_bytes, default=None)


def _remove_symlink(link: Path) -> bool:
    """Remove ``link`` if it is a symlink (never a real file or a folder)."""
    try:
        if not link.is_symlink():
            return False
        os.unlink(link)
    except FileNotFoundError:
        return False
    return True


async def build(runtime: Runtime, stack: AsyncExitStack) -> Step:
    """The LINK step."""
    step = LinkStep(runtime)
    runtime.metrics.register("library", step.metrics_section)
    return step

"""A debrid mount (like rclone over zurg): downloaded torrents appear as files after a lag."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from riven_async.core.clock import Clock

log = logging.getLogger(__name__)

SMALL_FILE_BYTES = 16


@dataclass(frozen=True, slots=True)
class MountEntry:
    """One torrent on the mount: its folder, files (paths inside the folder) and due time."""

    owner: str
    folder: str
    files: tuple[tuple[str, int], ...]
    visible_at: datetime


class DebridMount:
    """Writes each downloaded torrent's files under ``root/<torrent name>/`` once it is due.

    ``sparse`` files have their real size without using disk; otherwise each file holds a
    few bytes. Entries become due ``lag_s`` seconds of the sims' clock after the debrid
    service finished the torrent, as a zurg refresh would show them. With no ``root`` the
    mount only keeps the bookkeeping (tests that do not care about files).
    """

    def __init__(
        self, root: Path | None, clock: Clock, lag_s: float = 30.0, sparse: bool = True
    ) -> None:
        self.root = root
        self.clock = clock
        self.lag_s = lag_s
        self.sparse = sparse
        self._entries: dict[str, MountEntry] = {}
        self._written: set[str] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._lock = asyncio.Lock()

    def schedule(
        self, owner: str, folder: str, files: Sequence[tuple[str, int]], done_at: datetime
    ) -> MountEntry:
        """Show ``files`` under ``folder`` ``lag_s`` after ``done_at`` (replaces ``owner``)."""
        if "/" in folder or folder in ("", ".", ".."):
            raise ValueError(f"bad torrent folder name {folder!r}")
        self.remove(owner)
        entry = MountEntry(owner, folder, tuple(files), done_at + timedelta(seconds=self.lag_s))
        self._entries[owner] = entry
        delay = (entry.visible_at - self.clock.now()).total_seconds()
        self._tasks[owner] = asyncio.get_running_loop().create_task(
            self._write_after(entry, delay), name=f"sim-mount:{owner}"
        )
        return entry

    def remove(self, owner: str) -> None:
        """Take a torrent off the mount (deleted from the debrid account)."""
        task = self._tasks.pop(owner, None)
        if task is not None:
            task.cancel()
        entry = self._entries.pop(owner, None)
        if entry is None or owner not in self._written:
            return
        self._written.discard(owner)
        still_used = any(e.folder == entry.folder for e in self._entries.values())
        if self.root is not None and not still_used:
            shutil.rmtree(self.root / entry.folder, ignore_errors=True)

    def entries(self) -> list[MountEntry]:
        return list(self._entries.values())

    def visible(self) -> list[MountEntry]:
        """Entries whose files are on disk now."""
        return [e for owner, e in self._entries.items() if owner in self._written]

    async def flush(self) -> int:
        """Write every entry that is due by the clock now; return how many were written."""
        now = self.clock.now()
        due = [
            e for o, e in self._entries.items() if o not in self._written and e.visible_at <= now
        ]
        for entry in due:
            await self._write(entry)
        return len(due)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _write_after(self, entry: MountEntry, delay_s: float) -> None:
        await self.clock.sleep(max(0.0, delay_s))
        await self._write(entry)
        self._tasks.pop(entry.owner, None)

    async def _write(self, entry: MountEntry) -> None:
        async with self._lock:
            if entry.owner in self._written or self._entries.get(entry.owner) is not entry:
                return
            if self.root is not None:
                await asyncio.to_thread(self._write_files, self.root, entry)
            self._written.add(entry.owner)
        log.debug(
            "mounted %s (%d files)", entry.folder, len(entry.files), extra={"action": "mount"}
        )

    def _write_files(self, root: Path, entry: MountEntry) -> None:
        folder = root / entry.folder
        for relative, size in entry.files:
            target = (folder / relative).resolve()
            if not target.is_relative_to(root.resolve()):
                raise ValueError(f"file {relative!r} escapes the mount")
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as handle:
                if self.sparse:
                    handle.truncate(size)
                else:
                    handle.write(b"\0" * min(size, SMALL_FILE_BYTES))

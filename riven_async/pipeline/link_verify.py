"""The ``library-verify`` loop: every link checked on disk now and then, and repaired.

A link whose file is gone from the mount is broken: its download is forgotten and the item
goes back to scraped with a DOWNLOAD job (downloaded again). A link that is missing or
points elsewhere while its file is still on the mount is made again (back to downloaded,
with a LINK job). Links found fine get ``verified_at``. An empty or absent mount (rclone
down) is not taken as every file gone: the sweep is skipped, and so is the repair of a page
where most links look broken at once.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread

from riven_async.core.tasks import BackgroundTasks
from riven_async.db.pool import DB_PASS_ERRORS
from riven_async.domain.queue import JobKind, NewJob
from riven_async.domain.releases import LibraryEntry
from riven_async.domain.states import State
from riven_async.pipeline import library
from riven_async.pipeline.runtime import Runtime
from riven_async.web.metrics import Section

log = logging.getLogger(__name__)

# With verification off the loop looks at the setting again this often (a reload may set it).
OFF_RECHECK_S = 300.0
# A page repairs nothing when more than this share of its links (and at least MIN) broke.
MASS_BREAK_SHARE = 0.5
MASS_BREAK_MIN = 10
_SETTLED = (State.LINKED, State.COMPLETED)


@dataclass(slots=True)
class SweepStats:
    """What sweeps found, for ``/metrics``."""

    sweeps: int = 0
    checked: int = 0
    ok: int = 0
    redownload: int = 0
    relink: int = 0
    skipped_mount_empty: int = 0
    skipped_mass_break: int = 0
    db_errors: int = 0


class LinkVerifier:
    """Walks ``library_entries`` in id pages and repairs what is wrong on disk."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self.stats = SweepStats()

    async def run(self) -> None:
        """Sweep every ``[library] verify_interval_s`` (jittered) until cancelled."""
        clock = self._runtime.clock
        while True:
            interval_s = self._runtime.settings.library.verify_interval_s
            if interval_s <= 0:
                await clock.sleep(OFF_RECHECK_S)
                continue
            await clock.sleep(interval_s * random.uniform(0.8, 1.2))
            try:
                await self.sweep()
            except DB_PASS_ERRORS as exc:
                self.stats.db_errors += 1
                log.warning("library verify: database unavailable (%r); next sweep later", exc,
                            extra={"action": "library_verify"})

    async def sweep(self) -> SweepStats:
        """One pass over every link; returns the running totals."""
        section = self._runtime.settings.library
        linker = library.Linker.from_section(section)
        if not await anyio.to_thread.run_sync(_has_entries, section.mount_dir):
            self.stats.skipped_mount_empty += 1
            log.warning("library verify skipped: the mount %s is empty or absent",
                        section.mount_dir, extra={"action": "library_verify"})
            return self.stats
        self.stats.sweeps += 1
        after = 0
        while page := await self._runtime.repos.library.page(after, section.verify_batch):
            after = page[-1].id
            await self._check_page(linker, page)
        return self.stats

    async def _check_page(self, linker: library.Linker, page: Sequence[LibraryEntry]) -> None:
        ok: list[int] = []
        broken: list[LibraryEntry] = []
        relink: list[LibraryEntry] = []
        for entry in page:
            link, target = Path(entry.link_path), Path(entry.target_path)
            try:
                state = await linker.check_link(link, target)
            except library.UnsafePathError:
                continue  # recorded under another library root; not ours to touch now
            if state is library.LinkState.OK:
                ok.append(entry.id)
            elif state is library.LinkState.BROKEN or not await anyio.to_thread.run_sync(
                os.path.isfile, target
            ):
                broken.append(entry)
            else:
                relink.append(entry)
        self.stats.checked += len(page)
        self.stats.ok += len(ok)
        repos = self._runtime.repos
        if ok:
            await repos.library.mark_verified(ok)
        if len(broken) >= MASS_BREAK_MIN and len(broken) > MASS_BREAK_SHARE * len(page):
            self.stats.skipped_mass_break += 1
            log.warning("library verify: %d of %d links broken at once; not repairing them "
                        "(is the mount healthy?)", len(broken), len(page),
                        extra={"action": "library_verify", "broken": len(broken)})
            broken = []
        if broken or relink:
            await self._repair(broken, relink)

    async def _repair(self, broken: Sequence[LibraryEntry], relink: Sequence[LibraryEntry]) -> None:
        repos = self._runtime.repos
        items = {i.id: i for i in await repos.catalog.get_many(
            [e.item_id for e in (*broken, *relink)])}
        settled = {i for i, item in items.items() if item.state in _SETTLED}
        gone = [e for e in broken if e.item_id in settled]
        again = [e for e in relink if e.item_id in settled]
        async with self._runtime.pool.acquire() as conn, conn.transaction():
            tx = repos.bound_to(conn)
            # The download no longer holds the file: never reuse it for these items.
            await tx.downloads.mark_removed({e.download_id for e in gone
                                             if e.download_id is not None})
            fetch = await tx.items.set_state_many([e.item_id for e in gone], State.SCRAPED,
                                                  only_from=_SETTLED)
            link = await tx.items.set_state_many([e.item_id for e in again], State.DOWNLOADED,
                                                 only_from=_SETTLED)
            downloads = {e.item_id: e.download_id for e in again}
            await tx.jobs.enqueue_many([
                *(NewJob(JobKind.DOWNLOAD, item_id=i) for i in fetch),
                *(NewJob(JobKind.LINK, item_id=i,
                         payload={"download_id": downloads[i]} if downloads[i] else None)
                  for i in link),
            ])
            shows = sorted({s for i in (*fetch, *link)
                            if (s := items[i].show_id) is not None})
            if shows:
                await tx.items.refresh_parent_states(shows)
        self.stats.redownload += len(fetch)
        self.stats.relink += len(link)
        log.warning("library verify: %d broken links downloaded again, %d links made again",
                    len(fetch), len(link),
                    extra={"action": "library_verify", "redownload": len(fetch),
                           "relink": len(link)})

    async def section(self) -> Section:
        """The ``library_verify`` metrics."""
        stats = self.stats
        return {"sweeps": stats.sweeps, "checked": stats.checked, "ok": stats.ok,
                "redownload": stats.redownload, "relink": stats.relink,
                "skipped_mount_empty": stats.skipped_mount_empty,
                "skipped_mass_break": stats.skipped_mass_break, "db_errors": stats.db_errors}


def _has_entries(folder: Path) -> bool:
    try:
        with os.scandir(folder) as entries:
            return any(True for _ in entries)
    except OSError:
        return False


async def start(runtime: Runtime, tasks: BackgroundTasks, stack: AsyncExitStack) -> None:
    """Start the ``library-verify`` loop (it idles while ``verify_interval_s`` is 0)."""
    verifier = LinkVerifier(runtime)
    runtime.metrics.register("library_verify", verifier.section)
    tasks.start("library-verify", verifier.run)

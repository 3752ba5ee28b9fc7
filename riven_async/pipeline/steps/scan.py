"""The SCAN step: one refresh of a library folder per media server, then items completed.

LINK queues one SCAN job per folder (a movie's folder, a season's folder) due at the end of
the ``[mediaservers] coalesce_window_s``; links made meanwhile join the same job, so a
season's episodes cost one scan per server. The durable job is the coalescer: a crash
loses no scan. Each configured server is asked once (Plex: the section holding the folder,
then ``refresh?path=``; Jellyfin and Emby: ``/Library/Media/Updated``). A paused server
(429, breaker open) defers the job; one that fails fails the attempt, and the retry asks
only the servers that have not answered yet. The items linked before the scans were sent
move to completed, and their show and season are aggregated again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

from riven_async import config
from riven_async.core.breaker import BreakerState
from riven_async.core.http import HttpClient
from riven_async.domain.queue import Job, JobKind
from riven_async.domain.states import State
from riven_async.errors import RivenError
from riven_async.pipeline.runtime import Runtime
from riven_async.pipeline.steps.base import DONE, Deferred, Step, StepResult
from riven_async.services.mediaservers import MediaServer, PathMap
from riven_async.services.mediaservers.emby import Emby
from riven_async.services.mediaservers.jellyfin import Jellyfin
from riven_async.services.mediaservers.plex import Plex
from riven_async.web.metrics import Labeled, Section

log = logging.getLogger(__name__)

# Jobs whose servers partly answered are remembered (so a retry skips those) up to this many.
MAX_PARTIAL = 10_000


class ScanError(RivenError):
    """Some media server refused the scan; the retry asks only those."""


@dataclass(frozen=True, slots=True)
class _Target:
    """A folder to scan and the items it completes: some items, or a season's episodes."""

    folder: PurePosixPath
    item_ids: tuple[int, ...] = ()
    show_id: int | None = None
    season: int | None = None


@dataclass(frozen=True, slots=True)
class _Server:
    server: MediaServer
    client: HttpClient


def build_servers(
    runtime: Runtime, section: config.MediaServersSection
) -> list[tuple[MediaServer, HttpClient]]:
    """A client per configured server whose upstream is enabled, in the configured order."""
    path_map = PathMap.from_mapping(section.path_map)
    servers: list[tuple[MediaServer, HttpClient]] = []
    for name in section.servers:
        client = runtime.upstreams.get(name)
        if client is None:
            continue
        server: MediaServer
        if name == "plex":
            server = Plex(client, path_map=path_map)
        elif name == "jellyfin":
            server = Jellyfin(client, path_map=path_map)
        else:
            server = Emby(client, path_map=path_map)
        servers.append((server, client))
    return servers


class ScanStep:
    """Runs SCAN jobs; see the module docstring."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._section: config.MediaServersSection | None = None
        self._servers: list[_Server] = []
        # job key -> servers that already took this folder (a retry skips them)
        self._answered: dict[str, set[str]] = {}
        # job key -> when its season first waited for stragglers to be linked
        self._waiting_since: dict[str, datetime] = {}
        self.counts: Counter[str] = Counter()
        self.scans: Counter[str] = Counter()

    @property
    def kind(self) -> JobKind:
        return JobKind.SCAN

    def servers(self) -> list[_Server]:
        """The servers for the ``[mediaservers]`` settings in force."""
        section = self._runtime.settings.mediaservers
        if self._section != section:
            self._servers = [_Server(s, c) for s, c in build_servers(self._runtime, section)]
            self._section = section
        return self._servers

    async def run(self, job: Job) -> StepResult:
        target = await self._target(job)
        if target is None:
            return DONE
        repos = self._runtime.repos
        wait = await self._quiet_wait(job, target)
        if wait is not None:
            return StepResult(again_at=wait)
        # Read before the scans go out: an item linked after that waits for the next run.
        linked = await repos.items.linked_for_scan(target.item_ids, target.show_id,
                                                   target.season)
        if not linked:
            self.counts["nothing_linked"] += 1
            return DONE
        await self._scan(job.dedupe_key, target.folder)
        ids = [item_id for item_id, _ in linked]
        async with self._runtime.pool.acquire() as conn, conn.transaction():
            tx = repos.bound_to(conn)
            moved = await tx.items.set_state_many(ids, State.COMPLETED, only_from=[State.LINKED])
            shows = sorted({show for _, show in linked if show is not None})
            if shows:
                await tx.items.refresh_parent_states(shows)
        self.counts["items_completed"] += len(moved)
        log.info(
            "scan of %s requested; %d items completed", target.folder, len(moved),
            extra={"action": "scan", "folder": str(target.folder), "completed": len(moved)},
        )
        return DONE

    async def _quiet_wait(self, job: Job, target: _Target) -> datetime | None:
        """When to look again if more of the season's episodes are about to be linked (a
        pack's links land over a while: one scan after the last, not one per straggler),
        within ``coalesce_max_s`` of the first link; None to scan now."""
        if target.show_id is None or target.season is None:
            return None
        section = self._runtime.settings.mediaservers
        now = self._runtime.clock.now()
        # In memory: after a restart a season may wait up to coalesce_max_s once more.
        since = self._waiting_since.setdefault(job.dedupe_key, now)
        if (now - since).total_seconds() >= section.coalesce_max_s:
            self._waiting_since.pop(job.dedupe_key, None)
            return None
        pending = await self._runtime.repos.items.season_links_pending(target.show_id,
                                                                       target.season)
        if not pending:
            self._waiting_since.pop(job.dedupe_key, None)
            return None
        if len(self._waiting_since) > MAX_PARTIAL:
            self._waiting_since.pop(next(iter(self._waiting_since)))
        self.counts["waited_for_links"] += 1
        return now + timedelta(seconds=max(1.0, section.coalesce_window_s))

    async def _target(self, job: Job) -> _Target | None:
        payload: Mapping[str, Any] = job.payload or {}
        folder = payload.get("folder")
        if isinstance(folder, str) and folder.startswith("/"):
            items = payload.get("items") or ()
            show_id, season = payload.get("show_id"), payload.get("season")
            return _Target(
                PurePosixPath(folder),
                tuple(int(i) for i in items if isinstance(i, int)),
                show_id if isinstance(show_id, int) else None,
                season if isinstance(season, int) else None,
            )
        if job.item_id is None:
            raise ScanError(f"scan job {job.id} names neither a folder nor an item")
        # Queued for an item (a retry from the API): its link's folder.
        entries = await self._runtime.repos.library.for_items([job.item_id])
        if not entries:
            log.info("item %d has no link to scan", job.item_id,
                     extra={"action": "scan_skip", "item_id": job.item_id})
            return None
        return _Target(PurePosixPath(entries[0].link_path).parent, (job.item_id,))

    async def _scan(self, key: str, folder: PurePosixPath) -> None:
        """Ask every server that has not taken ``folder`` for this job yet."""
        answered = self._answered.get(key, set())
        pending = [s for s in self.servers() if s.server.name not in answered]
        if not pending:
            return
        paused = [(s.server.name, until) for s in pending
                  if (until := _paused_until(s.client, self._runtime.clock.now())) is not None]
        if paused:
            self.counts["deferred"] += 1
            raise Deferred(max(until for _, until in paused),
                           "media servers paused: " + ", ".join(n for n, _ in paused))
        results = await asyncio.gather(*(s.server.scan([folder]) for s in pending),
                                       return_exceptions=True)
        failed: list[str] = []
        for server, outcome in zip(pending, results, strict=True):
            name = server.server.name
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, Exception):
                    raise outcome  # cancelled: stop now
                failed.append(f"{name}: {outcome}")
                self.counts[f"failed_{name}"] += 1
            else:
                answered.add(name)
                self.scans[name] += 1
        if failed:
            if key not in self._answered and len(self._answered) >= MAX_PARTIAL:
                self._answered.pop(next(iter(self._answered)))
            self._answered[key] = answered
            raise ScanError(f"scan of {folder} failed on " + "; ".join(failed))
        self._answered.pop(key, None)

    async def metrics_section(self) -> Section:
        """The ``mediaservers`` metrics: scans sent per server and what they completed."""
        return {"scans": Labeled("server", {s.server.name: self.scans[s.server.name]
                                            for s in self.servers()}),
                "outcomes": dict(sorted(self.counts.items()))}


def _paused_until(client: HttpClient, now: datetime) -> datetime | None:
    """When a server's client takes requests again (rate limited, breaker open), or None."""
    moments: list[datetime] = []
    limiter_pause = client.limiter.paused_for()
    if limiter_pause > 0:
        moments.append(now + timedelta(seconds=limiter_pause))
    breaker = client.breaker.stats()
    if breaker.state is BreakerState.OPEN:
        moments.append(now + timedelta(seconds=max(breaker.retry_in_s, 1.0)))
    return max(moments) if moments else None


async def build(runtime: Runtime, stack: AsyncExitStack) -> Step:
    """The SCAN step."""
    step = ScanStep(runtime)
    runtime.metrics.register("mediaservers", step.metrics_section)
    return step

"""Group the folders new links land in, so a season's episodes cost one scan per server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from types import TracebackType

from riven_async.core.clock import Clock, SystemClock
from riven_async.services.mediaservers import MediaServer

log = logging.getLogger(__name__)

WINDOW_S = 10.0
MAX_ATTEMPTS = 3
SHUTDOWN_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class CoalescerStats:
    """Counters for the metrics endpoint."""

    requested: int
    pending: int
    scans: int
    folders: int
    failures: int
    dropped: int


class ScanCoalescer:
    """Collect scan requests for ``window_s`` of the clock, then send each server one batch.

    ``request(file)`` files a link's folder (the season folder of an episode, the movie
    folder of a movie); ``request_folder`` files a folder as is. The first request opens
    a window; at its end every server gets the distinct folders (a folder inside another
    pending one is dropped) in one ``scan`` call. A window is fixed, not extended by
    later requests, so a steady trickle still gets scanned. A server that fails gets its
    folders again in the next window, at most ``max_attempts`` times in all. ``aclose``
    sends whatever is pending, bounded by ``shutdown_timeout_s`` (real time).
    """

    def __init__(
        self,
        servers: Sequence[MediaServer],
        *,
        clock: Clock | None = None,
        window_s: float = WINDOW_S,
        max_attempts: int = MAX_ATTEMPTS,
        shutdown_timeout_s: float = SHUTDOWN_TIMEOUT_S,
    ) -> None:
        names = [s.name for s in servers]
        if len(set(names)) != len(names):
            raise ValueError(f"media servers must have distinct names, got {names}")
        if window_s < 0 or max_attempts < 1 or shutdown_timeout_s <= 0:
            raise ValueError("window_s >= 0, max_attempts >= 1 and shutdown_timeout_s > 0")
        self._servers = tuple(servers)
        self._clock = clock or SystemClock()
        self.window_s = window_s
        self.max_attempts = max_attempts
        self.shutdown_timeout_s = shutdown_timeout_s
        # server name -> folder -> failed attempts so far
        self._pending: dict[str, dict[PurePath, int]] = {name: {} for name in names}
        self._timer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._requested = 0
        self._scans = 0
        self._folders = 0
        self._failures = 0
        self._dropped = 0

    def __repr__(self) -> str:
        return f"<ScanCoalescer {', '.join(s.name for s in self._servers) or 'no servers'}>"

    async def __aenter__(self) -> ScanCoalescer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def pending(self) -> int:
        """Distinct folders waiting for some server."""
        return len({folder for folders in self._pending.values() for folder in folders})

    def stats(self) -> CoalescerStats:
        return CoalescerStats(
            requested=self._requested,
            pending=self.pending,
            scans=self._scans,
            folders=self._folders,
            failures=self._failures,
            dropped=self._dropped,
        )

    def request(self, path: PurePath) -> None:
        """A file was linked at ``path``: scan its folder (call from the event loop)."""
        self.request_folder(path.parent)

    def request_many(self, paths: Iterable[PurePath]) -> None:
        for path in paths:
            self.request(path)

    def request_folder(self, folder: PurePath) -> None:
        if self._closed:
            raise RuntimeError("the scan coalescer is closed")
        self._requested += 1
        if not self._servers:
            return
        for folders in self._pending.values():
            folders.setdefault(folder, 0)
        self._arm()

    async def flush(self) -> None:
        """Send everything pending now instead of at the end of the window."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        await self._send()

    async def aclose(self) -> None:
        """Stop taking requests and send what is pending (bounded by the shutdown timeout)."""
        if self._closed:
            return
        self._closed = True
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        try:
            async with asyncio.timeout(self.shutdown_timeout_s):
                await asyncio.gather(*self._tasks, return_exceptions=True)
                await self._send()
        except TimeoutError:
            lost = self.pending
            self._dropped += lost
            log.warning(
                "media-server scans still pending at shutdown; %d folders not sent",
                lost,
                extra={"action": "mediaserver_scan", "dropped": lost},
            )

    def _arm(self) -> None:
        if self._timer is not None or self._closed:
            return
        # The window starts now, not whenever the loop first runs the task.
        deadline = self._clock.monotonic() + self.window_s
        task = asyncio.get_running_loop().create_task(self._window(deadline), name="scan-coalescer")
        self._timer = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _window(self, deadline: float) -> None:
        await self._clock.sleep(deadline - self._clock.monotonic())
        # From here on new requests open the next window; this one only sends.
        self._timer = None
        await self._send()

    async def _send(self) -> None:
        batches = {name: folders for name, folders in self._pending.items() if folders}
        if not batches:
            return
        self._pending = {s.name: {} for s in self._servers}
        jobs = [self._scan(s, batches[s.name]) for s in self._servers if s.name in batches]
        await asyncio.gather(*jobs)

    async def _scan(self, server: MediaServer, folders: dict[PurePath, int]) -> None:
        chosen = _outermost(folders)
        try:
            await server.scan(chosen)
        except Exception as exc:  # one server's failure must not lose the others' scans
            self._failures += 1
            again = {f: n + 1 for f, n in folders.items() if n + 1 < self.max_attempts}
            self._dropped += len(folders) - len(again)
            log.warning(
                "%s: scan of %d folders failed (%s); %s",
                server.name,
                len(chosen),
                exc,
                "retrying in the next window" if again else "giving up on them",
                extra={"action": "mediaserver_scan", "server": server.name},
            )
            if again and not self._closed:
                pending = self._pending[server.name]
                for folder, attempts in again.items():
                    pending[folder] = max(pending.get(folder, 0), attempts)
                self._arm()
            return
        self._scans += 1
        self._folders += len(chosen)
        log.info(
            "%s: asked to scan %d folders",
            server.name,
            len(chosen),
            extra={"action": "mediaserver_scan", "server": server.name, "folders": len(chosen)},
        )


def _outermost(folders: Iterable[PurePath]) -> list[PurePath]:
    """The folders, sorted, without any that lies inside another one of them."""
    chosen = sorted(set(folders))
    kept = set(chosen)
    return [f for f in chosen if not any(parent in kept for parent in f.parents)]

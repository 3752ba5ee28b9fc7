"""Per-key async locks (one per item or show), FIFO, with no entry left behind when unused."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from types import TracebackType


class KeyedLock:
    """``async with locks("tmdb:1396"):`` serialises work on one key, FIFO.

    An entry exists only while its key is held: the holder releasing with nobody waiting
    deletes it, so a million distinct keys leave nothing behind. Ownership passes straight
    from the holder to the oldest waiter (no newcomer can slip in between), and a waiter
    cancelled just as ownership reached it passes it on.
    """

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        # Key present = key held; the deque holds the waiters, oldest first.
        self._entries: dict[Hashable, deque[asyncio.Future[None]]] = {}

    def __call__(self, key: Hashable) -> _Hold:
        return _Hold(self, key)

    def __len__(self) -> int:
        """How many keys are held right now."""
        return len(self._entries)

    def locked(self, key: Hashable) -> bool:
        return key in self._entries

    def waiting(self, key: Hashable) -> int:
        """How many callers wait for ``key``."""
        waiters = self._entries.get(key)
        return 0 if waiters is None else sum(1 for fut in waiters if not fut.done())

    async def acquire(self, key: Hashable) -> None:
        waiters = self._entries.get(key)
        if waiters is None:
            self._entries[key] = deque()
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if not fut.cancelled():
                # Ownership was handed to us in the same instant we were cancelled.
                self.release(key)
            else:
                waiters.remove(fut)
            raise

    def release(self, key: Hashable) -> None:
        waiters = self._entries.get(key)
        if waiters is None:
            raise RuntimeError(f"release of unlocked key {key!r}")
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        del self._entries[key]


class _Hold:
    __slots__ = ("_key", "_locks")

    def __init__(self, locks: KeyedLock, key: Hashable) -> None:
        self._locks = locks
        self._key = key

    async def __aenter__(self) -> None:
        await self._locks.acquire(self._key)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._locks.release(self._key)

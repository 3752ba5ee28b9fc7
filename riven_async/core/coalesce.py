"""Request coalescing: identical in-flight calls share one execution."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class _Flight(Generic[V]):
    __slots__ = ("task", "waiters")

    def __init__(self, task: asyncio.Task[V]) -> None:
        self.task = task
        self.waiters = 0


class Coalescer(Generic[V]):
    """``await coalescer.run(key, fn)``: while a call for ``key`` runs, others join it.

    The call runs in its own task, so one caller's cancellation does not cancel it for
    the others; when every caller has gone, the call is cancelled (nobody wants it).
    """

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._flights: dict[Hashable, _Flight[V]] = {}
        self.joined = 0  # callers that shared someone else's call

    def __len__(self) -> int:
        return len(self._flights)

    async def run(self, key: Hashable, fn: Callable[[], Awaitable[V]]) -> V:
        flight = self._flights.get(key)
        if flight is None:
            flight = _Flight(asyncio.get_running_loop().create_task(_call(fn)))
            self._flights[key] = flight
            flight.task.add_done_callback(lambda task: self._landed(key, flight, task))
        else:
            self.joined += 1
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.task)
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                # Forget it first, so a caller arriving now starts afresh instead of
                # joining a call that is being cancelled.
                if self._flights.get(key) is flight:
                    del self._flights[key]
                flight.task.cancel()

    async def aclose(self) -> None:
        """Cancel every call in flight."""
        tasks = [flight.task for flight in self._flights.values()]
        self._flights.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _landed(self, key: Hashable, flight: _Flight[V], task: asyncio.Task[V]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not task.cancelled():
            task.exception()  # retrieved here, so an abandoned failure is never reported


async def _call(fn: Callable[[], Awaitable[V]]) -> V:
    return await fn()

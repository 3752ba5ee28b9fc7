"""The Executor protocol: what repositories need from a pool or a connection."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import asyncpg


class Executor(Protocol):
    """Satisfied by both ``asyncpg.Pool`` and ``asyncpg.Connection``."""

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str: ...

    async def executemany(
        self, command: str, args: Iterable[Sequence[Any]], *, timeout: float | None = None
    ) -> None: ...

    async def fetch(
        self, query: str, *args: Any, timeout: float | None = None
    ) -> list[asyncpg.Record]: ...

    async def fetchrow(
        self, query: str, *args: Any, timeout: float | None = None
    ) -> asyncpg.Record | None: ...

    async def fetchval(
        self, query: str, *args: Any, column: int = 0, timeout: float | None = None
    ) -> Any: ...


# A connection of our own or one borrowed from the pool; both have ``transaction()``.
AnyConnection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


class CountingExecutor:
    """An Executor that counts the statements sent through it (one round trip each).

    asyncpg caches prepared statements per connection, so after a statement's first use each
    call here is one Bind/Execute/Sync exchange with the server: one network round trip.
    """

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self.round_trips = 0
        self.statements: list[str] = []

    def reset(self) -> None:
        """Start counting from zero."""
        self.round_trips = 0
        self.statements.clear()

    def _count(self, query: str) -> None:
        self.round_trips += 1
        self.statements.append(query)

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        self._count(query)
        return await self.inner.execute(query, *args, timeout=timeout)

    async def executemany(
        self, command: str, args: Iterable[Sequence[Any]], *, timeout: float | None = None
    ) -> None:
        self._count(command)
        await self.inner.executemany(command, args, timeout=timeout)

    async def fetch(
        self, query: str, *args: Any, timeout: float | None = None
    ) -> list[asyncpg.Record]:
        self._count(query)
        return await self.inner.fetch(query, *args, timeout=timeout)

    async def fetchrow(
        self, query: str, *args: Any, timeout: float | None = None
    ) -> asyncpg.Record | None:
        self._count(query)
        return await self.inner.fetchrow(query, *args, timeout=timeout)

    async def fetchval(
        self, query: str, *args: Any, column: int = 0, timeout: float | None = None
    ) -> Any:
        self._count(query)
        return await self.inner.fetchval(query, *args, column=column, timeout=timeout)

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

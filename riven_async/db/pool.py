"""The one asyncpg pool: orjson codecs, timeouts from config, health probe."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import asyncpg
import orjson

from riven_async.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

# The errors that mean "the server is not reachable right now", not "the query is wrong".
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ConnectionError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    # A pooled connection broken mid-operation by a server restart can report a protocol
    # state error instead of a connection error.
    asyncpg.InternalClientError,
)
# The database is away: nothing to do but wait and try again.
DB_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, DatabaseUnavailable)
# What a background loop's pass may meet from the database and outlive (back off, try the
# pass again): the database away, or a statement it refused (a timeout mid-restart).
DB_PASS_ERRORS: tuple[type[BaseException], ...] = (*DB_UNAVAILABLE_ERRORS, asyncpg.PostgresError)


@dataclass(frozen=True, slots=True)
class PoolOptions:
    """What the pool needs from config, as plain values."""

    dsn: str
    min_size: int = 2
    max_size: int = 10
    command_timeout_s: float = 30.0
    statement_timeout_s: float = 30.0
    connection_lifetime_s: float = 3600.0
    connect_timeout_s: float = 10.0


async def init_connection(conn: asyncpg.Connection) -> None:
    """Register orjson for json and jsonb on a new connection."""
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name,
            encoder=lambda value: orjson.dumps(value).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def create_pool(options: PoolOptions) -> asyncpg.Pool:
    """Create the pool; raise DatabaseUnavailable when the server cannot be reached."""
    try:
        pool = await asyncpg.create_pool(
            options.dsn,
            min_size=options.min_size,
            max_size=options.max_size,
            command_timeout=options.command_timeout_s,
            max_inactive_connection_lifetime=options.connection_lifetime_s,
            timeout=options.connect_timeout_s,
            init=init_connection,
            server_settings={
                "application_name": "riven-async",
                "statement_timeout": str(int(options.statement_timeout_s * 1000)),
            },
        )
    except CONNECTION_ERRORS as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {type(exc).__name__}") from exc
    return pool


async def ping(pool: asyncpg.Pool, timeout_s: float = 2.0) -> bool:
    """True when a connection can run ``SELECT 1`` within ``timeout_s``."""
    try:
        async with asyncio.timeout(timeout_s):
            async with pool.acquire() as conn:
                return bool(await conn.fetchval("SELECT 1"))
    except CONNECTION_ERRORS:
        return False
    except asyncpg.PostgresError:
        return False

"""Bring the database up for the daemon or a CLI command: embedded server, pool, migrations."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

from riven_async.config import Settings, default_data_dir
from riven_async.db import migrate
from riven_async.db.embedded import EmbeddedPostgres
from riven_async.db.pool import CONNECTION_ERRORS, PoolOptions, create_pool
from riven_async.errors import DatabaseUnavailable

log = logging.getLogger(__name__)
_MAX_BACKOFF_S = 30.0
_CLOSE_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, *CONNECTION_ERRORS)


@dataclass(frozen=True, slots=True)
class Database:
    """What is running: the pool, and the embedded server when we own one."""

    pool: asyncpg.Pool
    embedded: EmbeddedPostgres | None
    dsn: str = ""


def embedded_for(settings: Settings) -> EmbeddedPostgres | None:
    """The embedded server the settings ask for, or None when a URL is configured."""
    db = settings.database
    if db.url is not None:
        return None
    data_dir = db.data_dir or default_data_dir() / "pg"
    return EmbeddedPostgres(data_dir, port=db.embedded_port)


def pool_options(settings: Settings, dsn: str) -> PoolOptions:
    """Pool sizing and timeouts from ``[database]``."""
    db = settings.database
    return PoolOptions(
        dsn=dsn,
        min_size=db.pool_min,
        max_size=db.pool_max,
        command_timeout_s=db.command_timeout_s,
        statement_timeout_s=db.statement_timeout_s,
        connection_lifetime_s=db.connection_lifetime_s,
        connect_timeout_s=db.connect_timeout_s,
    )


async def connect_with_retry(options: PoolOptions, interval_s: float) -> asyncpg.Pool:
    """Create the pool, waiting with capped, jittered backoff while the server is down."""
    delay = interval_s
    while True:
        try:
            return await create_pool(options)
        except DatabaseUnavailable as exc:
            log.warning("database unreachable (%s); retrying in %.1fs", exc.__cause__ or exc,
                        delay, extra={"action": "db_connect"})
        await asyncio.sleep(delay * random.uniform(0.8, 1.2))
        delay = min(_MAX_BACKOFF_S, delay * 2)


async def migrate_with_retry(pool: asyncpg.Pool, interval_s: float) -> list[str]:
    """Apply pending migrations, waiting while the server is unreachable."""
    delay = interval_s
    while True:
        try:
            async with pool.acquire() as conn:
                return await migrate.apply_migrations(conn)
        except CONNECTION_ERRORS as exc:
            log.warning("database unreachable during migration (%r); retrying in %.1fs", exc,
                        delay, extra={"action": "migrate"})
        await asyncio.sleep(delay)
        delay = min(_MAX_BACKOFF_S, delay * 2)


@asynccontextmanager
async def open_database(
    settings: Settings, *, run_migrations: bool = True
) -> AsyncIterator[Database]:
    """Start what is needed, yield the pool, and tear down in reverse order."""
    embedded = embedded_for(settings)
    if embedded is not None:
        try:
            await embedded.start()
        except BaseException:
            # A stop signal during start-up must not leave a server behind.
            await asyncio.shield(embedded.stop())
            raise
        dsn = embedded.dsn()
    else:
        assert settings.database.url is not None
        dsn = settings.database.url.get_secret_value()
    try:
        pool = await connect_with_retry(
            pool_options(settings, dsn), settings.database.reconnect_interval_s
        )
        try:
            if run_migrations:
                await migrate_with_retry(pool, settings.database.reconnect_interval_s)
            yield Database(pool, embedded, dsn)
        finally:
            await _close_pool(pool)
    finally:
        if embedded is not None:
            await embedded.stop()


async def _close_pool(pool: asyncpg.Pool, timeout_s: float = 10.0) -> None:
    try:
        await asyncio.wait_for(pool.close(), timeout_s)
    except _CLOSE_ERRORS:
        pool.terminate()

"""The database for a command: the configured server, or the embedded one (started for the
command if nothing runs it, and stopped again afterwards)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import asyncpg

from riven_async.app import clock_from_settings
from riven_async.commands.base import EX_UNAVAILABLE, CommandError
from riven_async.config import Settings
from riven_async.db import lifecycle, migrate
from riven_async.db.embedded import EmbeddedPostgres
from riven_async.db.pool import CONNECTION_ERRORS, create_pool
from riven_async.db.repos import Repos
from riven_async.domain.queue import new_boot_id
from riven_async.errors import DatabaseUnavailable, MigrationError, RivenError

log = logging.getLogger(__name__)
CLI_POOL_MAX = 4

StillNeeded = Callable[[], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class CommandDatabase:
    """A pool and the repositories on it, for one command."""

    pool: asyncpg.Pool
    repos: Repos
    embedded: bool
    migrated: tuple[str, ...] = ()


async def _never() -> bool:
    return False


@asynccontextmanager
async def open_database(
    settings: Settings, *, still_needed: StillNeeded = _never
) -> AsyncIterator[CommandDatabase]:
    """Connect (migrating if needed) and yield; an embedded server this command started is
    stopped afterwards unless ``still_needed()`` says a daemon came up and uses it."""
    embedded = lifecycle.embedded_for(settings)
    if embedded is not None:
        dsn = await _start_embedded(embedded)
    else:
        assert settings.database.url is not None
        dsn = settings.database.url.get_secret_value()
    try:
        pool = await _connect(settings, dsn)
        try:
            try:
                async with pool.acquire() as conn:
                    applied = await migrate.apply_migrations(conn)
            except MigrationError as exc:
                raise CommandError(f"database migrations: {exc}") from None
            except CONNECTION_ERRORS as exc:
                raise CommandError(f"the database went away: {type(exc).__name__}",
                                   EX_UNAVAILABLE) from None
            repos = Repos.on(pool, clock_from_settings(settings), new_boot_id())
            yield CommandDatabase(pool, repos, embedded is not None, tuple(applied))
        finally:
            await pool.close()
    finally:
        if embedded is not None and embedded.started_here and not await still_needed():
            await embedded.stop()


async def _connect(settings: Settings, dsn: str) -> asyncpg.Pool:
    options = lifecycle.pool_options(settings, dsn)
    options = replace(options, min_size=1, max_size=min(CLI_POOL_MAX, options.max_size))
    try:
        return await create_pool(options)
    except DatabaseUnavailable as exc:
        raise CommandError(f"cannot reach the database: {exc}", EX_UNAVAILABLE,
                           _unreachable_hint(settings)) from None


async def _start_embedded(embedded: EmbeddedPostgres) -> str:
    # Reuses a server the daemon runs (same data directory); only a server started here is
    # stopped again (``started_here``).
    try:
        await embedded.start()
    except BaseException as exc:
        if embedded.started_here:
            await embedded.stop()
        if isinstance(exc, RivenError):
            raise CommandError(f"cannot start the embedded database: {exc}", EX_UNAVAILABLE,
                               "check database.data_dir and postgres.log in it") from None
        raise
    return embedded.dsn()


def _unreachable_hint(settings: Settings) -> str:
    if settings.database.url is None:
        return "the embedded server runs from database.data_dir; see its postgres.log"
    return "check database.url and that the server is running"

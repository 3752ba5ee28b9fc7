"""Shared fixtures: one embedded PostgreSQL per test session (per xdist worker), a migrated
template database, and a fresh clone of it for every test that asks for one."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from riven_async.config import Settings, load_settings_from_dict
from riven_async.db import migrate
from riven_async.db.embedded import TEST_SERVER_SETTINGS, EmbeddedPostgres
from riven_async.db.pool import PoolOptions, create_pool, init_connection

# Tests must not pick up the developer's environment.
for _name in list(os.environ):
    if _name.startswith("RIVEN_"):
        del os.environ[_name]

TEMPLATE_DB = "riven_template"
TEST_API_KEY = "test-api-key-0123456789"


async def _create_template(server: EmbeddedPostgres) -> None:
    admin = await asyncpg.connect(server.dsn("postgres"))
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(server.dsn(TEMPLATE_DB))
    try:
        await migrate.apply_migrations(conn)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    """A real PostgreSQL for this test session, tuned for speed (fsync off)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    server = EmbeddedPostgres(
        tmp_path_factory.getbasetemp() / f"pg-{worker}", server_settings=TEST_SERVER_SETTINGS
    )
    asyncio.run(server.start())
    asyncio.run(_create_template(server))
    yield server
    asyncio.run(server.stop("immediate"))




@pytest.fixture
async def db_dsn(pg_server: EmbeddedPostgres) -> AsyncIterator[str]:
    """A DSN to a fresh clone of the migrated template, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(pg_server.dsn("postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    finally:
        await admin.close()
    yield pg_server.dsn(name)
    admin = await asyncpg.connect(pg_server.dsn("postgres"))
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def db_pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """An asyncpg pool (orjson codecs) on the test's own database."""
    pool = await create_pool(PoolOptions(dsn=db_dsn, min_size=1, max_size=10))
    yield pool
    await pool.close()


@pytest.fixture
async def db_conn(db_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """One connection (orjson codecs) on the test's own database."""
    conn = await asyncpg.connect(db_dsn)
    await init_connection(conn)
    yield conn
    await conn.close()


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(tmp_path: Path) -> SettingsFactory:
    """Build Settings for a test: port 0, a known API key, overrides as nested dicts."""

    def factory(**sections: dict[str, Any]) -> Settings:
        data: dict[str, Any] = {
            "server": {"port": 0, "api_key": TEST_API_KEY, "shutdown_timeout_s": 2.0},
            "database": {"data_dir": str(tmp_path / "pg")},
            "library": {"mount_dir": str(tmp_path / "mount"), "root": str(tmp_path / "library")},
            # No network but loopback: the upstreams enabled by default would reach the real
            # services; here they point at a closed loopback port (a test that needs one
            # points it at a sim).
            "upstreams": {name: {"base_url": "http://127.0.0.1:9"}
                          for name in ("tmdb", "tvmaze", "torrentio")},
        }
        for name, values in sections.items():
            data[name] = {**data.get(name, {}), **values}
        return load_settings_from_dict(data)

    return factory


@pytest.fixture
def db_settings(make_settings: SettingsFactory, db_dsn: str) -> Settings:
    """Settings pointing at the test's own database."""
    return make_settings(database={"url": db_dsn})

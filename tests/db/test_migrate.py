from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from riven_async.db import migrate
from riven_async.errors import MigrationError


def schema_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    directory = tmp_path / "schema"
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


async def test_shipped_migrations_apply_from_zero(db_conn: asyncpg.Connection) -> None:
    await db_conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    applied = await migrate.apply_migrations(db_conn)
    assert applied == [m.path.name for m in migrate.discover()]
    assert await migrate.apply_migrations(db_conn) == []


async def test_migrations_apply_in_order_once(db_conn: asyncpg.Connection, tmp_path: Path) -> None:
    directory = schema_dir(tmp_path, {
        "0002_b.sql": "ALTER TABLE t_a ADD COLUMN b int;",
        "0001_a.sql": "CREATE TABLE t_a (id int);",
    })
    await db_conn.execute("DROP TABLE schema_migrations")
    assert await migrate.apply_migrations(db_conn, directory) == ["0001_a.sql", "0002_b.sql"]
    assert await migrate.apply_migrations(db_conn, directory) == []
    rows = await db_conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    assert [(r["version"], r["name"]) for r in rows] == [(1, "a"), (2, "b")]


async def test_changed_applied_migration_is_an_error_naming_the_file(
    db_conn: asyncpg.Connection, tmp_path: Path
) -> None:
    await db_conn.execute("DROP TABLE schema_migrations")
    directory = schema_dir(tmp_path, {"0001_a.sql": "CREATE TABLE t_a (id int);"})
    await migrate.apply_migrations(db_conn, directory)
    (directory / "0001_a.sql").write_text("CREATE TABLE t_a (id bigint);")
    with pytest.raises(MigrationError, match=r"0001_a\.sql.*changed"):
        await migrate.apply_migrations(db_conn, directory)


async def test_failed_migration_rolls_back_and_names_the_file(
    db_conn: asyncpg.Connection, tmp_path: Path
) -> None:
    await db_conn.execute("DROP TABLE schema_migrations")
    directory = schema_dir(tmp_path, {
        "0001_a.sql": "CREATE TABLE t_a (id int);",
        "0002_bad.sql": "CREATE TABLE t_b (id int); SELECT * FROM no_such_table;",
    })
    with pytest.raises(MigrationError, match=r"0002_bad\.sql"):
        await migrate.apply_migrations(db_conn, directory)
    assert await db_conn.fetchval("SELECT to_regclass('t_b')") is None
    assert await db_conn.fetchval("SELECT count(*) FROM schema_migrations") == 1


def test_badly_named_file_is_rejected(tmp_path: Path) -> None:
    directory = schema_dir(tmp_path, {"init.sql": "SELECT 1;"})
    with pytest.raises(MigrationError, match="NNNN_short_name"):
        migrate.discover(directory)


async def test_concurrent_runners_apply_each_migration_once(
    db_dsn: str, tmp_path: Path
) -> None:
    directory = schema_dir(tmp_path, {"0001_a.sql": "CREATE TABLE t_a (id int);"})
    conns = [await asyncpg.connect(db_dsn) for _ in range(4)]
    try:
        await conns[0].execute("DROP TABLE schema_migrations")
        results = await asyncio.gather(
            *(migrate.apply_migrations(c, directory) for c in conns)
        )
    finally:
        for conn in conns:
            await conn.close()
    assert sorted(len(r) for r in results) == [0, 0, 0, 1]

"""Apply ``sql/schema/NNNN_name.sql`` in order, once each, under an advisory lock."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from riven_async.db.executor import AnyConnection
from riven_async.db.queries import sql_dir
from riven_async.errors import MigrationError

log = logging.getLogger(__name__)

_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any constant works; it only has to be the same for every riven-async process.
_ADVISORY_LOCK_KEY = 0x72697665_6E5F6D67  # "riven_mg"

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema file."""

    version: int
    name: str
    path: Path
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text; an applied file must never change."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path | None = None) -> list[Migration]:
    """Every migration file in version order; names and versions are checked."""
    root = directory or sql_dir() / "schema"
    found: list[Migration] = []
    for path in sorted(root.glob("*.sql")):
        match = _FILE_RE.match(path.name)
        if match is None:
            raise MigrationError(f"{path}: migration files are named NNNN_short_name.sql")
        found.append(Migration(int(match[1]), match[2], path, path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{root}: two migration files share a version number")
    return found


async def apply_migrations(conn: AnyConnection, directory: Path | None = None) -> list[str]:
    """Apply what is pending; return the names applied. Safe to run from many processes."""
    migrations = discover(directory)
    applied_names: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _ADVISORY_LOCK_KEY)
    try:
        await conn.execute(_CREATE_TABLE)
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        applied = {row["version"]: (row["name"], row["checksum"]) for row in rows}
        for migration in migrations:
            previous = applied.get(migration.version)
            if previous is not None:
                if previous[1] != migration.checksum:
                    raise MigrationError(
                        f"{migration.path}: this migration was already applied and has changed "
                        "since; migrations are append-only (add a new file instead)"
                    )
                continue
            async with conn.transaction():
                try:
                    await conn.execute(migration.sql)
                except asyncpg.PostgresError as exc:
                    raise MigrationError(f"{migration.path}: {exc}") from exc
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version, migration.name, migration.checksum,
                )
            applied_names.append(migration.path.name)
            log.info("applied migration %s", migration.path.name,
                     extra={"action": "migrate", "version": migration.version})
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _ADVISORY_LOCK_KEY)
    return applied_names

from __future__ import annotations

import asyncpg


async def test_each_test_gets_a_migrated_clone_of_the_template(db_pool: asyncpg.Pool) -> None:
    versions = await db_pool.fetch("SELECT version FROM schema_migrations ORDER BY version")
    assert [r["version"] for r in versions][:1] == [1]
    assert await db_pool.fetchval("SELECT '{\"a\": 1}'::jsonb") == {"a": 1}

"""EXPLAIN guards: the hot queries read through their indexes, never a scan of items or jobs.

The database gets enough rows (20,000 items, 5,000 jobs) and fresh statistics for the
planner to choose as it will in production; each guard names the index it relies on.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from riven_async.db.embedded import EmbeddedPostgres
from riven_async.db.pool import init_connection
from riven_async.db.queries import load_queries
from riven_async.db.trees import TreesRepo
from riven_async.domain.media import MediaKind
from riven_async.domain.states import State
from tests.conftest import TEMPLATE_DB
from tests.db.factories import T0, show_tree

NOW = datetime.now(UTC)
BOOT = uuid.uuid4()
ALL_KINDS = list(MediaKind)


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _populate(dsn: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await init_connection(connection)
        trees = TreesRepo(connection)
        await trees.import_show_trees([show_tree(t, seasons=4, episodes=5)
                                       for t in range(1, 801)])
        await connection.execute(
            "UPDATE items SET state = (ARRAY['indexed', 'scraped', 'completed', 'unreleased']"
            ")[1 + id % 4]::item_state WHERE kind = 'episode'")
        await connection.execute(
            "INSERT INTO jobs (kind, item_id, dedupe_key, run_at, priority)"
            " SELECT 'scrape', id, 'scrape:' || id, now() + (id % 50) * interval '1 minute',"
            " (id % 3)::smallint FROM items WHERE kind = 'episode' AND id % 4 = 0")
        await connection.execute("VACUUM ANALYZE items")
        await connection.execute("VACUUM ANALYZE jobs")
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def planned_dsn(pg_server: EmbeddedPostgres) -> Iterator[str]:
    """One populated database for the whole module: the guards only read plans."""
    name = f"plans_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        admin = await asyncpg.connect(pg_server.dsn("postgres"))
        try:
            await admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
        finally:
            await admin.close()
        await _populate(pg_server.dsn(name))

    async def drop() -> None:
        admin = await asyncpg.connect(pg_server.dsn("postgres"))
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()

    asyncio.run(create())
    yield pg_server.dsn(name)
    asyncio.run(drop())


@pytest.fixture
async def conn(planned_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(planned_dsn)
    await init_connection(connection)
    yield connection
    await connection.close()


async def _plan(conn: asyncpg.Connection, feature: str, name: str, *args: object) -> list[
        dict[str, Any]]:
    sql = load_queries(feature).sql(name)
    # EXPLAIN without ANALYZE: nothing is written, the plan is what would run.
    [row] = await conn.fetch("EXPLAIN (FORMAT JSON) " + sql, *args)
    plan = row[0][0]["Plan"]
    return list(_nodes(plan))


def _scans(nodes: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(n["Node Type"], n.get("Relation Name", "")) for n in nodes if "Scan" in n["Node Type"]}


def _indexes(nodes: list[dict[str, Any]]) -> set[str]:
    return {n["Index Name"] for n in nodes if "Index Name" in n}


def _assert_no_seq_scan(nodes: list[dict[str, Any]], *tables: str) -> None:
    scans = _scans(nodes)
    for table in tables:
        assert ("Seq Scan", table) not in scans, f"seq scan on {table}: {scans}"


async def test_claim_walks_the_claim_index(conn: asyncpg.Connection) -> None:
    nodes = await _plan(conn, "jobs", "claim", BOOT, "scrape", 10, NOW + timedelta(hours=1))
    _assert_no_seq_scan(nodes, "jobs", "items")
    assert "jobs_claim" in _indexes(nodes)


async def test_next_due_probes_the_claim_index(conn: asyncpg.Connection) -> None:
    nodes = await _plan(conn, "jobs", "next_due_at", "scrape")
    _assert_no_seq_scan(nodes, "jobs")
    assert "jobs_claim" in _indexes(nodes)


async def test_completion_finds_the_job_by_primary_key(conn: asyncpg.Connection) -> None:
    nodes = await _plan(conn, "jobs", "complete_many", [1, 2], BOOT)
    assert "jobs_pkey" in _indexes(nodes)


async def test_state_pages_read_the_state_index(conn: asyncpg.Connection) -> None:
    nodes = await _plan(conn, "catalog", "page_by_state", State.SCRAPED, ALL_KINDS,
                        T0 - timedelta(days=1), 0, 101)
    _assert_no_seq_scan(nodes, "items")
    assert _indexes(nodes) == {"items_state_page"}
    assert not any(n["Node Type"] == "Sort" for n in nodes)


async def test_kind_pages_read_an_index_in_order(conn: asyncpg.Connection) -> None:
    shows = await _plan(conn, "catalog", "page_by_kind", MediaKind.SHOW, 0, 101)
    assert _indexes(shows) == {"items_kind_page"}
    episodes = await _plan(conn, "catalog", "page_episodes", 0, 101)
    assert _indexes(episodes) == {"items_pkey"}


async def test_a_tree_reads_the_tree_index_and_best_releases(conn: asyncpg.Connection) -> None:
    nodes = await _plan(conn, "catalog", "tree", 1, 5)
    _assert_no_seq_scan(nodes, "items", "releases")
    assert {"items_pkey", "items_tree_key", "releases_best"} <= _indexes(nodes)


async def test_title_search_uses_the_trigram_index(conn: asyncpg.Connection) -> None:
    nodes = await _plan(conn, "catalog", "search_titles", "show 12", 20)
    assert "items_title_trgm" in _indexes(nodes)


async def test_oldest_per_state_is_one_probe_each(conn: asyncpg.Connection) -> None:
    nodes = await _plan(conn, "stats", "oldest_in_states", list(State))
    _assert_no_seq_scan(nodes, "items")
    assert "items_state_page" in _indexes(nodes)


async def test_due_checks_and_releases_avoid_scanning_items(conn: asyncpg.Connection) -> None:
    due = await _plan(conn, "schedule", "enqueue_due_checks", NOW, 100, NOW)
    _assert_no_seq_scan(due, "items")
    assert "items_next_check" in _indexes(due)
    released = await _plan(conn, "schedule", "release_due", NOW, 900.0, 100, 0)
    _assert_no_seq_scan(released, "items")
    assert {"items_release_due", "items_tree_key"} <= _indexes(released)
    upcoming = await _plan(conn, "schedule", "next_release_at", 900.0)
    _assert_no_seq_scan(upcoming, "items")
    assert "items_release_due" in _indexes(upcoming)
    reschedule = await _plan(conn, "schedule", "reschedule_many", [1, 2], [NOW, NOW], [0, 0])
    _assert_no_seq_scan(reschedule, "items")


async def test_request_lookups_use_the_external_id_indexes(conn: asyncpg.Connection) -> None:
    nodes = await _plan(conn, "items", "request_many", ["show"], [5], [None], [None], [None],
                        [None], [None], ["api"], [None], [None], [None])
    _assert_no_seq_scan(nodes, "items")

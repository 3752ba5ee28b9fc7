"""Housekeeping on a real database: what is past its keep time goes, the rest stays."""

from __future__ import annotations

import uuid

import asyncpg

from riven_async.config import LiveSettings
from riven_async.core.clock import SystemClock
from riven_async.core.locks import KeyedLock
from riven_async.db.notify import Listener
from riven_async.db.repos import Repos
from riven_async.domain.queue import new_boot_id
from riven_async.pipeline.maintenance import Maintenance
from riven_async.pipeline.runtime import Runtime
from riven_async.upstreams import UpstreamClients
from riven_async.web.metrics import MetricsRegistry
from tests.conftest import SettingsFactory


async def _seed(conn: asyncpg.Pool) -> None:
    for age, key in (("8 days", "old"), ("1 day", "new")):
        await conn.execute(
            "INSERT INTO inbox (source, event, delivery_key, payload, processed_at) "
            f"VALUES ('sonarr', 'Test', $1, '{{}}', now() - interval '{age}')", key)
    await conn.execute(
        "INSERT INTO inbox (source, event, delivery_key, payload) "
        "VALUES ('sonarr', 'Test', 'waiting', '{}')")
    for age, key in (("31 days", "old"), ("2 days", "new")):
        await conn.execute(
            "INSERT INTO jobs (kind, dedupe_key, run_at, status, finished_at) "
            f"VALUES ('scrape', $1, now(), 'failed', now() - interval '{age}')", key)
    await conn.execute("INSERT INTO jobs (kind, dedupe_key, run_at) VALUES ('scan', 'q', now())")
    for age, digit in (("3 hours", "a"), ("10 minutes", "b")):
        await conn.execute(
            "INSERT INTO debrid_checks (service, infohash, outcome, checked_at) "
            f"VALUES ('realdebrid', $1, 'not_cached', now() - interval '{age}')", digit * 40)
    for age in ("2 days", "1 hour"):
        await conn.execute(
            "INSERT INTO processes (boot_id, pid, hostname, heartbeat_at, stopped_at) "
            f"VALUES ($1, 1, 'h', now() - interval '{age}', now() - interval '{age}')",
            uuid.uuid4())


async def test_a_pass_deletes_only_what_is_past_its_keep_time(
    make_settings: SettingsFactory, db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    settings = make_settings(database={"url": db_dsn}, debrid={"not_cached_retry_s": 3600.0})
    clock = SystemClock()
    boot_id = new_boot_id()
    runtime = Runtime(
        live=LiveSettings(settings), clock=clock, pool=db_pool,
        repos=Repos.on(db_pool, clock, boot_id),
        upstreams=UpstreamClients.from_settings(settings, clock=clock), locks=KeyedLock(),
        metrics=MetricsRegistry(), listener=Listener(lambda: asyncpg.connect(db_dsn)),
        boot_id=boot_id,
    )
    await _seed(db_pool)
    maintenance = Maintenance(runtime)
    await maintenance.run_pass()
    await runtime.upstreams.aclose()
    inbox = {r["delivery_key"] for r in await db_pool.fetch("SELECT delivery_key FROM inbox")}
    assert inbox == {"new", "waiting"}  # an unprocessed delivery is never pruned
    jobs = {r["dedupe_key"] for r in await db_pool.fetch("SELECT dedupe_key FROM jobs")}
    assert jobs == {"new", "q"}
    checks = [r["infohash"][0] for r in await db_pool.fetch("SELECT infohash FROM debrid_checks")]
    assert checks == ["b"]  # 3 h > 2 x the 1 h retry interval: forgotten
    assert await db_pool.fetchval("SELECT count(*) FROM processes") == 1
    section = maintenance.stats.section()
    assert (section["inbox_pruned"], section["failed_jobs_pruned"],
            section["debrid_checks_pruned"], section["processes_pruned"]) == (1, 1, 1, 1)

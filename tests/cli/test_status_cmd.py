"""``riven-async status`` with the daemon up (its API) and down (the database), and the
embedded server a command starts for itself (stopped again) or finds running (left alone)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import anyio
import asyncpg

from riven_async import __version__
from riven_async.commands.base import EX_UNAVAILABLE
from riven_async.config import EX_CONFIG
from riven_async.core.clock import SystemClock
from riven_async.db.embedded import EmbeddedPostgres
from riven_async.db.repos import Repos
from riven_async.domain.queue import new_boot_id
from riven_async.sim.ports import free_port
from tests.cli.conftest import RunCli, RunningDaemon, write_config
from tests.db.factories import movie, show_tree


async def seed(pool: asyncpg.Pool) -> Repos:
    repos = Repos.on(pool, SystemClock(), new_boot_id())
    await repos.trees.upsert_show_trees([show_tree(101, title="Severance")])
    await repos.trees.upsert_movies([movie(7, title="Dune")])
    await repos.items.fail_many(
        [r["id"] for r in await pool.fetch("SELECT id FROM items WHERE kind = 'movie'")],
        "no release")
    return repos


async def test_status_with_the_daemon_up_reads_its_api(
    run_cli: RunCli, running_daemon: RunningDaemon, db_pool: asyncpg.Pool
) -> None:
    await seed(db_pool)
    total = await db_pool.fetchval("SELECT count(*) FROM items")
    result = await run_cli(running_daemon.config, "status", "--json")
    assert result.code == 0, result.err
    doc = result.json()
    assert doc["daemon"]["running"] is True
    assert doc["version"] == __version__
    assert doc["uptime_s"] >= 0
    assert doc["items"]["total"] == total
    assert doc["items"]["by_state"]["failed"] == 1
    assert isinstance(doc["upstreams"], dict)
    assert "tmdb" in doc["upstreams"]
    assert doc["config"]["path"] == str(running_daemon.config)

    text = await run_cli(running_daemon.config, "status")
    assert text.code == 0
    assert "daemon running" in text.out
    assert "upstreams" in text.out
    assert "tmdb" in text.out


async def test_status_with_the_daemon_down_reads_the_database(
    run_cli: RunCli, stopped_daemon_config: Path, db_pool: asyncpg.Pool
) -> None:
    await seed(db_pool)
    total = await db_pool.fetchval("SELECT count(*) FROM items")
    result = await run_cli(stopped_daemon_config, "status", "--json")
    assert result.code == 0, result.err
    doc = result.json()
    assert doc["daemon"]["running"] is False
    assert doc["items"]["total"] == total
    assert doc["items"]["by_state"]["failed"] == 1
    assert doc["database"] == {"embedded": False, "size_bytes": doc["database"]["size_bytes"]}
    assert doc["database"]["size_bytes"] > 0
    assert doc["upstreams"] is None
    assert set(doc) >= {"oldest", "jobs", "checks", "inbox"}

    text = await run_cli(stopped_daemon_config, "status")
    assert "daemon NOT running" in text.out
    assert "1 failed" in text.out
    assert "unknown while the daemon is not running" in text.out


async def test_both_status_documents_have_the_same_shape(
    run_cli: RunCli, running_daemon: RunningDaemon, stopped_daemon_config: Path,
    db_pool: asyncpg.Pool,
) -> None:
    await seed(db_pool)
    up = (await run_cli(running_daemon.config, "status", "--json")).json()
    down = (await run_cli(stopped_daemon_config, "status", "--json")).json()
    assert set(up) == set(down)
    assert up["items"] == down["items"]
    assert set(up["oldest"]) == set(down["oldest"])
    assert set(up["checks"]) == set(down["checks"])


async def test_a_daemon_that_runs_but_does_not_answer_is_unavailable(
    run_cli: RunCli, tmp_path: Path, db_dsn: str
) -> None:
    # A process whose command line names riven-async, listening nowhere.
    sleeper = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(60)", "riven-async", "run")
    try:
        pid_file = tmp_path / "riven.pid"
        await anyio.Path(pid_file).write_text(f"{sleeper.pid}\n")
        config = write_config(tmp_path / "config.toml", port=free_port(), database_url=db_dsn,
                              server_extra=f'pid_file = "{pid_file}"\n')
        result = await run_cli(config, "status")
        assert result.code == EX_UNAVAILABLE
        assert f"pid {sleeper.pid}" in result.err
    finally:
        sleeper.kill()
        await sleeper.wait()


async def test_unreachable_database_is_69_and_bad_config_is_78(
    run_cli: RunCli, tmp_path: Path
) -> None:
    dead = f"postgresql://nobody@127.0.0.1:{free_port()}/riven"
    config = write_config(tmp_path / "bad.toml", port=free_port(), database_url=dead,
                          extra="[database.x]\n")
    bad = await run_cli(config, "status")
    assert bad.code == EX_CONFIG
    assert "database.x" in bad.err
    config = write_config(tmp_path / "config.toml", port=free_port(), database_url=dead)
    result = await run_cli(config, "status")
    assert result.code == EX_UNAVAILABLE
    assert "cannot reach the database" in result.err
    assert dead not in result.err


async def test_embedded_database_started_for_a_command_is_stopped_and_a_running_one_kept(
    run_cli: RunCli, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "config.toml", port=free_port())
    data_dir = tmp_path / "pg"
    pidfile = data_dir / "data" / "postmaster.pid"

    result = await run_cli(config, "status", "--json")
    assert result.code == 0, result.err
    assert result.json()["database"]["embedded"] is True
    assert not pidfile.exists()  # started for the command, stopped after it

    server = EmbeddedPostgres(data_dir)  # as the daemon would run it
    await server.start()
    try:
        added = await run_cli(config, "items", "add", "--tmdb", "550", "--kind", "movie")
        assert added.code == 0, added.err
        assert await server.is_running()  # a server the command did not start stays up
        conn = await asyncpg.connect(server.dsn())
        try:
            assert await conn.fetchval("SELECT count(*) FROM items") == 1
        finally:
            await conn.close()
    finally:
        await asyncio.shield(server.stop("immediate"))

"""``riven-async import``: 500 entries from the Sonarr, Radarr and Overseerr sims, requested
once, idempotent on a second run, with a summary of what was added, present and skipped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from riven_async.commands.base import EX_FAILURE, EX_UNAVAILABLE
from riven_async.sim.overseerr import APPROVED
from riven_async.sim.ports import free_port
from riven_async.sim.server import SimCluster, SimSettings, run_sims
from tests.cli.conftest import Result, RunCli, write_config

ENTRIES = 500


@pytest.fixture
async def sims() -> AsyncIterator[SimCluster]:
    async with run_sims(SimSettings(seed=7, shows=ENTRIES, movies=ENTRIES,
                                    requests=ENTRIES)) as cluster:
        cluster.sonarr.sim.stride = 1
        cluster.radarr.sim.stride = 1
        yield cluster


async def counts(pool: asyncpg.Pool) -> tuple[int, int, int]:
    record = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM items WHERE kind IN ('movie', 'show')) AS roots,"
        " (SELECT count(*) FROM requests) AS requests,"
        " (SELECT count(*) FROM jobs WHERE kind = 'index') AS jobs")
    assert record is not None
    return record["roots"], record["requests"], record["jobs"]


async def run_import(run_cli: RunCli, config: Path, source: str, url: str, key: str,
                     *extra: str) -> Result:
    return await run_cli(config, "import", source, "--url", url, "--api-key", key, *extra)


async def test_sonarr_import_requests_each_monitored_series_once(
    run_cli: RunCli, sims: SimCluster, stopped_daemon_config: Path, db_pool: asyncpg.Pool
) -> None:
    sonarr = sims.sonarr
    sonarr.sim.unmonitored = {3, 10}
    partly = next(s for s in (sims.catalog.show(i) for i in range(20, ENTRIES))
                  if len([p for p in s.visible_seasons(sims.clock.now()) if p.number > 0]) >= 2)
    sonarr.sim.unmonitored_seasons = {partly.index: {1}}

    first = await run_import(run_cli, stopped_daemon_config, "sonarr", sonarr.url,
                             sonarr.api_key, "--json")
    assert first.code == 0, first.err
    report = first.json()
    assert report["read"] == ENTRIES
    assert report["added"] == ENTRIES - 2
    assert report["skipped_by_reason"] == {"not monitored": 2}
    assert report["already_present"] == report["updated"] == 0
    assert await counts(db_pool) == (ENTRIES - 2, ENTRIES - 2, ENTRIES - 2)
    seasons = await db_pool.fetchval(
        "SELECT r.requested_seasons FROM requests r JOIN items i ON i.id = r.item_id"
        " WHERE i.tmdb_id = $1", partly.tmdb_id)
    assert seasons is not None
    assert 1 not in seasons
    assert seasons == sorted(seasons)
    whole = await db_pool.fetchval(
        "SELECT count(*) FROM requests WHERE requested_seasons IS NULL")
    assert whole == ENTRIES - 3

    second = await run_import(run_cli, stopped_daemon_config, "sonarr", sonarr.url,
                              sonarr.api_key)
    assert second.code == 0, second.err
    assert "requested 0 new, 0 already there with more seasons; 498 already present; " \
           "2 skipped" in second.out
    assert "skipped 2: not monitored" in second.out
    assert await counts(db_pool) == (ENTRIES - 2, ENTRIES - 2, ENTRIES - 2)


async def test_radarr_import_is_idempotent_and_dry_run_writes_nothing(
    run_cli: RunCli, sims: SimCluster, stopped_daemon_config: Path, db_pool: asyncpg.Pool
) -> None:
    radarr = sims.radarr
    dry = await run_import(run_cli, stopped_daemon_config, "radarr", radarr.url,
                           radarr.api_key, "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert dry.json()["added"] == ENTRIES
    assert dry.json()["dry_run"] is True
    assert await counts(db_pool) == (0, 0, 0)

    first = (await run_import(run_cli, stopped_daemon_config, "radarr", radarr.url,
                              radarr.api_key, "--json")).json()
    assert (first["read"], first["added"], first["skipped"]) == (ENTRIES, ENTRIES, 0)
    assert await counts(db_pool) == (ENTRIES, ENTRIES, ENTRIES)
    movies = await db_pool.fetchval(
        "SELECT count(*) FROM items WHERE kind = 'movie' AND tmdb_id IS NOT NULL"
        " AND imdb_id IS NOT NULL")
    assert movies == ENTRIES

    second = (await run_import(run_cli, stopped_daemon_config, "radarr", radarr.url,
                               radarr.api_key, "--json")).json()
    assert (second["added"], second["updated"], second["already_present"]) == (0, 0, ENTRIES)
    assert await counts(db_pool) == (ENTRIES, ENTRIES, ENTRIES)


async def test_overseerr_import_pages_requests_with_their_seasons_once(
    run_cli: RunCli, sims: SimCluster, tmp_path: Path, db_dsn: str, db_pool: asyncpg.Pool
) -> None:
    overseerr = sims.overseerr
    now = sims.clock.now()
    listed = [r for r in overseerr.sim.requests.values()
              if r.status == APPROVED and r.created_at <= now]
    titles = {(r.kind, r.tmdb_id) for r in listed}
    # The section the daemon uses for Overseerr is the default source of the import.
    config = write_config(
        tmp_path / "config.toml", port=free_port(), database_url=db_dsn,
        extra=f'\n[upstreams.overseerr]\nenabled = true\nbase_url = "{overseerr.base_url}"\n'
              f'api_key = "{overseerr.api_key}"\n')

    first = await run_cli(config, "import", "overseerr", "--page-size", "40", "--json")
    assert first.code == 0, first.err
    report = first.json()
    assert report["read"] == len(listed)
    assert report["added"] == len(titles)
    accounted = report["added"] + report["updated"] + report["already_present"]
    assert accounted + report["skipped"] == len(listed)
    pages = [r for r in overseerr.requests if r.path.endswith("/request")]
    assert len(pages) == -(-len(listed) // 40)
    roots, stored, jobs = await counts(db_pool)
    assert roots == jobs == len(titles)

    tv = next(r for r in listed if r.kind == "tv" and r.seasons)
    wanted = await db_pool.fetch(
        "SELECT r.requested_seasons, r.source, r.requester FROM requests r"
        " JOIN items i ON i.id = r.item_id WHERE i.kind = 'show' AND i.tmdb_id = $1", tv.tmdb_id)
    assert any(set(tv.seasons) <= set(w["requested_seasons"] or tv.seasons) for w in wanted)
    assert {(w["source"], w["requester"]) for w in wanted} == {("overseerr", "admin")}

    second = await run_cli(config, "import", "overseerr", "--page-size", "40", "--json")
    again = second.json()
    assert (again["added"], again["updated"]) == (0, 0)
    assert await counts(db_pool) == (roots, stored, jobs)


async def test_a_wrong_key_is_1_and_an_unreachable_source_is_69(
    run_cli: RunCli, sims: SimCluster, stopped_daemon_config: Path, db_pool: asyncpg.Pool
) -> None:
    refused = await run_import(run_cli, stopped_daemon_config, "sonarr", sims.sonarr.url,
                               "wrong-key")
    assert refused.code == EX_FAILURE
    assert "refused the API key" in refused.err
    nowhere = await run_import(run_cli, stopped_daemon_config, "radarr",
                               f"http://127.0.0.1:{free_port()}", "key")
    assert nowhere.code == EX_UNAVAILABLE
    assert "does not answer" in nowhere.err
    assert await counts(db_pool) == (0, 0, 0)

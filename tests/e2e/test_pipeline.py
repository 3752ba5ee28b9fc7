"""End to end: the real daemon from webhook to library, and what home servers do to it.

Each test runs ``riven-async run`` as a subprocess against the simulated upstreams on a
fast shared clock and drives it only through its HTTP endpoints: webhooks in, the items
API and ``/metrics`` out. Every test ends by checking that no simulated upstream saw a
request over its limits and no debrid service was asked to add a torrent twice.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from riven_async.db.embedded import TEST_SERVER_SETTINGS, EmbeddedPostgres
from riven_async.demo import radarr_movie_added, sonarr_series_add
from riven_async.sim.faults import Outage
from riven_async.sim.movies import Movie
from riven_async.sim.shows import Show
from tests.e2e.pipeline_env import DEBRID, MEDIA_SERVERS, PipelineEnv, pipeline_env

pytestmark = [pytest.mark.timeout(300)]


def _ended_shows(env: PipelineEnv, seasons: int | None = None) -> list[Show]:
    now = env.clock.now()
    found = []
    for show in env.cluster.catalog.shows():
        aired = [p for p in show.visible_seasons(now) if p.number > 0]
        if show.status(now) not in ("Ended", "Canceled") or not aired:
            continue
        if seasons is None or len(aired) == seasons:
            found.append(show)
    return found


def _released_movies(env: PipelineEnv) -> list[Movie]:
    now = env.clock.now()
    return [m for m in env.cluster.catalog.movies() if m.digitally_released(now)]


def _aired_episodes(env: PipelineEnv, show: Show) -> int:
    now = env.clock.now()
    return sum(len([e for e in show.episodes(p.number, now) if e.aired(now.timestamp())])
               for p in show.visible_seasons(now) if p.number > 0)


def _assert_clean(env: PipelineEnv) -> None:
    assert env.violations() == {}
    assert env.duplicate_adds() == {}
    for link, target in env.links().items():
        assert target.is_relative_to(env.mount_dir.resolve()), (link, target)
        assert target.exists(), link
        assert link.resolve().is_relative_to(env.mount_dir.resolve())


def _database(db_dsn: str) -> str:
    return f'url = "{db_dsn}"'


async def test_a_movie_and_a_three_season_show_go_from_webhook_to_completed(
    tmp_path: Path, db_dsn: str
) -> None:
    async with pipeline_env(tmp_path, database=_database(db_dsn)) as env:
        show = _ended_shows(env, seasons=3)[0]
        movie = _released_movies(env)[0]
        assert (await env.post("/webhook/sonarr", sonarr_series_add(show))).status == 202
        assert (await env.post("/webhook/radarr", radarr_movie_added(movie))).status == 202
        roots = await env.wait_settled(2, timeout_s=180)
        assert {r["state"] for r in roots} == {"completed"}
        links = env.links()
        movie_links = [p for p in links if f"{{tmdb-{movie.tmdb_id}}}" in str(p)]
        show_links = [p for p in links if f"{{tvdb-{show.tvdb_id}}}" in str(p)]
        assert len(movie_links) == 1
        assert len(show_links) == _aired_episodes(env, show)
        for name in MEDIA_SERVERS:
            scans = [s.path for s in env.cluster[name].sim.scans]
            # One coalesced scan per folder: the movie's, and one per season (or the show).
            assert len(scans) == len(set(scans)), (name, scans)
            assert 2 <= len(scans) <= 4, (name, scans)
        assert all(s.matched for s in env.cluster["plex"].sim.scans)
        _assert_clean(env)


async def test_acknowledged_requests_survive_repeated_kill_9(
    tmp_path: Path, db_dsn: str
) -> None:
    rng = random.Random(9)
    async with pipeline_env(tmp_path, database=_database(db_dsn), shows=30,
                            movies=260) as env:
        movies = _released_movies(env)[:190]
        shows = [s for s in _ended_shows(env) if _aired_episodes(env, s) <= 24][:10]
        bodies = [("/webhook/radarr", radarr_movie_added(m)) for m in movies]
        bodies += [("/webhook/sonarr", sonarr_series_add(s)) for s in shows]
        assert len(bodies) == 200
        rng.shuffle(bodies)
        acknowledged = 0
        for kill in range(3):
            # Post a share of the requests, then kill the daemon at a random moment.
            share = bodies[kill * len(bodies) // 3:(kill + 1) * len(bodies) // 3]
            for path, body in share:
                response = await env.post(path, body)
                assert response.status == 202
                acknowledged += 1
            await asyncio.sleep(rng.uniform(0.5, 3.0))
            env.daemon.send(signal.SIGKILL)
            await env.daemon.wait(10)
            await env.daemon.start()
            await env.daemon.wait_healthy(60.0)
        assert acknowledged == len(bodies)
        conn = await asyncpg.connect(db_dsn)
        try:
            await _wait_quiet(conn, env, timeout_s=150)
            roots = await conn.fetch(
                "SELECT i.id, i.kind, i.state, i.tmdb_id FROM items i "
                "WHERE i.kind IN ('movie', 'show')")
            # Every acknowledged request is one item, each title once.
            assert len(roots) == len(bodies)
            assert len({(r["kind"], r["tmdb_id"]) for r in roots}) == len(bodies)
            assert await conn.fetchval("SELECT count(*) FROM requests") >= len(bodies)
            # Nothing failed, and nothing was left behind by a crash: every item that is
            # not done has a job that will move it on.
            assert await conn.fetchval("SELECT count(*) FROM items WHERE state = 'failed'") == 0
            orphans = await conn.fetch(
                "SELECT i.id, i.kind, i.state FROM items i "
                "WHERE i.state IN ('requested', 'scraped', 'downloaded', 'linked') "
                "AND i.kind IN ('movie', 'episode') AND NOT EXISTS ("
                "  SELECT 1 FROM jobs j WHERE j.status = 'queued' AND (j.item_id = i.id"
                "   OR j.item_id = i.show_id OR j.payload->>'show_id' = i.show_id::text))")
            assert orphans == [], orphans
            completed = sum(1 for r in roots if r["state"] in ("completed", "ongoing"))
            # Titles whose releases no debrid service has cached wait for one; most finish.
            assert completed >= 0.6 * len(bodies), Counter(r["state"] for r in roots)
            links = await conn.fetchval("SELECT count(*) FROM library_entries")
            distinct = await conn.fetchval(
                "SELECT count(DISTINCT link_path) FROM library_entries")
            assert links == distinct
        finally:
            await conn.close()
        targets = Counter(env.links().values())
        assert max(targets.values()) == 1  # no file linked twice
        _assert_clean(env)


async def _wait_quiet(conn: asyncpg.Connection, env: PipelineEnv, timeout_s: float) -> None:
    """Wait until the inbox is processed and no job is running or due (twice in a row):
    what is left is scheduled for later (a retry, a re-scrape, a re-check)."""
    deadline = time.monotonic() + timeout_s
    quiet = 0
    busy: asyncpg.Record | None = None
    while time.monotonic() < deadline:
        busy = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM inbox WHERE processed_at IS NULL) AS inbox, "
            "(SELECT count(*) FROM jobs WHERE status = 'running' "
            "  OR (status = 'queued' AND run_at <= $1)) AS jobs", env.clock.now())
        assert busy is not None
        quiet = quiet + 1 if busy["inbox"] == 0 and busy["jobs"] == 0 else 0
        if quiet >= 2:
            return
        await asyncio.sleep(1.0)
    raise AssertionError(f"the pipeline never went quiet: {dict(busy or {})}")


async def test_the_daemon_rides_out_a_database_restart(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "pg", server_settings=TEST_SERVER_SETTINGS)
    await server.start()
    try:
        async with pipeline_env(tmp_path, database=f'url = "{server.dsn()}"') as env:
            pid = env.daemon.proc.pid if env.daemon.proc else None
            movies = _released_movies(env)[:5]
            for movie in movies[:3]:
                assert (await env.post("/webhook/radarr", radarr_movie_added(movie))).status == 202
            await server.stop("fast")
            await _wait_health(env, 503)
            refused = await env.post("/webhook/radarr", radarr_movie_added(movies[3]))
            assert refused.status == 503
            assert refused.headers.get("Retry-After")
            await asyncio.sleep(2.0)  # the daemon keeps running without its database
            await server.start()
            await _wait_health(env, 200)
            for movie in movies[3:]:
                assert (await env.post("/webhook/radarr", radarr_movie_added(movie))).status == 202
            roots = await env.wait_settled(5, timeout_s=120)
            assert {r["state"] for r in roots} == {"completed"}
            assert env.daemon.proc is not None
            assert env.daemon.proc.returncode is None
            assert env.daemon.proc.pid == pid
            _assert_clean(env)
    finally:
        await server.stop("immediate")


async def _wait_health(env: PipelineEnv, status: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    seen: int | None = None
    while time.monotonic() < deadline:
        try:
            async with env.session.get(env.base_url + "/health") as response:
                seen = response.status
        except aiohttp.ClientError:
            seen = None
        if seen == status:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"/health stayed {seen}, expected {status}")


async def test_a_debrid_outage_makes_items_wait_not_fail(
    tmp_path: Path, db_dsn: str
) -> None:
    # Every debrid service answers 503 for the first five simulated minutes: the items
    # reach the download stage inside the outage, wait, and complete once it is over.
    async with pipeline_env(tmp_path, database=_database(db_dsn), speed=20.0) as env:
        now = env.clock.now()
        outage = Outage(now, now + timedelta(minutes=5))
        for name in DEBRID:
            env.cluster[name].faults.set(outages=(outage,))
        movies = _released_movies(env)[:4]
        for movie in movies:
            assert (await env.post("/webhook/radarr", radarr_movie_added(movie))).status == 202
        roots = await env.wait_settled(4, timeout_s=180)
        assert {r["state"] for r in roots} == {"completed"}
        refused = sum(env.cluster[name].log.by_status[503] for name in DEBRID)
        assert refused > 0  # the outage was met, not missed
        metrics = await env.get_json("/metrics")
        breakers = {name: metrics["upstreams"]["by_upstream"][name]
                    for name in DEBRID if name in metrics["upstreams"]["by_upstream"]}
        assert any(_opened(b) for b in breakers.values()), breakers
        assert not any(_open_now(b) for b in breakers.values()), breakers
        _assert_clean(env)


def _opened(stats: dict[str, object]) -> bool:
    breaker = stats.get("breaker")
    return isinstance(breaker, dict) and int(breaker.get("opened_total", 0)) > 0


def _open_now(stats: dict[str, object]) -> bool:
    return bool(stats.get("breaker_open"))


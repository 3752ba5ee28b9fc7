"""The SCRAPE step against the scraper sims and a real database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import asyncpg
import pytest

from riven_async.config import RankingSection
from riven_async.domain.queue import JobKind
from riven_async.domain.states import State
from riven_async.pipeline.ranking import Candidate, Ranker, Target
from riven_async.pipeline.scrape_schedule import ScrapeSchedule
from riven_async.pipeline.steps.base import Deferred, StepResult
from riven_async.pipeline.steps.scrape import ScrapeError
from riven_async.services.scrapers.stremio import cached_services
from riven_async.sim.limits import Window
from riven_async.sim.movies import Movie
from riven_async.sim.releases import Release as SimRelease
from riven_async.sim.server import SimCluster
from riven_async.sim.shows import Show
from riven_async.web.metrics import render_prometheus
from tests.pipeline.scrape_rig import SCRAPERS, ScrapeRig, scrape_rig
from tests.services.scraper_fixtures import SimEnv

UNKNOWN_IMDB = "tt0999999"  # no sim knows it: every scraper answers with nothing


@pytest.fixture
async def rig(db_pool: asyncpg.Pool, db_dsn: str) -> AsyncIterator[ScrapeRig]:
    async with scrape_rig(db_pool, db_dsn) as built:
        yield built


def _movie(cluster: SimCluster, want: Callable[[list[SimRelease]], bool]) -> Movie:
    now = cluster.world.now()
    for movie in cluster.catalog.movies():
        releases = cluster.catalog.movie_releases(movie, now)
        if releases and want(releases):
            return movie
    raise AssertionError("no movie in the sim catalog fits the test")


def _resolutions(releases: list[SimRelease]) -> set[str]:
    return {r.resolution for r in releases}


def _watchable(releases: list[SimRelease]) -> bool:
    """Some release the default profile (1080p, 720p) may take."""
    return bool({"1080p", "720p"} & _resolutions(releases))


def _download(result: StepResult) -> dict[str, object]:
    [job] = result.then
    assert job.kind is JobKind.DOWNLOAD
    assert result.again_at is None
    assert job.payload is not None
    return dict(job.payload)


# -- movies ---------------------------------------------------------------------------------


async def test_movie_is_scraped_by_every_scraper_in_parallel_and_stored_ranked(
    rig: ScrapeRig,
) -> None:
    movie = _movie(rig.sims, lambda rs: len(rs) >= 4 and _watchable(rs))
    item_id = await rig.add_movie(movie)
    result = await rig.step.run(rig.job(item_id))
    payload = _download(result)
    assert (await rig.item(item_id)).state is State.SCRAPED
    stored = await rig.releases(item_id)
    now = rig.sims.world.now()
    published = {r.infohash: r for r in rig.sims.catalog.movie_releases(movie, now)}
    assert stored, "nothing stored"
    assert {r.infohash for r in stored} <= set(published)
    assert [r.rank for r in stored] == sorted((r.rank for r in stored), reverse=True)
    assert len(stored) <= rig.runtime.settings.ranking.max_results
    assert payload["infohash"] == stored[0].infohash
    assert payload["pack"] is False
    # Each scraper was asked once for the movie, all at the same time.
    assert rig.calls("torrentio", path=f"/stream/movie/{movie.imdb_id}") == 1
    assert rig.calls("comet", path=f"/stream/movie/{movie.imdb_id}") == 1
    assert rig.calls("mediafusion", path=f"/stream/movie/{movie.imdb_id}") == 1
    assert rig.calls("torznab", query="t=movie") == 1
    assert rig.calls("zilean", path="/dmm/filtered") == 1
    item = await rig.item(item_id)
    assert item.scrape_count == 1
    assert item.scraped_at == rig.clock.now()
    section = await rig.step.metrics_section()
    assert set(section["by_scraper"]) == set(SCRAPERS)
    assert all(s["outcomes"] == {"ok": 1} for s in section["by_scraper"].values())
    assert section["scrapes"]["found"] == 1
    text = render_prometheus({"scrapers": section})
    assert 'riven_scrapers_by_scraper_outcomes{scraper="zilean",outcome="ok"} 1' in text


async def test_duplicates_from_every_scraper_are_stored_once_with_the_cached_services(
    rig: ScrapeRig,
) -> None:
    movie = _movie(rig.sims, lambda rs: len(rs) >= 3 and _watchable(rs))
    item_id = await rig.add_movie(movie)
    await rig.step.run(rig.job(item_id))
    stored = await rig.releases(item_id)
    assert len({r.infohash for r in stored}) == len(stored)
    rows = await rig.runtime.pool.fetchval(
        "SELECT count(*) FROM releases WHERE item_id = $1", item_id)
    assert rows == len(stored)
    # Replaying the job (a crash before it completed) stores nothing twice.
    again = await rig.step.run(rig.job(item_id))
    assert [job.kind for job in again.then] == [JobKind.DOWNLOAD]
    assert await rig.runtime.pool.fetchval(
        "SELECT count(*) FROM releases WHERE item_id = $1", item_id) == rows


def test_cached_markers_name_their_debrid_service() -> None:
    assert cached_services("[RD+] Torrentio\n1080p") == ("realdebrid",)
    assert cached_services("[AD+] Torrentio\n4k") == ("alldebrid",)
    assert cached_services("[TB⚡] Comet 1080p") == ("torbox",)
    assert cached_services("MediaFusion RD ⚡️ 1080p") == ("realdebrid",)
    assert cached_services("[RD download] Torrentio\n720p") == ()
    assert cached_services("[RD⬇️] Comet 1080p") == ()
    assert cached_services("MediaFusion RD ⏳ 1080p") == ()


async def test_a_2160p_only_profile_never_picks_1080p(db_pool: asyncpg.Pool, db_dsn: str) -> None:
    async with scrape_rig(db_pool, db_dsn, ranking={"resolutions": ["2160p"]}) as rig:
        movie = _movie(rig.sims, lambda rs: {"2160p", "1080p"} <= _resolutions(rs))
        item_id = await rig.add_movie(movie)
        _download(await rig.step.run(rig.job(item_id)))
        stored = await rig.releases(item_id)
        assert stored
        assert all(r.parsed.get("resolution") == "2160p" for r in stored), [
            r.raw_title for r in stored]


async def test_cam_and_telesync_releases_are_never_stored(rig: ScrapeRig) -> None:
    movie = _movie(
        rig.sims,
        lambda rs: any(r.source in ("CAM", "TS") for r in rs) and "1080p" in _resolutions(rs),
    )
    junk = {r.infohash for r in rig.sims.catalog.movie_releases(movie, rig.sims.world.now())
            if r.source in ("CAM", "TS")}
    item_id = await rig.add_movie(movie)
    _download(await rig.step.run(rig.job(item_id)))
    stored = await rig.releases(item_id)
    assert stored
    assert not junk & {r.infohash for r in stored}


async def test_blacklisted_releases_are_skipped(rig: ScrapeRig) -> None:
    movie = _movie(rig.sims, lambda rs: len(rs) >= 4 and _watchable(rs))
    item_id = await rig.add_movie(movie)
    _download(await rig.step.run(rig.job(item_id)))
    first = await rig.releases(item_id)
    await rig.repos.releases.blacklist_many([(item_id, first[0].infohash, "not cached")])
    await rig.repos.items.set_state_many([item_id], State.INDEXED)
    payload = _download(await rig.step.run(rig.job(item_id)))
    assert payload["infohash"] != first[0].infohash
    assert first[0].infohash not in {r.infohash for r in await rig.releases(item_id)}


async def test_one_hanging_scraper_costs_only_its_timeout(
    db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    async with scrape_rig(db_pool, db_dsn, scraping={"timeouts_s": {"zilean": 0.5}}) as rig:
        rig.sims.zilean.faults.set(timeout_rate=1.0, hang_s=30.0)
        movie = _movie(rig.sims, _watchable)
        item_id = await rig.add_movie(movie)
        _download(await rig.step.run(rig.job(item_id)))
        assert await rig.releases(item_id)
        health = rig.step.health.stats()
        assert health["zilean"].outcomes == {"timed_out": 1}
        assert health["torrentio"].outcomes == {"ok": 1}


async def test_a_completed_item_is_upgraded_only_to_a_better_release(
    db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    async with scrape_rig(db_pool, db_dsn, ranking={"resolutions": ["1080p"]}) as rig:
        movie = _movie(rig.sims, lambda rs: "1080p" in _resolutions(rs) and any(
            r.resolution == "2160p" and r.source == "WEB-DL" for r in rs))
        item_id = await rig.add_movie(movie)
        first = _download(await rig.step.run(rig.job(item_id)))
        for state in (State.DOWNLOADED, State.LINKED, State.COMPLETED):
            await rig.repos.items.set_state_many([item_id], state)
        # Same profile: nothing better turns up, the item stays completed.
        assert await rig.step.run(rig.job(item_id)) == StepResult()
        assert (await rig.item(item_id)).state is State.COMPLETED
        # The profile now wants 2160p first (a reload): the scrape finds an upgrade.
        live = rig.runtime.live
        live.current = live.current.model_copy(update={
            "ranking": RankingSection(resolutions=["2160p", "1080p"])})
        upgrade = _download(await rig.step.run(rig.job(item_id)))
        assert upgrade["upgrade"] is True
        assert upgrade["infohash"] != first["infohash"]
        best = (await rig.releases(item_id))[0]
        assert best.infohash == upgrade["infohash"]
        assert best.parsed.get("resolution") == "2160p"
        assert (await rig.item(item_id)).state is State.SCRAPED
        assert rig.step.counts["upgrade_found"] == 1


# -- nothing found: the schedule ------------------------------------------------------------


async def test_nothing_found_comes_back_per_the_schedule(rig: ScrapeRig) -> None:
    movie = next(iter(rig.sims.catalog.movies()))
    item_id = await rig.add_movie(movie, imdb=UNKNOWN_IMDB)
    result = await rig.step.run(rig.job(item_id))
    assert not result.then
    item = await rig.item(item_id)
    assert item.state is State.INDEXED
    assert item.scrape_count == 1
    # A fresh request: five minutes.
    assert result.again_at == rig.clock.now() + timedelta(minutes=5)
    # Two days later the item is long in the backoff: the next full scrape is in a day.
    # Comet answered with a notice ("unable to get metadata"), so it alone is asked again
    # once before that, after partial_retry_s.
    rig.clock.advance(2 * 86400)
    result = await rig.step.run(rig.job(item_id))
    full_at = rig.clock.now() + timedelta(days=1)
    assert full_at == ScrapeSchedule().next_at(
        now=rig.clock.now(), requested_at=item.created_at, wanted_since=item.state_changed_at)
    assert result.again_at == rig.clock.now() + timedelta(minutes=5)
    before = {name: len(rig.sims[name].requests) for name in SCRAPERS}
    rig.clock.advance(300)
    result = await rig.step.run(rig.job(item_id))
    assert result.again_at == full_at
    assert len(rig.sims.comet.requests) == before["comet"] + 1
    assert all(len(rig.sims[n].requests) == before[n] for n in SCRAPERS if n != "comet")
    assert rig.step.counts["not_found"] == 3


async def test_a_just_aired_episode_is_scraped_again_in_five_minutes(
    db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    # No season packs, and the item is not fresh: only the air time decides. The show's
    # IMDb id is unknown to the sims (torznab, which would find it by TVDB id, is off, and
    # so is Comet, whose notice about an unknown id would earn it an early retry).
    off = {"torznab": {"enabled": False}, "comet": {"enabled": False}}
    async with scrape_rig(db_pool, db_dsn, upstreams=off,
                          scraping={"season_packs": False, "fresh_request_window_s": 0.0},
                          ) as rig:
        show = _show(rig.sims, lambda s, n: True)
        ids = await rig.add_show(show, [_season(show, rig)])
        episode_id = max(ids.values())
        await rig.runtime.pool.execute(
            "UPDATE items SET aired_at = $2 WHERE id = $1",
            episode_id, rig.clock.now() - timedelta(hours=1))
        await rig.runtime.pool.execute(
            "UPDATE items SET imdb_id = $1 WHERE kind = 'show'", UNKNOWN_IMDB)
        result = await rig.step.run(rig.job(episode_id))
        assert result.again_at == rig.clock.now() + timedelta(minutes=5)
        rig.clock.advance(3 * 3600)  # aired 4 h ago: the window is over, the backoff starts
        result = await rig.step.run(rig.job(episode_id))
        assert result.again_at == rig.clock.now() + timedelta(minutes=30)


async def test_a_rate_limited_scraper_is_asked_again_alone(
    db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    async with scrape_rig(db_pool, db_dsn) as rig:
        movie = next(iter(rig.sims.catalog.movies()))
        item_id = await rig.add_movie(movie, imdb=UNKNOWN_IMDB)
        torrentio = rig.runtime.upstreams["torrentio"]
        torrentio.limiter.pause(1.5)  # as after a 429 with Retry-After: 1.5 (real seconds)
        result = await rig.step.run(rig.job(item_id))
        assert result.again_at is not None
        # Sooner than the full re-scrape (5 min): when torrentio accepts requests again.
        wait = (result.again_at - rig.clock.now()).total_seconds()
        assert 1 <= wait <= 1.5
        assert rig.calls("torrentio") == 0
        others = {name: len(rig.sims[name].requests) for name in SCRAPERS}
        await asyncio.sleep(torrentio.limiter.paused_for() + 0.05)  # the pause is real time
        rig.clock.advance(wait)
        result = await rig.step.run(rig.job(item_id))
        assert rig.calls("torrentio", path=f"/stream/movie/{UNKNOWN_IMDB}") == 1
        # Comet's notice about the unknown id earns it its one early retry too.
        for name in SCRAPERS[2:]:
            assert len(rig.sims[name].requests) == others[name], name
        # Nothing there either: the next run is the full scrape, at the original time.
        first_full_at = rig.clock.now() - timedelta(seconds=wait) + timedelta(minutes=5)
        assert result.again_at == first_full_at
        rig.clock.advance((first_full_at - rig.clock.now()).total_seconds())
        await rig.step.run(rig.job(item_id))
        for name in SCRAPERS[1:]:
            assert len(rig.sims[name].requests) > others[name], name


async def test_every_scraper_rate_limited_defers_the_item(
    db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    def one_request_a_minute(env: SimEnv) -> None:
        for name in SCRAPERS:
            # torznab also spends one on its caps.
            env.cluster[name].limiter.set_windows([Window(2 if name == "torznab" else 1, 60.0)])
            env.allow_violations(name, 10)

    # Misconfigured on purpose: the clients do not hold the sims' windows.
    no_windows: dict[str, dict[str, object]] = {name: {"rate_limits": []} for name in SCRAPERS}
    async with scrape_rig(db_pool, db_dsn, before=one_request_a_minute,
                          upstreams=no_windows) as rig:
        await asyncio.sleep(0)  # let the caps warm-up go first
        movie = next(iter(rig.sims.catalog.movies()))
        item_id = await rig.add_movie(movie, imdb=UNKNOWN_IMDB)
        first = await rig.step.run(rig.job(item_id))
        assert first.again_at is not None
        with pytest.raises(Deferred) as deferred:
            await rig.step.run(rig.job(item_id))
        wait = (deferred.value.until - rig.clock.now()).total_seconds()
        assert 1 <= wait <= 61
        assert "rate-limited" in deferred.value.reason
        for name in SCRAPERS:
            if name == "mediafusion":
                # MediaFusion says so in a 200 notice stream, which pauses its client.
                assert rig.runtime.upstreams[name].limiter.paused_for() > 0
            else:
                assert rig.sims[name].log.by_status[429] >= 1, name
        assert (await rig.item(item_id)).state is State.INDEXED


async def test_every_scraper_failing_makes_the_item_wait_not_fail(rig: ScrapeRig) -> None:
    for name in SCRAPERS:
        rig.sims[name].faults.set(error_rate=1.0, error_status=502)
    movie = next(iter(rig.sims.catalog.movies()))
    item_id = await rig.add_movie(movie)
    with pytest.raises(Deferred) as deferred:
        await rig.step.run(rig.job(item_id))
    wait = (deferred.value.until - rig.clock.now()).total_seconds()
    assert wait == rig.runtime.settings.scraping.partial_retry_s
    assert "no scraper answered" in deferred.value.reason
    assert (await rig.item(item_id)).state is State.INDEXED


async def test_no_scraper_able_to_search_is_an_error(db_pool: asyncpg.Pool, db_dsn: str) -> None:
    off = {name: {"enabled": False} for name in SCRAPERS}
    async with scrape_rig(db_pool, db_dsn, upstreams=off) as rig:
        movie = next(iter(rig.sims.catalog.movies()))
        item_id = await rig.add_movie(movie)
        with pytest.raises(ScrapeError, match="no enabled scraper"):
            await rig.step.run(rig.job(item_id))


async def test_items_that_are_not_waiting_for_a_scrape_are_left_alone(rig: ScrapeRig) -> None:
    movie = next(iter(rig.sims.catalog.movies()))
    item_id = await rig.add_movie(movie)
    await rig.repos.items.pause_many([item_id])
    assert await rig.step.run(rig.job(item_id)) == StepResult()
    assert all(not rig.sims[name].requests for name in SCRAPERS[:3])
    await rig.runtime.pool.execute("DELETE FROM items WHERE id = $1", item_id)
    assert await rig.step.run(rig.job(item_id)) == StepResult()


# -- season packs ---------------------------------------------------------------------------


def _season(show: Show, rig: ScrapeRig) -> int:
    now = rig.sims.world.now()
    return max(p.number for p in show.visible_seasons(now) if p.number > 0
               and len(show.episodes(p.number, now)) >= 2
               and all(e.aired(now.timestamp()) for e in show.episodes(p.number, now)))


def _show(cluster: SimCluster, want: Callable[[Show, int], bool]) -> Show:
    now = cluster.world.now()
    for show in cluster.catalog.shows():
        for plan in show.visible_seasons(now):
            episodes = show.episodes(plan.number, now) if plan.number > 0 else []
            if len(episodes) < 2 or not all(e.aired(now.timestamp()) for e in episodes):
                continue
            if want(show, plan.number):
                return show
    raise AssertionError("no show in the sim catalog fits the test")


def _full_packs(cluster: SimCluster, show: Show, season: int) -> list[SimRelease]:
    """Published packs holding every episode of the season that the default profile takes."""
    now = cluster.world.now()
    episodes = show.episodes(season, now)
    wanted = {(season, e.number) for e in episodes}
    ranker = Ranker(RankingSection())
    target = Target.for_episode(show.title, season, 1, year=show.year,
                                episode_count=len(episodes))
    return [
        r for r in cluster.catalog.season_releases(show, season, now)
        if wanted <= set(r.episodes) and len({e for _, e in r.episodes}) > 1
        and ranker.rank(target, [Candidate(r.infohash, r.title, r.size, r.seeders)])
    ]


def _pack_season(rig: ScrapeRig, min_episodes: int) -> tuple[Show, int]:
    now = rig.sims.world.now()
    for show in rig.sims.catalog.shows():
        for plan in show.visible_seasons(now):
            episodes = show.episodes(plan.number, now) if plan.number > 0 else []
            if (len(episodes) >= min_episodes
                    and all(e.aired(now.timestamp()) for e in episodes)
                    and _full_packs(rig.sims, show, plan.number)):
                return show, plan.number
    raise AssertionError("no season with a usable full pack in the sim catalog")


def _season_searches(rig: ScrapeRig, season: int) -> dict[str, int]:
    """Season-level searches (no episode number) per id-based scraper."""
    torznab = sum(1 for r in rig.sims.torznab.requests
                  if f"season={season}" in r.query and "ep=" not in r.query)
    zilean = sum(1 for r in rig.sims.zilean.requests
                 if f"Season={season}" in r.query and "Episode=" not in r.query)
    return {"torznab": torznab, "zilean": zilean}


def _episode_searches(rig: ScrapeRig) -> int:
    return sum(1 for r in rig.sims.torznab.requests if "ep=" in r.query)


async def test_ten_concurrent_episode_jobs_make_one_season_pack_search(rig: ScrapeRig) -> None:
    show, season = _pack_season(rig, 10)
    packs = {r.infohash for r in _full_packs(rig.sims, show, season)}
    ids = await rig.add_show(show, [season])
    episode_ids = [ids[(season, n)] for n in sorted(e for s, e in ids if s == season)][:10]
    results = await asyncio.gather(*(rig.step.run(rig.job(i)) for i in episode_ids))
    assert _season_searches(rig, season) == {"torznab": 1, "zilean": 1}
    stremio_id = f"/stream/series/{show.imdb_id}:{season}:1.json"
    assert rig.calls("torrentio", path=stremio_id) == 1
    # The packs (and the singles the season search found) covered every episode: no
    # episode was searched on its own.
    assert _episode_searches(rig) == 0
    assert rig.step.counts["season_pack_scrapes"] == 1
    for episode_id, result in zip(episode_ids, results, strict=True):
        payload = _download(result)
        stored = await rig.releases(episode_id)
        assert packs & {r.infohash for r in stored}, "a full pack must fit every episode"
        assert payload["infohash"] == stored[0].infohash
        assert payload["pack"] is (stored[0].infohash in packs or len(
            stored[0].parsed.get("episodes", [])) != 1)
        assert payload["season"] == season
        assert (await rig.item(episode_id)).state is State.SCRAPED
    # The season row carries the recent-scrape marker.
    marker = await rig.runtime.pool.fetchval(
        "SELECT scraped_at FROM items WHERE kind = 'season' AND season_number = $1", season)
    assert marker == rig.clock.now()


async def test_a_partly_handled_season_is_searched_episode_by_episode(
    rig: ScrapeRig,
) -> None:
    show, season = _pack_season(rig, 3)
    ids = await rig.add_show(show, [season])
    episode_ids = sorted(i for (s, _), i in ids.items() if s == season)
    # One episode already has what it needs: the season is no longer "all missing".
    await rig.repos.items.set_state_many([episode_ids[0]], State.SCRAPED)
    _download(await rig.step.run(rig.job(episode_ids[1])))
    assert _season_searches(rig, season) == {"torznab": 0, "zilean": 0}
    assert _episode_searches(rig) == 1
    assert rig.step.counts["season_pack_scrapes"] == 0


async def test_episodes_the_season_search_misses_are_searched_alone(rig: ScrapeRig) -> None:
    show, season = _pack_season(rig, 3)
    ids = await rig.add_show(show, [season])
    episode_ids = sorted(i for (s, _), i in ids.items() if s == season)
    missed = episode_ids[-1]
    # Everything the season search can find is blacklisted for one episode.
    found = rig.sims.catalog.season_releases(show, season, rig.sims.world.now())
    await rig.repos.releases.blacklist_many([(missed, r.infohash, "test") for r in found])
    results = await asyncio.gather(*(rig.step.run(rig.job(i)) for i in episode_ids))
    assert _season_searches(rig, season) == {"torznab": 1, "zilean": 1}
    assert _episode_searches(rig) == 1  # the missed episode alone
    for episode_id, result in zip(episode_ids, results, strict=True):
        if episode_id == missed:
            assert not result.then
            assert result.again_at is not None
            assert not await rig.releases(missed)
        else:
            _download(result)


async def test_a_recent_season_search_is_not_repeated(rig: ScrapeRig) -> None:
    show, season = _pack_season(rig, 3)
    ids = await rig.add_show(show, [season])
    episode_ids = sorted(i for (s, _), i in ids.items() if s == season)
    # Someone searched this season's packs ten minutes ago and found nothing usable.
    await rig.runtime.pool.execute(
        "UPDATE items SET scraped_at = $2 WHERE kind = 'season' AND season_number = $1",
        season, rig.clock.now() - timedelta(minutes=10))
    _download(await rig.step.run(rig.job(episode_ids[0])))
    assert _season_searches(rig, season) == {"torznab": 0, "zilean": 0}
    assert _episode_searches(rig) == 1
    assert rig.step.counts["season_pack_recent"] == 0  # decided before taking the lock
    # Had that found nothing either, once the marker is older than season_pack_rescrape_s
    # the packs are searched again.
    await rig.runtime.pool.execute("DELETE FROM releases WHERE item_id = $1", episode_ids[0])
    await rig.repos.items.set_state_many([episode_ids[0]], State.INDEXED)
    rig.clock.advance(rig.runtime.settings.scraping.season_pack_rescrape_s)
    _download(await rig.step.run(rig.job(episode_ids[1])))
    assert _season_searches(rig, season) == {"torznab": 1, "zilean": 1}
    assert _episode_searches(rig) == 1


async def test_packs_can_be_switched_off(db_pool: asyncpg.Pool, db_dsn: str) -> None:
    async with scrape_rig(db_pool, db_dsn, scraping={"season_packs": False}) as rig:
        show, season = _pack_season(rig, 3)
        ids = await rig.add_show(show, [season])
        episode_id = min(i for (s, _), i in ids.items() if s == season)
        _download(await rig.step.run(rig.job(episode_id)))
        assert _season_searches(rig, season) == {"torznab": 0, "zilean": 0}
        assert _episode_searches(rig) == 1

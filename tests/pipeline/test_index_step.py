"""The INDEX step against the TMDB and TVMaze sims and a real database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from riven_async.core.clock import ManualClock
from riven_async.domain.intents import ExternalIds
from riven_async.domain.media import MediaKind, ShowStatus
from riven_async.domain.queue import JobKind, NewJob
from riven_async.domain.states import State
from riven_async.pipeline.scheduler import CheckPriority
from riven_async.sim.limits import Window
from riven_async.sim.movies import Movie
from riven_async.sim.shows import DAY_S, HOUR_S, Show, ShowKind
from tests.conftest import SettingsFactory
from tests.pipeline.rig import Rig, pipeline_rig
from tests.sim.simtest import START

NOW_S = START.timestamp()
DELAY = timedelta(seconds=900)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def rig(make_settings: SettingsFactory, db_pool: asyncpg.Pool, db_dsn: str,
              clock: ManualClock, tmp_path: Path) -> AsyncIterator[Rig]:
    async with pipeline_rig(make_settings, db_pool, db_dsn, clock, tmp_path) as built:
        yield built


def _regular(show: Show) -> list[int]:
    return [p.number for p in show.visible_seasons(START) if p.number > 0]


def _airing_quietly(show: Show) -> bool:
    """Mid-season with at least two seasons; nothing else announced before the next airs."""
    upcoming, last = show.next_to_air(START), show.last_aired(START)
    if show.kind is not ShowKind.RETURNING or upcoming is None or last is None:
        return False
    if upcoming.season != last.season or len(_regular(show)) < 2:
        return False
    until = upcoming.air_epoch + 2 * HOUR_S
    return not any(NOW_S < m <= until for p in show.seasons for m in (p.announced_at,
                                                                        p.extension_at))


def _find(rig: Rig, predicate: Callable[[Show], bool]) -> Show:
    found = rig.sims.catalog.find_show(predicate)
    assert found is not None, "the catalog has no show for this test"
    return found


async def test_a_show_requested_by_tvdb_id_becomes_its_tree_with_aired_episodes_released(
    rig: Rig,
) -> None:
    show = _find(rig, _airing_quietly)
    item_id = await rig.request(show, ids=ExternalIds(tvdb=show.tvdb_id))
    await rig.run_jobs()

    assert rig.tmdb_paths() == [
        f"/3/find/{show.tvdb_id}", f"/3/tv/{show.tmdb_id}",
        *(f"/3/tv/{show.tmdb_id}/season/{n}" for n in _regular(show)),
    ]
    item = await rig.item(item_id)
    assert item.ids == ExternalIds(tmdb=show.tmdb_id, tvdb=show.tvdb_id, imdb=show.imdb_id,
                                   tvmaze=show.tvmaze_id)
    upcoming = show.next_to_air(START)
    assert upcoming is not None
    schedule = item.schedule
    assert schedule is not None
    assert schedule.status is ShowStatus.ONGOING
    assert schedule.next_air_at == upcoming.air_at
    # A fresh request is checked within the hour, or at the next air time if sooner.
    fresh = START + timedelta(hours=1)
    assert schedule.next_check_at == min(fresh, upcoming.air_at + DELAY)
    assert schedule.check_priority == (CheckPriority.FRESH if fresh < upcoming.air_at + DELAY
                                       else CheckPriority.AIRED)

    episodes = await rig.episodes(item_id)
    listed = {(e.season, e.number): e for n in _regular(show) for e in show.episodes(n, START)}
    assert set(episodes) == set(listed)
    released = {key for key, e in listed.items() if e.air_at + DELAY <= START}
    assert released
    assert {k for k, e in episodes.items() if e.state is State.INDEXED} == released
    assert {k for k, e in episodes.items() if e.state is State.UNRELEASED} == (
        set(listed) - released)
    for key, episode in episodes.items():
        if listed[key].date_known:
            assert episode.aired_at == listed[key].air_at  # TVMaze's exact airstamp
    scrapes = {j.item_id for j in rig.follow_ups if j.kind is JobKind.SCRAPE}
    assert scrapes == {episodes[k].id for k in released}
    assert {j.item_id for j in await rig.scrape_jobs()} == scrapes


async def test_replaying_an_index_creates_nothing_twice(rig: Rig) -> None:
    show = _find(rig, _airing_quietly)
    item_id = await rig.request(show)
    [first] = await rig.repos.jobs.claim(JobKind.INDEX)
    # The step ran, but the process died before the job was completed: it runs again.
    before = await rig.step.run(first)
    rows = await rig.runtime.pool.fetchval("SELECT count(*) FROM items")
    again = await rig.step.run(first)
    assert {j.item_id for j in again.then} == {j.item_id for j in before.then}
    assert await rig.runtime.pool.fetchval("SELECT count(*) FROM items") == rows
    await rig.repos.jobs.complete(first, again.then)
    # A later check of the same show queues no scrape twice and writes no row.
    await rig.repos.jobs.enqueue_many([NewJob(JobKind.INDEX, item_id)])
    rig.follow_ups.clear()
    await rig.run_jobs()
    assert rig.follow_ups == []
    assert await rig.runtime.pool.fetchval("SELECT count(*) FROM items") == rows
    scrapes = await rig.scrape_jobs()
    assert len(scrapes) == len({j.item_id for j in scrapes}) == len(before.then)


async def test_only_the_requested_seasons_are_read_and_stored(rig: Rig) -> None:
    show = _find(rig, lambda s: _airing_quietly(s) and len(_regular(s)) >= 3)
    first = _regular(show)[0]
    item_id = await rig.request(show, seasons=(first,))
    await rig.run_jobs()
    assert rig.tmdb_paths() == [f"/3/tv/{show.tmdb_id}", f"/3/tv/{show.tmdb_id}/season/{first}"]
    episodes = await rig.episodes(item_id)
    assert {season for season, _ in episodes} == {first}


async def test_a_recheck_reads_only_the_airing_season_and_releases_the_new_episode(
    rig: Rig,
) -> None:
    show = _find(rig, _airing_quietly)
    item_id = await rig.request(show)
    await rig.run_jobs()
    upcoming = show.next_to_air(START)
    assert upcoming is not None
    rig.at(upcoming.air_epoch + 2 * DELAY.total_seconds())
    mark = rig.mark()
    rig.follow_ups.clear()
    await rig.repos.schedule.check_now([item_id])
    await rig.repos.schedule.enqueue_due_checks(10, 3600)
    await rig.run_jobs()
    assert rig.tmdb_paths(mark) == [f"/3/tv/{show.tmdb_id}",
                                    f"/3/tv/{show.tmdb_id}/season/{upcoming.season}"]
    assert rig.tvmaze_paths(mark) == [f"/shows/{show.tvmaze_id}"]
    episodes = await rig.episodes(item_id)
    aired = episodes[(upcoming.season, upcoming.number)]
    assert aired.state is State.INDEXED
    assert [j.item_id for j in rig.follow_ups] == [aired.id]
    item = await rig.item(item_id)
    assert item.schedule is not None
    after = show.next_to_air(rig.clock.now())
    assert item.schedule.next_air_at == (after.air_at if after else None)


async def test_movies_are_released_by_their_home_release_date(rig: Rig) -> None:
    catalog = rig.sims.catalog
    out = catalog.find_movie(lambda m: m.digital_s + 900 < NOW_S)
    soon = catalog.find_movie(lambda m: NOW_S + 2 * DAY_S < m.digital_s < NOW_S + 60 * DAY_S)
    assert out is not None
    assert soon is not None
    out_id = await rig.request(out, kind=MediaKind.MOVIE)
    soon_id = await rig.request(soon, kind=MediaKind.MOVIE, ids=ExternalIds(imdb=soon.imdb_id))
    await rig.run_jobs()
    released, waiting = await rig.item(out_id), await rig.item(soon_id)
    assert released.state is State.INDEXED
    assert [j.item_id for j in rig.follow_ups] == [out_id]
    assert waiting.state is State.UNRELEASED
    assert waiting.aired_at == _digital(soon)
    assert waiting.schedule is not None
    assert waiting.schedule.next_check_at == START + timedelta(hours=1)  # a fresh request
    # A day later the request is no longer fresh: checked again on its release date.
    rig.at(NOW_S + DAY_S + 60)
    await rig.repos.jobs.enqueue_many([NewJob(JobKind.INDEX, soon_id)])
    await rig.run_jobs()
    waiting = await rig.item(soon_id)
    assert waiting.schedule is not None
    assert (waiting.schedule.next_check_at, waiting.schedule.check_priority) == (
        _digital(soon), CheckPriority.AIRED)


def _digital(movie: Movie) -> datetime:
    return datetime.fromtimestamp(movie.digital_s, UTC)


async def test_a_paused_or_open_upstream_defers_the_job_instead_of_failing_it(
    rig: Rig,
) -> None:
    show = _find(rig, _airing_quietly)
    item_id = await rig.request(show)
    tmdb = rig.runtime.upstreams["tmdb"]
    tmdb.limiter.pause(120)
    await rig.run_jobs()
    assert [d.until for d in rig.deferred] == [START + timedelta(seconds=120)]
    assert rig.tmdb_paths() == []
    [job] = await rig.repos.jobs.for_items([item_id])
    assert (job.run_at, job.attempts) == (START + timedelta(seconds=120), 0)
    assert (await rig.item(item_id)).state is State.REQUESTED

    rig.clock.advance(121)
    breaker = tmdb.breaker
    for _ in range(5):
        breaker.failure(breaker.admit())
    await rig.run_jobs()
    assert len(rig.deferred) == 2
    assert "circuit open" in rig.deferred[-1].reason
    rig.clock.advance(60)
    await rig.run_jobs()
    # The breaker let a probe through; it succeeded and the show is indexed.
    assert (await rig.item(item_id)).state is not State.REQUESTED
    assert len(rig.deferred) == 2


async def test_a_429_from_tmdb_defers_the_job(rig: Rig) -> None:
    show = _find(rig, _airing_quietly)
    item_id = await rig.request(show)
    # TMDB's window is full for an hour: it answers 429 with a long Retry-After.
    rig.sims.tmdb.limiter.set_windows((Window(1, 3600.0),))
    rig.sims.tmdb.limiter.admit()
    await rig.run_jobs()
    [deferral] = rig.deferred
    assert deferral.until >= START + timedelta(seconds=3000)
    [job] = await rig.repos.jobs.for_items([item_id])
    assert (job.attempts, job.run_at) == (0, deferral.until)
    assert (await rig.item(item_id)).state is State.REQUESTED

"""The detection loops against the TMDB and TVMaze sims on a manual clock: due checks,
releases at air time, the change feeds, budgets and outages."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from riven_async.core.clock import ManualClock
from riven_async.core.tasks import BackgroundTasks
from riven_async.db.pool import PoolOptions, create_pool
from riven_async.db.repos import Repos
from riven_async.db.schedule import FeedMark, Reschedule
from riven_async.domain.media import ShowStatus
from riven_async.domain.queue import JobKind, NewJob
from riven_async.domain.states import State
from riven_async.pipeline import detection
from riven_async.pipeline.detection import DetectionLoops
from riven_async.pipeline.scheduler import CheckPriority
from riven_async.sim.shows import DAY_S, HOUR_S, Show, ShowKind
from riven_async.web.metrics import MetricsRegistry
from tests.conftest import SettingsFactory
from tests.pipeline.rig import Rig, eventually, pipeline_rig
from tests.sim.simtest import START

NOW_S = START.timestamp()
DELAY_S = 900.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def rig(make_settings: SettingsFactory, db_pool: asyncpg.Pool, db_dsn: str,
              clock: ManualClock, tmp_path: Path) -> AsyncIterator[Rig]:
    async with pipeline_rig(make_settings, db_pool, db_dsn, clock, tmp_path, shows=120) as built:
        await built.runtime.listener.connected.wait()
        yield built


def loops_of(rig: Rig) -> DetectionLoops:
    indexer, tvmaze = detection._feed_clients(rig.runtime)
    return DetectionLoops(rig.runtime, indexer, tvmaze)


@contextlib.asynccontextmanager
async def running(*loops: Callable[[], Coroutine[Any, Any, None]]) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(loop()) for loop in loops]
    try:
        yield
        for task in tasks:
            assert not task.done(), task  # a loop that died would stop the daemon
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _find(rig: Rig, predicate: Callable[[Show], bool]) -> Show:
    found = rig.sims.catalog.find_show(predicate)
    assert found is not None, "the catalog has no show for this test"
    return found


def _ended(show: Show) -> bool:
    return show.kind is ShowKind.ENDED


def _airing(show: Show) -> bool:
    upcoming = show.next_to_air(START)
    return (show.kind is ShowKind.RETURNING and upcoming is not None
            and HOUR_S < upcoming.air_epoch - NOW_S < 3 * DAY_S)


def _announced_soon(show: Show) -> bool:
    """A later regular season appears within 2 h to 4 days; every listed one is long over."""
    later = [p for p in show.seasons
             if p.number > 0 and NOW_S + 2 * HOUR_S < p.announced_at < NOW_S + 4 * DAY_S]
    if not later or show.kind is ShowKind.REVIVED:
        return False
    announced = later[0].announced_at
    others = [p for p in show.seasons if p.number not in (0, later[0].number)]
    return bool(others) and all(p.air_epochs[-1] < announced - 10 * DAY_S for p in others)


async def _indexed(rig: Rig, show: Show) -> int:
    item_id = await rig.request(show)
    # Requested long ago (not fresh): the routine schedule applies.
    await rig.runtime.pool.execute("UPDATE requests SET received_at = $1",
                                   START - timedelta(days=2))
    await rig.run_jobs()
    return item_id


async def test_a_webhook_forced_check_runs_at_once_and_routine_checks_wait_for_budget(
    make_settings: SettingsFactory, db_pool: asyncpg.Pool, db_dsn: str, clock: ManualClock,
    tmp_path: Path,
) -> None:
    # 96 routine TMDB calls a day: one every 15 minutes, a burst of one.
    async with pipeline_rig(make_settings, db_pool, db_dsn, clock, tmp_path,
                            detection={"tmdb_routine_calls_per_day": 96.0}) as rig:
        await rig.runtime.listener.connected.wait()
        ended = [s for s in rig.sims.catalog.shows() if _ended(s)][:5]
        ids = [await _indexed(rig, show) for show in ended]
        item = await rig.item(ids[0])
        assert item.schedule is not None
        assert item.schedule.next_check_at == START + timedelta(days=30)
        # Four routine checks fall due now; one show is asked for by a webhook.
        await rig.repos.schedule.reschedule_many(
            [Reschedule(i, START - timedelta(minutes=1)) for i in ids[1:]])
        loops = loops_of(rig)
        async with running(loops.check_loop), rig.worker():
            await eventually(lambda: loops.stats.check_passes >= 1)
            await eventually(lambda: loops.stats.checks_routine == 1)
            await rig.repos.schedule.check_now([ids[0]])  # NOTIFY wakes the loop at once
            await eventually(lambda: loops.stats.checks_urgent == 1)
            await eventually(lambda: _checked_at(rig, ids[0]))
            assert loops.stats.checks_routine == 1  # the budget holds the other three back
            # A routine check costs ROUTINE_COST calls (one token left, 1.35 spent); the
            # webhook's check costs the budget nothing: the next one is due 1.35 tokens on.
            refill_s = detection.ROUTINE_COST["tmdb"] / (96.0 / 86400)
            clock.advance(refill_s - 20)
            await eventually(lambda: loops.stats.check_passes >= 3)
            await asyncio.sleep(0.2)
            assert loops.stats.checks_routine == 1
            clock.advance(21)
            await eventually(lambda: loops.stats.checks_routine == 2)
            await asyncio.sleep(0.2)
            assert loops.stats.checks_routine == 2
        forced = await rig.item(ids[0])
        assert forced.schedule is not None
        assert forced.schedule.next_check_at == START + timedelta(days=30)


async def _checked_at(rig: Rig, item_id: int) -> bool:
    jobs = await rig.repos.jobs.for_items([item_id])
    item = await rig.item(item_id)
    return not jobs and item.schedule is not None and (
        item.schedule.next_check_at == START + timedelta(days=30))


async def test_aired_episodes_are_released_at_air_time_plus_the_delay(rig: Rig) -> None:
    first = _find(rig, _airing)
    item_id = await _indexed(rig, first)
    upcoming = first.next_to_air(START)
    assert upcoming is not None
    loops = loops_of(rig)
    async with running(loops.release_loop):
        await eventually(lambda: loops.stats.release_passes >= 1)
        rig.at(upcoming.air_epoch + DELAY_S - 1)
        await asyncio.sleep(0.1)
        episodes = await rig.episodes(item_id)
        assert episodes[(upcoming.season, upcoming.number)].state is State.UNRELEASED
        rig.at(upcoming.air_epoch + DELAY_S)
        await eventually(lambda: _state(rig, item_id, upcoming.season, upcoming.number,
                                        State.INDEXED))
        scrapes = await rig.repos.jobs.for_items(
            [(await rig.episodes(item_id))[(upcoming.season, upcoming.number)].id])
        assert [j.kind for j in scrapes] == [JobKind.SCRAPE]
        assert scrapes[0].run_at == upcoming.air_at + timedelta(seconds=DELAY_S)

        # An index that adds an episode airing sooner than the loop sleeps for wakes it.
        passes = loops.stats.release_passes
        other = _find(rig, lambda s: _airing(s) and s.index != first.index)
        await _indexed(rig, other)
        await eventually(lambda: loops.stats.release_passes > passes)


async def _state(rig: Rig, item_id: int, season: int, number: int, state: State) -> bool:
    return (await rig.episodes(item_id))[(season, number)].state is state


async def test_a_new_season_is_found_through_the_change_feeds_once(rig: Rig) -> None:
    show = _find(rig, _announced_soon)
    new = next(p for p in show.seasons if p.number > 0 and p.announced_at > NOW_S)
    item_id = await _indexed(rig, show)
    loops = loops_of(rig)
    async with running(loops.check_loop, loops.feed_loop), rig.worker():
        await eventually(lambda: loops.stats.feed_reads >= 1)
        await eventually(lambda: _no_jobs(rig))
        rig.at(new.announced_at + 60)
        mark = rig.mark()
        await eventually(lambda: _has_season(rig, item_id, new.number), timeout_s=20)
        assert rig.tmdb_paths(mark).count(f"/3/tv/{show.tmdb_id}") == 1
        assert [p for p in rig.tmdb_paths(mark) if "/season/" in p] == [
            f"/3/tv/{show.tmdb_id}/season/{new.number}"]
        assert loops.stats.feed_changed == 1
        # The next reads name the same change: nothing is checked or stored twice.
        rows = await rig.runtime.pool.fetchval("SELECT count(*) FROM items")
        for _ in range(2):
            reads = loops.stats.feed_reads
            rig.clock.advance(600)
            await eventually(lambda r=reads: loops.stats.feed_reads > r)  # type: ignore[misc]
        await eventually(lambda: _no_jobs(rig))
        assert loops.stats.feed_changed == 1
        assert rig.tmdb_paths(mark).count(f"/3/tv/{show.tmdb_id}") == 1
        assert await rig.runtime.pool.fetchval("SELECT count(*) FROM items") == rows
    item = await rig.item(item_id)
    assert item.schedule is not None
    assert item.schedule.next_air_at == datetime.fromtimestamp(new.air_epochs[0], UTC)


async def _no_jobs(rig: Rig) -> bool:
    return not await rig.runtime.pool.fetchval(
        "SELECT count(*) FROM jobs WHERE kind = 'index'")


async def _has_season(rig: Rig, item_id: int, number: int) -> bool:
    return any(season == number for season, _ in await rig.episodes(item_id))


async def test_a_canceled_show_that_is_revived_is_found(rig: Rig) -> None:
    show = _find(rig, lambda s: s.kind is ShowKind.REVIVED
                 and NOW_S + HOUR_S < s.revival_at < NOW_S + 5 * DAY_S)
    item_id = await _indexed(rig, show)
    before = await rig.item(item_id)
    assert before.schedule is not None
    assert before.schedule.status is ShowStatus.ENDED
    assert before.schedule.next_check_at == START + timedelta(days=30)
    revival = max(p.number for p in show.seasons)
    loops = loops_of(rig)
    async with running(loops.check_loop, loops.feed_loop), rig.worker():
        await eventually(lambda: loops.stats.feed_reads >= 1)
        rig.at(show.revival_at + 60)
        await eventually(lambda: _has_season(rig, item_id, revival), timeout_s=20)
    after = await rig.item(item_id)
    assert after.schedule is not None
    assert after.schedule.status is ShowStatus.ONGOING


async def test_after_downtime_beyond_the_feed_window_the_feeds_are_not_read_back(
    rig: Rig,
) -> None:
    await _indexed(rig, _find(rig, _airing))
    schedule = rig.repos.schedule
    long_ago = START - timedelta(days=40)
    for feed in (detection.FEED_TMDB_TV, detection.FEED_TMDB_MOVIE, detection.FEED_TVMAZE):
        await schedule.save_feed_mark(FeedMark(feed, long_ago, frozenset({1, 2})))
    mark = rig.mark()
    await loops_of(rig).feed_pass()
    queries = [r.query for r in rig.sims.tmdb.log.since(mark[0])]
    today = START.date().isoformat()
    assert queries
    assert all(f"start_date={today}" in q for q in queries), queries
    assert [r.query for r in rig.sims.tvmaze.log.since(mark[1])] == ["since=day"]
    marks = await schedule.feed_marks()
    assert {m.read_at for m in marks.values()} == {START}


async def test_a_short_downtime_is_read_back_from_the_last_mark(rig: Rig) -> None:
    await _indexed(rig, _find(rig, _ended))
    schedule = rig.repos.schedule
    await schedule.save_feed_mark(FeedMark(detection.FEED_TMDB_TV, START - timedelta(days=3)))
    mark = rig.mark()
    await loops_of(rig).feed_pass()
    tv = [r.query for r in rig.sims.tmdb.log.since(mark[0]) if r.path == "/3/tv/changes"]
    since = (START.date() - timedelta(days=3)).isoformat()
    assert any(f"start_date={since}" in q and f"end_date={START.date()}" in q for q in tv), tv
    assert date.fromisoformat(since) < START.date()


async def test_a_feed_that_can_name_no_tracked_title_is_not_read(rig: Rig) -> None:
    loops = loops_of(rig)
    mark = rig.mark()
    assert await loops.feed_pass() == 0  # an empty library: no feed is read
    assert rig.tmdb_paths(mark) == []
    assert rig.tvmaze_paths(mark) == []
    marks = await rig.repos.schedule.feed_marks()
    assert {m.read_at for m in marks.values()} == {START}
    assert loops.stats.feed_skips == 3
    await _indexed(rig, _find(rig, _ended))  # one show, no movie: the movie feed stays unread
    rig.clock.advance(600)
    mark = rig.mark()
    await loops.feed_pass()  # TVMaze's one call on every pass, TMDB's pages hourly
    assert rig.tmdb_paths(mark) == []
    assert rig.tvmaze_paths(mark) == ["/updates/shows"]
    rig.clock.advance(3000)
    mark = rig.mark()
    await loops.feed_pass()
    assert set(rig.tmdb_paths(mark)) == {"/3/tv/changes"}
    assert rig.tvmaze_paths(mark) == ["/updates/shows"]
    assert loops.stats.feed_skips == 5
    marks = await rig.repos.schedule.feed_marks()
    assert marks[detection.FEED_TMDB_TV].read_at == START + timedelta(seconds=3600)


async def test_tmdb_naming_a_show_checked_since_its_last_read_leaves_it_to_tvmaze(
    rig: Rig,
) -> None:
    followed = _find(rig, _ended)
    item_id = await _indexed(rig, followed)  # checked at START, matched on TVMaze
    item = await rig.item(item_id)
    assert item.ids.tvmaze == followed.tvmaze_id
    schedule = rig.repos.schedule
    earlier = START - timedelta(hours=1)
    # TMDB names the show for today: checked after the feed's last read, it was either
    # seen by that check or TVMaze reports it with its time; nothing to do.
    assert await schedule.check_changed(tmdb_shows={followed.tmdb_id}, priority=2,
                                        tmdb_checked_since=earlier) == []
    # Checked before the last read (or no read to compare with): a change to look at.
    assert await schedule.check_changed(tmdb_shows={followed.tmdb_id}, priority=2,
                                        tmdb_checked_since=START + timedelta(hours=1)) == [
        item_id]
    await schedule.reschedule_many([Reschedule(item_id, START + timedelta(days=30))])
    assert await schedule.check_changed(tmdb_shows={followed.tmdb_id}, priority=2) == [item_id]
    # An index already queued to run now reads the change: no second one.
    await schedule.reschedule_many([Reschedule(item_id, START + timedelta(days=30))])
    await rig.repos.jobs.enqueue_many([NewJob(JobKind.INDEX, item_id)])
    assert await schedule.check_changed(tmdb_shows={followed.tmdb_id}, priority=2) == []
    assert await schedule.check_changed(
        tvmaze_updated={followed.tvmaze_id: NOW_S + 60}, priority=2) == []
    await rig.run_jobs()
    # Not on TVMaze: TMDB's word is all there is.
    await rig.runtime.pool.execute("UPDATE items SET tvmaze_id = NULL WHERE id = $1", item_id)
    await schedule.reschedule_many([Reschedule(item_id, START + timedelta(days=30))])
    assert await schedule.check_changed(tmdb_shows={followed.tmdb_id}, priority=2,
                                        tmdb_checked_since=earlier) == [item_id]


async def test_the_loops_survive_a_database_outage(rig: Rig, db_dsn: str) -> None:
    pool = await create_pool(PoolOptions(dsn=db_dsn, min_size=1, max_size=2))
    runtime = dataclasses.replace(rig.runtime, pool=pool,
                                  repos=Repos.on(pool, rig.clock, rig.runtime.boot_id))
    loops = DetectionLoops(runtime, *detection._feed_clients(runtime))
    async with running(loops.check_loop, loops.release_loop, loops.feed_loop):
        await eventually(lambda: loops.stats.check_passes >= 1
                         and loops.stats.release_passes >= 1 and loops.stats.feed_reads >= 1)
        pool.terminate()  # every connection gone, and no new one

        def failing() -> bool:
            rig.clock.advance(120)  # the backoffs sleep on the daemon's clock
            return loops.stats.db_errors >= 3

        await eventually(failing)
        for _ in range(3):
            rig.clock.advance(120)
            await asyncio.sleep(0.05)
    assert loops.stats.db_errors >= 3


async def test_a_due_check_keeps_its_priority_from_the_feed(rig: Rig) -> None:
    show = _find(rig, _ended)
    item_id = await _indexed(rig, show)
    # Due now as routine work, held back by the budget: the feed raises its priority.
    await rig.repos.schedule.reschedule_many([Reschedule(item_id, START)])
    changed = await rig.repos.schedule.check_changed(
        tmdb_shows={show.tmdb_id}, priority=int(CheckPriority.CHANGED), soon_s=DELAY_S)
    assert changed == [item_id]
    item = await rig.item(item_id)
    assert item.schedule is not None
    assert (item.schedule.next_check_at, item.schedule.check_priority) == (
        START, CheckPriority.CHANGED)
    # TVMaze names it with a change older than its last check: nothing to do.
    assert await rig.repos.schedule.check_changed(
        tvmaze_updated={show.tvmaze_id: NOW_S - 3600}, priority=2) == []


async def test_the_starter_runs_three_watched_loops_unless_switched_off(
    make_settings: SettingsFactory, db_pool: asyncpg.Pool, db_dsn: str, clock: ManualClock,
    tmp_path: Path,
) -> None:
    failures: list[str] = []
    for enabled, expected in ((True, ["detection-checks", "detection-releases",
                                      "detection-feeds"]), (False, [])):
        async with pipeline_rig(make_settings, db_pool, db_dsn, clock, tmp_path,
                                detection={"enabled": enabled}) as rig:
            tasks = BackgroundTasks(lambda name, exc: failures.append(name))
            async with contextlib.AsyncExitStack() as stack:
                await detection.start(rig.runtime, tasks, stack)
                assert tasks.names == expected
                await asyncio.sleep(0.1)
                assert tasks.names == expected
                metrics = rig.runtime.metrics
                if enabled:
                    # Nothing tracked: every loop passes once, and no feed is read.
                    await eventually(lambda m=metrics: _first_passes(m))  # type: ignore[misc]
                else:
                    assert "detection_loops" not in await metrics.collect()
            await tasks.stop(1.0)
    assert failures == []


async def _first_passes(metrics: MetricsRegistry) -> bool:
    figures = (await metrics.collect())["detection_loops"]
    return bool(figures["check_passes"] >= 1 and figures["release_passes"] >= 1
                and figures["feed_reads"] >= 1 and figures["feed_skips"] == 3)

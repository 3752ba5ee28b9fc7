"""Check schedule and releases: due times on the daemon's clock, SKIP LOCKED passes, NOTIFY."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta

import asyncpg

from riven_async.db.schedule import Reschedule, ScheduleRepo
from riven_async.domain.intents import ExternalIds
from riven_async.domain.media import MediaKind, ShowTree
from riven_async.domain.queue import JobKind
from riven_async.domain.states import State
from tests.db.factories import T0, Repos, count, movie, show_tree


async def test_reschedule_and_next_check(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    shows = await repos.trees.upsert_show_trees([show_tree(1), show_tree(2)])
    assert await repos.schedule.next_check_at() == T0 + timedelta(days=1)
    changed = await repos.schedule.reschedule_many([
        Reschedule(shows[0].show_id, T0 + timedelta(hours=3), priority=2),
        Reschedule(shows[1].show_id, T0 + timedelta(days=1)),
    ])
    assert changed == [shows[0].show_id]
    assert await repos.schedule.next_check_at() == T0 + timedelta(hours=3)


async def test_due_checks_become_index_jobs_by_priority(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    shows = await repos.trees.upsert_show_trees([show_tree(t) for t in (1, 2, 3)])
    ids = [s.show_id for s in shows]
    await repos.schedule.reschedule_many([
        Reschedule(ids[0], T0 - timedelta(hours=5)),
        Reschedule(ids[1], T0 - timedelta(minutes=1), priority=9),
        Reschedule(ids[2], T0 + timedelta(hours=1)),
    ])
    first = await repos.schedule.enqueue_due_checks(limit=1, fallback_s=6 * 3600)
    assert (first.checks, first.jobs) == (1, 1)
    [job] = await repos.jobs.claim(JobKind.INDEX)
    assert (job.item_id, job.priority, job.dedupe_key) == (ids[1], 9, f"index:{ids[1]}")
    rest = await repos.schedule.enqueue_due_checks(limit=10, fallback_s=6 * 3600)
    assert (rest.checks, rest.jobs) == (1, 1)
    item = await repos.catalog.get(ids[0])
    assert item is not None
    assert item.schedule is not None
    assert item.schedule.next_check_at == T0 + timedelta(hours=6)
    assert (await repos.schedule.enqueue_due_checks(limit=10, fallback_s=60)).checks == 0


async def test_concurrent_scheduler_passes_take_each_check_once(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    shows = await repos.trees.upsert_show_trees([show_tree(t) for t in range(1, 41)])
    await repos.schedule.reschedule_many([Reschedule(s.show_id, T0) for s in shows])
    passes = await asyncio.gather(*(
        ScheduleRepo(db_pool, now=repos.clock.now).enqueue_due_checks(limit=7, fallback_s=600)
        for _ in range(12)))
    assert sum(p.checks for p in passes) == 40
    assert await count(db_pool, "SELECT count(*) FROM jobs WHERE kind = 'index'") == 40


async def test_a_webhook_makes_a_show_due_and_wakes_the_scheduler(
    db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    repos = Repos(db_pool)
    [show] = await repos.trees.upsert_show_trees([show_tree(7)])
    listener = await asyncpg.connect(db_dsn)
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("riven_schedule", lambda *a: heard.put_nowait(a[2]))
    try:
        found = await repos.schedule.check_now_by_external_ids([
            (MediaKind.SHOW, ExternalIds(tvdb=100_007)),
            (MediaKind.SHOW, ExternalIds(tmdb=999)),
        ], priority=5)
        assert found == [show.show_id, None]
        assert await asyncio.wait_for(heard.get(), 5) == "riven_schedule"
        item = await repos.catalog.get(show.show_id)
        assert item is not None
        assert item.schedule is not None
        assert (item.schedule.next_check_at, item.schedule.check_priority) == (T0, 5)
        # Already due: no second write, no second wake-up.
        assert await repos.schedule.check_now([show.show_id]) == [show.show_id]
        await asyncio.sleep(0.05)
        assert heard.empty()
    finally:
        await listener.close()


async def test_aired_items_are_released_with_a_scrape_job(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    # Weekly episodes from 60 days before T0: 9 aired, the 10th airs 3 days after T0.
    [show] = await repos.trees.upsert_show_trees([show_tree(1, seasons=1, episodes=10)])
    await repos.trees.upsert_movies([movie(2), movie(3, released=T0 + timedelta(days=2))])
    released = await repos.schedule.release_due(delay_s=900, limit=100)
    assert len(released.item_ids) == 9 + 1
    assert released.show_ids == (show.show_id,)
    jobs = await repos.jobs.for_items(released.item_ids)
    assert {j.kind for j in jobs} == {JobKind.SCRAPE}
    assert len(jobs) == 10
    states = await repos.catalog.get_many(released.item_ids)
    assert {i.state for i in states} == {State.INDEXED}
    assert await repos.schedule.release_due(delay_s=900, limit=100) == type(released)((), ())
    next_at = await repos.schedule.next_release_at(delay_s=900)
    assert next_at == T0 + timedelta(days=2, seconds=900)
    repos.clock.advance(2 * 86400 + 899)
    assert (await repos.schedule.release_due(delay_s=900, limit=100)).item_ids == ()
    repos.clock.advance(1)
    assert len((await repos.schedule.release_due(delay_s=900, limit=100)).item_ids) == 1


async def _release_due_at(pool: asyncpg.Pool, show_id: int) -> object:
    return await pool.fetchval("SELECT release_due_at FROM items WHERE id = $1", show_id)


async def test_a_show_tracks_its_next_release_through_passes_and_upserts(
    db_pool: asyncpg.Pool,
) -> None:
    repos = Repos(db_pool)
    tree = show_tree(1, seasons=1, episodes=10)  # weekly from T0 - 60 days: 9 aired
    [show] = await repos.trees.import_show_trees([tree])
    first_air = tree.seasons[0].episodes[0].aired_at
    assert await _release_due_at(db_pool, show.show_id) == first_air
    released = await repos.schedule.release_due(delay_s=900)
    assert len(released.item_ids) == 9
    tenth = tree.seasons[0].episodes[9].aired_at
    assert tenth is not None
    assert await _release_due_at(db_pool, show.show_id) == tenth
    assert await repos.schedule.next_release_at(900) == tenth + timedelta(seconds=900)
    # The tenth episode is postponed a week: the upsert moves the show's next release.
    later = tenth + timedelta(weeks=1)
    moved = _with_air_time(tree, 10, later)
    await repos.trees.upsert_show_trees([moved])
    assert await _release_due_at(db_pool, show.show_id) == later
    repos.clock.advance((later - T0).total_seconds() + 900)
    assert len((await repos.schedule.release_due(delay_s=900)).item_ids) == 1
    assert await _release_due_at(db_pool, show.show_id) is None
    assert await repos.schedule.next_release_at(900) is None


async def test_resumed_unreleased_episodes_are_released_again(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    [show] = await repos.trees.upsert_show_trees([show_tree(2, seasons=1, episodes=3)])
    await repos.items.pause_many([show.show_id])
    assert (await repos.schedule.release_due(delay_s=0)).item_ids == ()
    await repos.items.resume_many([show.show_id])
    assert len((await repos.schedule.release_due(delay_s=0)).item_ids) == 3


def _with_air_time(tree: ShowTree, episode: int, aired: datetime) -> ShowTree:
    season = tree.seasons[0]
    episodes = tuple(dataclasses.replace(e, aired_at=aired, air_date=aired.date())
                     if e.number == episode else e for e in season.episodes)
    return dataclasses.replace(tree, seasons=(dataclasses.replace(season, episodes=episodes),))

"""Metrics aggregates: the maintained state counts always equal a full count."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
from hypothesis import HealthCheck, given, settings, strategies as st

from riven_async.db.schedule import Reschedule
from riven_async.domain.media import MediaKind, ShowStatus
from riven_async.domain.queue import InboxDelivery, JobKind, NewJob
from riven_async.domain.states import State
from tests.db.factories import T0, Repos, movie, request, show_tree, truncate_all


async def _full_count(pool: asyncpg.Pool) -> dict[MediaKind, dict[State, int]]:
    out: dict[MediaKind, dict[State, int]] = {}
    for r in await pool.fetch("SELECT kind, state, count(*) AS n FROM items GROUP BY 1, 2"):
        out.setdefault(MediaKind(r["kind"]), {})[State(r["state"])] = r["n"]
    return out


OPERATIONS = st.lists(st.sampled_from(
    ["shows", "movies", "release", "scrape", "fail", "retry", "pause", "resume", "refresh",
     "delete", "requests"]), min_size=1, max_size=8)


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS, tmdb=st.integers(1, 5))
async def test_state_counts_always_equal_a_full_count(
    db_pool: asyncpg.Pool, operations: list[str], tmdb: int
) -> None:
    await truncate_all(db_pool)
    repos = Repos(db_pool)
    for op in operations:
        ids = [r["id"] for r in await db_pool.fetch("SELECT id FROM items ORDER BY id")]
        shows = [r["id"] for r in await db_pool.fetch("SELECT id FROM items WHERE kind='show'")]
        if op == "shows":
            await repos.trees.upsert_show_trees([show_tree(tmdb + n, seasons=2, episodes=3)
                                                 for n in range(3)])
        elif op == "movies":
            await repos.trees.upsert_movies([movie(tmdb), movie(tmdb + 10)])
        elif op == "release":
            await repos.schedule.release_due(delay_s=0, limit=5)
        elif op == "scrape":
            await repos.items.set_state_many(ids[::2], State.SCRAPED)
        elif op == "fail":
            await repos.items.fail_many(ids[1::3], "boom")
        elif op == "retry":
            await repos.items.retry_many(ids)
        elif op == "pause":
            await repos.items.pause_many(shows[:1])
        elif op == "resume":
            await repos.items.resume_many(shows)
        elif op == "refresh":
            await repos.items.refresh_parent_states(shows)
        elif op == "delete":
            await repos.items.delete_many(shows[-1:])
        else:
            await repos.items.request_many([request(tmdb=tmdb + 40), request("movie", tmdb=3)])
        assert await repos.stats.state_counts() == await _full_count(db_pool), op


async def test_state_counts_fold_their_rows_and_stay_right(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    [show] = await repos.trees.upsert_show_trees([show_tree(1, seasons=1, episodes=300)])
    episodes = [r["id"] for r in await db_pool.fetch(
        "SELECT id FROM items WHERE show_id = $1 AND kind = 'episode'", show.show_id)]
    # One statement per episode: each appends its own summary rows.
    await asyncio.gather(*(repos.items.set_state_many([e], State.INDEXED) for e in episodes))
    assert await db_pool.fetchval("SELECT count(*) FROM item_state_counts") > 256
    expected = await _full_count(db_pool)
    assert await repos.stats.state_counts() == expected
    assert await db_pool.fetchval("SELECT count(*) FROM item_state_counts") <= 10
    assert await repos.stats.state_counts() == expected


async def test_oldest_item_per_state(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    await repos.trees.upsert_movies([movie(1)])
    await db_pool.execute("UPDATE items SET state_changed_at = '2020-01-01Z'")
    await repos.trees.upsert_movies([movie(2)])
    oldest = await repos.stats.oldest_in_states([State.UNRELEASED, State.SCRAPED])
    assert oldest[State.SCRAPED] is None
    since = oldest[State.UNRELEASED]
    assert since is not None
    assert since.year == 2020
    assert set(await repos.stats.oldest_in_states()) == {
        State.REQUESTED, State.INDEXED, State.SCRAPED, State.DOWNLOADED, State.LINKED}


async def test_job_inbox_and_schedule_counts(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    shows = await repos.trees.upsert_show_trees([show_tree(1, status=ShowStatus.ENDED),
                                                 show_tree(2)])
    await repos.schedule.reschedule_many([
        Reschedule(shows[0].show_id, T0 - timedelta(minutes=1)),
        Reschedule(shows[1].show_id, T0 + timedelta(minutes=30)),
    ])
    assert await repos.stats.shows_by_status() == {ShowStatus.ENDED: 1, ShowStatus.ONGOING: 1}
    due = await repos.stats.checks_due()
    assert (due.now, due.hour, due.day) == (1, 2, 2)
    await repos.jobs.enqueue_many([
        NewJob(JobKind.LINK, dedupe_key="a"), NewJob(JobKind.LINK, dedupe_key="b"),
        NewJob(JobKind.LINK, dedupe_key="c", run_at=T0 + timedelta(hours=1)),
    ])
    await repos.jobs.claim(JobKind.LINK)
    counts = await repos.stats.job_counts()
    link = counts[JobKind.LINK]
    assert (link.due, link.scheduled, link.running, link.failed) == (1, 1, 1, 0)
    assert set(counts) == set(JobKind)
    await repos.inbox.insert_many([InboxDelivery("plex", "library.new", "x", "{}")])
    inbox = await repos.stats.inbox_counts()
    assert (inbox.waiting, inbox.claimed) == (1, 0)
    assert inbox.oldest is not None
    assert await repos.stats.new_episodes() == 12


async def test_compaction_folds_counts_and_drops_old_arrivals(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    for tmdb in range(1, 6):
        await repos.trees.upsert_show_trees([show_tree(tmdb)])
    expected = await _full_count(db_pool)
    await db_pool.execute("UPDATE item_arrivals SET arrived_at = now() - interval '30 days'"
                          " WHERE ctid IN (SELECT ctid FROM item_arrivals LIMIT 3)")
    folded, pruned = await repos.stats.compact()
    assert folded > 3
    assert pruned == 3
    assert await db_pool.fetchval("SELECT count(*) FROM item_state_counts") == 3
    assert await repos.stats.state_counts() == expected

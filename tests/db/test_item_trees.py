"""Show trees and movies: one round trip whatever the size, idempotent, one tree under
concurrency, only changed rows written."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from riven_async.db.executor import CountingExecutor
from riven_async.db.trees import TreesRepo
from riven_async.domain.media import EpisodeRecord, MediaKind, SeasonRecord, ShowStatus, ShowTree
from riven_async.domain.queue import JobKind, NewJob
from riven_async.domain.releases import ScrapedRelease, normalize_infohash
from riven_async.domain.states import State
from tests.db.factories import T0, Repos, count, movie, request, show_tree, truncate_all

HASH = normalize_infohash("a" * 40)


async def _children(pool: asyncpg.Pool, show_id: int) -> dict[tuple[int, int | None], int]:
    """(season, episode) -> xmin of each child row (a new xmin means the row was written)."""
    records = await pool.fetch(
        "SELECT season_number, episode_number, xmin::text::bigint AS x FROM items"
        " WHERE show_id = $1", show_id)
    return {(r["season_number"], r["episode_number"]): r["x"] for r in records}


def _retitle(tree: ShowTree, season: int, episode: int, title: str) -> ShowTree:
    seasons = []
    for s in tree.seasons:
        if s.number == season:
            eps = tuple(dataclasses.replace(e, title=title) if e.number == episode else e
                        for e in s.episodes)
            s = dataclasses.replace(s, episodes=eps)
        seasons.append(s)
    return dataclasses.replace(tree, seasons=tuple(seasons))


async def test_upsert_writes_show_seasons_and_episodes(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    [result] = await repos.trees.upsert_show_trees([show_tree(101, seasons=2, episodes=3)])
    assert result.created
    assert result.children_inserted == 2 + 6
    assert result.children_updated == 0
    tree = await repos.catalog.tree(result.show_id)
    assert tree is not None
    assert tree.root.item.kind is MediaKind.SHOW
    assert tree.root.item.state is State.INDEXED
    assert [n.item.season_number for n in tree.seasons()] == [1, 2]
    episodes = list(tree.episodes())
    assert len(episodes) == 6
    # New episodes wait for release_due, which needs their air time plus the delay.
    assert {n.item.state for n in episodes} == {State.UNRELEASED}
    assert all(n.item.show_id == result.show_id for n in tree.children)
    schedule = tree.root.item.schedule
    assert schedule is not None
    assert (schedule.status_checked_at, schedule.status) == (T0, ShowStatus.ONGOING)
    assert all(n.item.schedule is None for n in tree.children)


async def test_upsert_twice_writes_nothing_the_second_time(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    tree = show_tree(102, seasons=3, episodes=4)
    [first] = await repos.trees.upsert_show_trees([tree])
    before = await _children(db_pool, first.show_id)
    [second] = await repos.trees.upsert_show_trees([tree])
    assert (second.show_id, second.created) == (first.show_id, False)
    assert (second.children_inserted, second.children_updated) == (0, 0)
    assert await _children(db_pool, first.show_id) == before


async def test_upsert_updates_only_the_changed_episodes(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    tree = show_tree(103, seasons=2, episodes=5)
    [first] = await repos.trees.upsert_show_trees([tree])
    before = await _children(db_pool, first.show_id)
    changed = _retitle(_retitle(tree, 1, 2, "New name"), 2, 5, "Finale")
    extra = SeasonRecord(3, "Season 3", (EpisodeRecord(1, "Premiere", T0 + timedelta(days=9)),))
    changed = dataclasses.replace(changed, seasons=(*changed.seasons, extra))
    [second] = await repos.trees.upsert_show_trees([changed])
    assert (second.children_inserted, second.children_updated) == (2, 2)
    after = await _children(db_pool, first.show_id)
    rewritten = {key for key, xmin in before.items() if after[key] != xmin}
    assert rewritten == {(1, 2), (2, 5)}
    titles = await db_pool.fetch("SELECT title FROM items WHERE show_id = $1 AND"
                                 " episode_number IS NOT NULL ORDER BY title", first.show_id)
    assert {"New name", "Finale", "Premiere"} <= {r["title"] for r in titles}


async def test_a_partial_tree_leaves_the_other_seasons_alone(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    tree = show_tree(104, seasons=3, episodes=2)
    [first] = await repos.trees.upsert_show_trees([tree])
    only_season_2 = dataclasses.replace(tree, seasons=(tree.seasons[1],))
    await repos.trees.upsert_show_trees([only_season_2])
    assert await count(db_pool, "SELECT count(*) FROM items WHERE show_id = $1",
                       first.show_id) == 3 + 6


async def test_round_trips_per_tree_do_not_grow_with_its_size(db_pool: asyncpg.Pool) -> None:
    counter = CountingExecutor(db_pool)
    items = TreesRepo(counter)
    trips = []
    for tmdb, seasons, episodes in ((105, 1, 1), (106, 4, 25), (107, 30, 40)):
        counter.reset()
        [result] = await items.upsert_show_trees([show_tree(tmdb, seasons=seasons,
                                                            episodes=episodes)])
        assert result.children_inserted == seasons * (episodes + 1)
        trips.append(counter.round_trips)
    assert trips == [1, 1, 1]
    counter.reset()
    await items.upsert_show_trees([show_tree(t, seasons=2, episodes=10)
                                   for t in range(200, 300)])
    assert counter.round_trips == 1


async def test_fifty_concurrent_upserts_of_one_show_make_one_tree(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    trees = [show_tree(108, seasons=1 + i % 3, episodes=4) for i in range(50)]
    results = await asyncio.gather(*(repos.trees.upsert_show_trees([t]) for t in trees))
    show_ids = {r[0].show_id for r in results}
    assert len(show_ids) == 1
    assert sum(r[0].created for r in results) == 1
    assert await count(db_pool, "SELECT count(*) FROM items WHERE kind = 'show'") == 1
    assert await count(db_pool, "SELECT count(*) FROM items WHERE kind = 'season'") == 3
    assert await count(db_pool, "SELECT count(*) FROM items WHERE kind = 'episode'") == 12
    assert sum(r[0].children_inserted for r in results) == 15


async def test_a_batch_returns_results_in_input_order(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    tmdb_ids = [309, 301, 305]
    results = await repos.trees.upsert_show_trees([show_tree(t) for t in tmdb_ids])
    assert [r.tmdb_id for r in results] == tmdb_ids
    again = await repos.trees.upsert_show_trees([show_tree(t) for t in reversed(tmdb_ids)])
    assert [r.show_id for r in again] == [r.show_id for r in reversed(results)]
    with pytest.raises(ValueError, match="twice"):
        await repos.trees.upsert_show_trees([show_tree(1), show_tree(1)])


async def test_a_requested_show_becomes_the_indexed_tree(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    [requested] = await repos.items.request_many([request(tvdb=100_110)])
    tree = show_tree(110)
    canonical = await repos.trees.adopt_identity(requested.item_id, MediaKind.SHOW, tree)
    assert canonical == requested.item_id
    [result] = await repos.trees.upsert_show_trees([tree])
    assert result.show_id == requested.item_id
    assert not result.created
    item = await repos.catalog.get(result.show_id)
    assert item is not None
    assert item.state is State.INDEXED
    assert (item.ids.tmdb, item.ids.tvdb, item.ids.imdb) == (110, 100_110, "tt0000110")


async def test_ids_a_request_still_holds_do_not_fail_an_import(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    [requested] = await repos.items.request_many([request(tvdb=100_111)])
    [result] = await repos.trees.upsert_show_trees([show_tree(111)])
    assert result.created
    assert result.show_id != requested.item_id
    item = await repos.catalog.get(result.show_id)
    assert item is not None
    assert item.ids.tvdb is None
    # Indexing the request later merges it into the imported show.
    canonical = await repos.trees.adopt_identity(requested.item_id, MediaKind.SHOW,
                                                 show_tree(111))
    assert canonical == result.show_id
    assert await repos.catalog.get(requested.item_id) is None
    assert [r.item_id for r in await repos.items.requests_for([result.show_id])] == [
        result.show_id]


async def test_movies_upsert_by_tmdb_and_requests_become_unreleased(
    db_pool: asyncpg.Pool,
) -> None:
    repos = Repos(db_pool)
    [requested] = await repos.items.request_many([request("movie", tmdb=501)])
    results = await repos.trees.upsert_movies([movie(501), movie(502)])
    assert [(r.tmdb_id, r.created) for r in results] == [(501, False), (502, True)]
    assert results[0].item_id == requested.item_id
    items = await repos.catalog.get_many([r.item_id for r in results])
    assert {i.state for i in items} == {State.UNRELEASED}
    assert all(i.aired_at is not None and i.aired_at < T0 for i in items)
    again = await repos.trees.upsert_movies([movie(502)])
    assert again[0].item_id == results[1].item_id
    assert not again[0].created


async def test_delete_removes_the_tree_and_what_refers_to_it(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    [kept] = await repos.trees.upsert_show_trees([show_tree(120)])
    [gone] = await repos.trees.upsert_show_trees([show_tree(121, seasons=2, episodes=3)])
    episode_id = await db_pool.fetchval("SELECT min(id) FROM items WHERE show_id = $1",
                                        gone.show_id)
    await repos.jobs.enqueue_many([NewJob(JobKind.SCRAPE, episode_id)])
    await repos.releases.insert_many([ScrapedRelease(episode_id, HASH, "x", 1, "torrentio")])
    assert await repos.items.delete_many([gone.show_id]) == 1 + 2 + 6
    assert await count(db_pool, "SELECT count(*) FROM items WHERE show_id = $1 OR id = $1",
                       gone.show_id) == 0
    assert await count(db_pool, "SELECT count(*) FROM jobs") == 0
    assert await count(db_pool, "SELECT count(*) FROM releases") == 0
    assert await count(db_pool, "SELECT count(*) FROM items WHERE show_id = $1",
                       kept.show_id) == 8


async def test_deleting_a_season_takes_its_episodes(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    [show] = await repos.trees.upsert_show_trees([show_tree(122, seasons=2, episodes=3)])
    season_id = await db_pool.fetchval(
        "SELECT id FROM items WHERE show_id = $1 AND kind = 'season' AND season_number = 2",
        show.show_id)
    assert await repos.items.delete_many([season_id]) == 4
    assert await count(db_pool, "SELECT count(*) FROM items WHERE show_id = $1",
                       show.show_id) == 4


async def _tree_rows(pool: asyncpg.Pool, tmdb: int) -> list[tuple[object, ...]]:
    records = await pool.fetch(
        "SELECT c.kind, c.season_number, c.episode_number, c.title, c.aired_at, c.air_date,"
        " c.fingerprint, c.state FROM items s JOIN items c ON c.show_id = s.id"
        " WHERE s.kind = 'show' AND s.tmdb_id = $1"
        " ORDER BY c.season_number, c.episode_number NULLS FIRST", tmdb)
    return [tuple(r) for r in records]


def _renumbered(tree: ShowTree, offset: int) -> ShowTree:
    tmdb = (tree.ids.tmdb or 0) + offset
    ids = dataclasses.replace(tree.ids, tmdb=tmdb, tvdb=None, imdb=None)
    return dataclasses.replace(tree, ids=ids)


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 6)), min_size=1, max_size=6),
       existing=st.integers(0, 6))
async def test_the_import_path_writes_what_the_upsert_path_writes(
    db_pool: asyncpg.Pool, sizes: list[tuple[int, int]], existing: int
) -> None:
    await truncate_all(db_pool)
    repos = Repos(db_pool)
    trees = [show_tree(1000 + n, seasons=s, episodes=e) for n, (s, e) in enumerate(sizes)]
    # Some shows exist already (with one season fewer), the others are new.
    old = [dataclasses.replace(t, seasons=t.seasons[:-1]) for t in trees[:existing]]
    await repos.trees.upsert_show_trees(old)
    await repos.trees.upsert_show_trees([_renumbered(t, 5000) for t in old])
    imported = await repos.trees.import_show_trees(trees)
    upserted = await repos.trees.upsert_show_trees(
        [_renumbered(t, 5000) for t in trees])
    for a, b in zip(imported, upserted, strict=True):
        assert (a.created, a.children_inserted, a.children_updated) == (
            b.created, b.children_inserted, b.children_updated)
        assert await _tree_rows(db_pool, a.tmdb_id) == await _tree_rows(db_pool, b.tmdb_id)
    assert await repos.stats.state_counts() == {
        MediaKind(k): v for k, v in (await _counts(db_pool)).items()}


async def _counts(pool: asyncpg.Pool) -> dict[str, dict[State, int]]:
    out: dict[str, dict[State, int]] = {}
    for r in await pool.fetch("SELECT kind, state, count(*) AS n FROM items GROUP BY 1, 2"):
        out.setdefault(r["kind"], {})[State(r["state"])] = r["n"]
    return out


async def test_overlapping_concurrent_imports_make_one_tree_per_show(
    db_pool: asyncpg.Pool,
) -> None:
    repos = Repos(db_pool)
    batches = [[show_tree(t, seasons=2, episodes=3) for t in range(start, start + 20)]
               for start in (1, 11, 6, 1)]
    await asyncio.gather(*(repos.trees.import_show_trees(b) for b in batches))
    assert await count(db_pool, "SELECT count(*) FROM items WHERE kind = 'show'") == 30
    assert await count(db_pool, "SELECT count(*) FROM items WHERE kind = 'episode'") == 180
    counter = CountingExecutor(db_pool)
    # Without a pool or a connection underneath, the import falls back to one statement.
    [result] = await TreesRepo(counter).import_show_trees([show_tree(99)])
    assert result.created
    assert counter.round_trips == 1

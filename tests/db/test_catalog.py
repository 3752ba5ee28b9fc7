"""Reading items: a whole tree in one round trip, keyset pages that hold still, search."""

from __future__ import annotations

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from riven_async.db.catalog import CatalogRepo, ItemPage, PageCursor
from riven_async.db.executor import CountingExecutor
from riven_async.domain.intents import ExternalIds
from riven_async.domain.media import MediaKind
from riven_async.domain.releases import Infohash, ScrapedRelease, normalize_infohash
from riven_async.domain.states import State
from tests.db.factories import Repos, movie, show_tree, truncate_all


def _hash(n: int) -> Infohash:
    return normalize_infohash(f"{n:040x}")


async def test_a_show_tree_with_releases_is_one_round_trip(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    [show] = await repos.trees.upsert_show_trees([show_tree(10, seasons=3, episodes=8)])
    episode_ids = [r["id"] for r in await db_pool.fetch(
        "SELECT id FROM items WHERE show_id = $1 AND kind = 'episode' ORDER BY id",
        show.show_id)]
    await repos.releases.insert_many([
        ScrapedRelease(e, _hash(e * 10 + n), f"Show.S01E0{n}.1080p", rank=n, scraper="zilean",
                       parsed={"resolution": "1080p"}, cached_on=("realdebrid",))
        for e in episode_ids for n in range(1, 8)
    ])
    await repos.releases.blacklist_many([(episode_ids[0], _hash(episode_ids[0] * 10 + 7),
                                          "not cached")])
    counter = CountingExecutor(db_pool)
    tree = await CatalogRepo(counter).tree(show.show_id, releases_per_item=3)
    assert counter.round_trips == 1
    assert tree is not None
    assert tree.root.item.id == show.show_id
    assert len(list(tree.seasons())) == 3
    assert len(list(tree.episodes())) == 24
    assert [n.item.episode_number for n in tree.episodes(2)] == list(range(1, 9))
    first = next(tree.episodes(1))
    assert [r.rank for r in first.releases] == [6, 5, 4]  # rank 7 is blacklisted
    assert first.releases[0].parsed == {"resolution": "1080p"}
    assert first.releases[0].cached_on == ("realdebrid",)
    season = next(tree.seasons())
    season_tree = await repos.catalog.tree(season.item.id)
    assert season_tree is not None
    assert len(season_tree.children) == 8
    assert await repos.catalog.tree(10**9) is None


async def _all_pages(catalog: CatalogRepo, **filters: object) -> list[ItemPage]:
    pages = []
    after: PageCursor | None = None
    while True:
        page = await catalog.page(after=after, limit=7, **filters)  # type: ignore[arg-type]
        pages.append(page)
        if page.next is None:
            return pages
        after = page.next


async def test_pages_cover_every_item_once_by_each_filter(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    await repos.trees.upsert_show_trees([show_tree(t, seasons=2, episodes=4) for t in (1, 2)])
    await repos.trees.upsert_movies([movie(m) for m in range(3, 8)])
    total = await db_pool.fetchval("SELECT count(*) FROM items")
    everything = [i for p in await _all_pages(repos.catalog) for i in p.items]
    assert len(everything) == total == len({i.id for i in everything})
    movies = [i for p in await _all_pages(repos.catalog, kind=MediaKind.MOVIE) for i in p.items]
    assert [i.kind for i in movies] == [MediaKind.MOVIE] * 5
    unreleased = [i for p in await _all_pages(repos.catalog, state=State.UNRELEASED)
                  for i in p.items]
    assert len(unreleased) == 16 + 5
    assert [(i.state_changed_at, i.id) for i in unreleased] == sorted(
        (i.state_changed_at, i.id) for i in unreleased)
    unreleased_movies = await repos.catalog.page(kind=MediaKind.MOVIE, state=State.UNRELEASED)
    assert len(unreleased_movies.items) == 5
    assert unreleased_movies.next is None
    with pytest.raises(ValueError, match="limit"):
        await repos.catalog.page(limit=0)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(inserts=st.lists(st.integers(0, 4), min_size=1, max_size=6),
       by_state=st.booleans())
async def test_keyset_pages_hold_still_while_rows_are_inserted(
    db_pool: asyncpg.Pool, inserts: list[int], by_state: bool
) -> None:
    await truncate_all(db_pool)
    repos = Repos(db_pool)
    await repos.trees.upsert_movies([movie(m) for m in range(1, 30)])
    before = {r["id"] for r in await db_pool.fetch("SELECT id FROM items")}
    filters = {"state": State.UNRELEASED} if by_state else {}
    seen: list[int] = []
    after: PageCursor | None = None
    next_tmdb = 1000
    for n in [*inserts, *([0] * 20)]:
        page = await repos.catalog.page(after=after, limit=5, **filters)  # type: ignore[arg-type]
        seen.extend(i.id for i in page.items)
        # Rows arriving between pages sort after the cursor; none is seen twice or shifts
        # an old row out of view.
        await repos.trees.upsert_movies([movie(next_tmdb + k) for k in range(n)])
        next_tmdb += n
        if page.next is None:
            break
        after = page.next
    assert len(seen) == len(set(seen))
    assert before <= set(seen)


async def test_title_search_ranks_movies_and_shows(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    await repos.trees.upsert_show_trees([show_tree(1, title="Breaking Bad"),
                                         show_tree(2, title="Better Call Saul")])
    await repos.trees.upsert_movies([movie(3, title="Bad Boys"), movie(4, title="Heat")])
    hits = await repos.catalog.search_titles("breaking")
    assert [h.item.title for h in hits][:1] == ["Breaking Bad"]
    assert hits[0].score == 1.0
    page = await repos.catalog.page(text="bad")
    assert {i.title for i in page.items} == {"Breaking Bad", "Bad Boys"}
    shows = await repos.catalog.page(text="BAD", kind=MediaKind.SHOW)
    assert [i.title for i in shows.items] == ["Breaking Bad"]
    assert (await repos.catalog.page(text="%")).items == ()


async def test_roots_are_found_by_any_external_id(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    [show] = await repos.trees.upsert_show_trees([show_tree(42)])
    for ids in (ExternalIds(tmdb=42), ExternalIds(tvdb=100_042), ExternalIds(imdb="tt0000042")):
        assert [i.id for i in await repos.catalog.find_roots(MediaKind.SHOW, ids)] == [
            show.show_id]
    assert await repos.catalog.find_roots(MediaKind.MOVIE, ExternalIds(tmdb=42)) == []
    with pytest.raises(ValueError, match="external ids"):
        await repos.catalog.find_roots(MediaKind.EPISODE, ExternalIds(tmdb=42))

"""Requests become items at once, one item per title whatever the concurrency."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from riven_async.db.trees import IdentityConflict
from riven_async.domain.media import MediaKind
from riven_async.domain.queue import InboxDelivery
from riven_async.domain.states import State
from tests.db.factories import Repos, count, movie, request, show_tree


async def test_a_request_creates_a_requested_item_once(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    [first] = await repos.items.request_many([request(tmdb=1, tvdb=2, seasons=(1, 2))])
    assert first.created
    [again] = await repos.items.request_many([request(tvdb=2, source="sonarr")])
    assert again.item_id == first.item_id
    assert not again.created
    item = await repos.catalog.get(first.item_id)
    assert item is not None
    assert (item.kind, item.state) == (MediaKind.SHOW, State.REQUESTED)
    stored = await repos.items.requests_for([first.item_id])
    assert [(r.source, r.requested_seasons) for r in stored] == [
        ("overseerr", (1, 2)), ("sonarr", None)]
    with pytest.raises(ValueError, match="external id"):
        await repos.items.request_many([request()])


async def test_movies_and_shows_with_one_tmdb_id_are_different_titles(
    db_pool: asyncpg.Pool,
) -> None:
    repos = Repos(db_pool)
    outcomes = await repos.items.request_many([request("movie", tmdb=7), request(tmdb=7)])
    assert outcomes[0].item_id != outcomes[1].item_id


async def test_one_batch_naming_a_title_twice_makes_one_item(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    outcomes = await repos.items.request_many(
        [request(tmdb=3), request(tmdb=3, source="api"), request(imdb="tt0000003")])
    assert outcomes[0].item_id == outcomes[1].item_id
    assert await count(db_pool, "SELECT count(*) FROM items WHERE tmdb_id = 3") == 1


async def test_a_hundred_concurrent_requests_make_one_item(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    outcomes = await asyncio.gather(*(
        repos.items.request_many([request(tmdb=5, tvdb=50, source=f"s{n}")])
        for n in range(100)))
    assert len({o[0].item_id for o in outcomes}) == 1
    assert sum(o[0].created for o in outcomes) == 1
    assert await count(db_pool, "SELECT count(*) FROM items") == 1
    assert await count(db_pool, "SELECT count(*) FROM requests") == 100


async def test_a_delivery_processed_twice_records_its_request_once(
    db_pool: asyncpg.Pool,
) -> None:
    repos = Repos(db_pool)
    [accepted] = await repos.inbox.insert_many(
        [InboxDelivery("overseerr", "MEDIA_APPROVED", "k1", '{"media": 1}')])
    for _ in range(2):
        await repos.items.request_many([request(tmdb=9)], inbox_id=accepted.id)
    assert await count(db_pool, "SELECT count(*) FROM requests") == 1


async def test_requests_by_different_ids_merge_when_indexed(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    [by_tvdb] = await repos.items.request_many([request(tvdb=100_021, source="sonarr")])
    [by_imdb] = await repos.items.request_many([request(imdb="tt0000021", source="api")])
    assert by_tvdb.item_id != by_imdb.item_id
    tree = show_tree(21)
    kept = await repos.trees.adopt_identity(by_imdb.item_id, MediaKind.SHOW, tree)
    # The request being indexed stays; the other one merges into it.
    assert kept == by_imdb.item_id
    assert await repos.catalog.get(by_tvdb.item_id) is None
    [result] = await repos.trees.upsert_show_trees([tree])
    assert result.show_id == kept
    assert sorted(r.source for r in await repos.items.requests_for([kept])) == ["api", "sonarr"]
    assert await repos.trees.adopt_identity(10**9, MediaKind.SHOW, show_tree(22)) is None


async def test_two_indexed_rows_for_one_title_are_refused(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    [indexed] = await repos.trees.upsert_movies([movie(31)])
    [other] = await repos.trees.upsert_movies([movie(32)])
    conflicting = movie(31)
    # Movie 32 claims movie 31's imdb id: merging two indexed movies needs a person.
    await db_pool.execute("UPDATE items SET imdb_id = NULL WHERE id = $1", indexed.item_id)
    await db_pool.execute("UPDATE items SET imdb_id = $2 WHERE id = $1", other.item_id,
                          conflicting.ids.imdb)
    with pytest.raises(IdentityConflict):
        await repos.trees.adopt_identity(indexed.item_id, MediaKind.MOVIE, conflicting)

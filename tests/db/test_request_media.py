"""request_media: the item and its index job in one transaction, whatever the concurrency."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from riven_async.core.clock import SystemClock
from riven_async.db.repos import Repos
from riven_async.db.requests import request_media
from riven_async.domain.intents import ExternalIds, RequestMedia
from riven_async.domain.queue import new_boot_id


def request(tmdb: int, kind: str = "movie", requester: str | None = None) -> RequestMedia:
    return RequestMedia("movie" if kind == "movie" else "show", ExternalIds(tmdb=tmdb),
                        f"Title {tmdb}", 2024, None, "api", requester)


@pytest.fixture
def repos(db_pool: asyncpg.Pool) -> Repos:
    return Repos.on(db_pool, SystemClock(), new_boot_id())


async def test_a_hundred_concurrent_requests_for_one_title_make_one_item_and_one_job(
    db_pool: asyncpg.Pool, repos: Repos
) -> None:
    results = await asyncio.gather(*(request_media(db_pool, repos, [request(7, requester=f"u{n}")])
                                     for n in range(100)))
    item_ids = {outcome.item_id for [outcome] in results}
    assert len(item_ids) == 1
    assert sum(outcome.created for [outcome] in results) == 1
    assert await db_pool.fetchval("SELECT count(*) FROM items") == 1
    assert await db_pool.fetchval("SELECT count(*) FROM requests") == 100
    jobs = await db_pool.fetch("SELECT kind::text, item_id, dedupe_key FROM jobs")
    [item_id] = item_ids
    assert [(j["kind"], j["item_id"], j["dedupe_key"]) for j in jobs] == [
        ("index", item_id, f"index:{item_id}")]


async def test_outcomes_keep_the_order_of_the_requests(
    db_pool: asyncpg.Pool, repos: Repos
) -> None:
    [existing] = await request_media(db_pool, repos, [request(5)])
    outcomes = await request_media(db_pool, repos, [request(9), request(5), request(3, "show"),
                                                    request(9)], priority=3)
    titles = {r["id"]: r["title"] for r in await db_pool.fetch("SELECT id, title FROM items")}
    assert [titles[o.item_id] for o in outcomes] == ["Title 9", "Title 5", "Title 3", "Title 9"]
    assert outcomes[1] == existing.__class__(existing.item_id, False)
    assert [o.created for o in outcomes[:3]] == [True, False, True]
    assert outcomes[3].item_id == outcomes[0].item_id
    priorities = await db_pool.fetch("SELECT item_id, priority FROM jobs ORDER BY item_id")
    assert {r["item_id"]: r["priority"] for r in priorities} == {
        existing.item_id: 3, outcomes[0].item_id: 3, outcomes[2].item_id: 3}


async def test_nothing_is_written_when_a_request_is_invalid(
    db_pool: asyncpg.Pool, repos: Repos
) -> None:
    bad = RequestMedia("movie", ExternalIds(), "No ids", None, None, "api")
    with pytest.raises(ValueError, match="external id"):
        await request_media(db_pool, repos, [request(1), bad])
    assert await db_pool.fetchval("SELECT count(*) FROM items") == 0
    assert await db_pool.fetchval("SELECT count(*) FROM jobs") == 0
    assert await request_media(db_pool, repos, []) == []

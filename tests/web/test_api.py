"""The HTTP API: every route, filters, keyset pages, retries and their jobs, bad input."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings, strategies as st

from riven_async import __version__, keys
from riven_async.app import build_app
from riven_async.config import LiveSettings, Settings, load_settings
from riven_async.domain.media import MediaKind
from riven_async.domain.queue import JOB_FOR_STATE, JobKind, NewJob
from riven_async.domain.releases import Infohash, ScrapedRelease
from riven_async.pipeline import stages
from riven_async.web.api import MAX_PAGE_SIZE
from tests.conftest import TEST_API_KEY
from tests.db.factories import movie, request, show_tree

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
Client = TestClient[Any, Any]
KEY = {"X-Api-Key": TEST_API_KEY}
ROUTES = [
    ("GET", "/api/items"), ("POST", "/api/items"), ("GET", "/api/items/1"),
    ("DELETE", "/api/items/1"), ("POST", "/api/items/1/retry"),
    ("POST", "/api/items/1/pause"), ("POST", "/api/items/1/unpause"),
    ("GET", "/api/status"), ("POST", "/api/reload"),
]
JUNK_SETTINGS = settings(max_examples=40, deadline=None,
                         suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
async def client(
    db_settings: Settings, aiohttp_client: AiohttpClient, monkeypatch: pytest.MonkeyPatch
) -> Client:
    # The API on a still pipeline: no step, worker or loop moves the seeded items (or
    # queues and claims their jobs) while a test looks at them.
    monkeypatch.setattr(stages, "step_factories", dict)
    monkeypatch.setattr(stages, "loop_starters", list)
    return await aiohttp_client(build_app(db_settings))


async def call(
    client: Client, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
) -> tuple[int, Any]:
    response = await client.request(method, path, headers={**KEY, **(headers or {})}, **kwargs)
    body = await response.read()
    assert response.content_type == "application/json", body
    return response.status, orjson.loads(body)


async def seed_library(client: Client) -> dict[str, int]:
    """Two indexed shows (2 seasons x 3 episodes each) and three movies."""
    repos = client.app[keys.REPOS]
    shows = await repos.trees.upsert_show_trees(
        [show_tree(101, title="Severance"), show_tree(102, title="The Bear")])
    titles = ("Dune Part Two", "Dune", "Alien")
    movies = await repos.trees.upsert_movies(
        [movie(7 + n, title=title) for n, title in enumerate(titles)])
    return {"severance": shows[0].show_id, "bear": shows[1].show_id,
            **{title: m.item_id for title, m in zip(titles, movies, strict=True)}}


async def item_ids(client: Client, sql: str = "SELECT id FROM items ORDER BY id") -> list[int]:
    return [r["id"] for r in await client.app[keys.POOL].fetch(sql)]


async def collect_pages(
    client: Client, query: str, limit: int, after: str | None = None
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after = "" if after is None else f"&after={after}"
    for _ in range(1000):
        status, page = await call(client, "GET", f"/api/items?limit={limit}{query}{after}")
        assert status == 200, page
        assert len(page["items"]) <= limit
        found.extend(page["items"])
        if page["next"] is None:
            return found
        after = f"&after={page['next']}"
    raise AssertionError("pagination did not end")


# -- auth ----------------------------------------------------------------------------------


async def test_every_api_route_requires_the_api_key(client: Client) -> None:
    for method, path in ROUTES:
        for headers in ({}, {"X-Api-Key": "wrong"}, {"Authorization": "Bearer wrong"}):
            response = await client.request(method, path, headers=headers)
            assert response.status == 401, (method, path, headers)
            assert (await response.json())["error"]


async def test_the_key_is_accepted_in_every_form(client: Client) -> None:
    for headers, query in (({"Authorization": f"Bearer {TEST_API_KEY}"}, ""),
                           ({}, f"?apikey={TEST_API_KEY}"), (KEY, "")):
        assert (await client.get(f"/api/status{query}", headers=headers)).status == 200


# -- listing -------------------------------------------------------------------------------


async def test_pages_cover_every_item_once_in_id_order(client: Client) -> None:
    await seed_library(client)
    expected = await item_ids(client)
    assert len(expected) == 2 * 9 + 3
    for limit in (1, 4, 7, MAX_PAGE_SIZE):
        assert [i["id"] for i in await collect_pages(client, "", limit)] == expected


async def test_rows_added_while_paging_do_not_shift_pages(client: Client) -> None:
    await seed_library(client)
    status, first = await call(client, "GET", "/api/items?limit=5")
    assert status == 200
    await client.app[keys.REPOS].items.request_many([request("movie", tmdb=555)])
    rest = await collect_pages(client, "", 5, after=first["next"])
    ids = [i["id"] for i in first["items"] + rest]
    assert ids == await item_ids(client)


async def test_filters_by_kind_state_and_title(client: Client) -> None:
    await seed_library(client)
    episodes = await collect_pages(client, "&kind=episode", 5)
    assert [i["id"] for i in episodes] == await item_ids(
        client, "SELECT id FROM items WHERE kind = 'episode' ORDER BY id")
    assert {i["kind"] for i in episodes} == {"episode"}
    assert {i["show_id"] for i in episodes} == set(await item_ids(
        client, "SELECT id FROM items WHERE kind = 'show'"))

    dunes = await collect_pages(client, "&q=dUnE", 1)
    assert sorted(i["title"] for i in dunes) == ["Dune", "Dune Part Two"]
    assert await collect_pages(client, "&q=dune&kind=show", 2) == []
    assert await collect_pages(client, "&q=100%25", 2) == []  # LIKE wildcards are literal

    # A state the pipeline's loops never move an item out of by themselves.
    await client.app[keys.POOL].execute("UPDATE items SET state = 'completed' WHERE kind = 'movie'")
    movies = await collect_pages(client, "&kind=movie&state=completed", 2)
    assert len(movies) == 3
    assert {m["state"] for m in movies} == {"completed"}
    assert await collect_pages(client, "&kind=show&state=completed", 2) == []


async def test_state_pages_follow_time_in_state_across_ties(client: Client) -> None:
    await seed_library(client)
    pool = client.app[keys.POOL]
    # Every episode failed, at one of three times: ties inside a page and across pages.
    await pool.execute(
        "UPDATE items SET state = 'failed', last_error = 'no releases found',"
        " state_changed_at = now() - (id % 3) * interval '1 minute' WHERE kind = 'episode'")
    expected = await item_ids(client, "SELECT id FROM items WHERE state = 'failed'"
                                      " ORDER BY state_changed_at, id")
    assert len(expected) == 12
    for limit in (1, 2, 5):
        found = await collect_pages(client, "&state=failed", limit)
        assert [i["id"] for i in found] == expected
        assert {i["last_error"] for i in found} == {"no releases found"}


async def test_a_cursor_from_an_id_page_is_refused_by_a_state_page(client: Client) -> None:
    await seed_library(client)
    _status, page = await call(client, "GET", "/api/items?limit=2")
    status, body = await call(client, "GET", f"/api/items?state=indexed&after={page['next']}")
    assert status == 400
    assert body["field"] == "after"


BAD_LIST_PARAMETERS = [
    ("kind=film", "kind"), ("state=done", "state"), ("limit=0", "limit"),
    (f"limit={MAX_PAGE_SIZE + 1}", "limit"), ("limit=-1", "limit"), ("limit=ten", "limit"),
    ("after=abc", "after"), ("after=1.2.3", "after"), ("after=-5", "after"),
    ("after=99999999999999999999999.1", "after"), ("q=" + "x" * 201, "q"), ("q=a%00b", "q"),
]


async def test_bad_list_parameters_are_400_naming_the_parameter(client: Client) -> None:
    for query, field in BAD_LIST_PARAMETERS:
        status, body = await call(client, "GET", f"/api/items?{query}")
        assert (status, body["field"]) == (400, field), query
        assert body["error"]


_PARAM_NAMES = st.sampled_from(["kind", "state", "q", "after", "limit", "other"])


@JUNK_SETTINGS
@given(params=st.lists(st.tuples(_PARAM_NAMES, st.text(max_size=30)), max_size=5))
async def test_junk_query_parameters_only_ever_get_200_or_400(
    client: Client, params: list[tuple[str, str]]
) -> None:
    query = "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in params)
    response = await client.get(f"/api/items?{query}", headers=KEY)
    assert response.status in (200, 400), await response.text()
    body = await response.json()
    if response.status == 400:
        assert body["field"] in {"kind", "state", "q", "after", "limit"}


@JUNK_SETTINGS
@given(segment=st.text(min_size=1, max_size=25),
       action=st.sampled_from(["", "/retry", "/pause", "/unpause"]))
async def test_junk_item_ids_only_ever_get_4xx(
    client: Client, segment: str, action: str
) -> None:
    path = f"/api/items/{quote(segment, safe='')}{action}"
    method = "GET" if not action else "POST"
    response = await client.request(method, path, headers=KEY)
    assert 400 <= response.status < 500, (path, await response.text())


# -- one item ------------------------------------------------------------------------------


async def test_an_item_is_its_tree_with_states_and_releases(client: Client) -> None:
    ids = await seed_library(client)
    repos = client.app[keys.REPOS]
    first_episode = (await item_ids(
        client, f"SELECT id FROM items WHERE show_id = {ids['severance']} AND kind = 'episode'"
                " ORDER BY season_number, episode_number"))[0]
    await repos.releases.insert_many([
        ScrapedRelease(first_episode, Infohash("a" * 40), "Severance.S01E01.1080p", 80,
                       "torrentio", size_bytes=1_000, seeders=7, cached_on=("realdebrid",)),
    ])
    await repos.items.fail_many([first_episode], "debrid: not cached anywhere")
    status, tree = await call(client, "GET", f"/api/items/{ids['severance']}")
    assert status == 200
    assert tree["kind"] == "show"
    assert tree["title"] == "Severance"
    assert tree["ids"] == {"tmdb": 101, "tvdb": 100_101, "imdb": "tt0000101"}
    assert [s["season_number"] for s in tree["seasons"]] == [1, 2]
    assert [[e["episode_number"] for e in s["episodes"]] for s in tree["seasons"]] == [
        [1, 2, 3], [1, 2, 3]]
    episode = tree["seasons"][0]["episodes"][0]
    assert episode["id"] == first_episode
    assert episode["state"] == "failed"
    assert episode["last_error"] == "debrid: not cached anywhere"
    assert episode["releases"][0]["infohash"] == "a" * 40
    assert episode["releases"][0]["cached_on"] == ["realdebrid"]
    assert sum(tree["episode_states"].values()) == 6
    assert tree["episode_states"]["failed"] == 1

    season_id = tree["seasons"][1]["id"]
    status, season = await call(client, "GET", f"/api/items/{season_id}")
    assert status == 200
    assert [e["episode_number"] for e in season["episodes"]] == [1, 2, 3]

    status, one = await call(client, "GET", f"/api/items/{first_episode}")
    assert status == 200
    assert "seasons" not in one
    assert one["state"] == "failed"


BAD_ITEM_IDS = [
    ("999999", 404), ("abc", 400), ("-1", 400), ("1.5", 400), ("99999999999999999999", 400),
    ("%C2%B2", 400),
]


async def test_missing_and_malformed_item_ids(client: Client) -> None:
    for segment, status in BAD_ITEM_IDS:
        for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/retry"),
                               ("POST", "/pause"), ("POST", "/unpause")):
            got, body = await call(client, method, f"/api/items/{segment}{suffix}")
            assert got == status, (segment, method, suffix, body)
            assert body["field"] == "id"


# -- retry, pause, delete ------------------------------------------------------------------


async def test_retry_goes_back_and_queues_the_job_of_that_state(client: Client) -> None:
    repos = client.app[keys.REPOS]
    pool = client.app[keys.POOL]
    movies = await repos.trees.upsert_movies([movie(20 + n) for n in range(len(JOB_FOR_STATE))])
    assert len(JOB_FOR_STATE) == 5
    for result, (failed_in, job) in zip(movies, JOB_FOR_STATE.items(), strict=True):
        movie_id = result.item_id
        await pool.execute("UPDATE items SET state = $2 WHERE id = $1", movie_id, failed_in)
        await repos.items.fail_many([movie_id], "boom")
        # A job that used up its attempts stays behind as 'failed': the retry queues anew.
        await pool.execute("INSERT INTO jobs (kind, item_id, dedupe_key, status, attempts,"
                           " run_at) VALUES ($1, $2, $3, 'failed', 5, now())", job, movie_id,
                           f"{job}:{movie_id}")
        status, body = await call(client, "POST", f"/api/items/{movie_id}/retry")
        assert status == 200, body
        assert body == {"id": movie_id, "state": failed_in,
                        "retried": [{"id": movie_id, "state": failed_in, "job": job}]}
        # The new job may already be claimed by a worker; it is there either way.
        jobs = await pool.fetch("SELECT status FROM jobs WHERE item_id = $1 AND kind = $2"
                                " ORDER BY id", movie_id, job)
        statuses = [r["status"] for r in jobs]
        assert statuses in (["failed", "queued"], ["failed", "running"])
        row = await pool.fetchrow("SELECT state, last_error FROM items WHERE id = $1", movie_id)
        assert (row["state"], row["last_error"]) == (failed_in, None)


async def test_retrying_a_show_retries_its_failed_episodes_and_rederives_its_state(
    client: Client,
) -> None:
    ids = await seed_library(client)
    show = ids["severance"]
    pool = client.app[keys.POOL]
    repos = client.app[keys.REPOS]
    episodes = await item_ids(
        client, f"SELECT id FROM items WHERE show_id = {show} AND kind = 'episode' ORDER BY id")
    await pool.execute("UPDATE items SET state = 'indexed' WHERE id = ANY($1::bigint[])",
                       episodes)
    await repos.items.fail_many(episodes[:2], "scrape failed")
    await repos.items.refresh_parent_states([show])
    status, body = await call(client, "POST", f"/api/items/{show}/retry")
    assert status == 200, body
    assert body["retried"] == [{"id": e, "state": "indexed", "job": "scrape"}
                               for e in episodes[:2]]
    assert body["state"] == "indexed"
    queued = await pool.fetch("SELECT item_id FROM jobs WHERE kind = 'scrape'"
                              " AND item_id = ANY($1::bigint[]) ORDER BY item_id", episodes)
    assert [r["item_id"] for r in queued] == episodes[:2]
    status, again = await call(client, "POST", f"/api/items/{show}/retry")
    assert status == 409
    assert again["field"] == "id"


async def test_retrying_a_requested_show_that_failed_to_index_queues_its_index(
    client: Client,
) -> None:
    repos = client.app[keys.REPOS]
    outcome = (await repos.items.request_many([request("show", tmdb=404)]))[0]
    await repos.items.fail_many([outcome.item_id], "tmdb: not found")
    status, body = await call(client, "POST", f"/api/items/{outcome.item_id}/retry")
    assert status == 200
    assert body["retried"] == [{"id": outcome.item_id, "state": "requested", "job": "index"}]


async def test_pause_holds_the_subtree_and_its_jobs_unpause_releases_them(
    client: Client,
) -> None:
    ids = await seed_library(client)
    show = ids["bear"]
    pool = client.app[keys.POOL]
    episodes = await item_ids(
        client, f"SELECT id FROM items WHERE show_id = {show} AND kind = 'episode' ORDER BY id")
    # Completed: no loop of the pipeline moves these while the test looks.
    await pool.execute("UPDATE items SET state = 'completed' WHERE show_id = $1", show)
    await client.app[keys.REPOS].items.refresh_parent_states([show])
    before = {r["id"]: r["state"] for r in await pool.fetch(
        "SELECT id, state FROM items WHERE id = $1 OR show_id = $1", show)}
    later = datetime.now(UTC) + timedelta(hours=1)
    await client.app[keys.REPOS].jobs.enqueue_many(
        [NewJob(JobKind.SCRAPE, item_id=episodes[0], run_at=later)])

    status, body = await call(client, "POST", f"/api/items/{show}/pause")
    assert status == 200, body
    assert body == {"id": show, "state": "paused", "paused": 9}
    held = await pool.fetchval("SELECT run_at = 'infinity' FROM jobs WHERE item_id = $1",
                               episodes[0])
    assert held is True
    status, again = await call(client, "POST", f"/api/items/{show}/pause")
    assert status == 409
    assert "paused" in again["error"]

    status, body = await call(client, "POST", f"/api/items/{show}/unpause")
    assert status == 200, body
    assert body["resumed"] == 9
    after = {r["id"]: r["state"] for r in await pool.fetch(
        "SELECT id, state FROM items WHERE id = $1 OR show_id = $1", show)}
    assert after == before
    # Due now again; a worker may have claimed it since (or, failing, set a later time).
    released = await pool.fetchval("SELECT run_at < 'infinity' FROM jobs WHERE item_id = $1",
                                   episodes[0])
    assert released is not False
    status, _ = await call(client, "POST", f"/api/items/{show}/unpause")
    assert status == 409


async def test_pausing_one_episode_rederives_its_show(client: Client) -> None:
    ids = await seed_library(client)
    show = ids["bear"]
    pool = client.app[keys.POOL]
    await pool.execute("UPDATE items SET state = 'completed' WHERE show_id = $1", show)
    episodes = await item_ids(
        client, f"SELECT id FROM items WHERE show_id = {show} AND kind = 'episode' ORDER BY id")
    status, body = await call(client, "POST", f"/api/items/{episodes[0]}/pause")
    assert (status, body["state"], body["paused"]) == (200, "paused", 1)
    assert await pool.fetchval("SELECT state FROM items WHERE id = $1", show) == (
        "partially_completed")


async def test_delete_removes_the_subtree(client: Client) -> None:
    ids = await seed_library(client)
    show = ids["severance"]
    status, body = await call(client, "DELETE", f"/api/items/{show}")
    assert (status, body) == (200, {"id": show, "deleted": 9})
    assert await client.app[keys.POOL].fetchval(
        "SELECT count(*) FROM items WHERE id = $1 OR show_id = $1", show) == 0
    for method in ("GET", "DELETE"):
        status, body = await call(client, method, f"/api/items/{show}")
        assert (status, body["field"]) == (404, "id")


# -- requests ------------------------------------------------------------------------------


async def test_a_request_becomes_a_requested_item_once(client: Client) -> None:
    body = {"kind": "show", "tmdb_id": 95396, "seasons": [2, 1, 1], "title": "Severance"}
    status, first = await call(client, "POST", "/api/items", json=body)
    assert status == 201, first
    assert first["created"] is True
    status, second = await call(client, "POST", "/api/items", json=body)
    assert (status, second) == (200, {"id": first["id"], "created": False})
    status, item = await call(client, "GET", f"/api/items/{first['id']}")
    assert status == 200
    assert (item["kind"], item["state"], item["ids"]) == ("show", "requested", {"tmdb": 95396})
    stored = await client.app[keys.REPOS].items.requests_for([first["id"]])
    assert stored[0].source == "api"
    assert stored[0].requested_seasons == (1, 2)
    listed = await collect_pages(client, "&state=requested", 10)
    assert [i["id"] for i in listed] == [first["id"]]


async def test_a_list_of_requests_answers_each(client: Client) -> None:
    status, body = await call(client, "POST", "/api/items", json=[
        {"kind": "movie", "imdb_id": "tt1160419"}, {"kind": "movie", "tmdb_id": "438631"},
        {"kind": "movie", "imdb_id": "tt1160419"},
    ])
    assert status == 200, body
    assert [i["created"] for i in body["items"][:2]] == [True, True]
    assert body["items"][0]["id"] != body["items"][1]["id"]
    assert body["items"][0]["id"] == body["items"][2]["id"]


async def test_a_hundred_concurrent_identical_requests_make_one_item(client: Client) -> None:
    body = {"kind": "movie", "tmdb_id": 693134}
    results = await asyncio.gather(*(call(client, "POST", "/api/items", json=body)
                                     for _ in range(100)))
    assert {status for status, _ in results} <= {200, 201}
    assert len({r["id"] for _, r in results}) == 1
    assert sum(r["created"] for _, r in results) == 1
    assert await client.app[keys.POOL].fetchval("SELECT count(*) FROM items") == 1


BAD_BODIES = [
    (b"", 400, None),
    (b"{not json", 400, None),
    (b'"a string"', 422, None),
    (b"{}", 422, "kind"),
    (b'{"kind": "episode", "tmdb_id": 1}', 422, "kind"),
    (b'{"kind": "movie"}', 422, "tmdb_id"),
    (b'{"kind": "movie", "tmdb_id": 0}', 422, "tmdb_id"),
    (b'{"kind": "movie", "tmdb_id": -4}', 422, "tmdb_id"),
    (b'{"kind": "movie", "tmdb_id": true}', 422, "tmdb_id"),
    (b'{"kind": "movie", "tmdb_id": 99999999999}', 422, "tmdb_id"),
    (b'{"kind": "movie", "tmdb_id": 123456789012345678901234567890}', 422, "tmdb_id"),
    (b'{"kind": "movie", "imdb_id": "1160419"}', 422, "imdb_id"),
    (b'{"kind": "movie", "tmdb_id": 5, "seasons": [1]}', 422, "seasons"),
    (b'{"kind": "show", "tmdb_id": 5, "seasons": ["1"]}', 422, "seasons[0]"),
    (b'{"kind": "show", "tmdb_id": 5, "seasons": [-1]}', 422, "seasons[0]"),
    (b'{"kind": "show", "tmdb_id": 5, "year": "soon"}', 422, "year"),
    (b'{"kind": "show", "tmdb_id": 5, "title": "a\\u0000b"}', 400, None),
    (b'{"kind": "show", "tmdb_id": 5, "tmdbid": 6}', 422, "tmdbid"),
    (b'[{"kind": "show", "tmdb_id": 5}, {"kind": "show"}]', 422, "[1].tmdb_id"),
    (b'[{"kind": "show", "tmdb_id": 5}, 7]', 422, "[1]"),
    (orjson.dumps([{"kind": "movie", "tmdb_id": n + 1} for n in range(501)]), 422, None),
]


async def test_bad_request_bodies_are_4xx_naming_the_field(client: Client) -> None:
    for body, status, field in BAD_BODIES:
        got, answer = await call(client, "POST", "/api/items", data=body,
                                 headers={"Content-Type": "application/json"})
        assert (got, answer["field"]) == (status, field), (body[:80], answer)
        assert answer["error"]
    assert await client.app[keys.POOL].fetchval("SELECT count(*) FROM items") == 0


async def test_a_body_over_the_limit_is_413(client: Client) -> None:
    limit = client.app[keys.SETTINGS].current.server.max_body_bytes
    body = b'{"kind": "movie", "title": "' + b"x" * limit + b'", "tmdb_id": 1}'
    status, answer = await call(client, "POST", "/api/items", data=io.BytesIO(body))
    assert status == 413
    assert "limit" in answer["error"]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["kind", "tmdb_id", "tvdb_id", "imdb_id", "seasons", "title", "year",
                         "requester", "x"]), inner, max_size=5),
    max_leaves=10,
)


@JUNK_SETTINGS
@given(body=st.one_of(_JSON.map(orjson.dumps), st.binary(max_size=64)))
async def test_junk_bodies_only_ever_get_4xx_or_a_request_answer(
    client: Client, body: bytes
) -> None:
    response = await client.post("/api/items", data=body, headers=KEY)
    assert response.status in (200, 201) or 400 <= response.status < 500, await response.text()
    await response.read()


# -- status and reload ---------------------------------------------------------------------


async def test_status_reports_items_jobs_checks_and_upstreams(client: Client) -> None:
    pool = client.app[keys.POOL]
    repos = client.app[keys.REPOS]
    # States the pipeline's loops leave alone while the test looks (no upstream answers).
    indexed = await repos.trees.upsert_movies([movie(9, title="Alien"), movie(10)])
    await repos.items.fail_many([indexed[0].item_id], "boom")
    await pool.execute("UPDATE items SET state = 'completed' WHERE id = $1", indexed[1].item_id)
    waiting = (await repos.items.request_many([request("movie", tmdb=31)]))[0].item_id
    await pool.execute("UPDATE items SET state_changed_at = now() - interval '2 hours'"
                       " WHERE id = $1", waiting)
    await repos.jobs.enqueue_many([NewJob(JobKind.INDEX, item_id=waiting)])
    status, body = await call(client, "GET", "/api/status")
    assert status == 200
    assert body["version"] == __version__
    assert body["uptime_s"] >= 0
    assert body["items"]["by_state"] == {"requested": 1, "completed": 1, "failed": 1}
    assert body["items"]["by_kind"] == {"movie": {"requested": 1, "completed": 1, "failed": 1}}
    assert body["items"]["total"] == 3
    oldest = body["oldest"]["requested"]
    assert (oldest["id"], oldest["kind"]) == (waiting, "movie")
    assert 7100 <= oldest["age_s"] <= 7300
    assert set(body["oldest"]) == {"requested"}
    index = body["jobs"]["index"]
    assert index["due"] + index["scheduled"] + index["running"] >= 1
    assert set(body["jobs"]) == {k.value for k in JobKind}
    assert all(isinstance(body["checks"][k], int)
               for k in ("due_now", "due_next_hour", "due_next_day"))
    assert body["checks"]["next_at"] is not None
    assert body["inbox"] == {"waiting": 0, "processing": 0, "oldest": None}
    assert body["database"]["size_bytes"] > 0
    assert body["database"]["embedded"] is False
    tmdb = body["upstreams"]["tmdb"]
    assert tmdb["healthy"] is True
    assert tmdb["breaker"] == "closed"
    assert {"rate_limited", "retries", "requests", "server_errors", "waiters"} <= set(tmdb)


def _write_config(path: Path, slow_s: float, db_dsn: str, tmp_path: Path, extra: str = "") -> None:
    path.write_text(
        f'[server]\napi_key = "{TEST_API_KEY}"\nport = 0\nslow_request_s = {slow_s}\n{extra}'
        f'[database]\nurl = "{db_dsn}"\n'
        f'[library]\nmount_dir = "{tmp_path / "mount"}"\nroot = "{tmp_path / "library"}"\n',
        encoding="utf-8",
    )


@pytest.fixture
def _root_log_level() -> Iterator[None]:
    """A reload sets the root logger's level from the file; put it back for other tests."""
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)


@pytest.mark.usefixtures("_root_log_level")
async def test_reload_applies_a_good_file_and_keeps_the_old_settings_on_a_bad_one(
    aiohttp_client: AiohttpClient, db_dsn: str, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    _write_config(path, 2.0, db_dsn, tmp_path)
    live = LiveSettings(load_settings(path), path)
    client = await aiohttp_client(build_app(live))

    _write_config(path, 3.5, db_dsn, tmp_path)
    status, body = await call(client, "POST", "/api/reload")
    assert status == 200, body
    assert body["generation"] == 1
    assert live.current.server.slow_request_s == 3.5

    _write_config(path, -1, db_dsn, tmp_path)
    status, body = await call(client, "POST", "/api/reload")
    assert status == 400
    assert body["key"] == "server.slow_request_s"
    assert body["field"] == "server.slow_request_s"
    assert body["file"] == str(path)
    assert body["reason"]
    assert live.current.server.slow_request_s == 3.5
    assert live.generation == 1

    path.write_text("[server\nport = ", encoding="utf-8")
    status, body = await call(client, "POST", "/api/reload")
    assert status == 400
    assert body["file"] == str(path)
    assert (await client.get("/api/status", headers=KEY)).status == 200


async def test_reload_without_a_config_file_is_400(client: Client) -> None:
    status, body = await call(client, "POST", "/api/reload")
    assert status == 400
    assert "config file" in body["reason"]


# -- secrets -------------------------------------------------------------------------------


async def test_no_response_carries_a_secret(
    aiohttp_client: AiohttpClient, make_settings: Callable[..., Settings], db_dsn: str
) -> None:
    secrets = {
        "tmdb": "tmdbsecret0123456789", "realdebrid": "RDSECRETKEY0987654321",
        "segment": "realdebrid=ADDONSECRET5555",
    }
    settings = make_settings(database={"url": db_dsn}, upstreams={
        "tmdb": {"api_key": secrets["tmdb"]},
        "realdebrid": {"enabled": True, "api_key": secrets["realdebrid"]},
        "torrentio": {"base_url": f"http://127.0.0.1:7000/{secrets['segment']}"},
    })
    client = await aiohttp_client(build_app(settings))
    ids = await seed_library(client)
    await client.app[keys.REPOS].items.fail_many(
        [ids["Dune"]], f"realdebrid refused key {secrets['realdebrid']}")
    bodies: list[str] = []
    for method, path in [*ROUTES, ("GET", "/metrics"), ("GET", "/metrics?format=prometheus"),
                         ("GET", f"/api/items/{ids['Dune']}"), ("GET", "/api/items?state=failed"),
                         ("POST", f"/api/items/{ids['Dune']}/retry"), ("GET", "/health"),
                         ("GET", "/nowhere")]:
        for headers in (KEY, {}):
            response = await client.request(method, path, headers=headers)
            bodies.append(f"{method} {path} {response.status}: {await response.text()}")
    _status, detail = await call(client, "GET", "/api/items?state=failed")
    assert detail["items"] == []  # the retry above moved it on
    text = "\n".join(bodies)
    assert "***" in text  # the failed item's reason, redacted
    for name, secret in [*secrets.items(), ("api key", TEST_API_KEY)]:
        assert secret not in text, name
    assert MediaKind.MOVIE in text

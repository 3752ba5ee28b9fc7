"""``riven-async items``: the same answers through the running daemon's API and, with the
daemon down, straight from the database."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from riven_async.core.clock import SystemClock
from riven_async.db.repos import Repos
from riven_async.domain.queue import new_boot_id
from riven_async.domain.states import State
from tests.cli.conftest import RunCli, RunningDaemon
from tests.db.factories import movie, show_tree

Mode = tuple[str, Path]


@pytest.fixture(params=["daemon_down", "daemon_up"])
def mode(request: pytest.FixtureRequest) -> Mode:
    """The config of a stopped daemon, or of one serving its API, on the test's database."""
    if request.param == "daemon_down":
        config: Path = request.getfixturevalue("stopped_daemon_config")
        return request.param, config
    daemon: RunningDaemon = request.getfixturevalue("running_daemon")
    return request.param, daemon.config


@pytest.fixture
def repos(db_pool: asyncpg.Pool) -> Repos:
    return Repos.on(db_pool, SystemClock(), new_boot_id())


async def seed(repos: Repos) -> dict[str, int]:
    shows = await repos.trees.upsert_show_trees([show_tree(101, title="Severance")])
    movies = await repos.trees.upsert_movies([movie(7, title="Dune"), movie(8, title="Alien")])
    return {"show": shows[0].show_id, "dune": movies[0].item_id, "alien": movies[1].item_id}


async def test_items_add_twice_makes_one_item(
    run_cli: RunCli, mode: Mode, db_pool: asyncpg.Pool
) -> None:
    name, config = mode
    first = await run_cli(config, "items", "add", "--tmdb", "693134", "--kind", "movie",
                          "--json")
    assert first.code == 0, first.err
    second = await run_cli(config, "items", "add", "--imdb", "tt15239678", "--tmdb", "693134",
                           "--kind", "movie")
    assert second.code == 0, second.err
    assert first.json()["created"] is True
    assert "already there" in second.out
    assert str(first.json()["id"]) in second.out
    pool = db_pool
    assert await pool.fetchval("SELECT count(*) FROM items") == 1
    sources = await pool.fetch("SELECT source, requester FROM requests ORDER BY id")
    # Through the daemon the API records the request; without it the CLI does.
    expected = ("api", "cli") if name == "daemon_up" else ("cli", None)
    assert [(r["source"], r["requester"]) for r in sources] == [expected, expected]
    jobs = await pool.fetchval("SELECT count(*) FROM jobs WHERE kind = 'index'")
    assert jobs <= 1


async def test_list_filters_pages_and_json(
    run_cli: RunCli, mode: Mode, repos: Repos, db_pool: asyncpg.Pool
) -> None:
    _, config = mode
    ids = await seed(repos)
    total = await db_pool.fetchval("SELECT count(*) FROM items")
    listed = await run_cli(config, "items", "list", "--all", "--limit", "3", "--json")
    assert listed.code == 0, listed.err
    assert len(listed.json()["items"]) == total
    assert listed.json()["next"] is None
    movies = (await run_cli(config, "items", "list", "--kind", "movie", "--json")).json()
    assert sorted(i["id"] for i in movies["items"]) == sorted([ids["dune"], ids["alien"]])
    found = (await run_cli(config, "items", "list", "--search", "dun", "--json")).json()
    assert [i["id"] for i in found["items"]] == [ids["dune"]]
    page = await run_cli(config, "items", "list", "--limit", "2")
    assert page.code == 0
    assert "--after" in page.err
    text = await run_cli(config, "items", "list", "--kind", "movie")
    assert "Dune" in text.out
    assert "Alien" in text.out


async def test_show_prints_the_tree(
    run_cli: RunCli, mode: Mode, repos: Repos
) -> None:
    _, config = mode
    ids = await seed(repos)
    document = (await run_cli(config, "items", "show", str(ids["show"]), "--json")).json()
    assert document["id"] == ids["show"]
    assert document["seasons"]
    text = await run_cli(config, "items", "show", str(ids["show"]))
    assert text.code == 0
    assert "Severance" in text.out
    assert "Season 1" in text.out
    assert "S01E01" in text.out
    missing = await run_cli(config, "items", "show", "999999")
    assert missing.code == 1
    assert "no item 999999" in missing.err


async def test_retry_pause_unpause_and_remove(
    run_cli: RunCli, mode: Mode, repos: Repos
) -> None:
    _, config = mode
    ids = await seed(repos)
    dune = ids["dune"]
    await repos.items.fail_many([dune], "scrape: boom")
    failed = await run_cli(config, "items", "list", "--state", "failed")
    assert "scrape: boom" in failed.out

    retried = await run_cli(config, "items", "retry", str(dune), "--json")
    assert retried.code == 0, retried.err
    assert retried.json()["state"] != State.FAILED
    item = await repos.catalog.get(dune)
    assert item is not None
    assert item.state is not State.FAILED
    again = await run_cli(config, "items", "retry", str(dune))
    assert again.code == 1  # nothing failed any more

    paused = await run_cli(config, "items", "pause", str(ids["alien"]))
    assert paused.code == 0, paused.err
    assert "paused" in paused.out
    assert (await repos.catalog.get(ids["alien"])) is not None
    assert (await run_cli(config, "items", "pause", str(ids["alien"]))).code == 1
    resumed = await run_cli(config, "items", "unpause", str(ids["alien"]), "--json")
    assert resumed.code == 0
    assert resumed.json()["state"] != State.PAUSED

    refused = await run_cli(config, "items", "remove", str(ids["show"]))
    assert refused.code == 1
    assert "--yes" in refused.err
    assert await repos.catalog.get(ids["show"]) is not None
    removed = await run_cli(config, "items", "remove", str(ids["show"]), "--yes")
    assert removed.code == 0, removed.err
    assert await repos.catalog.get(ids["show"]) is None
    assert (await run_cli(config, "items", "remove", str(ids["show"]), "--yes")).code == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--tmdb", "1396"), "--kind"),
        (("--tmdb", "1", "--kind", "movie", "--seasons", "1"), "for shows"),
        ((), "at least one id"),
    ],
)
async def test_add_says_what_is_missing(
    run_cli: RunCli, stopped_daemon_config: Path, argv: tuple[str, ...], message: str
) -> None:
    result = await run_cli(stopped_daemon_config, "items", "add", *argv)
    assert result.code == 1
    assert message in result.err


async def test_add_infers_a_show_from_a_tvdb_id_and_keeps_seasons(
    run_cli: RunCli, stopped_daemon_config: Path, repos: Repos
) -> None:
    result = await run_cli(stopped_daemon_config, "items", "add", "--tvdb", "81189",
                           "--seasons", "2,1", "--json")
    assert result.code == 0, result.err
    stored = await repos.items.requests_for([result.json()["id"]])
    assert [r.requested_seasons for r in stored] == [(1, 2)]

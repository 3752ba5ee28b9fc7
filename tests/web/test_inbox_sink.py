"""The inbox writer: group commit, one effect per delivery, 503 while the database is down."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from riven_async import keys
from riven_async.app import build_app
from riven_async.config import Settings
from riven_async.db.executor import CountingExecutor
from riven_async.db.inbox import InboxRepo
from riven_async.domain.intents import (
    EpisodeNumber,
    ExternalIds,
    Ignored,
    Intent,
    RecheckMovie,
    RecheckShow,
    RemoveMedia,
    RequestMedia,
    ServerRef,
    TestEvent,
    delivery_key,
    intent_from_dict,
    intent_to_dict,
)
from riven_async.errors import DatabaseUnavailable
from riven_async.web.inbox_sink import INBOX_SINK, GroupCommitSink, WriterConnection, intents_json
from tests.conftest import TEST_API_KEY
from tests.payloads import load_json

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
AUTH = {"X-Api-Key": TEST_API_KEY, "Content-Type": "application/json"}


class GatedExecutor(CountingExecutor):
    """The pool, except that the first statement waits until the test opens the gate."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool)
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()
        self.batches: list[int] = []

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[Any]:  # noqa: ASYNC109
        self.batches.append(len(args[0]))
        if not self.entered.is_set():
            self.entered.set()
            await self.gate.wait()
        return await super().fetch(query, *args, timeout=timeout)


def recheck(n: int) -> list[Intent]:
    return [RecheckShow(ExternalIds(tvdb=n), f"Show {n}", "test", "sonarr")]


async def inbox_rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT source, event, delivery_key, intents FROM inbox ORDER BY id")


async def wait_queued(sink: GroupCommitSink, n: int) -> None:
    for _ in range(1000):
        if sink.queued >= n:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"only {sink.queued} deliveries queued, expected {n}")


async def test_deliveries_arriving_during_a_write_are_committed_in_one_statement(
    db_pool: asyncpg.Pool,
) -> None:
    gated = GatedExecutor(db_pool)
    sink = GroupCommitSink(linger_s=0.0)
    sink.start(InboxRepo(gated))
    try:
        first = asyncio.create_task(sink.accept("sonarr", "Grab", "k0", b"{}", recheck(0)))
        await gated.entered.wait()
        # The first delivery of an idle period went out alone, without waiting for company.
        assert gated.batches == [1]
        rest = [asyncio.create_task(sink.accept("sonarr", "Grab", f"k{n}", b"{}", recheck(n)))
                for n in range(1, 50)]
        await wait_queued(sink, 49)
        assert not any(task.done() for task in [first, *rest])
        gated.gate.set()
        await asyncio.gather(first, *rest)
    finally:
        await sink.close()
    assert gated.batches == [1, 49]
    assert sink.stats.statements == 2
    rows = await inbox_rows(db_pool)
    assert sorted(r["delivery_key"] for r in rows) == sorted(f"k{n}" for n in range(50))
    assert rows[0]["intents"][0]["type"] == "RecheckShow"


async def test_the_first_delivery_after_idle_does_not_wait_for_the_linger(
    db_pool: asyncpg.Pool,
) -> None:
    # A linger of an hour: a write that waited for it would hang the test.
    sink = GroupCommitSink(linger_s=3600.0)
    sink.start(InboxRepo(db_pool))
    try:
        for n in range(3):
            await asyncio.wait_for(sink.accept("sonarr", "Grab", f"k{n}", b"{}", recheck(n)),
                                   timeout=20)
    finally:
        await sink.close()
    assert sink.stats.statements == 3
    assert len(await inbox_rows(db_pool)) == 3


async def test_a_bad_row_fails_alone_and_its_batch_mates_are_stored(
    db_pool: asyncpg.Pool,
) -> None:
    gated = GatedExecutor(db_pool)
    sink = GroupCommitSink(linger_s=0.0)
    sink.start(InboxRepo(gated))
    try:
        first = asyncio.create_task(sink.accept("sonarr", "Grab", "k0", b"{}", recheck(0)))
        await gated.entered.wait()
        good = asyncio.create_task(sink.accept("sonarr", "Grab", "k1", b"{}", recheck(1)))
        bad = asyncio.create_task(sink.accept("sonarr", "Grab", "k2", b"{not json", recheck(2)))
        await wait_queued(sink, 2)
        gated.gate.set()
        await asyncio.gather(first, good)
        with pytest.raises(asyncpg.PostgresError):
            await bad
    finally:
        await sink.close()
    assert sorted(r["delivery_key"] for r in await inbox_rows(db_pool)) == ["k0", "k1"]
    assert sink.stats.failed == 1


async def test_deliveries_with_nothing_to_do_are_not_stored(db_pool: asyncpg.Pool) -> None:
    sink = GroupCommitSink()
    sink.start(InboxRepo(db_pool))
    try:
        await sink.accept("sonarr", "Test", "k0", b"{}", [TestEvent("sonarr")])
        await sink.accept("plex", "media.play", "k1", b"{}", [Ignored("not a new item")])
    finally:
        await sink.close()
    assert await inbox_rows(db_pool) == []
    assert sink.stats.statements == 0


async def test_a_closed_writer_answers_unavailable(db_pool: asyncpg.Pool) -> None:
    sink = GroupCommitSink()
    sink.start(InboxRepo(db_pool))
    await sink.close()
    with pytest.raises(DatabaseUnavailable):
        await sink.accept("sonarr", "Grab", "k0", b"{}", recheck(0))


def show_update(tvdb: int, title: str = "Severance") -> bytes:
    return orjson.dumps({"tvdb_id": tvdb, "title": title})


async def test_concurrent_webhooks_share_statements_and_every_2xx_has_a_row(
    aiohttp_client: AiohttpClient, db_settings: Settings
) -> None:
    client = await aiohttp_client(build_app(db_settings))
    sink = client.app[INBOX_SINK]
    bodies = [show_update(1000 + n) for n in range(40)]
    responses = await asyncio.gather(*(client.post("/webhook/show-update", data=body,
                                                   headers=AUTH) for body in bodies))
    assert [r.status for r in responses] == [202] * 40
    keys_answered = {(await r.json())["delivery"] for r in responses}
    rows = await inbox_rows(client.app[keys.POOL])
    assert {r["delivery_key"] for r in rows} == keys_answered
    assert len(rows) == 40
    assert sink.stats.statements < 40


async def test_a_retried_delivery_is_stored_once(
    aiohttp_client: AiohttpClient, db_settings: Settings
) -> None:
    client = await aiohttp_client(build_app(db_settings))
    body = orjson.dumps(load_json("sonarr_grab.json"))
    first = await asyncio.gather(*(client.post("/webhook/sonarr", data=body, headers=AUTH)
                                   for _ in range(5)))
    again = await client.post("/webhook/sonarr", data=body, headers=AUTH)
    assert [r.status for r in [*first, again]] == [202] * 6
    rows = await inbox_rows(client.app[keys.POOL])
    assert len(rows) == 1
    assert rows[0]["delivery_key"] == (await again.json())["delivery"]
    assert client.app[INBOX_SINK].stats.duplicates >= 1


async def test_webhooks_answer_503_while_the_database_is_down_and_lose_nothing(
    aiohttp_client: AiohttpClient, make_settings: Callable[..., Settings]
) -> None:
    client = await aiohttp_client(build_app(make_settings()))
    before = await client.post("/webhook/show-update", data=show_update(1), headers=AUTH)
    assert before.status == 202
    embedded = client.app[keys.EMBEDDED_PG]
    await embedded.stop()
    try:
        down = await client.post("/webhook/show-update", data=show_update(2), headers=AUTH)
        assert down.status == 503
        assert int(down.headers["Retry-After"]) > 0
        body = await down.json()
        assert "unavailable" in body["error"]
        assert "field" in body
        # Deliveries with nothing to store are still answered: senders keep the hook.
        test_body = orjson.dumps(load_json("sonarr_test.json"))
        assert (await client.post("/webhook/sonarr", data=test_body, headers=AUTH)).status == 200
    finally:
        await embedded.start()
    after = await client.post("/webhook/show-update", data=show_update(3), headers=AUTH)
    assert after.status == 202, await after.text()
    rows = await inbox_rows(client.app[keys.POOL])
    stored = {r["delivery_key"] for r in rows}
    assert stored == {delivery_key("show_update", orjson.dumps({"title": "Severance",
                                                                "tvdb_id": n}))
                      for n in (1, 3)}


async def test_metrics_carry_the_webhooks_section(
    aiohttp_client: AiohttpClient, db_settings: Settings
) -> None:
    client = await aiohttp_client(build_app(db_settings))
    assert (await client.post("/webhook/show-update", data=show_update(7),
                              headers=AUTH)).status == 202
    metrics = await (await client.get("/metrics", headers=AUTH)).json()
    counts = metrics["webhooks"]["show_update"]["show-update"]
    assert counts["received"] == 1
    assert counts["accepted"] == 1


def test_stored_intents_read_back_as_the_intents_the_parsers_made() -> None:
    intents: list[Intent] = [
        RecheckShow(ExternalIds(tvdb=1, imdb="tt1234567"), "Show", "Grab", "sonarr",
                    year=2020, seasons=(1, 2), episodes=(EpisodeNumber(1, 2),),
                    server_ref=ServerRef("plex", "123", None)),
        RecheckMovie(ExternalIds(tmdb=5), None, None, "Download", "radarr"),
        RequestMedia("show", ExternalIds(tmdb=9), "T", 2021, (1,), "overseerr", "bob", "43"),
        RequestMedia("movie", ExternalIds(tmdb=8), None, None, None, "radarr"),
        RemoveMedia("movie", ExternalIds(tmdb=8), "M", "radarr", "MovieDelete"),
    ]
    stored = orjson.loads(intents_json(intents))
    assert stored == orjson.loads(orjson.dumps([intent_to_dict(i) for i in intents]))
    assert [intent_from_dict(d) for d in stored] == intents


async def test_the_writer_connection_reopens_after_it_breaks(
    db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    opened: list[asyncpg.Connection] = []

    async def connect() -> asyncpg.Connection:
        conn = await asyncpg.connect(db_dsn)
        opened.append(conn)
        return conn

    writer = WriterConnection(connect)
    sink = GroupCommitSink()
    sink.start(InboxRepo(writer))
    try:
        await sink.accept("sonarr", "Grab", "a", b"{}", recheck(1))
        assert len(opened) == 1
        await sink.accept("sonarr", "Grab", "b", b"{}", recheck(2))
        assert len(opened) == 1  # one connection for every write
        await db_pool.execute("SELECT pg_terminate_backend($1)", opened[0].get_server_pid())
        # Either the writer sees the connection closed and reopens at once, or the write
        # fails (503: the sender retries) and the next one reopens.
        try:
            await sink.accept("sonarr", "Grab", "c", b"{}", recheck(3))
        except DatabaseUnavailable:
            await sink.accept("sonarr", "Grab", "c", b"{}", recheck(3))
        assert len(opened) == 2
    finally:
        await sink.close()
        await writer.close()
    assert opened[1].is_closed()
    assert [r["delivery_key"] for r in await inbox_rows(db_pool)] == ["a", "b", "c"]

"""The webhook inbox: one effect per delivery, takes that never collide, rollback = waiting."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from riven_async.db.inbox import InboxRepo
from riven_async.domain.queue import InboxDelivery, InboxMessage
from tests.db.factories import count


def _delivery(key: str, source: str = "sonarr") -> InboxDelivery:
    return InboxDelivery(source, "Download", key, '{"series": {"tvdbId": 1}}',
                         '[{"type": "RecheckShow"}]')


async def test_a_retried_delivery_is_stored_once(db_pool: asyncpg.Pool) -> None:
    inbox = InboxRepo(db_pool)
    first = await inbox.insert_many([_delivery("k1"), _delivery("k2"), _delivery("k1")])
    assert sorted(a.delivery_key for a in first) == ["k1", "k2"]
    assert await inbox.insert_many([_delivery("k1")]) == []
    # The same key from another sender is another delivery.
    assert len(await inbox.insert_many([_delivery("k1", source="radarr")])) == 1
    assert await count(db_pool, "SELECT count(*) FROM inbox") == 3


class _Rollback(Exception):
    pass


async def take(pool: asyncpg.Pool, limit: int = 10) -> list[InboxMessage]:
    """A take that commits (as the worker's does once the effects are applied)."""
    async with pool.acquire() as conn, conn.transaction():
        return await InboxRepo(conn).take(limit)


async def test_an_identical_body_after_the_window_is_a_new_event(db_pool: asyncpg.Pool) -> None:
    inbox = InboxRepo(db_pool)
    [accepted] = await inbox.insert_many([_delivery("k")])
    # Still waiting to be processed: even after the window it is the same delivery.
    assert await inbox.insert_many([_delivery("k")], retry_window_s=0) == []
    [taken] = await take(db_pool)
    assert taken.id == accepted.id
    assert await inbox.insert_many([_delivery("k")], retry_window_s=3600) == []
    [again] = await inbox.insert_many([_delivery("k")], retry_window_s=0)
    assert again.id == accepted.id
    [retaken] = await take(db_pool)
    assert retaken.id == accepted.id
    assert retaken.attempts == 1


async def test_concurrent_takers_never_share_a_delivery(db_pool: asyncpg.Pool) -> None:
    inbox = InboxRepo(db_pool)
    await inbox.insert_many([_delivery(f"k{n}") for n in range(50)])
    batches = await asyncio.gather(*(take(db_pool, limit=20) for _ in range(4)))
    ids = [m.id for batch in batches for m in batch]
    assert len(ids) == len(set(ids)) == 50
    message = batches[0][0]
    assert message.intents == [{"type": "RecheckShow"}]
    assert message.payload is None  # the worker needs only the intents
    [stored] = await inbox.get_many([message.id])
    assert stored.payload == {"series": {"tvdbId": 1}}
    assert stored.processed_at is not None
    assert await count(db_pool, "SELECT count(*) FROM inbox WHERE processed_at IS NULL") == 0
    assert await take(db_pool) == []


async def take_then_roll_back(pool: asyncpg.Pool) -> list[InboxMessage]:
    """A take whose effects failed: the transaction rolls back."""
    taken: list[InboxMessage] = []

    async def take_and_fail() -> None:
        async with pool.acquire() as conn, conn.transaction():
            taken.extend(await InboxRepo(conn).take(10))
            raise _Rollback

    with pytest.raises(_Rollback):
        await take_and_fail()
    return taken


async def test_a_rolled_back_take_leaves_the_deliveries_waiting(
    db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    inbox = InboxRepo(db_pool)
    await inbox.insert_many([_delivery("a"), _delivery("b")])
    assert len(await take_then_roll_back(db_pool)) == 2
    # A taker that dies mid-transaction (its connection is gone) puts them back too.
    conn = await asyncpg.connect(db_dsn)
    try:
        transaction = conn.transaction()
        await transaction.start()
        assert len(await InboxRepo(conn).take(10)) == 2
        # Held by a live transaction: another taker skips them rather than waiting.
        assert await take(db_pool) == []
        await db_pool.execute("SELECT pg_terminate_backend($1)", conn.get_server_pid())
    finally:
        conn.terminate()
    taken = await take(db_pool)
    assert [m.delivery_key for m in taken] == ["a", "b"]
    assert [m.attempts for m in taken] == [1, 1]


async def test_failures_retry_then_give_up(db_pool: asyncpg.Pool) -> None:
    inbox = InboxRepo(db_pool)
    [accepted] = await inbox.insert_many([_delivery("poison")])
    [first] = await take_then_roll_back(db_pool)
    assert first.attempts == 1
    assert await inbox.retry_later(accepted.id, "TMDB down", 0, max_attempts=2) is False
    [second] = await take_then_roll_back(db_pool)
    assert second.attempts == 2
    assert await inbox.retry_later(accepted.id, "TMDB down", 0, max_attempts=2) is True
    assert await take(db_pool) == []
    # Only a waiting delivery can fail: one given up (or taken) is left alone.
    assert await inbox.retry_later(accepted.id, "again", 0) is None
    [stored] = await inbox.get_many([accepted.id])
    assert stored.error == "TMDB down"
    assert stored.processed_at is not None


async def test_a_retry_waits_for_its_time(db_pool: asyncpg.Pool) -> None:
    inbox = InboxRepo(db_pool)
    [accepted] = await inbox.insert_many([_delivery("later")])
    assert await inbox.retry_later(accepted.id, "boom", retry_after_s=3600) is False
    assert await take(db_pool) == []
    assert await inbox.take_ids([accepted.id]) != []  # by id, as the one-by-one retry does


async def test_errors_are_recorded_and_old_deliveries_pruned(db_pool: asyncpg.Pool) -> None:
    inbox = InboxRepo(db_pool)
    await inbox.insert_many([_delivery("x"), _delivery("y")])
    taken = await take(db_pool)
    await inbox.record_errors([(taken[0].id, "unreadable intents: nope")])
    stored = {m.delivery_key: m for m in await inbox.get_many([m.id for m in taken])}
    assert stored["x"].error == "unreadable intents: nope"
    assert stored["y"].error is None
    assert await inbox.prune_processed(datetime(2000, 1, 1, tzinfo=UTC)) == 0
    assert await inbox.prune_processed(datetime.now(UTC) + timedelta(seconds=1)) == 2

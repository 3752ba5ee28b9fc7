"""The webhook inbox: one effect per delivery, claims that never collide, crash recovery."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg

from riven_async.db.inbox import InboxRepo
from riven_async.domain.queue import InboxDelivery
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


async def test_an_identical_body_after_the_window_is_a_new_event(db_pool: asyncpg.Pool) -> None:
    inbox = InboxRepo(db_pool)
    [accepted] = await inbox.insert_many([_delivery("k")])
    [claimed] = await inbox.claim()
    # Still waiting to be processed: even after the window it is the same delivery.
    assert await inbox.insert_many([_delivery("k")], retry_window_s=0) == []
    await inbox.mark_processed([claimed.id])
    assert await inbox.insert_many([_delivery("k")], retry_window_s=3600) == []
    [again] = await inbox.insert_many([_delivery("k")], retry_window_s=0)
    assert again.id == accepted.id
    [reclaimed] = await inbox.claim()
    assert reclaimed.id == accepted.id
    assert reclaimed.attempts == 1


async def test_claims_never_collide_and_processing_is_recorded(db_pool: asyncpg.Pool) -> None:
    inbox = InboxRepo(db_pool)
    await inbox.insert_many([_delivery(f"k{n}") for n in range(50)])
    workers = [InboxRepo(db_pool) for _ in range(4)]
    batches = await asyncio.gather(*(w.claim(limit=20) for w in workers))
    ids = [m.id for batch in batches for m in batch]
    assert len(ids) == len(set(ids)) == 50
    message = batches[0][0]
    assert message.payload == {"series": {"tvdbId": 1}}
    assert message.intents == [{"type": "RecheckShow"}]
    assert await inbox.mark_processed(ids) == []  # held by the workers, not by `inbox`
    for worker, batch in zip(workers, batches, strict=True):
        assert len(await worker.mark_processed([m.id for m in batch])) == len(batch)
    assert await count(db_pool, "SELECT count(*) FROM inbox WHERE processed_at IS NULL") == 0


async def test_failures_retry_then_give_up(db_pool: asyncpg.Pool) -> None:
    inbox = InboxRepo(db_pool)
    await inbox.insert_many([_delivery("poison")])
    [message] = await inbox.claim()
    assert await inbox.fail(message.id, "TMDB down", retry_after_s=0, max_attempts=2) is False
    [message] = await inbox.claim()
    assert message.attempts == 2
    assert await inbox.fail(message.id, "TMDB down", retry_after_s=0, max_attempts=2) is True
    assert await inbox.claim() == []
    [stored] = await inbox.get_many([message.id])
    assert stored.error == "TMDB down"
    assert stored.processed_at is not None


async def test_claims_of_a_dead_process_come_back(db_pool: asyncpg.Pool) -> None:
    inbox = InboxRepo(db_pool)
    await inbox.insert_many([_delivery("a"), _delivery("b")])
    dead = InboxRepo(db_pool)
    claimed = await dead.claim(limit=2)
    assert await inbox.claim() == []
    # The dead process never registered a heartbeat: its claims are taken back.
    recovered = await inbox.recover(lease_s=60)
    assert (recovered.requeued, recovered.given_up) == (2, 0)
    assert {m.id for m in await inbox.claim(limit=5)} == {m.id for m in claimed}
    assert await inbox.release_own() == 2
    assert await inbox.prune_processed(datetime.now(UTC)) == 0

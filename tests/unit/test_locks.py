"""The keyed lock: exclusion per key, FIFO, cancellation safety and clean-up."""

from __future__ import annotations

import asyncio

import pytest

from riven_async.core.locks import KeyedLock


async def test_one_holder_per_key_and_keys_are_independent() -> None:
    locks = KeyedLock()
    inside: dict[str, int] = {"a": 0, "b": 0}
    peak: dict[str, int] = {"a": 0, "b": 0}

    async def work(key: str) -> None:
        async with locks(key):
            inside[key] += 1
            peak[key] = max(peak[key], inside[key])
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            inside[key] -= 1

    await asyncio.gather(*(work(k) for k in ("a", "b") * 50))
    assert peak == {"a": 1, "b": 1}
    assert len(locks) == 0


async def test_different_keys_do_not_wait_for_each_other() -> None:
    locks = KeyedLock()
    async with locks("tmdb:1396"):
        await asyncio.wait_for(locks.acquire("tmdb:2734"), timeout=1.0)
        locks.release("tmdb:2734")


async def test_waiters_get_the_key_in_arrival_order() -> None:
    locks = KeyedLock()
    order: list[int] = []

    async def work(index: int) -> None:
        async with locks("show"):
            order.append(index)
            await asyncio.sleep(0)

    await locks.acquire("show")
    tasks = []
    for index in range(30):
        tasks.append(asyncio.create_task(work(index)))
        await asyncio.sleep(0)
    assert locks.waiting("show") == 30
    locks.release("show")
    await asyncio.gather(*tasks)
    assert order == list(range(30))
    assert not locks.locked("show")


async def test_a_newcomer_cannot_slip_in_between_release_and_the_next_waiter() -> None:
    locks = KeyedLock()
    order: list[str] = []

    async def work(name: str) -> None:
        async with locks("k"):
            order.append(name)

    await locks.acquire("k")
    waiter = asyncio.create_task(work("waiter"))
    await asyncio.sleep(0)
    locks.release("k")  # ownership goes to ``waiter`` now, before it even runs
    newcomer = asyncio.create_task(work("newcomer"))
    await asyncio.gather(waiter, newcomer)
    assert order == ["waiter", "newcomer"]


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    locks = KeyedLock()
    await locks.acquire("k")
    cancelled = asyncio.create_task(locks.acquire("k"))
    second = asyncio.create_task(locks.acquire("k"))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    assert locks.waiting("k") == 1
    locks.release("k")
    await second
    locks.release("k")
    assert cancelled.cancelled()
    assert len(locks) == 0


async def test_a_waiter_cancelled_as_it_gets_the_key_passes_it_on() -> None:
    locks = KeyedLock()
    await locks.acquire("k")
    unlucky = asyncio.create_task(locks.acquire("k"))
    next_in_line = asyncio.create_task(locks.acquire("k"))
    await asyncio.sleep(0)
    locks.release("k")  # hands the key to ``unlucky``...
    unlucky.cancel()  # ...which is cancelled before it runs
    await asyncio.wait_for(next_in_line, timeout=1.0)
    assert unlucky.cancelled()
    locks.release("k")
    assert len(locks) == 0


async def test_the_body_raising_still_releases() -> None:
    locks = KeyedLock()
    with pytest.raises(ValueError, match="boom"):
        async with locks("k"):
            raise ValueError("boom")
    assert not locks.locked("k")


async def test_a_holder_cancelled_inside_releases() -> None:
    locks = KeyedLock()
    entered = asyncio.Event()

    async def hold() -> None:
        async with locks("k"):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(hold())
    await entered.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(locks) == 0


async def test_a_million_distinct_keys_leave_nothing_behind() -> None:
    locks = KeyedLock()
    for i in range(1_000_000):
        async with locks(i):
            pass
    assert len(locks) == 0


async def test_many_concurrent_keys_leave_nothing_behind() -> None:
    locks = KeyedLock()

    async def work(i: int) -> None:
        async with locks(f"item:{i % 1000}"):
            await asyncio.sleep(0)

    await asyncio.gather(*(work(i) for i in range(20_000)))
    assert len(locks) == 0


def test_release_of_an_unheld_key_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="unlocked"):
        KeyedLock().release("nope")

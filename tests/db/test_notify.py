"""The LISTEN connection: wakes the right waiters, pings, and comes back after a drop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable

import asyncpg
import pytest

from riven_async.db.inbox import InboxRepo
from riven_async.db.jobs import JobsRepo
from riven_async.db.notify import (
    CHANNEL_INBOX,
    CHANNEL_JOBS,
    CHANNEL_SCHEDULE,
    Listener,
    wait_for_wake,
)
from riven_async.domain.queue import InboxDelivery, JobKind, NewJob


@pytest.fixture
async def listener(db_dsn: str) -> AsyncIterator[Listener]:
    def connect() -> Awaitable[asyncpg.Connection]:
        return asyncpg.connect(db_dsn, server_settings={"application_name": "test-listener"})

    listening = Listener(connect, ping_interval_s=0.05,
                         reconnect_min_s=0.05, reconnect_max_s=0.2)
    listening.wake_event(CHANNEL_JOBS)
    stop = asyncio.Event()
    task = asyncio.create_task(listening.run(stop))
    yield listening
    stop.set()
    await asyncio.wait_for(task, 5)


async def _connected(listener: Listener) -> None:
    await asyncio.wait_for(listener.connected.wait(), 10)


async def test_a_new_job_wakes_only_the_workers_of_its_kind(
    listener: Listener, db_pool: asyncpg.Pool
) -> None:
    scrape = listener.wake_event(CHANNEL_JOBS, "scrape")
    link = listener.wake_event(CHANNEL_JOBS, "link")
    any_job = listener.wake_event(CHANNEL_JOBS)
    inbox = listener.wake_event(CHANNEL_INBOX)
    await _connected(listener)
    for event in (scrape, link, any_job, inbox):
        event.clear()
    await JobsRepo(db_pool).enqueue_many([NewJob(JobKind.SCRAPE, dedupe_key="s")])
    assert await wait_for_wake(scrape, 5)
    assert any_job.is_set()
    assert not link.is_set()
    assert not inbox.is_set()
    await InboxRepo(db_pool).insert_many([InboxDelivery("plex", "x", "k", "{}")])
    assert await wait_for_wake(inbox, 5)
    assert not await wait_for_wake(link, 0.05)


async def test_the_listener_reconnects_and_wakes_everyone(
    listener: Listener, db_pool: asyncpg.Pool
) -> None:
    schedule = listener.wake_event(CHANNEL_SCHEDULE)
    await _connected(listener)
    await asyncio.sleep(0.2)  # a few pings go through
    schedule.clear()
    killed = await db_pool.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = 'test-listener'")
    assert killed >= 1
    # Notifications sent while it was away may be lost, so every waiter is woken.
    assert await wait_for_wake(schedule, 10)
    assert listener.connects == 2
    await _connected(listener)
    await JobsRepo(db_pool).enqueue_many([NewJob(JobKind.LINK, dedupe_key="after")])
    jobs = listener.wake_event(CHANNEL_JOBS)
    jobs.clear()
    await JobsRepo(db_pool).enqueue_many([NewJob(JobKind.LINK, dedupe_key="after-2")])
    assert await wait_for_wake(jobs, 5)


def test_unknown_channels_are_refused() -> None:
    with pytest.raises(ValueError, match="channel"):
        Listener(lambda: asyncpg.connect("postgresql://unused")).wake_event("nope")

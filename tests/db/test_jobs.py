"""The durable job queue: dedupe, claims that never collide, retries, crash recovery."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from riven_async.db.executor import CountingExecutor
from riven_async.db.jobs import JobsRepo
from riven_async.domain.queue import Backoff, JobKind, JobStatus, NewJob
from riven_async.domain.states import State
from tests.db.factories import T0, ManualClock, Repos, count, show_tree, truncate_all


async def _episode_ids(repos: Repos, n: int, tmdb: int = 900) -> list[int]:
    [show] = await repos.trees.upsert_show_trees([show_tree(tmdb, seasons=1, episodes=n)])
    records = await repos.executor.fetch(
        "SELECT id FROM items WHERE show_id = $1 AND kind = 'episode' ORDER BY id",
        show.show_id)
    return [r["id"] for r in records]


async def test_a_key_is_one_job_while_queued_and_becomes_sooner(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    [item] = await _episode_ids(repos, 1)
    later = T0 + timedelta(hours=2)
    [first] = await repos.jobs.enqueue_many([NewJob(JobKind.SCRAPE, item, run_at=later)])
    [again] = await repos.jobs.enqueue_many(
        [NewJob(JobKind.SCRAPE, item, run_at=T0 + timedelta(hours=1), priority=3)])
    assert first.created
    assert not again.created
    assert again.id == first.id
    [job] = await repos.jobs.for_items([item])
    assert job.run_at == T0 + timedelta(hours=1)
    assert job.priority == 3
    await repos.jobs.enqueue_many([NewJob(JobKind.SCRAPE, item, run_at=T0 + timedelta(hours=5))])
    [job] = await repos.jobs.for_items([item])
    assert job.run_at == T0 + timedelta(hours=1)
    assert job.dedupe_key == f"scrape:{item}"


async def test_one_batch_with_one_key_twice_is_one_job(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    [item] = await _episode_ids(repos, 1)
    result = await repos.jobs.enqueue_many([
        NewJob(JobKind.SCRAPE, item, run_at=T0 + timedelta(minutes=5)),
        NewJob(JobKind.SCRAPE, item, run_at=T0, priority=2),
    ])
    assert len(result) == 1
    [job] = await repos.jobs.for_items([item])
    assert (job.run_at, job.priority) == (T0, 2)


async def test_claims_take_due_jobs_by_priority_then_age(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    items = await _episode_ids(repos, 4)
    await repos.jobs.enqueue_many([
        NewJob(JobKind.SCRAPE, items[0], run_at=T0 - timedelta(minutes=1)),
        NewJob(JobKind.SCRAPE, items[1], run_at=T0 - timedelta(minutes=9)),
        NewJob(JobKind.SCRAPE, items[2], run_at=T0 - timedelta(minutes=2), priority=5),
        NewJob(JobKind.SCRAPE, items[3], run_at=T0 + timedelta(minutes=1), priority=9),
    ])
    claimed = await repos.jobs.claim(JobKind.SCRAPE, limit=10)
    assert [j.item_id for j in claimed] == [items[2], items[1], items[0]]
    assert all(j.status is JobStatus.RUNNING and j.attempts == 1 for j in claimed)
    assert all(j.claimed_by == repos.boot_id for j in claimed)
    assert await repos.jobs.claim(JobKind.SCRAPE) == []
    assert await repos.jobs.claim(JobKind.DOWNLOAD) == []
    assert await repos.jobs.next_due_at(JobKind.SCRAPE) == T0 + timedelta(minutes=1)
    repos.clock.advance(60)
    [late] = await repos.jobs.claim(JobKind.SCRAPE)
    assert late.item_id == items[3]


async def test_concurrent_claimers_never_get_the_same_job(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    items = await _episode_ids(repos, 300)
    await repos.jobs.enqueue_many([NewJob(JobKind.SCRAPE, i, run_at=T0) for i in items])
    claimers = [JobsRepo(db_pool, now=repos.clock.now) for _ in range(8)]

    async def drain(claimer: JobsRepo) -> list[int]:
        got: list[int] = []
        while batch := await claimer.claim(JobKind.SCRAPE, limit=7):
            got.extend(j.id for j in batch)
            await asyncio.sleep(0)
        return got

    results = await asyncio.gather(*(drain(c) for c in claimers))
    everything = [job_id for result in results for job_id in result]
    assert len(everything) == len(set(everything)) == 300
    assert sum(1 for r in results if r) > 1


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(jobs=st.integers(1, 40), limits=st.lists(st.integers(1, 9), min_size=2, max_size=4))
async def test_two_claimers_split_any_queue_without_overlap(
    db_pool: asyncpg.Pool, jobs: int, limits: list[int]
) -> None:
    await truncate_all(db_pool)
    repos = Repos(db_pool)
    await repos.jobs.enqueue_many(
        [NewJob(JobKind.LINK, dedupe_key=f"link:{n}", run_at=T0) for n in range(jobs)])
    a = JobsRepo(db_pool, now=repos.clock.now)
    b = JobsRepo(db_pool, now=repos.clock.now)
    seen: list[int] = []
    for limit in limits * 10:
        got_a, got_b = await asyncio.gather(a.claim(JobKind.LINK, limit),
                                            b.claim(JobKind.LINK, limit))
        seen.extend(j.id for j in (*got_a, *got_b))
    assert len(seen) == len(set(seen))
    assert len(seen) == min(jobs, sum(limits * 10) * 2)


async def test_complete_queues_follow_ups_atomically(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    [item] = await _episode_ids(repos, 1)
    await repos.jobs.enqueue_many([NewJob(JobKind.SCRAPE, item)])
    [job] = await repos.jobs.claim(JobKind.SCRAPE)
    assert await repos.jobs.complete(job, then=[NewJob(JobKind.DOWNLOAD, item)])
    [follow_up] = await repos.jobs.for_items([item])
    assert follow_up.kind is JobKind.DOWNLOAD
    assert follow_up.status is JobStatus.QUEUED
    # A second completion (the claim is gone) writes nothing.
    assert not await repos.jobs.complete(job, then=[NewJob(JobKind.LINK, item)])
    assert [j.kind for j in await repos.jobs.for_items([item])] == [JobKind.DOWNLOAD]
    with pytest.raises(ValueError, match="snooze"):
        await repos.jobs.complete(follow_up, then=[NewJob(JobKind.DOWNLOAD, item)])


async def test_a_key_queued_while_running_runs_once_more(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    [item] = await _episode_ids(repos, 1)
    await repos.jobs.enqueue_many([NewJob(JobKind.INDEX, item)])
    [job] = await repos.jobs.claim(JobKind.INDEX)
    [again] = await repos.jobs.enqueue_many([NewJob(JobKind.INDEX, item)])
    assert again.id == job.id
    assert not again.created
    assert await repos.jobs.claim(JobKind.INDEX) == []
    assert await repos.jobs.complete(job)
    [rerun] = await repos.jobs.claim(JobKind.INDEX)
    assert rerun.id != job.id
    assert rerun.attempts == 1
    assert await repos.jobs.complete(rerun)
    assert await repos.jobs.for_items([item]) == []


async def test_failures_back_off_then_fail_the_job_and_its_item(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    [item] = await _episode_ids(repos, 1)
    await repos.executor.execute("UPDATE items SET state = 'scraped' WHERE id = $1", item)
    await repos.jobs.enqueue_many([NewJob(JobKind.DOWNLOAD, item, max_attempts=3)])
    backoff = Backoff(base_s=60, cap_s=600)
    outcomes = []
    for _ in range(3):
        [job] = await repos.jobs.claim(JobKind.DOWNLOAD)
        outcome = await repos.jobs.fail(job, "HTTP 503", backoff=backoff)
        assert outcome is not None
        outcomes.append(outcome)
        repos.clock.advance(3600)
    assert [o.status for o in outcomes] == [JobStatus.QUEUED, JobStatus.QUEUED,
                                            JobStatus.FAILED]
    assert T0 + timedelta(seconds=30) <= outcomes[0].run_at <= T0 + timedelta(seconds=60)
    [failed_job] = await repos.jobs.for_items([item])
    assert failed_job.status is JobStatus.FAILED
    assert failed_job.last_error == "HTTP 503"
    failed_item = await repos.catalog.get(item)
    assert failed_item is not None
    assert (failed_item.state, failed_item.resume_state) == (State.FAILED, State.SCRAPED)
    assert failed_item.last_error == "HTTP 503"
    # A failed job does not block queuing the key again (after a retry of the item).
    assert await repos.items.retry_many([item]) == {item: State.SCRAPED}
    [fresh] = await repos.jobs.enqueue_many([NewJob(JobKind.DOWNLOAD, item)])
    assert fresh.created


async def test_snooze_requeues_without_counting_an_attempt(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    [item] = await _episode_ids(repos, 1)
    await repos.jobs.enqueue_many([NewJob(JobKind.SCRAPE, item)])
    [job] = await repos.jobs.claim(JobKind.SCRAPE)
    until = T0 + timedelta(minutes=30)
    assert await repos.jobs.snooze(job, until, {"round": 2}) == until
    assert await repos.jobs.claim(JobKind.SCRAPE) == []
    repos.clock.advance(1800)
    [back] = await repos.jobs.claim(JobKind.SCRAPE)
    assert back.id == job.id
    assert back.attempts == 1
    assert back.payload == {"round": 2}


async def test_claims_of_a_dead_process_are_recovered(db_pool: asyncpg.Pool) -> None:
    clock = ManualClock()
    dead = JobsRepo(db_pool, now=clock.now)
    alive = JobsRepo(db_pool, now=clock.now)
    await dead.register(hostname="box", pid=101)
    await alive.register(hostname="box", pid=202)
    await alive.enqueue_many([NewJob(JobKind.LINK, dedupe_key=f"link:{n}") for n in range(5)])
    held_by_dead = await dead.claim(JobKind.LINK, limit=3)
    held_by_alive = await alive.claim(JobKind.LINK, limit=1)
    assert (len(held_by_dead), len(held_by_alive)) == (3, 1)
    # Within the lease nothing is taken back.
    assert (await alive.recover(lease_s=60)).total == 0
    # The dead process stops heartbeating: after the lease its claims come back.
    await db_pool.execute("UPDATE processes SET heartbeat_at = now() - interval '2 minutes'"
                          " WHERE boot_id = $1", dead.boot_id)
    recovered = await alive.recover(lease_s=60)
    assert recovered.requeued == {JobKind.LINK: 3}
    again = await alive.claim(JobKind.LINK, limit=10)
    lost = {j.id for j in held_by_dead}
    assert len(again) == 4
    assert lost <= {j.id for j in again}
    assert all(j.attempts == 2 for j in again if j.id in lost)
    # The silent process cannot finish what it lost.
    assert not await dead.complete(held_by_dead[0])


async def test_a_process_marked_stopped_loses_its_claims_at_once(db_pool: asyncpg.Pool) -> None:
    clock = ManualClock()
    old = JobsRepo(db_pool, now=clock.now)
    new = JobsRepo(db_pool, now=clock.now)
    await old.register(hostname="box", pid=1)
    await old.enqueue_many([NewJob(JobKind.SCAN, dedupe_key="scan:/lib/Shows/A")])
    [job] = await old.claim(JobKind.SCAN)
    await new.register(hostname="box", pid=2)
    # At start-up the new process finds the old pid gone and says so.
    assert await new.mark_stopped([old.boot_id]) == [old.boot_id]
    assert not await old.heartbeat()
    assert (await new.recover(lease_s=3600)).requeued == {JobKind.SCAN: 1}
    [retaken] = await new.claim(JobKind.SCAN)
    assert retaken.id == job.id


async def test_a_job_whose_process_always_dies_fails(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    [item] = await _episode_ids(repos, 1)
    await repos.jobs.enqueue_many([NewJob(JobKind.SCRAPE, item, max_attempts=2)])
    for _ in range(2):
        victim = JobsRepo(db_pool, now=repos.clock.now)
        await victim.register()
        [_job] = await victim.claim(JobKind.SCRAPE)
        await victim.mark_stopped([victim.boot_id])
        await repos.jobs.recover(lease_s=60)
    [job] = await repos.jobs.for_items([item])
    assert job.status is JobStatus.FAILED
    assert "died" in (job.last_error or "")
    failed = await repos.catalog.get(item)
    assert failed is not None
    assert failed.state is State.FAILED


async def test_release_own_gives_claims_back_without_an_attempt(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    await repos.jobs.enqueue_many([NewJob(JobKind.LINK, dedupe_key=f"l{n}") for n in range(3)])
    await repos.jobs.claim(JobKind.LINK, limit=3)
    assert await repos.jobs.release_own() == 3
    again = await repos.jobs.claim(JobKind.LINK, limit=3)
    assert [j.attempts for j in again] == [1, 1, 1]


async def test_jobs_of_paused_items_wait_until_resumed(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    [show] = await repos.trees.upsert_show_trees([show_tree(950, seasons=1, episodes=2)])
    episodes = await _episode_ids(repos, 2, tmdb=950)
    await repos.jobs.enqueue_many([NewJob(JobKind.SCRAPE, e) for e in episodes])
    paused = await repos.items.pause_many([show.show_id])
    assert set(paused) >= set(episodes)
    assert await repos.jobs.claim(JobKind.SCRAPE, limit=5) == []
    assert await repos.jobs.next_due_at(JobKind.SCRAPE) is None
    # Queuing again does not release a held job.
    await repos.jobs.enqueue_many([NewJob(JobKind.SCRAPE, episodes[0])])
    assert await repos.jobs.claim(JobKind.SCRAPE, limit=5) == []
    resumed = await repos.items.resume_many([show.show_id])
    assert set(resumed) >= set(episodes)
    assert len(await repos.jobs.claim(JobKind.SCRAPE, limit=5)) == 2


async def test_claim_and_complete_are_one_round_trip_each(db_pool: asyncpg.Pool) -> None:
    counter = CountingExecutor(db_pool)
    jobs = JobsRepo(counter, now=ManualClock().now)
    await jobs.enqueue_many([NewJob(JobKind.LINK, dedupe_key=f"k{n}") for n in range(50)])
    counter.reset()
    claimed = await jobs.claim(JobKind.LINK, limit=50)
    await jobs.complete_many(claimed)
    assert counter.round_trips == 2
    assert len(claimed) == 50


async def test_inserting_jobs_notifies_their_kind(db_pool: asyncpg.Pool, db_dsn: str) -> None:
    listener = await asyncpg.connect(db_dsn)
    heard: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    await listener.add_listener("riven_jobs", lambda *a: heard.put_nowait((a[2], a[3])))
    try:
        jobs = JobsRepo(db_pool, now=ManualClock().now)
        await jobs.enqueue_many([NewJob(JobKind.SCAN, dedupe_key=f"s{n}") for n in range(100)]
                                + [NewJob(JobKind.LINK, dedupe_key="l")])
        got = {await asyncio.wait_for(heard.get(), 5), await asyncio.wait_for(heard.get(), 5)}
        assert got == {("riven_jobs", "scan"), ("riven_jobs", "link")}
        await asyncio.sleep(0.05)
        assert heard.empty()
    finally:
        await listener.close()


async def test_prune_failed_deletes_old_failed_jobs(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    await repos.jobs.enqueue_many([NewJob(JobKind.LINK, dedupe_key="x", max_attempts=1)])
    [job] = await repos.jobs.claim(JobKind.LINK)
    await repos.jobs.fail(job, "boom")
    assert await count(db_pool, "SELECT count(*) FROM jobs WHERE status = 'failed'") == 1
    assert await repos.jobs.prune_failed(T0.replace(year=2000)) == 0
    assert await repos.jobs.prune_failed(T0.replace(year=2999)) == 1


async def test_deleting_an_item_drops_a_pending_rerun_of_its_job(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    [show] = await repos.trees.upsert_show_trees([show_tree(960, seasons=1, episodes=1)])
    await repos.jobs.enqueue_many([NewJob(JobKind.INDEX, show.show_id)])
    [job] = await repos.jobs.claim(JobKind.INDEX)
    await repos.jobs.enqueue_many([NewJob(JobKind.INDEX, show.show_id)])  # asks for a rerun
    assert await repos.items.delete_many([show.show_id]) == 3
    assert not await repos.jobs.complete(job)
    assert await count(db_pool, "SELECT count(*) FROM jobs") == 0

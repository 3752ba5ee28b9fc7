"""The stage workers against a real database: outcomes, concurrency, wake-ups, crash safety."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from riven_async.config import LiveSettings, Settings
from riven_async.core.clock import SystemClock
from riven_async.core.locks import KeyedLock
from riven_async.db.jobs import JobsRepo
from riven_async.db.notify import Listener
from riven_async.db.repos import Repos
from riven_async.domain.intents import ExternalIds, RequestMedia
from riven_async.domain.media import ItemId
from riven_async.domain.queue import Job, JobKind, NewJob, new_boot_id
from riven_async.pipeline.runtime import Runtime
from riven_async.pipeline.steps.base import DONE, Deferred, StepResult
from riven_async.pipeline.worker import StageWorkers, describe_error
from riven_async.upstreams import UpstreamClients
from riven_async.web.metrics import MetricsRegistry
from tests.conftest import SettingsFactory
from tests.pipeline.rig import eventually

Handler = Callable[[Job], Awaitable[StepResult]]


@dataclass
class FakeStep:
    """A step whose behaviour the test sets; records every job it ran."""

    kind: JobKind
    handler: Handler
    ran: list[Job] = field(default_factory=list)
    running: int = 0
    peak: int = 0

    async def run(self, job: Job) -> StepResult:
        self.ran.append(job)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            return await self.handler(job)
        finally:
            self.running -= 1


async def _done(job: Job) -> StepResult:
    return DONE


async def _never_returns(job: Job) -> StepResult:
    await asyncio.Event().wait()
    return DONE


@asynccontextmanager
async def running_workers(
    settings: Settings, pool: asyncpg.Pool, dsn: str, steps: dict[JobKind, FakeStep],
    *, jobs: JobsRepo | None = None,
) -> AsyncIterator[StageWorkers]:
    clock = SystemClock()
    boot_id = new_boot_id()
    repos = Repos.on(pool, clock, boot_id)
    if jobs is not None:
        repos = dataclasses.replace(repos, jobs=jobs)
    listener = Listener(lambda: asyncpg.connect(dsn))
    upstreams = UpstreamClients.from_settings(settings, clock=clock)
    runtime = Runtime(
        live=LiveSettings(settings), clock=clock, pool=pool, repos=repos, upstreams=upstreams,
        locks=KeyedLock(), metrics=MetricsRegistry(), listener=listener, boot_id=boot_id,
    )
    stop = asyncio.Event()
    workers = StageWorkers(runtime, steps)
    listening = asyncio.create_task(listener.run(stop))
    task = asyncio.create_task(workers.run())
    try:
        await asyncio.wait_for(listener.connected.wait(), 10)
        yield workers
    finally:
        task.cancel()
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening
        await upstreams.aclose()


def _settings(make_settings: SettingsFactory, db_dsn: str, **workers: Any) -> Settings:
    values = {"poll_interval_s": 0.2, "retry_base_s": 0.05, "retry_cap_s": 0.1, **workers}
    return make_settings(database={"url": db_dsn}, workers=values)


async def _item(pool: asyncpg.Pool, tmdb: int = 1) -> ItemId:
    repos = Repos.on(pool, SystemClock(), new_boot_id())
    [outcome] = await repos.items.request_many([RequestMedia(
        kind="movie", ids=ExternalIds(tmdb=tmdb), title=None, year=None, seasons=None,
        source="test")])
    return outcome.item_id


async def _enqueue(pool: asyncpg.Pool, *jobs: NewJob) -> None:
    await Repos.on(pool, SystemClock(), new_boot_id()).jobs.enqueue_many(jobs)


async def _job_rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return list(await pool.fetch("SELECT * FROM jobs ORDER BY id"))


async def test_a_result_completes_the_job_and_queues_its_follow_ups(
    make_settings: SettingsFactory, db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    item = await _item(db_pool)

    async def scrape(job: Job) -> StepResult:
        return StepResult(then=[NewJob(JobKind.DOWNLOAD, item_id=job.item_id)])

    steps = {JobKind.SCRAPE: FakeStep(JobKind.SCRAPE, scrape)}
    await _enqueue(db_pool, NewJob(JobKind.SCRAPE, item_id=item))
    async with running_workers(_settings(make_settings, db_dsn), db_pool, db_dsn, steps):
        await eventually(lambda: steps[JobKind.SCRAPE].ran)
        rows = await eventually(_rows_when(lambda: _job_rows(db_pool),
                                          lambda r: [x["kind"] for x in r] == ["download"]))
    assert rows[0]["item_id"] == item
    assert len(steps[JobKind.SCRAPE].ran) == 1


def _rows_when(
    fetch: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool]
) -> Callable[[], Awaitable[Any]]:
    async def check() -> Any:
        value = await fetch()
        # An empty list that passes is still a pass.
        return (value or [None]) if ok(value) else None

    return check


async def test_no_more_jobs_of_a_stage_run_at_once_than_configured(
    make_settings: SettingsFactory, db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    gate = asyncio.Event()

    async def slow(job: Job) -> StepResult:
        await gate.wait()
        return DONE

    step = FakeStep(JobKind.SCRAPE, slow)
    await _enqueue(db_pool, *(NewJob(JobKind.SCRAPE, dedupe_key=f"k{i}") for i in range(10)))
    settings = _settings(make_settings, db_dsn, scrape=3)
    async with running_workers(settings, db_pool, db_dsn, {JobKind.SCRAPE: step}):
        await eventually(lambda: step.running == 3)
        await asyncio.sleep(0.3)
        assert step.running == 3
        gate.set()
        await eventually(_rows_when(lambda: _job_rows(db_pool), lambda r: r == []))
    assert step.peak == 3
    assert len(step.ran) == 10


async def test_a_job_queued_later_is_run_at_once_on_notify_not_at_the_next_poll(
    make_settings: SettingsFactory, db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    step = FakeStep(JobKind.LINK, _done)
    settings = _settings(make_settings, db_dsn, poll_interval_s=3600.0)
    async with running_workers(settings, db_pool, db_dsn, {JobKind.LINK: step}):
        await asyncio.sleep(0.3)  # the runner is asleep for an hour
        await _enqueue(db_pool, NewJob(JobKind.LINK, dedupe_key="late"))
        await eventually(lambda: step.ran, timeout_s=5.0)


async def test_a_failing_step_is_retried_then_fails_its_item_with_the_reason(
    make_settings: SettingsFactory, db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    item = await _item(db_pool)

    async def broken(job: Job) -> StepResult:
        raise RuntimeError("the release vanished")

    step = FakeStep(JobKind.DOWNLOAD, broken)
    await _enqueue(db_pool, NewJob(JobKind.DOWNLOAD, item_id=item, max_attempts=3))
    async with running_workers(_settings(make_settings, db_dsn), db_pool, db_dsn,
                               {JobKind.DOWNLOAD: step}) as workers:
        row = await eventually(lambda: db_pool.fetchrow(
            "SELECT state, last_error FROM items WHERE id = $1 AND state = 'failed'", item))
        stats = workers.runners[JobKind.DOWNLOAD].stats
    assert len(step.ran) == 3
    assert row["last_error"] == "RuntimeError: the release vanished"
    assert stats.failed_attempts == 3
    assert stats.failed_for_good == 1
    [job] = await _job_rows(db_pool)
    assert job["status"] == "failed"


async def test_a_deferral_waits_without_counting_an_attempt(
    make_settings: SettingsFactory, db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    clock = SystemClock()
    until = clock.now() + timedelta(hours=1)

    async def paused_upstream(job: Job) -> StepResult:
        raise Deferred(until, "realdebrid paused (429)")

    step = FakeStep(JobKind.DOWNLOAD, paused_upstream)
    await _enqueue(db_pool, NewJob(JobKind.DOWNLOAD, dedupe_key="d", max_attempts=1))
    async with running_workers(_settings(make_settings, db_dsn), db_pool, db_dsn,
                               {JobKind.DOWNLOAD: step}):
        [row] = await eventually(_rows_when(lambda: _job_rows(db_pool),
                                           lambda r: bool(r and r[0]["status"] == "queued"
                                                          and step.ran)))
        await asyncio.sleep(0.3)
    assert len(step.ran) == 1  # not run again before ``until``
    assert row["attempts"] == 0
    assert abs((row["run_at"] - until).total_seconds()) < 0.01


async def test_again_at_snoozes_and_queues_the_follow_ups_given_with_it(
    make_settings: SettingsFactory, db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    later = SystemClock().now() + timedelta(minutes=5)

    async def partly(job: Job) -> StepResult:
        return StepResult(then=[NewJob(JobKind.LINK, dedupe_key="l")], again_at=later)

    step = FakeStep(JobKind.DOWNLOAD, partly)
    await _enqueue(db_pool, NewJob(JobKind.DOWNLOAD, dedupe_key="d"))
    async with running_workers(_settings(make_settings, db_dsn), db_pool, db_dsn,
                               {JobKind.DOWNLOAD: step}):
        rows = await eventually(_rows_when(
            lambda: _job_rows(db_pool),
            lambda r: {(x["kind"], x["status"]) for x in r}
            == {("download", "queued"), ("link", "queued")}))
    download = next(r for r in rows if r["kind"] == "download")
    assert download["run_at"] == later


async def test_jobs_of_paused_items_are_not_run(
    make_settings: SettingsFactory, db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    paused, active = await _item(db_pool, 1), await _item(db_pool, 2)
    await db_pool.execute("UPDATE items SET resume_state = state, state = 'paused' WHERE id = $1",
                          paused)
    step = FakeStep(JobKind.INDEX, _done)
    await _enqueue(db_pool, NewJob(JobKind.INDEX, item_id=paused),
                   NewJob(JobKind.INDEX, item_id=active))
    async with running_workers(_settings(make_settings, db_dsn), db_pool, db_dsn,
                               {JobKind.INDEX: step}):
        await eventually(lambda: step.ran)
        await asyncio.sleep(0.3)
    assert [j.item_id for j in step.ran] == [active]
    assert [r["item_id"] for r in await _job_rows(db_pool)] == [paused]


async def test_claims_of_a_killed_process_are_taken_back_and_run_again(
    make_settings: SettingsFactory, db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    # A process of this host that died with a claim (kill -9): its pid no longer exists.
    dead = JobsRepo(db_pool, boot_id=new_boot_id())
    await dead.register(pid=2**22 + 12345)
    await dead.enqueue_many([NewJob(JobKind.LINK, dedupe_key="held")])
    [held] = await dead.claim(JobKind.LINK)
    step = FakeStep(JobKind.LINK, _done)
    async with running_workers(_settings(make_settings, db_dsn), db_pool, db_dsn,
                               {JobKind.LINK: step}) as workers:
        await eventually(lambda: step.ran)
        await eventually(_rows_when(lambda: _job_rows(db_pool), lambda r: r == []))
        section = await workers.section()
    assert step.ran[0].id == held.id
    assert section["recovered_jobs"] == 1


async def test_a_stop_gives_running_claims_back_without_counting_the_attempt(
    make_settings: SettingsFactory, db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    step = FakeStep(JobKind.SCAN, _never_returns)
    await _enqueue(db_pool, NewJob(JobKind.SCAN, dedupe_key="s"))
    async with running_workers(_settings(make_settings, db_dsn), db_pool, db_dsn,
                               {JobKind.SCAN: step}):
        await eventually(lambda: step.running == 1)
    [row] = await _job_rows(db_pool)
    assert row["status"] == "queued"
    assert row["claimed_by"] is None
    assert row["attempts"] == 0


class FlakyJobs(JobsRepo):
    """The real queue, whose outcome writes fail ``failures`` times as in an outage."""

    failures = 0

    async def complete(self, job: Job, then: Any = ()) -> bool:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionRefusedError("database restarting")
        return await super().complete(job, then)


async def test_an_outcome_that_cannot_be_written_is_retried_until_the_database_returns(
    make_settings: SettingsFactory, db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    jobs = FlakyJobs(db_pool, boot_id=new_boot_id())
    jobs.failures = 3
    step = FakeStep(JobKind.SCRAPE, _done)
    await _enqueue(db_pool, NewJob(JobKind.SCRAPE, dedupe_key="x"))
    async with running_workers(_settings(make_settings, db_dsn), db_pool, db_dsn,
                               {JobKind.SCRAPE: step}, jobs=jobs) as workers:
        await eventually(_rows_when(lambda: _job_rows(db_pool), lambda r: r == []))
        stats = workers.runners[JobKind.SCRAPE].stats
    assert len(step.ran) == 1  # the step is not run again: only its outcome is retried
    assert stats.db_errors == 3
    assert stats.completed == 1


async def test_a_stage_with_due_work_and_no_progress_is_reported_once(
    make_settings: SettingsFactory, db_pool: asyncpg.Pool, db_dsn: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    step = FakeStep(JobKind.INDEX, _never_returns)
    await _enqueue(db_pool, *(NewJob(JobKind.INDEX, dedupe_key=f"i{i}") for i in range(2)))
    settings = _settings(make_settings, db_dsn, index=1, stall_after_s=0.2)
    with caplog.at_level(logging.WARNING, logger="riven_async.pipeline.worker"):
        async with running_workers(settings, db_pool, db_dsn, {JobKind.INDEX: step}) as w:
            await eventually(lambda: w.runners[JobKind.INDEX].stats.stalled, timeout_s=15)
            w._watch_stalls()
    stalls = [r for r in caplog.records if "made no progress" in r.getMessage()]
    assert len(stalls) == 1


def test_the_recorded_reason_names_the_error_and_is_bounded() -> None:
    assert describe_error(ValueError("bad size")) == "ValueError: bad size"
    assert describe_error(TimeoutError()) == "TimeoutError"
    assert len(describe_error(RuntimeError("x" * 10_000))) == 2000



async def test_claims_no_runner_holds_are_given_back_but_running_ones_are_kept(
    make_settings: SettingsFactory, db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    step = FakeStep(JobKind.SCAN, _never_returns)
    await _enqueue(db_pool, NewJob(JobKind.SCAN, dedupe_key="running"))
    async with running_workers(_settings(make_settings, db_dsn), db_pool, db_dsn,
                               {JobKind.SCAN: step}) as workers:
        await eventually(lambda: step.running == 1)
        # A claim of this process whose reply was lost: no runner knows it.
        ours = JobsRepo(db_pool, boot_id=workers.runners[JobKind.SCAN]._jobs.boot_id)
        await ours.enqueue_many([NewJob(JobKind.LINK, dedupe_key="orphan")])
        [orphan] = await ours.claim(JobKind.LINK)
        await db_pool.execute("UPDATE jobs SET claimed_at = now() - interval '1 hour'")
        workers._orphans_checked = float("-inf")
        await workers._release_orphans()
        rows = {r["dedupe_key"]: r for r in await _job_rows(db_pool)}
    assert rows["orphan"]["status"] == "queued"
    assert rows["orphan"]["attempts"] == 0
    assert rows["running"]["status"] == "running"
    assert orphan.id == rows["orphan"]["id"]

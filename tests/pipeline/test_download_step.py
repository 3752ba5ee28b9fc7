"""The DOWNLOAD step against the debrid sims and a real database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from riven_async.domain.queue import JobKind, NewJob
from riven_async.domain.releases import DownloadStatus, SelectedFile
from riven_async.domain.states import State
from riven_async.pipeline.steps.base import Deferred
from riven_async.services.debrid import Candidate, FileWant
from riven_async.services.debrid.realdebrid import RealDebrid
from tests.pipeline.media_rig import (
    MediaRig,
    cached_movie,
    cached_season,
    media_rig,
    movie_releases,
    replace_windows,
)


@pytest.fixture
async def rig(db_pool: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> AsyncIterator[MediaRig]:
    async with media_rig(db_pool, db_dsn, tmp_path) as built:
        yield built


async def test_cached_movie_is_added_once_recorded_and_queued_for_its_link(
    rig: MediaRig,
) -> None:
    movie, release = cached_movie(rig.sims, {"realdebrid": True})
    item_id = await rig.add_movie(movie, [release])
    [outcome] = await rig.run_due(JobKind.DOWNLOAD)
    assert outcome.result is not None, outcome
    assert (await rig.item(item_id)).state is State.DOWNLOADED
    [download] = await rig.downloads(item_id)
    assert download.service == "realdebrid"
    assert download.status is DownloadStatus.READY
    assert download.infohash == release.infohash
    [file] = download.selected_files
    assert file.item_id == item_id
    video = max((f for f in release.files if f.is_video), key=lambda f: f.size)
    inner = video.path.split("/", 1)[-1]
    # The path on the mount: the torrent's folder, then the file (a bare file alone).
    assert file.path == (inner if inner == release.name else f"{release.name}/{inner}")
    [link_job] = await rig.queued(JobKind.LINK)
    assert link_job.item_id == item_id
    assert link_job.payload == {"download_id": download.id}
    assert rig.sims.realdebrid.sim.adds_per_hash[release.infohash] == 1
    assert rig.add_calls("torbox") == rig.add_calls("alldebrid") == 0


async def test_a_replayed_job_reuses_the_recorded_download_without_any_call(
    rig: MediaRig,
) -> None:
    movie, release = cached_movie(rig.sims, {"realdebrid": True})
    item_id = await rig.add_movie(movie, [release])
    await rig.run_due(JobKind.DOWNLOAD)
    # The crash: the state move was lost, the job runs again.
    await rig.repos.items.set_state_many([item_id], State.SCRAPED, only_from=[State.DOWNLOADED])
    before = rig.sims.realdebrid.log.total
    await rig.repos.jobs.enqueue_many([_download_job(item_id)])
    [outcome] = await rig.run_due(JobKind.DOWNLOAD)
    assert outcome.result is not None
    assert (await rig.item(item_id)).state is State.DOWNLOADED
    assert rig.sims.realdebrid.log.total == before
    assert len(await rig.downloads(item_id)) == 1


async def test_a_torrent_added_before_a_crash_is_found_in_the_account_not_added_again(
    rig: MediaRig,
) -> None:
    movie, release = cached_movie(rig.sims, {"realdebrid": True})
    item_id = await rig.add_movie(movie, [release])
    # The previous process added the torrent, then died before writing anything.
    other = RealDebrid(rig.runtime.upstreams["realdebrid"], clock=rig.clock)
    await other.acquire(Candidate(release.infohash, release.title), FileWant.movie())
    [outcome] = await rig.run_due(JobKind.DOWNLOAD)
    assert outcome.result is not None, outcome
    assert (await rig.item(item_id)).state is State.DOWNLOADED
    assert rig.sims.realdebrid.sim.adds_per_hash[release.infohash] == 1


async def test_twenty_concurrent_runs_for_one_hash_add_it_once(rig: MediaRig) -> None:
    show, season, pack = cached_season(rig.sims, {"realdebrid": True}, min_episodes=5)
    episodes = await rig.add_season(show, season, pack)
    claimed = await rig.repos.jobs.claim(JobKind.DOWNLOAD, limit=100)
    # The season's jobs and replays of them, twenty at once.
    runs = [claimed[i % len(claimed)] for i in range(20)]
    outcomes = await asyncio.gather(*(rig.download.run(job) for job in runs))
    assert all(o.again_at is None for o in outcomes)
    assert rig.sims.realdebrid.sim.adds_per_hash[pack.infohash] == 1
    assert await rig.states(list(episodes.values())) == {State.DOWNLOADED}
    live = await rig.repos.downloads.live_on_services(["realdebrid"], [pack.infohash])
    assert len(live) == 1
    assert {f.item_id for f in live[0].selected_files} == set(episodes.values())


async def test_twenty_concurrent_runs_of_one_movie_add_it_once(rig: MediaRig) -> None:
    movie, release = cached_movie(rig.sims, {"realdebrid": True})
    item_id = await rig.add_movie(movie, [release])
    [job] = await rig.repos.jobs.claim(JobKind.DOWNLOAD)
    await asyncio.gather(*(rig.download.run(job) for _ in range(20)))
    assert rig.sims.realdebrid.sim.adds_per_hash[release.infohash] == 1
    assert len(await rig.downloads(item_id)) == 1


async def test_one_season_pack_download_moves_every_episode_it_was_ranked_for(
    rig: MediaRig,
) -> None:
    show, season, pack = cached_season(rig.sims, {"realdebrid": True})
    episodes = await rig.add_season(show, season, pack)
    first = min(episodes.values())
    claimed = await rig.repos.jobs.claim(JobKind.DOWNLOAD, limit=100)
    [own] = [j for j in claimed if j.item_id == first]
    outcome = await rig.run_job(own)
    assert outcome.result is not None, outcome
    assert await rig.states(list(episodes.values())) == {State.DOWNLOADED}
    links = await rig.queued(JobKind.LINK)
    assert {j.item_id for j in links} == set(episodes.values())
    [download] = await rig.downloads(first)
    by_item = {f.item_id: f for f in download.selected_files}
    for number, item_id in episodes.items():
        assert f"S{season:02d}E{number:02d}" in by_item[item_id].path
    # The other episodes' jobs need no service: they queue their (deduplicated) links.
    before = rig.sims.realdebrid.log.total
    for job in claimed:
        if job is not own:
            await rig.run_job(job)
    assert rig.sims.realdebrid.log.total == before
    assert len(await rig.queued(JobKind.LINK)) == len(episodes)
    show_item = await rig.item(next(iter(episodes.values())))
    assert show_item.show_id is not None
    season_states = await rig.runtime.pool.fetch(
        "SELECT state FROM items WHERE show_id = $1 AND kind = 'season'", show_item.show_id)
    assert {r["state"] for r in season_states} == {"downloaded"}


async def test_rd_marked_release_is_tried_first(rig: MediaRig) -> None:
    movie, release = cached_movie(rig.sims, {"realdebrid": True})
    others = [r for r in movie_releases(rig.sims, movie, {"realdebrid": True})
              if r.infohash != release.infohash]
    if not others:
        pytest.skip("the sim movie has one cached release")
    best = others[0]
    item_id = await rig.add_movie(movie, [best, release], marked={release.infohash})
    await rig.run_due(JobKind.DOWNLOAD)
    [download] = await rig.downloads(item_id)
    assert download.infohash == release.infohash
    assert rig.sims.realdebrid.sim.adds_per_hash[best.infohash] == 0


async def test_uncached_release_is_deleted_again_and_the_item_waits(rig: MediaRig) -> None:
    movie, release = cached_movie(
        rig.sims, {"realdebrid": False, "torbox": False, "alldebrid": False})
    item_id = await rig.add_movie(movie, [release])
    now = rig.clock.now()
    [outcome] = await rig.run_due(JobKind.DOWNLOAD)
    assert outcome.result is not None
    assert outcome.result.again_at is not None
    wait = rig.runtime.settings.debrid.not_cached_retry_s
    assert outcome.result.again_at >= now + timedelta(seconds=wait)
    assert (await rig.item(item_id)).state is State.SCRAPED
    sim = rig.sims.realdebrid.sim
    assert sim.adds_per_hash[release.infohash] == 1
    assert len(sim.deleted) == 1  # what RD added to check is gone again
    assert await rig.downloads(item_id) == []
    assert not await rig.repos.releases.blacklist_for([item_id])


async def test_infringing_release_is_blacklisted_and_the_next_one_taken(rig: MediaRig) -> None:
    movie, release = cached_movie(rig.sims, {"realdebrid": True, "torbox": False,
                                             "alldebrid": False})
    others = [r for r in movie_releases(rig.sims, movie, {"realdebrid": True})
              if r.infohash != release.infohash]
    if not others:
        pytest.skip("the sim movie has one cached release")
    good = others[0]
    rig.sims.realdebrid.sim.infringing.add(release.infohash)
    item_id = await rig.add_movie(movie, [release, good])
    [outcome] = await rig.run_due(JobKind.DOWNLOAD)
    assert outcome.result is not None, outcome
    [listed] = await rig.repos.releases.blacklist_for([item_id])
    assert listed.infohash == release.infohash
    assert "451" in listed.reason
    [download] = await rig.downloads(item_id)
    assert download.infohash == good.infohash


async def test_every_release_refused_sends_the_item_back_to_scraping(rig: MediaRig) -> None:
    movie, release = cached_movie(rig.sims, {"realdebrid": True, "torbox": False,
                                             "alldebrid": False})
    rig.sims.realdebrid.sim.infringing.add(release.infohash)
    item_id = await rig.add_movie(movie, [release])
    [outcome] = await rig.run_due(JobKind.DOWNLOAD)
    assert outcome.result is not None
    [scrape] = outcome.result.then
    assert scrape.kind is JobKind.SCRAPE
    assert (await rig.item(item_id)).state is State.INDEXED


async def test_rd_traffic_cap_pauses_it_until_tomorrow_and_the_next_service_serves(
    rig: MediaRig,
) -> None:
    movie, release = cached_movie(rig.sims, {"realdebrid": True, "torbox": True})
    rig.sims.realdebrid.sim.traffic_exhausted = True
    item_id = await rig.add_movie(movie, [release])
    [outcome] = await rig.run_due(JobKind.DOWNLOAD)
    assert outcome.result is not None, outcome
    [download] = await rig.downloads(item_id)
    assert download.service == "torbox"
    section = await rig.download.metrics_section()
    realdebrid = section["by_service"]["realdebrid"]
    assert realdebrid["capped"] == 1
    tomorrow = datetime(2026, 1, 2, tzinfo=UTC)
    assert realdebrid["paused_until"] == tomorrow.timestamp()
    assert section["downloads"]["acquired"] == 1


async def test_every_service_paused_defers_without_failing(rig: MediaRig) -> None:
    movie, release = cached_movie(rig.sims, {"realdebrid": True})
    item_id = await rig.add_movie(movie, [release])
    for name in ("realdebrid", "torbox", "alldebrid"):
        rig.runtime.upstreams[name].limiter.pause(600.0)
    before = {n: rig.sims[n].log.total for n in ("realdebrid", "torbox", "alldebrid")}
    [outcome] = await rig.run_due(JobKind.DOWNLOAD)
    assert isinstance(outcome.deferred, Deferred), outcome
    assert outcome.deferred.until >= rig.clock.now() + timedelta(seconds=590)
    assert (await rig.item(item_id)).state is State.SCRAPED
    assert {n: rig.sims[n].log.total for n in before} == before
    [job] = await rig.queued(JobKind.DOWNLOAD)
    assert job.attempts == 0  # no attempt counted


async def test_rate_limited_rd_is_skipped_for_the_next_service(rig: MediaRig) -> None:
    replace_windows(rig, "realdebrid", 1)
    rig.expected_violations = {"realdebrid": 1}
    movie, release = cached_movie(rig.sims, {"realdebrid": True, "torbox": True})
    item_id = await rig.add_movie(movie, [release])
    [outcome] = await rig.run_due(JobKind.DOWNLOAD)
    assert outcome.result is not None, outcome
    [download] = await rig.downloads(item_id)
    assert download.service == "torbox"


def _download_job(item_id: int) -> NewJob:
    return NewJob(JobKind.DOWNLOAD, item_id=item_id, payload={"pack": False})


async def test_record_ready_merges_files_of_one_torrent_and_replaces_another(
    rig: MediaRig,
) -> None:
    movie, release = cached_movie(rig.sims, {"realdebrid": True})
    item_id = await rig.add_movie(movie, [release])
    downloads = rig.repos.downloads
    reservation = await downloads.reserve(item_id, "realdebrid", release.infohash)
    first = SelectedFile("1", "pack/e01.mkv", 100, item_id)
    second = SelectedFile("2", "pack/e02.mkv", 200, None)
    one = await downloads.record_ready(reservation.download.id, "T1", [first])
    assert one is not None
    again = await downloads.record_ready(reservation.download.id, "T1", [first, second])
    assert again is not None
    assert sorted(again.selected_files, key=lambda f: f.file_id) == [first, second]
    assert again.ready_at == one.ready_at
    other = await downloads.record_ready(reservation.download.id, "T2", [second])
    assert other is not None
    assert (other.torrent_id, other.selected_files) == ("T2", (second,))

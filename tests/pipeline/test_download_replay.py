"""The DOWNLOAD step adds a torrent once per service: across a crash that lost the job's
outcome, and across the seasons of one multi-season pack."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import asyncpg
import pytest

from riven_async.domain.media import ItemId
from riven_async.domain.queue import JobKind
from riven_async.domain.releases import DownloadStatus
from riven_async.domain.states import State
from riven_async.pipeline.steps.download import DownloadStep
from riven_async.sim.releases import Release as SimRelease
from riven_async.sim.server import SimCluster
from riven_async.sim.shows import Show
from tests.pipeline.media_rig import MediaRig, cached_movie, media_rig

# Real-Debrid answers "not cached" (add, select, info, delete), AllDebrid serves it.
ALLDEBRID_ONLY: Mapping[str, bool] = {"realdebrid": False, "torbox": False, "alldebrid": True}
NOWHERE: Mapping[str, bool] = {"realdebrid": False, "torbox": False, "alldebrid": False}


class Killed(Exception):
    """The daemon died (kill -9) before the job's outcome was written."""


@pytest.fixture
async def rig(db_pool: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> AsyncIterator[MediaRig]:
    async with media_rig(db_pool, db_dsn, tmp_path) as built:
        yield built


async def _restart(rig: MediaRig) -> DownloadStep:
    """A new process's DOWNLOAD step: nothing of the old one's memory (chain, accounts)."""
    fresh = DownloadStep(rig.runtime)
    rig.download = fresh
    return fresh


def _adds(rig: MediaRig, infohash: str) -> dict[str, int]:
    return {
        "realdebrid": rig.sims.realdebrid.sim.adds_per_hash[infohash],
        "alldebrid": rig.sims.alldebrid.sim.uploads_per_hash[infohash],
        "torbox": rig.sims.torbox.sim.creates_per_hash[infohash],
    }


async def test_a_job_replayed_after_its_outcome_was_lost_adds_nothing_again(
    rig: MediaRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    movie, release = cached_movie(rig.sims, ALLDEBRID_ONLY)
    item_id = await rig.add_movie(movie, [release])

    async def killed(*_: object) -> None:
        raise Killed

    # The chain runs (RD says not cached, AllDebrid serves it), then the daemon dies.
    monkeypatch.setattr(rig.download, "_record", killed)
    [crashed] = await rig.run_due(JobKind.DOWNLOAD)
    assert isinstance(crashed.error, Killed), crashed
    assert _adds(rig, release.infohash) == {"realdebrid": 1, "alldebrid": 1, "torbox": 0}
    assert await rig.downloads(item_id) == []

    fresh = await _restart(rig)
    try:
        await rig.advance(60)
        [replayed] = await rig.run_due(JobKind.DOWNLOAD)
    finally:
        await fresh.aclose()
    assert replayed.result is not None, replayed
    assert (await rig.item(item_id)).state is State.DOWNLOADED
    [download] = await rig.downloads(item_id)
    assert (download.service, download.status) == ("alldebrid", DownloadStatus.READY)
    # RD's "not cached" was kept: not asked again; AllDebrid's magnet found in the account.
    assert _adds(rig, release.infohash) == {"realdebrid": 1, "alldebrid": 1, "torbox": 0}


async def test_not_cached_is_not_asked_again_by_a_replay_but_is_after_the_retry_interval(
    rig: MediaRig,
) -> None:
    movie, release = cached_movie(rig.sims, NOWHERE)
    item_id = await rig.add_movie(movie, [release])
    [job] = await rig.repos.jobs.claim(JobKind.DOWNLOAD)
    first = await rig.download.run(job)
    assert first.again_at is not None
    assert _adds(rig, release.infohash) == {"realdebrid": 1, "alldebrid": 1, "torbox": 0}

    # The snooze was lost in a crash: the job runs again at once in a new process.
    fresh = await _restart(rig)
    try:
        again = await fresh.run(job)
        assert again.again_at is not None
        assert _adds(rig, release.infohash) == {"realdebrid": 1, "alldebrid": 1, "torbox": 0}
        assert (await rig.item(item_id)).state is State.SCRAPED

        # Past [debrid] not_cached_retry_s the services are asked afresh.
        await rig.advance(rig.runtime.settings.debrid.not_cached_retry_s + 60)
        later = await fresh.run(job)
    finally:
        await fresh.aclose()
    assert later.again_at is not None
    assert _adds(rig, release.infohash) == {"realdebrid": 2, "alldebrid": 2, "torbox": 0}


def _series_pack(sims: SimCluster, cached_on: Mapping[str, bool]) -> tuple[Show, SimRelease]:
    """An ended show and a seeded pack of two or more of its seasons, cached as asked."""
    now = sims.clock.now()
    for show in sims.catalog.shows():
        for release in sims.catalog.show_releases(show, now):
            seasons = {s for s, _ in release.episodes}
            if release.seeders == 0 or len(seasons) < 2 or 0 in seasons:
                continue
            states = {s: sims.world.is_cached(s, release.infohash, now) for s in cached_on}
            if states == dict(cached_on):
                return show, release
    raise AssertionError(f"no multi-season pack with {dict(cached_on)}")


@pytest.mark.parametrize("cached_on", [{"realdebrid": True}, ALLDEBRID_ONLY],
                         ids=["realdebrid", "alldebrid"])
async def test_two_seasons_of_one_pack_cost_one_add_per_service(
    rig: MediaRig, cached_on: Mapping[str, bool]
) -> None:
    show, pack = _series_pack(rig.sims, cached_on)
    first = await rig.add_season(show, 1, pack)
    # The first episode's job adds the pack; the season's other jobs reuse it.
    outcomes = await rig.run_due(JobKind.DOWNLOAD)
    assert all(o.result is not None and o.result.again_at is None for o in outcomes), outcomes
    assert await rig.states(list(first.values())) == {State.DOWNLOADED}
    adds = _adds(rig, pack.infohash)
    assert sum(adds.values()) >= 1, adds
    calls = {name: rig.sims[name].log.total for name in adds}

    second = await rig.add_season(show, 2, pack)
    outcomes = await rig.run_due(JobKind.DOWNLOAD, concurrently=True)
    assert all(o.result is not None and o.result.again_at is None for o in outcomes), outcomes
    assert await rig.states(list(second.values())) == {State.DOWNLOADED}
    # The second season's files were recorded with the first: no service is asked at all.
    assert _adds(rig, pack.infohash) == adds
    assert {name: rig.sims[name].log.total for name in adds} == calls
    assert all(n <= 1 for n in adds.values()), adds

    [download] = await rig.repos.downloads.live_on_services(list(adds), [pack.infohash])
    by_item = {f.item_id: f for f in download.selected_files if f.item_id is not None}
    for season, items in ((1, first), (2, second)):
        for number, item_id in items.items():
            assert f"S{season:02d}E{number:02d}" in by_item[ItemId(item_id)].path
    links = await rig.queued(JobKind.LINK)
    assert {j.item_id for j in links} == {*first.values(), *second.values()}

"""The SCAN step: one refresh per media server and folder, items completed, parents aggregated."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from riven_async.domain.media import ItemId
from riven_async.domain.queue import JobKind, NewJob
from riven_async.domain.states import State
from riven_async.pipeline.steps.base import Deferred
from riven_async.pipeline.steps.scan import ScanError
from riven_async.sim.world import LibraryScan
from tests.pipeline.media_rig import MediaRig, cached_movie, cached_season, media_rig


@pytest.fixture
async def rig(db_pool: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> AsyncIterator[MediaRig]:
    async with media_rig(db_pool, db_dsn, tmp_path) as built:
        yield built


def scans(rig: MediaRig, name: str) -> list[LibraryScan]:
    sim = rig.sims[name].sim
    found: list[LibraryScan] = sim.scans
    return found


async def _linked_season(rig: MediaRig) -> tuple[dict[int, ItemId], Path]:
    show, season, pack = cached_season(rig.sims, {"realdebrid": True})
    episodes = await rig.add_season(show, season, pack)
    await rig.run_due(JobKind.DOWNLOAD)
    await rig.mount_catches_up()
    await rig.run_due(JobKind.LINK)
    [entry, *_] = await rig.entries(list(episodes.values()))
    return episodes, Path(entry.link_path).parent


async def test_a_season_is_scanned_once_per_server_and_completed(rig: MediaRig) -> None:
    episodes, season_dir = await _linked_season(rig)
    assert await rig.run_due(JobKind.SCAN) == []  # not before the coalesce window ends
    await rig.advance(rig.runtime.settings.mediaservers.coalesce_window_s)
    [outcome] = await rig.run_due(JobKind.SCAN)
    assert outcome.result is not None, outcome
    [plex] = scans(rig, "plex")
    assert (plex.path, plex.kind, plex.section, plex.matched) == (
        str(season_dir), "partial", "1", True)
    for name in ("jellyfin", "emby"):
        [scan] = scans(rig, name)
        assert (scan.path, scan.kind, scan.matched) == (str(season_dir), "Created", True)
    assert await rig.states(list(episodes.values())) == {State.COMPLETED}
    episode = await rig.item(next(iter(episodes.values())))
    assert episode.show_id is not None
    parents = await rig.runtime.pool.fetch(
        "SELECT kind, state FROM items WHERE (id = $1 OR show_id = $1) AND kind <> 'episode'",
        episode.show_id)
    by_kind = {r["kind"]: r["state"] for r in parents}
    assert by_kind["season"] == "completed"
    # Only one season of the (ended) show was requested here; its other seasons have no
    # episodes in the database, so the show is complete as far as it knows.
    assert by_kind["show"] == "completed"
    assert await rig.queued(JobKind.SCAN) == []


async def _season_with_a_straggler(rig: MediaRig) -> tuple[dict[int, ItemId], Path, ItemId]:
    """A linked season one of whose episodes is still being linked when the window ends."""
    episodes, season_dir = await _linked_season(rig)
    straggler = max(episodes.values())
    await rig.runtime.pool.execute("UPDATE items SET state = 'downloaded' WHERE id = $1",
                                   straggler)
    return episodes, season_dir, straggler


async def test_a_season_scan_waits_for_its_last_links_but_not_forever(rig: MediaRig) -> None:
    episodes, season_dir, straggler = await _season_with_a_straggler(rig)
    section = rig.runtime.settings.mediaservers
    await rig.advance(section.coalesce_window_s)
    [waited] = await rig.run_due(JobKind.SCAN)
    assert waited.result is not None
    assert waited.result.again_at is not None
    assert scans(rig, "plex") == []
    await rig.runtime.pool.execute("UPDATE items SET state = 'linked' WHERE id = $1", straggler)
    await rig.advance(section.coalesce_window_s)
    [scanned] = await rig.run_due(JobKind.SCAN)
    assert scanned.result is not None
    assert scanned.result.again_at is None
    assert [s.path for s in scans(rig, "plex")] == [str(season_dir)]
    assert await rig.states(list(episodes.values())) == {State.COMPLETED}


async def test_a_season_scan_goes_out_after_coalesce_max_whatever_is_pending(
    rig: MediaRig,
) -> None:
    _, season_dir, straggler = await _season_with_a_straggler(rig)
    section = rig.runtime.settings.mediaservers
    await rig.advance(section.coalesce_window_s)
    [first] = await rig.run_due(JobKind.SCAN)
    assert first.result is not None
    assert first.result.again_at is not None
    await rig.advance(section.coalesce_max_s)
    [late] = await rig.run_due(JobKind.SCAN)
    assert late.result is not None
    assert late.result.again_at is None
    assert [s.path for s in scans(rig, "plex")] == [str(season_dir)]
    # The straggler was not linked when the scan went out: its own scan comes later.
    assert await rig.states([straggler]) == {State.DOWNLOADED}


async def test_a_movie_folder_is_scanned_and_the_movie_completed(rig: MediaRig) -> None:
    movie, release = cached_movie(rig.sims, {"realdebrid": True})
    item_id = await rig.add_movie(movie, [release])
    await rig.run_due(JobKind.DOWNLOAD)
    await rig.mount_catches_up()
    await rig.run_due(JobKind.LINK)
    await rig.advance(rig.runtime.settings.mediaservers.coalesce_window_s)
    [outcome] = await rig.run_due(JobKind.SCAN)
    assert outcome.result is not None, outcome
    [entry] = await rig.entries([item_id])
    [plex] = scans(rig, "plex")
    assert (plex.path, plex.section, plex.matched) == (str(Path(entry.link_path).parent), "2",
                                                       True)
    assert (await rig.item(item_id)).state is State.COMPLETED


async def test_a_failing_server_is_asked_again_alone(rig: MediaRig) -> None:
    episodes, season_dir = await _linked_season(rig)
    await rig.advance(rig.runtime.settings.mediaservers.coalesce_window_s)
    rig.sims.jellyfin.faults.set(error_rate=1.0, error_status=500)
    [failed] = await rig.run_due(JobKind.SCAN)
    assert isinstance(failed.error, ScanError), failed
    assert "jellyfin" in str(failed.error)
    assert await rig.states(list(episodes.values())) == {State.LINKED}
    rig.sims.jellyfin.faults.clear()
    await rig.advance(31.0)
    [retried] = await rig.run_due(JobKind.SCAN)
    assert retried.result is not None, retried
    assert len(scans(rig, "plex")) == len(scans(rig, "emby")) == 1
    assert [s.path for s in scans(rig, "jellyfin")] == [str(season_dir)]
    assert await rig.states(list(episodes.values())) == {State.COMPLETED}


async def test_a_paused_server_defers_the_scan(rig: MediaRig) -> None:
    episodes, _ = await _linked_season(rig)
    await rig.advance(rig.runtime.settings.mediaservers.coalesce_window_s)
    rig.runtime.upstreams["plex"].limiter.pause(120.0)
    [outcome] = await rig.run_due(JobKind.SCAN)
    assert isinstance(outcome.deferred, Deferred), outcome
    assert scans(rig, "plex") == scans(rig, "jellyfin") == []
    assert await rig.states(list(episodes.values())) == {State.LINKED}


async def test_a_scan_retried_for_an_item_finds_its_folder(rig: MediaRig) -> None:
    movie, release = cached_movie(rig.sims, {"realdebrid": True})
    item_id = await rig.add_movie(movie, [release])
    await rig.run_due(JobKind.DOWNLOAD)
    await rig.mount_catches_up()
    await rig.run_due(JobKind.LINK)
    # The API's retry queues the job of the item's state: SCAN keyed by the item.
    await rig.runtime.pool.execute("DELETE FROM jobs WHERE kind = 'scan'")
    await rig.repos.jobs.enqueue_many([NewJob(JobKind.SCAN, item_id=item_id)])
    [outcome] = await rig.run_due(JobKind.SCAN)
    assert outcome.result is not None, outcome
    [entry] = await rig.entries([item_id])
    assert [s.path for s in scans(rig, "emby")] == [str(Path(entry.link_path).parent)]
    assert (await rig.item(item_id)).state is State.COMPLETED

"""The LINK step: files on the simulated mount linked into the library, a real database."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from riven_async.domain.queue import JobKind, NewJob
from riven_async.domain.states import State
from riven_async.pipeline.library import MountTimeoutError
from riven_async.pipeline.steps.base import Deferred
from tests.pipeline.media_rig import (
    MediaRig,
    cached_movie,
    cached_season,
    media_rig,
    on_disk,
)


@pytest.fixture
async def rig(db_pool: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> AsyncIterator[MediaRig]:
    async with media_rig(db_pool, db_dsn, tmp_path) as built:
        yield built


async def _downloaded_movie(rig: MediaRig, title: str | None = None) -> int:
    movie, release = cached_movie(rig.sims, {"realdebrid": True})
    item_id = await rig.add_movie(movie, [release], title=title)
    [outcome] = await rig.run_due(JobKind.DOWNLOAD)
    assert outcome.result is not None, outcome
    return item_id


async def test_movie_is_linked_plex_style_at_its_file_on_the_mount(rig: MediaRig) -> None:
    item_id = await _downloaded_movie(rig)
    await rig.mount_catches_up()
    now = rig.clock.now()
    [outcome] = await rig.run_due(JobKind.LINK)
    assert outcome.result is not None, outcome
    item = await rig.item(item_id)
    assert item.state is State.LINKED
    [entry] = await rig.entries([item_id])
    link = Path(entry.link_path)
    folder = f"{item.title} ({item.year}) {{tmdb-{item.ids.tmdb}}}"
    assert link.parent == rig.library_root / "Movies" / folder
    assert link.name.startswith(folder + ".")
    disk = on_disk(link)
    assert disk.is_symlink
    assert disk.points_at == Path(entry.target_path)
    assert Path(entry.target_path).is_relative_to(rig.mount_root)
    assert disk.resolves_to_file
    [download] = await rig.downloads(item_id)
    assert entry.download_id == download.id
    # One SCAN of the movie's folder, due when the coalesce window ends.
    [scan] = await rig.queued(JobKind.SCAN)
    assert scan.dedupe_key == f"scan:{link.parent}"
    assert scan.payload == {"folder": str(link.parent), "items": [item_id]}
    window = rig.runtime.settings.mediaservers.coalesce_window_s
    assert scan.run_at >= now + timedelta(seconds=window)


async def test_mount_lag_defers_with_growing_pauses_then_links(rig: MediaRig) -> None:
    item_id = await _downloaded_movie(rig)
    pauses = []
    for _ in range(4):
        [outcome] = await rig.run_due(JobKind.LINK)
        assert isinstance(outcome.deferred, Deferred), outcome
        pauses.append((outcome.deferred.until - rig.clock.now()).total_seconds())
        await rig.advance(pauses[-1] + 0.01)
    assert pauses == sorted(pauses)
    assert pauses[-1] > pauses[0]
    [job] = await rig.queued(JobKind.LINK)
    assert job.attempts == 0
    assert (await rig.item(item_id)).state is State.DOWNLOADED
    await rig.mount_catches_up()
    [outcome] = await rig.run_due(JobKind.LINK)
    assert outcome.result is not None, outcome
    assert (await rig.item(item_id)).state is State.LINKED


async def test_mount_that_never_catches_up_fails_the_attempt(
    db_pool: asyncpg.Pool, db_dsn: str, tmp_path: Path
) -> None:
    async with media_rig(db_pool, db_dsn, tmp_path,
                         library={"mount_wait_timeout_s": 30.0}) as rig:
        await _downloaded_movie(rig)
        [first] = await rig.run_due(JobKind.LINK)
        assert first.deferred is not None
        await rig.advance(31.0)
        [late] = await rig.run_due(JobKind.LINK)
        assert isinstance(late.error, MountTimeoutError)


async def test_a_season_is_linked_into_its_folder_and_shares_one_scan(rig: MediaRig) -> None:
    show, season, pack = cached_season(rig.sims, {"realdebrid": True})
    episodes = await rig.add_season(show, season, pack)
    await rig.run_due(JobKind.DOWNLOAD)
    await rig.mount_catches_up()
    outcomes = await rig.run_due(JobKind.LINK)
    assert all(o.result is not None for o in outcomes), outcomes
    assert await rig.states(list(episodes.values())) == {State.LINKED}
    entries = {e.item_id: e for e in await rig.entries(list(episodes.values()))}
    show_dir = rig.library_root / "Shows" / f"{show.title} ({show.year}) {{tvdb-{show.tvdb_id}}}"
    season_dir = show_dir / f"Season {season:02d}"
    for number, item_id in episodes.items():
        link = Path(entries[item_id].link_path)
        assert link.parent == season_dir
        assert link.stem == f"{show.title} ({show.year}) - s{season:02d}e{number:02d}"
        disk = on_disk(link)
        assert disk.points_at == Path(entries[item_id].target_path)
        assert disk.resolves_to_file
        assert f"S{season:02d}E{number:02d}" in entries[item_id].target_path
    [scan] = await rig.queued(JobKind.SCAN)
    assert scan.payload is not None
    assert scan.payload["folder"] == str(season_dir)
    show_row = await rig.item((await rig.item(next(iter(episodes.values())))).show_id or 0)
    assert show_row.state is State.LINKED


async def test_a_replayed_link_changes_nothing(rig: MediaRig) -> None:
    item_id = await _downloaded_movie(rig)
    await rig.mount_catches_up()
    await rig.run_due(JobKind.LINK)
    [entry] = await rig.entries([item_id])
    before = os.lstat(entry.link_path).st_ino
    # The crash: the state move was lost, the job runs again.
    await rig.repos.items.set_state_many([item_id], State.DOWNLOADED, only_from=[State.LINKED])
    await rig.repos.jobs.enqueue_many([NewJob(JobKind.LINK, item_id=item_id)])
    [outcome] = await rig.run_due(JobKind.LINK)
    assert outcome.result is not None, outcome
    assert os.lstat(entry.link_path).st_ino == before  # not even replaced
    assert await rig.entries([item_id]) == [entry]
    assert rig.link.counts["link_unchanged"] == 1
    assert len(await rig.queued(JobKind.SCAN)) == 1


async def test_a_hostile_title_stays_inside_the_library(rig: MediaRig) -> None:
    # (NUL cannot reach a title: PostgreSQL text refuses it.)
    item_id = await _downloaded_movie(rig, title="../../../etc/passwd/..")
    await rig.mount_catches_up()
    [outcome] = await rig.run_due(JobKind.LINK)
    assert outcome.result is not None, outcome
    [entry] = await rig.entries([item_id])
    link = Path(entry.link_path)
    assert link.parent.parent == rig.library_root / "Movies"
    assert ".." not in link.parts
    assert link.name.startswith("etc-passwd")
    assert sorted(p.name for p in rig.library_root.parent.iterdir()) == ["library", "mount"]


async def test_a_vanished_download_is_downloaded_again(rig: MediaRig) -> None:
    item_id = await _downloaded_movie(rig)
    [download] = await rig.downloads(item_id)
    await rig.repos.downloads.mark_removed([download.id])
    [outcome] = await rig.run_due(JobKind.LINK)
    assert outcome.result is not None
    [job] = outcome.result.then
    assert job.kind is JobKind.DOWNLOAD
    assert (await rig.item(item_id)).state is State.SCRAPED

"""The library-verify sweep: broken links downloaded again, missing ones made again."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from riven_async.domain.queue import JobKind
from riven_async.domain.releases import DownloadStatus
from riven_async.domain.states import State
from riven_async.pipeline.link_verify import LinkVerifier
from tests.pipeline.media_rig import MediaRig, cached_movie, media_rig, on_disk


@pytest.fixture
async def rig(db_pool: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> AsyncIterator[MediaRig]:
    async with media_rig(db_pool, db_dsn, tmp_path) as built:
        yield built


async def _completed_movies(rig: MediaRig, count: int) -> list[int]:
    items: list[int] = []
    for _ in range(count):
        movie, release = cached_movie(rig.sims, {"realdebrid": True},
                                      skip=[(await rig.item(i)).ids.tmdb or 0 for i in items])
        items.append(await rig.add_movie(movie, [release]))
    await rig.run_due(JobKind.DOWNLOAD)
    await rig.mount_catches_up()
    await rig.run_due(JobKind.LINK)
    await rig.advance(rig.runtime.settings.mediaservers.coalesce_window_s)
    await rig.run_due(JobKind.SCAN)
    assert await rig.states(items) == {State.COMPLETED}
    return items


def _remove(path: str) -> None:
    os.unlink(path)


async def test_a_sweep_repairs_broken_and_missing_links_and_verifies_the_rest(
    rig: MediaRig,
) -> None:
    fine, broken, missing = await _completed_movies(rig, 3)
    entries = {e.item_id: e for e in await rig.entries([fine, broken, missing])}
    _remove(entries[broken].target_path)  # the file left the mount
    _remove(entries[missing].link_path)  # someone deleted the link
    stats = await LinkVerifier(rig.runtime).sweep()
    assert (stats.checked, stats.ok, stats.redownload, stats.relink) == (3, 1, 1, 1)

    assert (await rig.item(fine)).state is State.COMPLETED
    [verified] = await rig.entries([fine])
    assert verified.verified_at is not None

    assert (await rig.item(broken)).state is State.SCRAPED
    assert [j.item_id for j in await rig.queued(JobKind.DOWNLOAD)] == [broken]
    [gone] = await rig.downloads(broken)
    assert gone.status is DownloadStatus.REMOVED

    assert (await rig.item(missing)).state is State.DOWNLOADED
    [relink] = await rig.queued(JobKind.LINK)
    assert relink.item_id == missing
    [outcome] = await rig.run_due(JobKind.LINK)
    assert outcome.result is not None, outcome
    assert on_disk(entries[missing].link_path).resolves_to_file


async def test_an_empty_mount_repairs_nothing(rig: MediaRig) -> None:
    [item] = await _completed_movies(rig, 1)
    [entry] = await rig.entries([item])
    _remove(entry.target_path)
    os.rmdir(Path(entry.target_path).parent)  # the mount shows nothing at all (rclone down)
    stats = await LinkVerifier(rig.runtime).sweep()
    assert (stats.skipped_mount_empty, stats.checked) == (1, 0)
    assert (await rig.item(item)).state is State.COMPLETED

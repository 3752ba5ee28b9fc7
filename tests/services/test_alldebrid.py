"""AllDebrid client against its sim: upload's ``ready`` decides; errors inside 200s are errors."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from riven_async.core.http import HttpClient, Secret
from riven_async.errors import UpstreamUnavailable
from riven_async.services.debrid import (
    AccountError,
    DebridError,
    FileWant,
    NoMatchingFiles,
    NotCached,
    TorrentFailed,
    TorrentGone,
)
from riven_async.services.debrid.alldebrid import AllDebrid
from riven_async.sim.releases import Release
from tests.services.debrid_fixtures import (
    SimEnv,
    advancing,
    calls,
    candidate,
    mark,
    pack_want,
    pick_movie,
    pick_pack,
    sim_env,
)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[SimEnv]:
    async with sim_env(tmp_path) as env, advancing(env.clock):
        yield env


@pytest.fixture
def ad(env: SimEnv) -> AllDebrid:
    return AllDebrid(env.client("alldebrid"), clock=env.clock)


def paths(env: SimEnv, since: int = 0) -> list[str]:
    return [r.path for r in calls(env.sims.alldebrid, since)]


async def test_cached_pack_costs_an_upload_and_a_files_call(env: SimEnv, ad: AllDebrid) -> None:
    release = pick_pack(env.sims, {"alldebrid": True})
    acquired = await ad.acquire(candidate(release), pack_want(release))
    assert acquired.torrent.ready
    assert acquired.torrent.infohash == release.infohash
    assert [(m.season, m.episode) for m in acquired.selection.episodes] == list(release.episodes)
    assert paths(env) == ["/v4.1/magnet/status", "/v4/magnet/upload", "/v4/magnet/files"]
    sim = env.sims.alldebrid.sim
    assert sim.uploads_per_hash[release.infohash] == 1
    assert sim.deleted == []
    # The files tree flattens to paths the mount shows under the magnet's folder.
    root = env.sims.mount.root
    assert root is not None
    env.clock.advance(env.sims.mount.lag_s)
    await env.sims.mount.flush()
    torrent = acquired.torrent
    for match in acquired.selection.episodes:
        assert (root / torrent.name / torrent.inner_path(match.file)).is_file()


async def test_magnet_in_the_account_is_reused(env: SimEnv, ad: AllDebrid) -> None:
    release = pick_pack(env.sims, {"alldebrid": True})
    first = await ad.acquire(candidate(release), pack_want(release))
    before = mark(env.sims.alldebrid)
    fresh = AllDebrid(env.client("alldebrid"), clock=env.clock)  # knows only the listing
    again = await fresh.acquire(candidate(release), FileWant.episode(*release.episodes[0]))
    assert again.reused
    assert again.torrent.torrent_id == first.torrent.torrent_id
    assert paths(env, before) == ["/v4.1/magnet/status", "/v4.1/magnet/status", "/v4/magnet/files"]
    assert env.sims.alldebrid.sim.uploads_per_hash[release.infohash] == 1


async def test_not_ready_upload_is_deleted_at_once(env: SimEnv, ad: AllDebrid) -> None:
    release = pick_pack(env.sims, {"alldebrid": False})
    with pytest.raises(NotCached) as caught:
        await ad.acquire(candidate(release), pack_want(release))
    assert paths(env) == ["/v4.1/magnet/status", "/v4/magnet/upload", "/v4/magnet/delete"]
    sim = env.sims.alldebrid.sim
    assert sim.uploads_per_hash[release.infohash] == 1
    assert len(sim.deleted) == 1
    assert sim.magnets == {}
    env.assert_no_secret(str(caught.value))


async def test_the_verdict_is_handed_over_before_the_upload_is_deleted(
    env: SimEnv, ad: AllDebrid
) -> None:
    release = pick_pack(env.sims, {"alldebrid": False})
    sim = env.sims.alldebrid.sim
    heard: list[tuple[type[DebridError], int]] = []

    async def settled(exc: DebridError) -> None:
        heard.append((type(exc), len(sim.magnets)))

    with pytest.raises(NotCached):
        await ad.acquire(candidate(release), pack_want(release), settled=settled)
    assert heard == [(NotCached, 1)]
    assert sim.magnets == {}


async def test_no_matching_files_deletes_the_upload(env: SimEnv, ad: AllDebrid) -> None:
    release = pick_pack(env.sims, {"alldebrid": True})
    with pytest.raises(NoMatchingFiles):
        await ad.acquire(candidate(release), FileWant.episode(42, 1))
    assert len(env.sims.alldebrid.sim.deleted) == 1


async def test_errors_sent_as_http_200_are_errors(env: SimEnv, ad: AllDebrid) -> None:
    env.sims.alldebrid.sim.errors_as_200 = True
    with pytest.raises(TorrentGone, match="MAGNET_INVALID_ID"):
        await ad.torrent("123")
    with pytest.raises(TorrentGone):
        await ad.delete("123")
    assert {r.status for r in calls(env.sims.alldebrid)} == {200}

    release = pick_pack(env.sims, {"alldebrid": True})
    env.sims.alldebrid.faults.set(error_rate=1.0, error_status=503, paths=("/v4/magnet/upload",))
    with pytest.raises(UpstreamUnavailable, match="MAINTENANCE") as caught:
        await ad.acquire(candidate(release), pack_want(release))
    assert env.sims.alldebrid.sim.magnets == {}
    env.assert_no_secret(str(caught.value))


def stalled_release(env: SimEnv) -> Release:
    now = env.clock.now()
    for show in env.sims.catalog.shows():
        for plan in show.seasons:
            for release in env.sims.catalog.season_releases(show, plan.number, now):
                if release.seeders == 0 and not env.sims.world.is_cached(
                    "alldebrid", release.infohash, now
                ):
                    return release
    raise AssertionError("no stalled release")


async def test_errored_magnet_in_the_account_is_reported_and_left_alone(
    env: SimEnv, ad: AllDebrid
) -> None:
    release = stalled_release(env)
    handle = env.sims.alldebrid
    # The user uploaded it by hand; with no seeders AllDebrid gives up after 20 minutes.
    async with HttpClient(env.client("alldebrid").policy, clock=env.clock) as raw:
        await raw.post("/v4/magnet/upload", data={"magnets[]": release.magnet})
    env.clock.advance(timedelta(minutes=21).total_seconds())
    with pytest.raises(TorrentFailed, match="status code 7"):
        await ad.acquire(candidate(release), pack_want(release))
    assert handle.sim.deleted == []  # not ours to delete
    assert handle.sim.uploads_per_hash[release.infohash] == 1


async def test_429_waits_for_retry_after_then_goes_on(env: SimEnv, ad: AllDebrid) -> None:
    release = pick_movie(env.sims, {"alldebrid": True})
    handle = env.sims.alldebrid
    handle.limiter.set_windows([dataclasses.replace(handle.limiter.windows[0], limit=2, span_s=5)])
    env.expected_violations = {"alldebrid": 1}
    acquired = await ad.acquire(candidate(release), FileWant.movie())
    assert acquired.torrent.ready
    sent = calls(handle)
    refused = [r for r in sent if r.status == 429]
    assert len(refused) == 1
    retried = sent[sent.index(refused[0]) + 1]
    assert retried.path == refused[0].path
    assert retried.at - refused[0].at >= timedelta(seconds=5)


async def test_twenty_concurrent_acquires_upload_once(env: SimEnv, ad: AllDebrid) -> None:
    release = pick_pack(env.sims, {"alldebrid": True})
    want = pack_want(release)
    results = await asyncio.gather(*(ad.acquire(candidate(release), want) for _ in range(20)))
    assert len({r.torrent.torrent_id for r in results}) == 1
    assert env.sims.alldebrid.sim.uploads_per_hash[release.infohash] == 1


async def test_torrent_reports_fresh_state_with_files(env: SimEnv, ad: AllDebrid) -> None:
    release = pick_pack(env.sims, {"alldebrid": True})
    acquired = await ad.acquire(candidate(release), pack_want(release))
    fresh = await ad.torrent(acquired.torrent.torrent_id)
    assert fresh.ready
    assert fresh.files == acquired.torrent.files
    await ad.delete(fresh.torrent_id)
    assert env.sims.alldebrid.sim.magnets == {}


async def test_bad_key_is_an_account_error_that_names_no_key(env: SimEnv) -> None:
    wrong = "WrongKey" + "z" * 12
    policy = dataclasses.replace(env.client("alldebrid").policy, api_key=Secret(wrong))
    async with HttpClient(policy, clock=env.clock) as client:
        ad = AllDebrid(client, clock=env.clock)
        release = pick_pack(env.sims, {"alldebrid": True})
        with pytest.raises(AccountError, match="AUTH_BAD_APIKEY") as caught:
            await ad.acquire(candidate(release), pack_want(release))
    for text in (str(caught.value), repr(caught.value)):
        assert wrong not in text
        env.assert_no_secret(text)
    assert ad.paused_until is not None

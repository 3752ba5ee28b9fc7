"""TorBox client against its sim: one checkcached call for many hashes; create only cached."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from riven_async.core.http import HttpClient, Secret
from riven_async.errors import UpstreamUnavailable
from riven_async.services.debrid import (
    AccountError,
    Availability,
    Candidate,
    FileWant,
    NoMatchingFiles,
    NotCached,
    ProbeResult,
    TorrentFailed,
    TorrentGone,
)
from riven_async.services.debrid.torbox import TorBox
from riven_async.sim.torbox import TorBoxSim
from tests.services.debrid_fixtures import (
    SimEnv,
    advancing,
    calls,
    candidate,
    foreign_hash,
    mark,
    pack_want,
    pick_movie,
    pick_pack,
    season_packs,
    sim_env,
)

TB = "/v1/api"


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[SimEnv]:
    async with sim_env(tmp_path) as env, advancing(env.clock):
        yield env


@pytest.fixture
def tb(env: SimEnv) -> TorBox:
    return TorBox(env.client("torbox"), clock=env.clock)


def paths(env: SimEnv, since: int = 0) -> list[str]:
    return [r.path.removeprefix(TB) for r in calls(env.sims.torbox, since)]


def cached_probe(infohash: str) -> ProbeResult:
    return ProbeResult(infohash, Availability.CACHED)


async def test_probe_answers_for_many_hashes_in_one_call(env: SimEnv, tb: TorBox) -> None:
    releases = [r for r, _ in season_packs(env.sims)][:40]
    hashes = [r.infohash for r in releases]
    results = await tb.probe(hashes)
    assert paths(env) == ["/torrents/checkcached"]
    now = env.clock.now()
    for release in releases:
        cached = env.sims.world.is_cached("torbox", release.infohash, now)
        result = results[release.infohash]
        assert (result.availability is Availability.CACHED) is cached
        if cached:
            assert [f.name for f in result.files] == [f.name for f in release.files]
    assert {r.availability for r in results.values()} == {
        Availability.CACHED,
        Availability.NOT_CACHED,
    }


async def test_probe_batches_a_hundred_hashes_per_call(env: SimEnv, tb: TorBox) -> None:
    hashes = [foreign_hash(i) for i in range(250)]
    results = await tb.probe(hashes)
    assert paths(env) == ["/torrents/checkcached"] * 3
    assert all(r.availability is Availability.NOT_CACHED for r in results.values())
    assert env.sims.torbox.sim.checked_hashes == 250


async def test_cached_pack_costs_a_create_and_a_mylist_after_the_probe(
    env: SimEnv, tb: TorBox
) -> None:
    release = pick_pack(env.sims, {"torbox": True})
    probe = (await tb.probe([release.infohash]))[release.infohash]
    before = mark(env.sims.torbox)
    acquired = await tb.acquire(candidate(release), pack_want(release), probe)
    assert acquired.torrent.ready
    assert not acquired.reused
    assert [(m.season, m.episode) for m in acquired.selection.episodes] == list(release.episodes)
    assert paths(env, before) == ["/torrents/createtorrent", "/torrents/mylist"]
    mylist = calls(env.sims.torbox, before)[1]
    assert "bypass_cache=true" in mylist.query
    assert env.sims.torbox.sim.creates_per_hash[release.infohash] == 1


async def test_acquire_without_a_probe_checks_that_one_hash_first(env: SimEnv, tb: TorBox) -> None:
    release = pick_movie(env.sims, {"torbox": True})
    acquired = await tb.acquire(candidate(release), FileWant.movie())
    assert acquired.selection.movie is not None
    assert paths(env) == ["/torrents/checkcached", "/torrents/createtorrent", "/torrents/mylist"]


async def test_not_cached_per_probe_spends_no_call(env: SimEnv, tb: TorBox) -> None:
    release = pick_pack(env.sims, {"torbox": False})
    probe = ProbeResult(release.infohash, Availability.NOT_CACHED)
    with pytest.raises(NotCached, match="checkcached"):
        await tb.acquire(candidate(release), pack_want(release), probe)
    assert paths(env) == []


async def test_probe_files_turn_down_a_release_without_the_episode_before_creating(
    env: SimEnv, tb: TorBox
) -> None:
    release = pick_pack(env.sims, {"torbox": True})
    probe = (await tb.probe([release.infohash]))[release.infohash]
    before = mark(env.sims.torbox)
    with pytest.raises(NoMatchingFiles):
        await tb.acquire(candidate(release), FileWant.episode(42, 1), probe)
    assert paths(env, before) == []


async def test_stale_cached_answer_gives_up_within_the_bound_and_deletes(env: SimEnv) -> None:
    tb = TorBox(env.client("torbox"), clock=env.clock, ready_timeout_s=10.0)
    infohash = foreign_hash()
    started = env.clock.monotonic()
    with pytest.raises(NotCached, match="giving up") as caught:
        await tb.acquire(Candidate(infohash), FileWant.movie(), cached_probe(infohash))
    assert 10.0 <= env.clock.monotonic() - started < 11.0
    sent = paths(env)
    assert sent[0] == "/torrents/createtorrent"
    assert 2 <= sent.count("/torrents/mylist") <= 5
    assert sent[-1] == "/torrents/controltorrent"
    sim = env.sims.torbox.sim
    assert len(sim.deleted) == 1
    assert sim.torrents == {}
    env.assert_no_secret(str(caught.value))


async def test_torrent_already_in_the_account_is_reused_and_never_deleted(
    env: SimEnv, tb: TorBox
) -> None:
    other = TorBox(env.client("torbox"), clock=env.clock)  # another tool, same account
    release = pick_pack(env.sims, {"torbox": True})
    first = await other.acquire(
        candidate(release), pack_want(release), cached_probe(release.infohash)
    )
    again = await tb.acquire(candidate(release), pack_want(release), cached_probe(release.infohash))
    assert again.reused
    assert again.torrent.torrent_id == first.torrent.torrent_id
    assert env.sims.torbox.sim.creates_per_hash[release.infohash] == 1


async def test_failed_download_state_is_an_error_and_deletes(
    env: SimEnv, tb: TorBox, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = TorBoxSim._torrent

    def errored(self: TorBoxSim, torrent: Any, now: Any) -> dict[str, Any]:
        body = original(self, torrent, now)
        return {**body, "download_state": "error", "download_finished": False}

    monkeypatch.setattr(TorBoxSim, "_torrent", errored)
    release = pick_pack(env.sims, {"torbox": True})
    with pytest.raises(TorrentFailed, match="error"):
        await tb.acquire(candidate(release), pack_want(release), cached_probe(release.infohash))
    assert len(env.sims.torbox.sim.deleted) == 1


async def test_error_envelopes_are_errors(env: SimEnv, tb: TorBox) -> None:
    with pytest.raises(TorrentGone, match="ITEM_NOT_FOUND"):
        await tb.torrent("123")
    release = pick_pack(env.sims, {"torbox": True})
    env.sims.torbox.faults.set(error_rate=1.0, paths=(f"{TB}/torrents/createtorrent",))
    with pytest.raises(UpstreamUnavailable, match="DATABASE_ERROR") as caught:
        await tb.acquire(candidate(release), pack_want(release), cached_probe(release.infohash))
    assert env.sims.torbox.sim.torrents == {}
    env.assert_no_secret(str(caught.value))


async def test_429_waits_for_retry_after_then_goes_on(env: SimEnv, tb: TorBox) -> None:
    release = pick_movie(env.sims, {"torbox": True})
    handle = env.sims.torbox
    handle.limiter.set_windows([dataclasses.replace(handle.limiter.windows[0], limit=2, span_s=10)])
    env.expected_violations = {"torbox": 1}
    acquired = await tb.acquire(candidate(release), FileWant.movie())
    assert acquired.torrent.ready
    sent = calls(handle)
    refused = [r for r in sent if r.status == 429]
    assert len(refused) == 1
    retried = sent[sent.index(refused[0]) + 1]
    assert retried.path == refused[0].path
    assert retried.at - refused[0].at >= timedelta(seconds=10)


async def test_twenty_concurrent_acquires_create_once(env: SimEnv, tb: TorBox) -> None:
    release = pick_pack(env.sims, {"torbox": True})
    want, probe = pack_want(release), cached_probe(release.infohash)
    results = await asyncio.gather(
        *(tb.acquire(candidate(release), want, probe) for _ in range(20))
    )
    assert len({r.torrent.torrent_id for r in results}) == 1
    assert env.sims.torbox.sim.creates_per_hash[release.infohash] == 1
    assert paths(env).count("/torrents/createtorrent") == 1


async def test_bad_key_is_an_account_error_that_names_no_key(env: SimEnv) -> None:
    wrong = "00000000-1111-4222-8333-444444444444"
    policy = dataclasses.replace(env.client("torbox").policy, api_key=Secret(wrong))
    async with HttpClient(policy, clock=env.clock) as client:
        tb = TorBox(client, clock=env.clock)
        with pytest.raises(AccountError, match="BAD_TOKEN") as caught:
            await tb.probe([foreign_hash()])
    for text in (str(caught.value), repr(caught.value)):
        assert wrong not in text
        env.assert_no_secret(text)
    assert tb.paused_until is not None

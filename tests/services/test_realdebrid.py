"""Real-Debrid client against its sim: add, select, keep or delete; every failure mode."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from riven_async.core.http import HttpClient, Secret
from riven_async.errors import RateLimited, UpstreamUnavailable
from riven_async.services.debrid import (
    AccountError,
    Candidate,
    DebridError,
    FileWant,
    Infringing,
    NoMatchingFiles,
    NotCached,
    ServiceCapped,
    TorrentFailed,
)
from riven_async.services.debrid.realdebrid import RealDebrid
from riven_async.sim.realdebrid import RdTorrent
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
    sim_env,
)

RD = "/rest/1.0"


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[SimEnv]:
    async with sim_env(tmp_path) as env, advancing(env.clock):
        yield env


@pytest.fixture
def rd(env: SimEnv) -> RealDebrid:
    return RealDebrid(env.client("realdebrid"), clock=env.clock)


def paths(env: SimEnv, since: int = 0) -> list[str]:
    return [f"{r.method} {r.path.removeprefix(RD)}" for r in calls(env.sims.realdebrid, since)]


async def test_cached_pack_is_added_selected_and_kept_in_five_calls(
    env: SimEnv, rd: RealDebrid
) -> None:
    release = pick_pack(env.sims, {"realdebrid": True})
    acquired = await rd.acquire(candidate(release), pack_want(release))

    torrent = acquired.torrent
    assert torrent.ready
    assert torrent.status == "downloaded"
    assert torrent.infohash == release.infohash
    assert not acquired.reused
    assert acquired.selection.satisfies(pack_want(release))
    assert [(m.season, m.episode) for m in acquired.selection.episodes] == list(release.episodes)
    ident = torrent.torrent_id
    assert paths(env) == [
        "GET /torrents",
        "POST /torrents/addMagnet",
        f"GET /torrents/info/{ident}",
        f"POST /torrents/selectFiles/{ident}",
        f"GET /torrents/info/{ident}",
    ]
    sim = env.sims.realdebrid.sim
    assert sim.adds_per_hash[release.infohash] == 1
    assert sim.deleted == []
    # Only the episode videos were selected: not the .txt, not the subtitles.
    selected = {release.files[i - 1].path for i in sim.torrents[ident].selected}
    assert selected == {f.path for f in release.files if f.is_video}


async def test_selected_files_appear_on_the_mount_at_their_inner_paths(
    env: SimEnv, rd: RealDebrid
) -> None:
    release = pick_pack(env.sims, {"realdebrid": True})
    acquired = await rd.acquire(candidate(release), pack_want(release))
    env.clock.advance(env.sims.mount.lag_s)
    await env.sims.mount.flush()
    root = env.sims.mount.root
    assert root is not None
    torrent = acquired.torrent
    for match in acquired.selection.episodes:
        assert (root / torrent.name / torrent.inner_path(match.file)).is_file()


async def test_second_acquire_reuses_the_torrent_with_one_info_call(
    env: SimEnv, rd: RealDebrid
) -> None:
    release = pick_pack(env.sims, {"realdebrid": True})
    first = await rd.acquire(candidate(release), pack_want(release))
    before = mark(env.sims.realdebrid)
    # Another episode of the same pack: the first add selected every episode file.
    one = FileWant.episode(*release.episodes[3])
    again = await rd.acquire(candidate(release), one)
    assert again.reused
    assert again.torrent.torrent_id == first.torrent.torrent_id
    assert again.selection.file_for(*release.episodes[3]) is not None
    assert paths(env, before) == [f"GET /torrents/info/{first.torrent.torrent_id}"]
    assert env.sims.realdebrid.sim.adds_per_hash[release.infohash] == 1


async def test_torrent_already_in_the_account_is_reused_not_added_again(
    env: SimEnv, rd: RealDebrid
) -> None:
    release = pick_pack(env.sims, {"realdebrid": True})
    # Someone (the user, another tool) added and selected it before we ever ran.
    other = RealDebrid(env.client("realdebrid"), clock=env.clock)
    theirs = await other.acquire(candidate(release), pack_want(release))
    before = mark(env.sims.realdebrid)
    acquired = await rd.acquire(candidate(release), pack_want(release))
    assert acquired.reused
    assert acquired.torrent.torrent_id == theirs.torrent.torrent_id
    assert paths(env, before) == [
        "GET /torrents",
        f"GET /torrents/info/{theirs.torrent.torrent_id}",
    ]
    assert env.sims.realdebrid.sim.adds_per_hash[release.infohash] == 1


async def test_uncached_release_is_deleted_after_the_check(env: SimEnv, rd: RealDebrid) -> None:
    release = pick_pack(env.sims, {"realdebrid": False})
    with pytest.raises(NotCached) as caught:
        await rd.acquire(candidate(release), pack_want(release))
    sim = env.sims.realdebrid.sim
    assert sim.adds_per_hash[release.infohash] == 1
    assert len(sim.deleted) == 1
    assert sim.torrents == {}
    assert "queued" in str(caught.value)
    sent = paths(env)
    assert sent[0] == "GET /torrents"
    assert sent[1] == "POST /torrents/addMagnet"
    assert sent[-1].startswith("DELETE /torrents/delete/")
    # add, info through a 2 s conversion, select, info, delete: a handful, never a storm.
    assert len(sent) <= 8
    env.assert_no_secret(str(caught.value))


async def test_the_verdict_is_handed_over_while_the_checked_torrent_is_still_there(
    env: SimEnv, rd: RealDebrid
) -> None:
    release = pick_pack(env.sims, {"realdebrid": False})
    sim = env.sims.realdebrid.sim
    heard: list[tuple[type[DebridError], int]] = []

    async def settled(exc: DebridError) -> None:
        # A crash here must leave the torrent in the account for the replay to find.
        heard.append((type(exc), sum(t.infohash == release.infohash
                                     for t in sim.torrents.values())))

    with pytest.raises(NotCached):
        await rd.acquire(candidate(release), pack_want(release), settled=settled)
    assert heard == [(NotCached, 1)]
    assert sim.torrents == {}


async def test_a_torrent_gone_from_the_account_is_added_again_without_a_verdict(
    env: SimEnv, rd: RealDebrid
) -> None:
    release = pick_pack(env.sims, {"realdebrid": True})
    await rd.acquire(candidate(release), pack_want(release))
    sim = env.sims.realdebrid.sim
    sim.torrents.clear()  # deleted on the website meanwhile
    heard: list[DebridError] = []

    async def settled(exc: DebridError) -> None:
        heard.append(exc)

    again = await rd.acquire(candidate(release), pack_want(release), settled=settled)
    assert again.torrent.ready
    assert heard == []
    assert sim.adds_per_hash[release.infohash] == 2


async def test_magnet_stuck_in_conversion_gives_up_within_the_bound_and_deletes(
    env: SimEnv,
) -> None:
    rd = RealDebrid(
        env.client("realdebrid"), clock=env.clock, conversion_timeout_s=10.0, poll_interval_s=1.0
    )
    started = env.clock.monotonic()
    with pytest.raises(TorrentFailed, match="magnet_conversion"):
        await rd.acquire(
            Candidate(foreign_hash(), "Some.Foreign.Release.2024.1080p"), FileWant.movie()
        )
    waited = env.clock.monotonic() - started
    assert 10.0 <= waited < 11.0
    infos = [p for p in paths(env) if p.startswith("GET /torrents/info/")]
    assert 2 <= len(infos) <= 5  # polls at 0, 1, 3, 7 and 10 s
    sim = env.sims.realdebrid.sim
    assert len(sim.deleted) == 1
    assert sim.torrents == {}


async def test_infringing_release_is_skipped_without_adding(env: SimEnv, rd: RealDebrid) -> None:
    release = pick_pack(env.sims, {"realdebrid": True})
    env.sims.realdebrid.sim.infringing.add(release.infohash)
    with pytest.raises(Infringing) as caught:
        await rd.acquire(candidate(release), pack_want(release))
    sim = env.sims.realdebrid.sim
    assert sim.refused_adds[release.infohash] == 1
    assert sim.adds_per_hash[release.infohash] == 0
    assert sim.deleted == []
    assert rd.paused_until is None  # one release refused, not the service
    env.assert_no_secret(repr(caught.value))


async def test_traffic_cap_pauses_the_service_until_the_next_day(
    env: SimEnv, rd: RealDebrid
) -> None:
    release = pick_pack(env.sims, {"realdebrid": True})
    env.sims.realdebrid.sim.traffic_exhausted = True
    with pytest.raises(ServiceCapped) as caught:
        await rd.acquire(candidate(release), pack_want(release))
    next_day = datetime(2026, 1, 2, tzinfo=UTC)
    assert caught.value.until == next_day
    assert rd.capped_until == next_day
    assert rd.paused_until == next_day
    assert env.sims.realdebrid.sim.adds_per_hash[release.infohash] == 0
    env.assert_no_secret(str(caught.value))

    before = mark(env.sims.realdebrid)
    with pytest.raises(ServiceCapped):
        await rd.acquire(candidate(release), pack_want(release))
    assert paths(env, before) == []  # paused: not one more request today

    env.sims.realdebrid.sim.traffic_exhausted = False
    env.clock.set_elapsed((next_day - env.clock.now()).total_seconds() + env.clock.monotonic())
    capped_now: datetime | None = rd.capped_until  # a property: read it afresh
    assert capped_now is None
    assert (await rd.acquire(candidate(release), pack_want(release))).torrent.ready


async def test_429_waits_for_retry_after_then_goes_on(env: SimEnv, rd: RealDebrid) -> None:
    release = pick_movie(env.sims, {"realdebrid": True})
    handle = env.sims.realdebrid
    handle.limiter.set_windows([dataclasses.replace(handle.limiter.windows[0], limit=4, span_s=20)])
    env.expected_violations = {"realdebrid": 1}
    acquired = await rd.acquire(candidate(release), FileWant.movie())
    assert acquired.torrent.ready
    sent = calls(handle)
    refused = [r for r in sent if r.status == 429]
    assert len(refused) == 1
    retried = sent[sent.index(refused[0]) + 1]
    assert retried.path == refused[0].path
    assert retried.status == 200
    assert retried.at - refused[0].at >= timedelta(seconds=20)


async def test_long_retry_after_raises_rate_limited_and_pauses_the_service(
    env: SimEnv, rd: RealDebrid
) -> None:
    release = pick_movie(env.sims, {"realdebrid": True})
    handle = env.sims.realdebrid
    handle.limiter.set_windows([dataclasses.replace(handle.limiter.windows[0], limit=1)])
    env.expected_violations = {"realdebrid": 1}
    with pytest.raises(RateLimited) as caught:
        await rd.acquire(candidate(release), FileWant.movie())
    assert caught.value.retry_after_s > 30
    assert rd.paused_until is not None
    assert rd.paused_until > env.clock.now()
    env.assert_no_secret(str(caught.value))


async def test_error_status_deletes_the_torrent(
    env: SimEnv, rd: RealDebrid, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(RdTorrent, "status", lambda self, now: "magnet_error")
    release = pick_pack(env.sims, {"realdebrid": True})
    with pytest.raises(TorrentFailed, match="magnet_error"):
        await rd.acquire(candidate(release), pack_want(release))
    sim = env.sims.realdebrid.sim
    assert len(sim.deleted) == 1
    assert sim.torrents == {}


async def test_no_matching_files_deletes_without_selecting(env: SimEnv, rd: RealDebrid) -> None:
    release = pick_pack(env.sims, {"realdebrid": True})
    with pytest.raises(NoMatchingFiles):
        await rd.acquire(candidate(release), FileWant.episode(42, 1))
    assert not any("selectFiles" in p for p in paths(env))
    assert len(env.sims.realdebrid.sim.deleted) == 1


async def test_movie_selects_only_its_main_video(env: SimEnv, rd: RealDebrid) -> None:
    now = env.clock.now()
    release = next(
        r
        for m in env.sims.catalog.movies()
        for r in env.sims.catalog.movie_releases(m, now)
        if len(r.files) > 1
        and r.seeders
        and env.sims.world.is_cached("realdebrid", r.infohash, now)
    )
    acquired = await rd.acquire(candidate(release), FileWant.movie())
    main = acquired.selection.movie
    assert main is not None
    assert main.size == max(f.size for f in release.files if f.is_video)
    sim_torrent = env.sims.realdebrid.sim.torrents[acquired.torrent.torrent_id]
    assert sim_torrent.selected == (release.main_video_index() + 1,)


async def test_twenty_concurrent_direct_acquires_add_the_hash_once(
    env: SimEnv, rd: RealDebrid
) -> None:
    release = pick_pack(env.sims, {"realdebrid": True})
    want = pack_want(release)
    results = await asyncio.gather(*(rd.acquire(candidate(release), want) for _ in range(20)))
    assert len({r.torrent.torrent_id for r in results}) == 1
    assert env.sims.realdebrid.sim.adds_per_hash[release.infohash] == 1


async def test_deleted_in_the_account_meanwhile_is_added_again(env: SimEnv, rd: RealDebrid) -> None:
    release = pick_pack(env.sims, {"realdebrid": True})
    first = await rd.acquire(candidate(release), pack_want(release))
    other = RealDebrid(env.client("realdebrid"), clock=env.clock)
    await other.delete(first.torrent.torrent_id)
    again = await rd.acquire(candidate(release), pack_want(release))
    assert again.torrent.torrent_id != first.torrent.torrent_id
    assert not again.reused
    assert env.sims.realdebrid.sim.adds_per_hash[release.infohash] == 2


async def test_torrent_reports_fresh_state(env: SimEnv, rd: RealDebrid) -> None:
    release = pick_pack(env.sims, {"realdebrid": True})
    acquired = await rd.acquire(candidate(release), pack_want(release))
    fresh = await rd.torrent(acquired.torrent.torrent_id)
    assert fresh == acquired.torrent
    await rd.delete(fresh.torrent_id)
    with pytest.raises(TorrentFailed):
        await rd.torrent(fresh.torrent_id)


async def test_service_outage_surfaces_as_upstream_unavailable(env: SimEnv, rd: RealDebrid) -> None:
    release = pick_pack(env.sims, {"realdebrid": True})
    env.sims.realdebrid.faults.outage(3600)
    with pytest.raises(UpstreamUnavailable) as caught:
        await rd.acquire(candidate(release), pack_want(release))
    env.assert_no_secret(str(caught.value))


async def test_bad_key_is_an_account_error_that_names_no_key(env: SimEnv) -> None:
    good = env.client("realdebrid")
    wrong = "WRONGKEY" + "X" * 44
    policy = dataclasses.replace(good.policy, api_key=Secret(wrong))
    async with HttpClient(policy, clock=env.clock) as client:
        rd = RealDebrid(client, clock=env.clock)
        release = pick_pack(env.sims, {"realdebrid": True})
        with pytest.raises(AccountError) as caught:
            await rd.acquire(candidate(release), pack_want(release))
    for text in (str(caught.value), repr(caught.value)):
        assert wrong not in text
        env.assert_no_secret(text)
    assert rd.paused_until is not None

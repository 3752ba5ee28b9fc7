"""The debrid chain against all three sims: order, hints, skipping, budgets, no double adds."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from riven_async.services.debrid import Debrid, FileWant
from riven_async.services.debrid.chain import (
    Attempt,
    DebridChain,
    Outcome,
    PriorCheck,
    build_services,
    order_candidates,
)
from riven_async.services.debrid.realdebrid import RealDebrid
from riven_async.sim.releases import Release
from tests.services.debrid_fixtures import (
    SimEnv,
    advancing,
    calls,
    candidate,
    eventually,
    mark,
    pack_want,
    pick_pack,
    season_packs,
    sim_env,
)

ORDER = ("torbox", "realdebrid", "alldebrid")


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[SimEnv]:
    async with sim_env(tmp_path, shows=60) as env, advancing(env.clock):
        yield env


def chain_of(
    env: SimEnv, order: Sequence[str] = ORDER, max_attempts_per_service: int = 5
) -> DebridChain:
    services = build_services(env.clients, order, clock=env.clock)
    return DebridChain(services, max_attempts_per_service=max_attempts_per_service)


def counts(env: SimEnv, since: dict[str, int] | None = None) -> dict[str, int]:
    since = since or {}
    return {name: len(calls(env.sims[name], since.get(name, 0))) for name in ORDER}


def marks(env: SimEnv) -> dict[str, int]:
    return {name: mark(env.sims[name]) for name in ORDER}


def packs(env: SimEnv, **cached_on: bool) -> list[Release]:
    now = env.clock.now()
    return [
        r
        for r, _ in season_packs(env.sims)
        if all(env.sims.world.is_cached(s, r.infohash, now) is c for s, c in cached_on.items())
    ]


async def test_torbox_answers_for_every_candidate_in_one_call(env: SimEnv) -> None:
    uncached = packs(env, torbox=False)[:9]
    cached = pick_pack(env.sims, {"torbox": True})
    candidates = [candidate(r) for r in [*uncached, cached]]
    result = await chain_of(env, ("torbox",)).acquire(candidates, pack_want(cached))
    assert result.acquired is not None
    assert result.acquired.candidate.infohash == cached.infohash
    sent = [r.path for r in calls(env.sims.torbox)]
    assert sent == [
        "/v1/api/torrents/checkcached",
        "/v1/api/torrents/createtorrent",
        "/v1/api/torrents/mylist",
    ]
    assert result.hashes_with(Outcome.NOT_CACHED) == {r.infohash for r in uncached}


async def test_best_release_wins_and_the_service_order_breaks_ties(env: SimEnv) -> None:
    best = pick_pack(env.sims, {"torbox": False, "realdebrid": True})
    second = pick_pack(env.sims, {"torbox": True})
    result = await chain_of(env).acquire([candidate(best), candidate(second)], pack_want(best))
    assert result.acquired is not None
    assert result.acquired.candidate.infohash == best.infohash
    assert result.acquired.torrent.service == "realdebrid"
    used = counts(env)
    assert used["torbox"] == 1  # the bulk check only
    assert used["alldebrid"] == 0
    assert env.sims.torbox.sim.creates_per_hash == {}


async def test_candidates_with_a_cached_hint_are_checked_first(env: SimEnv) -> None:
    plain = pick_pack(env.sims, {"realdebrid": False})
    hinted = pick_pack(env.sims, {"realdebrid": True})
    ordered = order_candidates([candidate(plain), candidate(hinted, cached_hint=True)])
    assert [c.infohash for c in ordered] == [hinted.infohash, plain.infohash]
    result = await chain_of(env, ("realdebrid",)).acquire(
        [candidate(plain), candidate(hinted, cached_hint=True)], pack_want(hinted)
    )
    assert result.acquired is not None
    assert result.acquired.candidate.infohash == hinted.infohash
    assert env.sims.realdebrid.sim.adds_per_hash[plain.infohash] == 0


async def test_a_capped_service_is_skipped_without_a_single_request(env: SimEnv) -> None:
    release = pick_pack(env.sims, {"realdebrid": True, "alldebrid": True})
    chain = chain_of(env, ("realdebrid", "alldebrid"))
    env.sims.realdebrid.sim.traffic_exhausted = True
    first = await chain.acquire([candidate(release)], pack_want(release))
    assert first.acquired is not None
    assert first.acquired.torrent.service == "alldebrid"
    assert "realdebrid" in first.unavailable
    next_day = datetime(2026, 1, 2, tzinfo=UTC)
    assert first.retry_at == next_day
    assert chain.paused()["realdebrid"] == next_day

    before = marks(env)
    other = pick_pack(env.sims, {"realdebrid": True, "alldebrid": False})
    second = await chain.acquire([candidate(other)], pack_want(other))
    assert second.acquired is None
    assert not second.conclusive  # RD may have it once the cap resets
    assert "realdebrid" in second.unavailable
    assert second.retry_at == next_day
    assert counts(env, before)["realdebrid"] == 0
    assert counts(env, before)["alldebrid"] > 0


async def test_a_rate_limited_service_is_skipped_while_its_pause_lasts(env: SimEnv) -> None:
    handle = env.sims.realdebrid
    handle.limiter.set_windows([dataclasses.replace(handle.limiter.windows[0], limit=1)])
    env.expected_violations = {"realdebrid": 1}
    release = pick_pack(env.sims, {"realdebrid": True, "alldebrid": True})
    chain = chain_of(env, ("realdebrid", "alldebrid"))
    result = await chain.acquire([candidate(release)], pack_want(release))
    assert result.acquired is not None
    assert result.acquired.torrent.service == "alldebrid"
    assert result.unavailable["realdebrid"].startswith("realdebrid: HTTP 429")
    before = mark(handle)
    again = await chain.acquire([candidate(release)], pack_want(release))
    assert again.acquired is not None
    assert again.unavailable["realdebrid"].startswith("paused until")
    assert calls(handle, before) == []


async def test_a_service_in_an_outage_is_dropped_and_the_next_one_answers(env: SimEnv) -> None:
    env.sims.torbox.faults.outage(3600)
    release = pick_pack(env.sims, {"realdebrid": True})
    result = await chain_of(env).acquire([candidate(release)], pack_want(release))
    assert result.acquired is not None
    assert result.acquired.torrent.service == "realdebrid"
    assert "torbox" in result.unavailable
    env.assert_no_secret(repr(result))


async def test_infringing_on_rd_falls_through_to_alldebrid(env: SimEnv) -> None:
    release = pick_pack(env.sims, {"realdebrid": True, "alldebrid": True})
    env.sims.realdebrid.sim.infringing.add(release.infohash)
    result = await chain_of(env, ("realdebrid", "alldebrid")).acquire(
        [candidate(release)], pack_want(release)
    )
    assert result.acquired is not None
    assert result.acquired.torrent.service == "alldebrid"
    assert result.hashes_with(Outcome.INFRINGING) == {release.infohash}
    assert result.conclusive


async def test_a_release_without_the_files_is_not_tried_on_the_next_service(env: SimEnv) -> None:
    release = pick_pack(env.sims, {"realdebrid": True, "alldebrid": True})
    result = await chain_of(env, ("realdebrid", "alldebrid")).acquire(
        [candidate(release)], FileWant.episode(42, 1)
    )
    assert result.acquired is None
    assert result.hashes_with(Outcome.NO_MATCHING_FILES) == {release.infohash}
    assert env.sims.alldebrid.sim.uploads_per_hash[release.infohash] == 0
    assert len(env.sims.realdebrid.sim.deleted) == 1


async def test_nothing_cached_anywhere_is_a_conclusive_none(env: SimEnv) -> None:
    uncached = packs(env, torbox=False, realdebrid=False, alldebrid=False)[:3]
    assert len(uncached) == 3
    result = await chain_of(env).acquire([candidate(r) for r in uncached], pack_want(uncached[0]))
    assert result.acquired is None
    assert result.conclusive
    assert result.retry_at is None
    sims = env.sims
    assert sum(sims.realdebrid.sim.adds_per_hash.values()) == 3
    assert len(sims.realdebrid.sim.deleted) == 3
    assert len(sims.alldebrid.sim.deleted) == 3
    assert sims.torbox.sim.torrents == {}
    assert sims.realdebrid.sim.torrents == {}
    assert sims.alldebrid.sim.magnets == {}


async def test_settled_answers_are_handed_out_and_a_prior_one_is_not_asked_again(
    env: SimEnv,
) -> None:
    release = pick_pack(env.sims, {"realdebrid": False, "alldebrid": True})
    heard: list[Attempt] = []

    async def keep(attempt: Attempt) -> None:
        heard.append(attempt)

    order = ("realdebrid", "alldebrid")
    first = await chain_of(env, order).acquire(
        [candidate(release)], pack_want(release), on_answer=keep)
    assert first.acquired is not None
    assert [(a.service, a.outcome) for a in heard] == [("realdebrid", Outcome.NOT_CACHED)]
    # A new process (fresh clients) told what RD said: RD is not asked, AllDebrid reused.
    before = marks(env)
    prior = [PriorCheck(a.infohash, a.service, a.outcome, a.reason) for a in heard]
    again = await chain_of(env, order).acquire(
        [candidate(release)], pack_want(release), prior=prior)
    assert again.acquired is not None
    assert again.acquired.torrent.service == "alldebrid"
    assert counts(env, before)["realdebrid"] == 0
    assert env.sims.realdebrid.sim.adds_per_hash[release.infohash] == 1
    assert env.sims.alldebrid.sim.uploads_per_hash[release.infohash] == 1
    with pytest.raises(ValueError, match="settled"):
        PriorCheck(release.infohash, "realdebrid", Outcome.ACQUIRED)


async def test_expensive_checks_stop_at_the_per_service_budget(env: SimEnv) -> None:
    uncached = packs(env, realdebrid=False)[:6]
    result = await chain_of(env, ("realdebrid",), max_attempts_per_service=3).acquire(
        [candidate(r) for r in uncached], pack_want(uncached[0])
    )
    assert result.acquired is None
    assert sum(env.sims.realdebrid.sim.adds_per_hash.values()) == 3
    assert len(result.hashes_with(Outcome.OVER_BUDGET)) == 3


async def test_twenty_concurrent_attempts_add_the_hash_once(env: SimEnv) -> None:
    release = pick_pack(env.sims, {"realdebrid": True})
    chain = chain_of(env, ("realdebrid",))
    results = await asyncio.gather(
        *(chain.acquire([candidate(release)], pack_want(release)) for _ in range(20))
    )
    assert all(r.acquired is not None for r in results)
    assert len({r.acquired.torrent.torrent_id for r in results if r.acquired}) == 1
    assert env.sims.realdebrid.sim.adds_per_hash[release.infohash] == 1
    assert len(calls(env.sims.realdebrid)) == 5  # one check, shared by all twenty


async def test_twenty_concurrent_attempts_on_an_uncached_hash_add_it_once(env: SimEnv) -> None:
    release = pick_pack(env.sims, {"realdebrid": False, "alldebrid": False})
    chain = chain_of(env, ("realdebrid", "alldebrid"))
    results = await asyncio.gather(
        *(chain.acquire([candidate(release)], pack_want(release)) for _ in range(20))
    )
    assert all(r.acquired is None and r.conclusive for r in results)
    assert env.sims.realdebrid.sim.adds_per_hash[release.infohash] == 1
    assert env.sims.alldebrid.sim.uploads_per_hash[release.infohash] == 1


async def test_every_episode_of_a_pack_at_once_shares_one_add(env: SimEnv) -> None:
    release = pick_pack(env.sims, {"realdebrid": True}, lambda r: len(r.episodes) >= 8)
    chain = chain_of(env, ("realdebrid",))
    wants = [FileWant.episode(s, e) for s, e in release.episodes] * 3
    results = await asyncio.gather(*(chain.acquire([candidate(release)], w) for w in wants[:20]))
    for want, result in zip(wants, results, strict=False):
        assert result.acquired is not None
        (season, episode) = want.episodes[0]
        assert result.acquired.selection.file_for(season, episode) is not None
    assert env.sims.realdebrid.sim.adds_per_hash[release.infohash] == 1


async def test_a_concurrent_no_for_other_files_does_not_answer_for_mine(env: SimEnv) -> None:
    release = pick_pack(env.sims, {"realdebrid": True})
    chain = chain_of(env, ("realdebrid",))
    missing, present = FileWant.episode(42, 1), FileWant.episode(*release.episodes[0])
    first, second = await asyncio.gather(
        chain.acquire([candidate(release)], missing),
        chain.acquire([candidate(release)], present),
    )
    assert first.acquired is None
    assert first.hashes_with(Outcome.NO_MATCHING_FILES) == {release.infohash}
    assert second.acquired is not None
    assert second.acquired.selection.file_for(*release.episodes[0]) is not None


async def test_cancelled_caller_leaves_no_torrent_behind(env: SimEnv) -> None:
    release = pick_pack(env.sims, {"realdebrid": False})
    chain = chain_of(env, ("realdebrid",))
    task = asyncio.create_task(chain.acquire([candidate(release)], pack_want(release)))
    await eventually(lambda: env.sims.realdebrid.sim.adds_per_hash[release.infohash] > 0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await chain.aclose()  # waits for the background add and its undo
    assert env.sims.realdebrid.sim.torrents == {}
    # A later caller is not stuck behind the cancelled one.
    again = await chain.acquire([candidate(release)], pack_want(release))
    assert again.acquired is None


def test_build_services_follows_the_order_and_skips_disabled_upstreams() -> None:
    class Clients:
        def get(self, name: str, /) -> None:
            return None

    assert build_services(Clients(), ORDER) == []
    with pytest.raises(ValueError, match="unknown debrid service"):
        build_services({"premiumize": object()}, ("premiumize",))  # type: ignore[dict-item]


async def test_services_satisfy_the_protocol(env: SimEnv) -> None:
    services: list[Debrid] = build_services(env.clients, ORDER, clock=env.clock)
    assert [s.name for s in services] == list(ORDER)
    assert [s.bulk_probe for s in services] == [True, False, False]
    assert all(s.paused_until is None for s in services)
    assert isinstance(services[1], RealDebrid)
    with pytest.raises(ValueError, match="distinct"):
        DebridChain([services[0], services[0]])

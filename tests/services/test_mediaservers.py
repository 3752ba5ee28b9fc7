"""Plex, Jellyfin and Emby against their sims, and the coalescer that batches their scans."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import PurePath, PurePosixPath

import pytest

from riven_async.core.http import HttpClient, Secret
from riven_async.errors import UpstreamError
from riven_async.services.mediaservers import MediaServer, PathMap
from riven_async.services.mediaservers.coalesce import ScanCoalescer
from riven_async.services.mediaservers.emby import Emby
from riven_async.services.mediaservers.jellyfin import Jellyfin
from riven_async.services.mediaservers.plex import (
    SECTIONS_CACHE,
    Plex,
    PlexSection,
    _section_for,
)
from tests.services.debrid_fixtures import SimEnv, advancing, calls, eventually, sim_env

SHOWS = PurePosixPath("/mnt/library/Shows")
MOVIES = PurePosixPath("/mnt/library/Movies")
SHOW = SHOWS / "Beyond the Wild Mountain (2019) {tvdb-81189}"
SEASON_1 = SHOW / "Season 01"
MOVIE = MOVIES / "Faded Desert (2013) {tmdb-693134}"


def episode(season: int, number: int) -> PurePosixPath:
    return (
        SHOW
        / f"Season {season:02d}"
        / f"Beyond the Wild Mountain (2019) - s{season:02d}e{number:02d}.mkv"
    )


@pytest.fixture
async def env() -> AsyncIterator[SimEnv]:
    async with sim_env(shows=5, movies=5) as env:
        yield env


def plex_client(env: SimEnv) -> HttpClient:
    """The daemon's Plex client with a TTL for the sections list (the config key we need)."""
    policy = dataclasses.replace(env.client("plex").policy, cache_ttl_s=((SECTIONS_CACHE, 300.0),))
    return HttpClient(policy, clock=env.clock)


@pytest.fixture
async def servers(env: SimEnv) -> AsyncIterator[list[MediaServer]]:
    async with plex_client(env) as plex:
        yield [
            Plex(plex),
            Jellyfin(env.client("jellyfin")),
            Emby(env.client("emby")),
        ]


def scanned(env: SimEnv) -> dict[str, list[tuple[str | None, bool]]]:
    sims = env.sims
    return {
        "plex": [(s.path, s.matched) for s in sims.plex.sim.scans],
        "jellyfin": [(s.path, s.matched) for s in sims.jellyfin.sim.scans],
        "emby": [(s.path, s.matched) for s in sims.emby.sim.scans],
    }


async def settle() -> None:
    """Give requests that could be in flight a moment of real time to land."""
    await asyncio.sleep(0.05)


async def test_twenty_episodes_of_a_season_cost_one_scan_per_server(
    env: SimEnv, servers: list[MediaServer]
) -> None:
    coalescer = ScanCoalescer(servers, clock=env.clock, window_s=10.0)
    coalescer.request_many(episode(1, n) for n in range(1, 21))
    assert coalescer.pending == 1
    env.clock.advance(9.0)
    await settle()
    assert scanned(env) == {"plex": [], "jellyfin": [], "emby": []}

    env.clock.advance(1.0)
    one = [(str(SEASON_1), True)]
    await eventually(lambda: scanned(env) == {"plex": one, "jellyfin": one, "emby": one})
    await settle()
    assert scanned(env) == {"plex": one, "jellyfin": one, "emby": one}
    plex_scan = env.sims.plex.sim.scans[0]
    assert (plex_scan.section, plex_scan.kind) == ("1", "partial")
    assert [s.kind for s in env.sims.jellyfin.sim.scans] == ["Created"]
    assert env.sims.jellyfin.sim.legacy_auth_uses == 0  # the MediaBrowser header, not legacy
    sent = {name: [r.path for r in calls(env.sims[name])] for name in ("jellyfin", "emby")}
    assert sent == {"jellyfin": ["/Library/Media/Updated"], "emby": ["/Library/Media/Updated"]}
    assert coalescer.stats().scans == 3
    assert coalescer.pending == 0
    await coalescer.aclose()


async def test_folders_group_per_season_and_per_movie(
    env: SimEnv, servers: list[MediaServer]
) -> None:
    coalescer = ScanCoalescer(servers, clock=env.clock, window_s=5.0)
    coalescer.request(MOVIE / "Faded Desert (2013) {tmdb-693134}.mkv")
    coalescer.request_many([episode(1, 1), episode(2, 1), episode(2, 2), episode(1, 3)])
    env.clock.advance(5.0)
    expected = sorted([str(MOVIE), str(SEASON_1), str(SHOW / "Season 02")])
    await eventually(lambda: len(env.sims.emby.sim.scans) == 3)
    await eventually(lambda: len(env.sims.plex.sim.scans) == 3)
    assert sorted(s.path or "" for s in env.sims.plex.sim.scans) == expected
    sections = {s.path: s.section for s in env.sims.plex.sim.scans}
    assert sections[str(MOVIE)] == "2"
    assert sections[str(SEASON_1)] == "1"
    assert all(s.matched for s in env.sims.plex.sim.scans)
    # Jellyfin and Emby take the three folders in one request.
    assert len(calls(env.sims.jellyfin)) == 1
    assert sorted(s.path or "" for s in env.sims.jellyfin.sim.scans) == expected
    await coalescer.aclose()


async def test_a_folder_inside_another_pending_one_is_not_scanned_twice(
    env: SimEnv, servers: list[MediaServer]
) -> None:
    coalescer = ScanCoalescer(servers, clock=env.clock, window_s=5.0)
    coalescer.request_folder(SHOW)
    coalescer.request(episode(1, 1))
    await coalescer.flush()
    assert [s.path for s in env.sims.plex.sim.scans] == [str(SHOW)]
    assert [s.path for s in env.sims.jellyfin.sim.scans] == [str(SHOW)]
    await coalescer.aclose()


async def test_shutdown_sends_what_is_pending_before_the_window_ends(
    env: SimEnv, servers: list[MediaServer]
) -> None:
    coalescer = ScanCoalescer(servers, clock=env.clock, window_s=3600.0)
    coalescer.request(episode(1, 1))
    await coalescer.aclose()
    one = [(str(SEASON_1), True)]
    assert scanned(env) == {"plex": one, "jellyfin": one, "emby": one}
    with pytest.raises(RuntimeError, match="closed"):
        coalescer.request(episode(1, 2))


async def test_a_failing_server_retries_next_window_without_holding_up_the_others(
    env: SimEnv, servers: list[MediaServer]
) -> None:
    # Every attempt the HTTP core makes fails once: 1 try + 3 retries.
    env.sims.jellyfin.faults.set(error_rate=1.0, error_status=500, budget=4)
    async with advancing(env.clock):
        coalescer = ScanCoalescer(servers, clock=env.clock, window_s=10.0)
        coalescer.request(episode(1, 1))
        await eventually(lambda: len(env.sims.jellyfin.sim.scans) == 1)
        await coalescer.aclose()
    one = [(str(SEASON_1), True)]
    assert scanned(env) == {"plex": one, "jellyfin": one, "emby": one}
    stats = coalescer.stats()
    assert stats.failures == 1
    assert stats.scans == 3
    assert stats.dropped == 0


async def test_a_server_that_keeps_failing_gives_up_after_max_attempts(env: SimEnv) -> None:
    env.sims.emby.faults.set(error_rate=1.0, error_status=500)
    async with advancing(env.clock):
        coalescer = ScanCoalescer([Emby(env.client("emby"))], clock=env.clock, max_attempts=2)
        coalescer.request(episode(1, 1))
        await eventually(lambda: coalescer.stats().dropped == 1)
        await coalescer.aclose()
    assert coalescer.stats().failures == 2
    assert env.sims.emby.sim.scans == []


async def test_plex_sections_are_fetched_once_per_ttl(env: SimEnv) -> None:
    async with plex_client(env) as client:
        plex = Plex(client)
        await plex.scan([SEASON_1])
        await plex.scan([MOVIE])
    sections = [r for r in calls(env.sims.plex) if r.path == "/library/sections"]
    assert len(sections) == 1
    assert [s.path for s in env.sims.plex.sim.scans] == [str(SEASON_1), str(MOVIE)]


async def test_plex_refetches_sections_once_for_an_unknown_folder_then_skips_it(
    env: SimEnv,
) -> None:
    async with plex_client(env) as client:
        await Plex(client).scan([PurePosixPath("/elsewhere/Show/Season 01")])
    assert [r.path for r in calls(env.sims.plex)] == ["/library/sections"] * 2
    assert env.sims.plex.sim.scans == []


def test_plex_picks_the_section_with_the_longest_location_prefix() -> None:
    root = PlexSection("1", "show", "All", (PurePosixPath("/mnt/library"),))
    shows = PlexSection("2", "show", "Shows", (PurePosixPath("/mnt/library/Shows"),))
    folder = SEASON_1
    assert root.depth_of(folder) == 3
    assert shows.depth_of(folder) == 4
    assert shows.depth_of(PurePosixPath("/mnt/library/ShowsExtra/x")) is None
    assert _section_for([root, shows], folder) == shows
    assert _section_for([root, shows], MOVIE) == root


async def test_path_map_sends_the_servers_their_own_paths(env: SimEnv) -> None:
    mapping = PathMap.from_mapping({"/srv/riven/library": "/mnt/library"})
    local = PurePath("/srv/riven/library/Shows") / SEASON_1.relative_to(SHOWS)
    async with plex_client(env) as client:
        await Plex(client, path_map=mapping).scan([local])
    await Jellyfin(env.client("jellyfin"), path_map=mapping).scan([local])
    assert [(s.path, s.matched) for s in env.sims.plex.sim.scans] == [(str(SEASON_1), True)]
    assert [(s.path, s.matched) for s in env.sims.jellyfin.sim.scans] == [(str(SEASON_1), True)]
    assert mapping.to_server(PurePath("/other/x")) == PurePosixPath("/other/x")
    with pytest.raises(ValueError, match="absolute"):
        PathMap.from_mapping({"relative": "/mnt"})


async def test_refused_tokens_raise_without_naming_any_key(env: SimEnv) -> None:
    for name, build in (("plex", Plex), ("jellyfin", Jellyfin), ("emby", Emby)):
        wrong = f"wrong-{name}-token-0123456789"
        policy = dataclasses.replace(env.client(name).policy, api_key=Secret(wrong))
        async with HttpClient(policy, clock=env.clock) as client:
            server: MediaServer = build(client)
            with pytest.raises(UpstreamError) as caught:
                await server.scan([SEASON_1])
        assert caught.value.status == 401
        for text in (str(caught.value), repr(caught.value)):
            assert wrong not in text
            env.assert_no_secret(text)


async def test_an_empty_scan_sends_nothing(env: SimEnv, servers: list[MediaServer]) -> None:
    for server in servers:
        await server.scan([])
    coalescer = ScanCoalescer(servers, clock=env.clock)
    await coalescer.flush()
    await coalescer.aclose()
    assert all(calls(env.sims[name]) == [] for name in ("plex", "jellyfin", "emby"))

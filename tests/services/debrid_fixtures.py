"""Sims, a manual clock that can jump to the next deadline, and clients built the way the
daemon builds them (from the sims' config fragment). Imported explicitly by the debrid and
media-server tests; ``tests/services/conftest.py`` belongs to the HTTP core's tests."""

from __future__ import annotations

import asyncio
import contextlib
import tomllib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from riven_async.config import load_settings_from_dict
from riven_async.core.clock import ManualClock
from riven_async.core.http import HttpClient
from riven_async.services.debrid import Candidate, FileWant
from riven_async.sim.fragment import config_fragment
from riven_async.sim.harness import RecordedRequest
from riven_async.sim.releases import Release
from riven_async.sim.server import SimCluster, SimHandle, SimSettings, run_sims
from riven_async.upstreams import UpstreamClients

START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
DEBRIDS = ("realdebrid", "alldebrid", "torbox")
MOUNT_LAG_S = 3600.0  # beyond ``advancing``'s horizon: the mount moves only when told


@dataclass
class SimEnv:
    """One test's world: the sims, their shared clock, and a client per upstream.

    ``expected_violations`` names the sims a test provokes into refusing on purpose (the
    429 tests); every other sim must end the test with no limit violation at all.
    """

    sims: SimCluster
    clock: ManualClock
    clients: UpstreamClients
    expected_violations: dict[str, int] = field(default_factory=dict)

    def client(self, name: str) -> HttpClient:
        return self.clients[name]

    def api_keys(self) -> list[str]:
        return [h.api_key for h in self.sims.handles() if h.api_key]

    def assert_no_secret(self, text: str) -> None:
        for key in self.api_keys():
            assert key not in text, "an API key leaked into a message"

    def check_violations(self) -> None:
        found = {h.name: h.violations for h in self.sims.handles() if h.violations}
        assert found == self.expected_violations, f"limit violations: {found}"


@contextlib.asynccontextmanager
async def sim_env(
    tmp_path: Path | None = None,
    *,
    shows: int = 40,
    movies: int = 30,
    rate_limits: dict[str, list[str]] | None = None,
) -> AsyncIterator[SimEnv]:
    """Sims on a manual clock and the daemon's clients for them; checks limits at the end."""
    clock = ManualClock(START)
    settings = SimSettings(
        shows=shows,
        movies=movies,
        mount_dir=None if tmp_path is None else tmp_path / "mount",
        infringing_ratio=0.0,
        mount_lag_s=MOUNT_LAG_S,
        rate_limits=rate_limits or {},
    )
    async with run_sims(settings, clock) as sims:
        config = load_settings_from_dict(tomllib.loads(config_fragment(sims)))
        async with UpstreamClients.from_settings(config, clock=clock) as clients:
            env = SimEnv(sims, clock, clients)
            yield env
            env.check_violations()


@contextlib.asynccontextmanager
async def advancing(
    clock: ManualClock, tick_s: float = 0.001, horizon_s: float = 300.0
) -> AsyncIterator[None]:
    """Jump the clock to the next sleeper's deadline whenever real time ticks.

    Polls, backoffs and Retry-After pauses then take no real time, while requests in
    flight still travel at real speed. Deadlines further than ``horizon_s`` ahead are left
    alone: the sim mount's lag (``MOUNT_LAG_S``) sleeps that long, and jumping there
    while a request is on the wire would finish downloads behind the client's back.
    """

    async def run() -> None:
        while True:
            await asyncio.sleep(tick_s)
            deadline = clock.next_deadline()
            if deadline is not None and deadline - clock.monotonic() <= horizon_s:
                clock.set_elapsed(deadline)

    task = asyncio.create_task(run(), name="advance-manual-clock")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def season_packs(sims: SimCluster) -> Iterator[tuple[Release, int]]:
    """Published season packs (with seeders) and their season number."""
    now = sims.clock.now()
    for show in sims.catalog.shows():
        for plan in show.seasons:
            if plan.number == 0:
                continue
            for release in sims.catalog.season_releases(show, plan.number, now):
                if len(release.episodes) > 1 and release.seeders > 0:
                    yield release, plan.number


def pick_pack(
    sims: SimCluster,
    cached_on: dict[str, bool],
    accept: Callable[[Release], bool] = lambda r: True,
) -> Release:
    """A published season pack whose cache state on each named service is as given."""
    now = sims.clock.now()
    for release, _ in season_packs(sims):
        states = {s: sims.world.is_cached(s, release.infohash, now) for s in cached_on}
        if states == cached_on and accept(release):
            return release
    raise AssertionError(f"no season pack with {cached_on}")


def pick_movie(sims: SimCluster, cached_on: dict[str, bool]) -> Release:
    now = sims.clock.now()
    for movie in sims.catalog.movies():
        for release in sims.catalog.movie_releases(movie, now):
            if release.seeders == 0:
                continue
            states = {s: sims.world.is_cached(s, release.infohash, now) for s in cached_on}
            if states == cached_on:
                return release
    raise AssertionError(f"no movie release with {cached_on}")


def candidate(release: Release, cached_hint: bool = False) -> Candidate:
    return Candidate(release.infohash, release.title, cached_hint)


def pack_want(release: Release) -> FileWant:
    return FileWant(episodes=release.episodes)


def foreign_hash(seed: int = 1) -> str:
    """A well-formed infohash no catalog release has (RD: stuck in magnet_conversion)."""
    return f"{seed:08x}" + "f" * 32


def calls(handle: SimHandle[Any], since: int = 0) -> list[RecordedRequest]:
    """The requests a sim saw after sequence number ``since``."""
    return handle.log.since(since)


def mark(handle: SimHandle[Any]) -> int:
    """The sim's request counter now (pass to ``calls`` later)."""
    return handle.log.total


async def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait (real time) until ``check()`` holds; fail after ``timeout_s``."""
    for _ in range(int(timeout_s / 0.002)):
        if check():
            return
        await asyncio.sleep(0.002)
    assert check(), "condition not met in time"

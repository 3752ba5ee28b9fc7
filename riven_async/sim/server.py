"""Start every sim in-process on loopback and hand back typed handles (tests, bench, demo)."""

from __future__ import annotations

import base64
import random
import socket
import string
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from aiohttp import web

from riven_async.core.clock import Clock, SystemClock
from riven_async.sim.alldebrid import AllDebridSim
from riven_async.sim.arr import ArrSim
from riven_async.sim.catalog import Catalog
from riven_async.sim.comet import CometSim
from riven_async.sim.faults import FaultSwitchboard
from riven_async.sim.harness import Harness, RecordedRequest, RequestLog, Sim
from riven_async.sim.jellyfin import JellyfinSim
from riven_async.sim.limits import RateLimiter, parse_windows
from riven_async.sim.mediafusion import MediaFusionSim
from riven_async.sim.mount import DebridMount
from riven_async.sim.overseerr import OverseerrSim
from riven_async.sim.plex import PlexSim
from riven_async.sim.realdebrid import RealDebridSim
from riven_async.sim.stremio import TorrentioSim
from riven_async.sim.tmdb import TmdbSim
from riven_async.sim.torbox import TorBoxSim
from riven_async.sim.torznab import TorznabSim
from riven_async.sim.tvmaze import TvmazeSim
from riven_async.sim.world import LibraryLayout, SimWorld
from riven_async.sim.zilean import ZileanSim

SIM_NAMES = (
    "tmdb",
    "tvmaze",
    "torrentio",
    "comet",
    "mediafusion",
    "torznab",
    "zilean",
    "realdebrid",
    "alldebrid",
    "torbox",
    "plex",
    "jellyfin",
    "emby",
    "overseerr",
    "sonarr",
    "radarr",
)
SHUTDOWN_TIMEOUT_S = 1.0
S = TypeVar("S", bound=Sim)


@dataclass(frozen=True, slots=True)
class SimSettings:
    """How to build the sims: catalog size and seed, ports, mount, limits and keys.

    ``ports`` pins a sim to a port (name -> port); otherwise ``port_base + position in
    SIM_NAMES`` when ``port_base`` is set, else an ephemeral port. ``rate_limits`` replaces a
    sim's default windows (name -> ``["250/60s"]``); ``api_keys`` fixes a sim's key.
    ``prebuild`` generates the whole catalog before serving (large benchmark catalogs), and
    each sim keeps its last ``request_log_size`` requests.
    """

    seed: int = 1
    shows: int = 50
    movies: int = 50
    requests: int = 12
    host: str = "127.0.0.1"
    ports: Mapping[str, int] = field(default_factory=dict)
    port_base: int | None = None
    mount_dir: Path | None = None
    mount_lag_s: float = 30.0
    sparse_files: bool = True
    library: LibraryLayout = field(default_factory=LibraryLayout)
    rate_limits: Mapping[str, Sequence[str]] = field(default_factory=dict)
    api_keys: Mapping[str, str] = field(default_factory=dict)
    infringing_ratio: float = 0.02
    prebuild: bool = False
    request_log_size: int = 100_000

    def port_for(self, name: str) -> int:
        if name in self.ports:
            return self.ports[name]
        if self.port_base is not None:
            return self.port_base + SIM_NAMES.index(name)
        return 0


@dataclass(frozen=True, slots=True)
class SimHandle(Generic[S]):
    """One running sim: where it listens and everything tests assert on."""

    name: str
    url: str
    base_url: str
    port: int
    sim: S
    harness: Harness

    @property
    def api_key(self) -> str:
        return self.sim.api_key

    @property
    def faults(self) -> FaultSwitchboard:
        return self.harness.faults

    @property
    def limiter(self) -> RateLimiter:
        return self.harness.limiter

    @property
    def log(self) -> RequestLog:
        return self.harness.log

    @property
    def requests(self) -> list[RecordedRequest]:
        return list(self.harness.log)

    @property
    def violations(self) -> int:
        """Requests that arrived over a limit (429s, and per-endpoint limits a sim enforces)."""
        return self.harness.limiter.violations + self.sim.extra_violations()


@dataclass(frozen=True, slots=True)
class SimCluster:
    """Every sim of one world, by name (typed), plus the shared catalog, clock and mount."""

    world: SimWorld
    tmdb: SimHandle[TmdbSim]
    tvmaze: SimHandle[TvmazeSim]
    torrentio: SimHandle[TorrentioSim]
    comet: SimHandle[CometSim]
    mediafusion: SimHandle[MediaFusionSim]
    torznab: SimHandle[TorznabSim]
    zilean: SimHandle[ZileanSim]
    realdebrid: SimHandle[RealDebridSim]
    alldebrid: SimHandle[AllDebridSim]
    torbox: SimHandle[TorBoxSim]
    plex: SimHandle[PlexSim]
    jellyfin: SimHandle[JellyfinSim]
    emby: SimHandle[JellyfinSim]
    overseerr: SimHandle[OverseerrSim]
    sonarr: SimHandle[ArrSim]
    radarr: SimHandle[ArrSim]

    @property
    def catalog(self) -> Catalog:
        return self.world.catalog

    @property
    def clock(self) -> Clock:
        return self.world.clock

    @property
    def mount(self) -> DebridMount:
        return self.world.mount

    def handles(self) -> tuple[SimHandle[Any], ...]:
        return tuple(getattr(self, name) for name in SIM_NAMES)

    def __getitem__(self, name: str) -> SimHandle[Any]:
        if name not in SIM_NAMES:
            raise KeyError(name)
        handle: SimHandle[Any] = getattr(self, name)
        return handle

    def reset(self) -> None:
        """Clear every sim's faults and request log (limits and state are kept)."""
        for handle in self.handles():
            handle.faults.clear()
            handle.log.clear()


def new_api_key(name: str, rng: random.Random) -> str:
    """A key shaped like the real service's (empty for services that take none)."""
    alnum = string.ascii_letters + string.digits
    if name in ("tvmaze", "torrentio", "comet", "mediafusion", "zilean"):
        return ""
    if name == "tmdb":
        payload = (
            base64.urlsafe_b64encode(
                f'{{"aud":"{rng.getrandbits(128):032x}","scopes":["api_read"],"version":1}}'.encode()
            )
            .decode()
            .rstrip("=")
        )
        signature = "".join(rng.choices(alnum + "-_", k=43))
        return f"eyJhbGciOiJIUzI1NiJ9.{payload}.{signature}"
    if name == "realdebrid":
        return "".join(rng.choices(string.ascii_uppercase + string.digits, k=52))
    if name == "alldebrid":
        return "".join(rng.choices(alnum, k=20))
    if name == "torbox":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if name == "plex":
        return "".join(rng.choices(alnum + "-_", k=20))
    if name == "overseerr":
        return base64.b64encode(rng.randbytes(50)).decode()  # 68 characters, as Riven expects
    if name == "torznab":
        return "".join(rng.choices(string.ascii_lowercase + string.digits, k=32))
    return f"{rng.getrandbits(128):032x}"


def _build_sims(world: SimWorld, settings: SimSettings) -> dict[str, Sim]:
    rng = random.SystemRandom()
    keys = {name: settings.api_keys.get(name) or new_api_key(name, rng) for name in SIM_NAMES}
    sims: list[Sim] = [
        TmdbSim(world, keys["tmdb"]),
        TvmazeSim(world, keys["tvmaze"]),
        TorrentioSim(world, keys["torrentio"]),
        CometSim(world, keys["comet"]),
        MediaFusionSim(world, keys["mediafusion"]),
        TorznabSim(world, keys["torznab"]),
        ZileanSim(world, keys["zilean"]),
        RealDebridSim(world, keys["realdebrid"]),
        AllDebridSim(world, keys["alldebrid"]),
        TorBoxSim(world, keys["torbox"]),
        PlexSim(world, keys["plex"]),
        JellyfinSim(world, keys["jellyfin"]),
        JellyfinSim(world, keys["emby"], emby=True),
        OverseerrSim(world, keys["overseerr"], count=settings.requests),
        ArrSim(world, keys["sonarr"]),
        ArrSim(world, keys["radarr"], radarr=True),
    ]
    return {sim.name: sim for sim in sims}


class _Launcher:
    """Starts apps on sockets and remembers the runners to clean up, in reverse."""

    def __init__(self, settings: SimSettings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self.runners: list[web.AppRunner] = []

    async def start(self, sim: S) -> SimHandle[S]:
        settings = self._settings
        limits = settings.rate_limits.get(sim.name)
        windows = parse_windows(limits) if limits is not None else None
        seed = settings.seed * 100 + SIM_NAMES.index(sim.name)
        harness = Harness(sim, self._clock, windows, seed=seed, log_size=settings.request_log_size)
        runner = web.AppRunner(
            harness.build_app(),
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        )
        await runner.setup()
        self.runners.append(runner)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((settings.host, settings.port_for(sim.name)))
            sock.listen(128)
            sock.setblocking(False)
            await web.SockSite(runner, sock).start()
        except BaseException:
            sock.close()
            raise
        port = sock.getsockname()[1]
        url = f"http://{settings.host}:{port}"
        return SimHandle(sim.name, url, url + sim.prefix, port, sim, harness)

    async def close(self) -> None:
        for runner in reversed(self.runners):
            await runner.cleanup()
        self.runners.clear()


def build_world(settings: SimSettings, clock: Clock) -> SimWorld:
    """The catalog (origin = the clock's now), mount and library layout the sims share."""
    catalog = Catalog(
        settings.seed, settings.shows, settings.movies, clock.now(), settings.infringing_ratio
    )
    mount = DebridMount(settings.mount_dir, clock, settings.mount_lag_s, settings.sparse_files)
    return SimWorld(catalog, clock, mount, settings.library)


@asynccontextmanager
async def run_sims(
    settings: SimSettings | None = None, clock: Clock | None = None
) -> AsyncIterator[SimCluster]:
    """Every sim listening on loopback for the duration of the ``async with`` block.

        clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
        async with run_sims(SimSettings(shows=200, mount_dir=tmp), clock) as sims:
            sims.tmdb.base_url                     # http://127.0.0.1:<port>/3 (real path prefix)
            sims.realdebrid.api_key                # the key the sim accepts
            sims.realdebrid.faults.set(error_rate=0.5, paths=("/rest/1.0/torrents/addMagnet",))
            sims.tvmaze.faults.outage(600)         # 503 for ten simulated minutes
            clock.advance(3600)                    # every sim, the catalog and the mount move on
            sims.realdebrid.violations             # requests that arrived over a limit
            sims.realdebrid.requests               # RecordedRequest(method, path, status, at, ...)
            sims.realdebrid.sim.adds_per_hash      # Counter: infohash -> accepted addMagnet calls
            sims.plex.sim.scans                    # LibraryScan(path, kind, section, matched, at)
            sims.catalog.find_show(lambda s: ...)  # the catalog every sim serves

    Every sim also answers ``/_sim/faults``, ``/_sim/requests``, ``/_sim/stats``,
    ``/_sim/limits`` and ``/_sim/clock`` at its root URL.
    """
    chosen = settings or SimSettings()
    world = build_world(chosen, clock or SystemClock())
    sims = _build_sims(world, chosen)
    launcher = _Launcher(chosen, world.clock)

    def typed(sim_type: type[S], name: str) -> S:
        sim = sims[name]
        assert isinstance(sim, sim_type)
        return sim

    try:
        cluster = SimCluster(
            world=world,
            tmdb=await launcher.start(typed(TmdbSim, "tmdb")),
            tvmaze=await launcher.start(typed(TvmazeSim, "tvmaze")),
            torrentio=await launcher.start(typed(TorrentioSim, "torrentio")),
            comet=await launcher.start(typed(CometSim, "comet")),
            mediafusion=await launcher.start(typed(MediaFusionSim, "mediafusion")),
            torznab=await launcher.start(typed(TorznabSim, "torznab")),
            zilean=await launcher.start(typed(ZileanSim, "zilean")),
            realdebrid=await launcher.start(typed(RealDebridSim, "realdebrid")),
            alldebrid=await launcher.start(typed(AllDebridSim, "alldebrid")),
            torbox=await launcher.start(typed(TorBoxSim, "torbox")),
            plex=await launcher.start(typed(PlexSim, "plex")),
            jellyfin=await launcher.start(typed(JellyfinSim, "jellyfin")),
            emby=await launcher.start(typed(JellyfinSim, "emby")),
            overseerr=await launcher.start(typed(OverseerrSim, "overseerr")),
            sonarr=await launcher.start(typed(ArrSim, "sonarr")),
            radarr=await launcher.start(typed(ArrSim, "radarr")),
        )
        yield cluster
    finally:
        await world.mount.close()
        await launcher.close()

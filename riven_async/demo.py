"""``riven-async demo``: the whole pipeline on one machine, in one command, offline.

Starts the simulated upstreams on loopback (a small catalog on a fast clock), the daemon
itself on its embedded PostgreSQL (its own data directory, apart from a real install),
sends a Sonarr ``SeriesAdd``, an Overseerr approval and Radarr ``MovieAdded`` webhooks to
the daemon's real endpoints, and shows the items move through the pipeline until every
request is in the library. Then it waits for the next episode of the ongoing show to air
on the simulated clock and shows it detected, downloaded and linked. Ctrl-C at any time
stops everything cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop
from aiohttp import web

from riven_async import keys
from riven_async.app import build_app
from riven_async.config import LiveSettings, Settings, load_settings_from_dict
from riven_async.core.clock import ScaledClock
from riven_async.logs import setup_logging
from riven_async.sim.fragment import ClockSpec, config_values
from riven_async.sim.movies import Movie
from riven_async.sim.ports import free_port
from riven_async.sim.server import SimCluster, SimSettings, run_sims
from riven_async.sim.shows import Episode, Show
from riven_async.sim.world import LibraryLayout

EX_OK, EX_FAILED, EX_INTERRUPTED = 0, 1, 130
# Items in these states need nothing more from the pipeline.
SETTLED = frozenset({"completed", "ongoing"})
STUCK = frozenset({"failed", "paused"})


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What ``riven-async demo`` was asked for."""

    data_dir: Path
    speed: float
    movies: int
    timeout_s: float
    keep: bool
    verbose: bool


@dataclass(frozen=True, slots=True)
class DemoPicks:
    """The titles the demo requests, chosen from the simulated catalog."""

    ended_show: Show
    ongoing_show: Show
    next_episode: Episode
    movies: tuple[Movie, ...]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="riven-async demo",
        description="Run the whole pipeline offline against simulated upstreams: webhooks "
        "in, a symlink library out. Nothing leaves this machine; Ctrl-C stops it cleanly.",
    )
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where the demo keeps its database, mount and library "
                        "(default: a new temporary directory, removed afterwards)")
    parser.add_argument("--speed", type=float, default=600.0,
                        help="simulated seconds per real second (default 600)")
    parser.add_argument("--movies", type=int, default=3, help="movies to request (default 3)")
    parser.add_argument("--timeout", type=float, default=600.0, dest="timeout_s",
                        help="give up after this many real seconds (default 600)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the data directory (library and database) afterwards")
    parser.add_argument("--verbose", action="store_true", help="show the daemon's log")
    return parser


def parse_options(argv: Sequence[str] | None) -> DemoOptions:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.speed <= 0:
        parser.error("--speed must be positive")
    if not 1 <= args.movies <= 20:
        parser.error("--movies must be between 1 and 20")
    keep = args.keep or args.data_dir is not None
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="riven-demo-"))
    return DemoOptions(data_dir.resolve(), args.speed, args.movies, args.timeout_s, keep,
                       args.verbose)


def pick_titles(cluster: SimCluster, now: datetime, movies: int) -> DemoPicks:
    """An ended show with several aired seasons, the ongoing show whose next episode airs
    soonest, and released movies."""
    catalog = cluster.catalog
    shows = list(catalog.shows())
    ended = [s for s in shows if s.status(now) in ("Ended", "Canceled")
             and 2 <= len(s.visible_seasons(now)) <= 4]
    ongoing: list[tuple[datetime, Show, Episode]] = []
    for show in shows:
        upcoming = show.next_to_air(now)
        if upcoming is not None and show.last_aired(now) is not None and upcoming.date_known:
            ongoing.append((upcoming.air_at, show, upcoming))
    released = [m for m in catalog.movies() if m.digitally_released(now)]
    if not ended or not ongoing or len(released) < movies:
        raise RuntimeError("the demo catalog has no suitable titles; try another --speed")
    ongoing.sort(key=lambda entry: entry[0])
    _, show, episode = ongoing[0]
    return DemoPicks(ended[0], show, episode, tuple(released[:movies]))


def sonarr_series_add(show: Show) -> dict[str, Any]:
    """Sonarr's ``SeriesAdd`` webhook body, as Sonarr v4 sends it."""
    return {
        "series": {"id": show.index + 1, "title": show.title, "year": show.year,
                   "tvdbId": show.tvdb_id, "tmdbId": show.tmdb_id, "imdbId": show.imdb_id,
                   "tvMazeId": show.tvmaze_id, "type": "standard",
                   "path": f"/tv/{show.title}"},
        "eventType": "SeriesAdd", "instanceName": "Sonarr", "applicationUrl": "",
    }


def overseerr_approved(show: Show, seasons: Sequence[int]) -> dict[str, Any]:
    """Overseerr's ``MEDIA_APPROVED`` for a series request (its values are strings)."""
    return {
        "notification_type": "MEDIA_APPROVED", "event": "Series Request Approved",
        "subject": f"{show.title} ({show.year})", "message": "", "image": "",
        "media": {"media_type": "tv", "tmdbId": str(show.tmdb_id),
                  "tvdbId": str(show.tvdb_id), "status": "PENDING", "status4k": "UNKNOWN"},
        "request": {"request_id": "1", "requestedBy_email": "demo@example.com",
                    "requestedBy_username": "demo"},
        "issue": None, "comment": None,
        "extra": [{"name": "Requested Seasons",
                   "value": ", ".join(str(n) for n in seasons)}],
    }


def radarr_movie_added(movie: Movie) -> dict[str, Any]:
    """Radarr's ``MovieAdded`` webhook body."""
    return {
        "movie": {"id": movie.index + 1, "title": movie.title, "year": movie.year,
                  "tmdbId": movie.tmdb_id, "imdbId": movie.imdb_id,
                  "folderPath": f"/movies/{movie.title} ({movie.year})"},
        "addMethod": "manual", "eventType": "MovieAdded", "instanceName": "Radarr",
        "applicationUrl": "",
    }


def demo_settings(cluster: SimCluster, clock: ClockSpec, data_dir: Path, port: int,
                  api_key: str) -> Settings:
    """The daemon's settings: loopback only, the demo's own database, every sim."""
    values = config_values(cluster, clock)
    values["server"] = {"host": "127.0.0.1", "port": port, "api_key": api_key,
                        "shutdown_timeout_s": 5.0}
    values["database"] = {"data_dir": str(data_dir / "pg")}
    values["logging"] = {"level": "WARNING"}
    return load_settings_from_dict(values)


class Screen:
    """Progress on one rewritten line on a terminal, a line every few seconds otherwise."""

    def __init__(self, stream: Any = None) -> None:
        self._stream = stream or sys.stdout
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._last_plain = 0.0

    def say(self, text: str) -> None:
        if self._tty:
            self._stream.write("\r\x1b[2K")
        self._stream.write(text + "\n")
        self._stream.flush()

    def progress(self, text: str) -> None:
        if self._tty:
            self._stream.write("\r\x1b[2K" + text)
            self._stream.flush()
        elif time.monotonic() - self._last_plain >= 5.0:
            self._last_plain = time.monotonic()
            self._stream.write(text + "\n")
            self._stream.flush()


def progress_bar(done: int, total: int, width: int = 24) -> str:
    filled = 0 if total == 0 else round(width * done / total)
    return "[" + "#" * filled + "." * (width - filled) + f"] {done}/{total}"


class DemoDaemon:
    """The daemon's app on loopback plus an authenticated client for its API."""

    def __init__(self, settings: Settings, clock: ScaledClock) -> None:
        self.settings = settings
        self.app = build_app(LiveSettings(settings), clock=clock)
        self.runner = web.AppRunner(self.app, access_log=None)
        self.base = f"http://127.0.0.1:{settings.server.port}"
        self.headers = {"X-Api-Key": settings.server.api_key.get_secret_value()}
        self.session: aiohttp.ClientSession | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[DemoDaemon]:
        await self.runner.setup()
        try:
            site = web.TCPSite(self.runner, "127.0.0.1", self.settings.server.port)
            await site.start()
            async with aiohttp.ClientSession(headers=self.headers) as session:
                self.session = session
                yield self
        finally:
            self.session = None
            await self.runner.cleanup()

    async def post(self, path: str, body: Mapping[str, Any]) -> int:
        assert self.session is not None
        async with self.session.post(self.base + path, data=orjson.dumps(body),
                                     headers={"Content-Type": "application/json"}) as response:
            await response.read()
            return response.status

    async def get(self, path: str) -> Any:
        assert self.session is not None
        async with self.session.get(self.base + path) as response:
            response.raise_for_status()
            return orjson.loads(await response.read())

    async def roots(self) -> list[dict[str, Any]]:
        """Every requested movie and show (the demo's few fit one page each)."""
        movies = await self.get("/api/items?kind=movie&limit=100")
        shows = await self.get("/api/items?kind=show&limit=100")
        return list(movies["items"]) + list(shows["items"])


def _calls_line(cluster: SimCluster) -> str:
    parts = []
    for handle in cluster.handles():
        total = handle.log.total
        if total:
            parts.append(f"{handle.name} {total}")
    throttled = sum(handle.log.by_status[429] for handle in cluster.handles())
    return "calls: " + ", ".join(parts) + f" | 429s: {throttled}"


async def _wait_settled(daemon: DemoDaemon, cluster: SimCluster, screen: Screen,
                        expected: int, deadline: float) -> list[dict[str, Any]]:
    while True:
        roots = await daemon.roots()
        states: dict[str, int] = {}
        for item in roots:
            states[item["state"]] = states.get(item["state"], 0) + 1
        settled = sum(n for s, n in states.items() if s in SETTLED)
        summary = " ".join(f"{s}={n}" for s, n in sorted(states.items()))
        screen.progress(f"{progress_bar(settled, expected)}  {summary}  {_calls_line(cluster)}")
        if len(roots) >= expected and settled + sum(states.get(s, 0) for s in STUCK) >= expected:
            return roots
        if time.monotonic() > deadline:
            raise TimeoutError(f"not all items settled in time ({summary})")
        await asyncio.sleep(0.5)


async def _wait_episode_linked(daemon: DemoDaemon, show_item: int, episode: Episode,
                               screen: Screen, clock: ScaledClock, deadline: float) -> str:
    while True:
        tree = await daemon.get(f"/api/items/{show_item}")
        state = _episode_state(tree, episode.season, episode.number)
        left_s = (episode.air_at - clock.now()).total_seconds()
        when = f"airs in {left_s / 60:.0f} sim-min" if left_s > 0 else "aired"
        screen.progress(f"S{episode.season:02d}E{episode.number:02d}: {state or 'not listed yet'}"
                        f" ({when}, sim time {clock.now():%Y-%m-%d %H:%M} UTC)")
        if state in ("completed",):
            return state
        if time.monotonic() > deadline:
            raise TimeoutError("the new episode was not linked in time")
        await asyncio.sleep(0.5)


def _episode_state(tree: Mapping[str, Any], season: int, number: int) -> str | None:
    for season_node in tree.get("seasons", []):
        if season_node.get("season_number") != season:
            continue
        for episode in season_node.get("episodes", []):
            if episode.get("episode_number") == number:
                state: str | None = episode.get("state")
                return state
    return None


async def run_demo(options: DemoOptions, screen: Screen) -> int:
    """The demo itself; returns the exit status."""
    started = time.monotonic()
    deadline = started + options.timeout_s
    start = datetime.now(UTC).replace(microsecond=0)
    anchor = time.time()
    clock = ScaledClock(start, options.speed, anchor)
    library = LibraryLayout(root=str(options.data_dir / "library"))
    sim_settings = SimSettings(
        seed=7, shows=40, movies=40, mount_dir=options.data_dir / "mount", mount_lag_s=30.0,
        sparse_files=False, library=library, infringing_ratio=0.0, prebuild=True,
    )
    screen.say(f"riven-async demo: data in {options.data_dir} (speed x{options.speed:g})")
    async with run_sims(sim_settings, clock) as cluster:
        picks = pick_titles(cluster, clock.now(), options.movies)
        settings = demo_settings(cluster, ClockSpec(start, options.speed, anchor),
                                 options.data_dir, free_port(), secrets.token_urlsafe(24))
        screen.say(f"simulated upstreams: {', '.join(h.name for h in cluster.handles())}")
        screen.say("starting the daemon (embedded PostgreSQL, first start takes a few "
                   "seconds)...")
        async with DemoDaemon(settings, clock).running() as daemon:
            screen.say(f"daemon up at {daemon.base}; sending webhooks:")
            aired = [p.number for p in picks.ongoing_show.visible_seasons(clock.now())
                     if p.number > 0]
            sent = [
                ("/webhook/sonarr", sonarr_series_add(picks.ended_show),
                 f"Sonarr SeriesAdd: {picks.ended_show.title}"),
                ("/webhook/overseerr", overseerr_approved(picks.ongoing_show, aired),
                 f"Overseerr MEDIA_APPROVED: {picks.ongoing_show.title} seasons {aired}"),
                *(("/webhook/radarr", radarr_movie_added(m),
                   f"Radarr MovieAdded: {m.title} ({m.year})") for m in picks.movies),
            ]
            for path, body, label in sent:
                status = await daemon.post(path, body)
                screen.say(f"  {label} -> HTTP {status}")
            roots = await _wait_settled(daemon, cluster, screen, len(sent), deadline)
            screen.say(f"all {len(roots)} requests settled in "
                       f"{time.monotonic() - started:.0f}s: "
                       + ", ".join(f"{r['title']}={r['state']}" for r in roots))
            show = next((r for r in roots if r.get("ids", {}).get("tmdb")
                         == picks.ongoing_show.tmdb_id), None)
            episode = picks.next_episode
            if show is not None:
                screen.say(f"waiting for {picks.ongoing_show.title} "
                           f"S{episode.season:02d}E{episode.number:02d} to air "
                           f"({episode.air_at:%Y-%m-%d %H:%M} UTC, sim time)...")
                await _wait_episode_linked(daemon, int(show["id"]), episode, screen, clock,
                                           deadline)
                screen.say(f"S{episode.season:02d}E{episode.number:02d} detected, downloaded"
                           " and linked.")
            violations = sum(h.violations for h in cluster.handles())
            links = _count_links(Path(library.root))
            screen.say(_calls_line(cluster) + f" | limit violations: {violations}")
            screen.say(f"library: {library.root} ({links} links into {sim_settings.mount_dir})")
            failed = [r for r in roots if r["state"] in STUCK]
            if keys.EMBEDDED_PG not in daemon.app:
                screen.say("(the daemon used an external database)")
            return EX_FAILED if failed or violations else EX_OK


def _count_links(root: Path) -> int:
    count = 0
    for _, _, files in os.walk(root):
        count += len(files)
    return count


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``riven-async demo``."""
    options = parse_options(argv)
    setup_logging("INFO" if options.verbose else "ERROR")
    screen = Screen()
    try:
        return uvloop.run(run_demo(options, screen))
    except KeyboardInterrupt:
        screen.say("interrupted; everything is stopped.")
        return EX_INTERRUPTED
    except (TimeoutError, RuntimeError) as exc:
        screen.say(f"demo failed: {exc}")
        return EX_FAILED
    finally:
        if not options.keep:
            shutil.rmtree(options.data_dir, ignore_errors=True)
        else:
            screen.say(f"kept {options.data_dir}")

"""Benchmark: the whole pipeline, 1,000 movies and 100 shows requested at once.

The real daemon (``python -m riven_async run``, uvloop, its embedded PostgreSQL) runs as a
subprocess against the simulated upstreams (in this process) with their real rate limits,
on a scaled clock shared by both (``--speed`` simulated seconds per real second). Every
title is requested through the webhook endpoints (Radarr ``MovieAdded``, Sonarr
``SeriesAdd``) at once; the run ends when every title is settled (completed, or ongoing
with everything aired in the library), when nothing is left to do now, or at ``--timeout``.

Figures (simulated seconds unless said otherwise):

- ``time_to_all_completed_s``: from the first webhook to the last title settled;
- ``bound_by_limits_s``: the least time the upstreams' windows allow for the calls that
  were made (for each upstream and window: a first full window at once, then ``limit``
  calls per ``span``; the largest of these); ``ratio_to_bound`` = bound / time (target
  >= 0.9: the pipeline is bound by the upstreams, not by itself);
- ``calls_per_item``: calls per settled title, per upstream (debrid calls show how close
  the add/check flows are to what each service allows);
- ``peak_rss_mb``: the daemon's peak resident memory (VmHWM; target <= 150);
- ``upstream_429s``: answers 429 from any upstream (target 0); ``violations``: requests
  over a sim's limits; ``lost``: acknowledged requests with no item (target 0);
  ``completed``: titles settled; ``waiting``: the others by state at the end (titles no
  source has an acceptable cached release for wait for a later retry: the run ends when
  nothing is left to do now, twice in a row: no job due or running, the inbox empty).

Run: ``python bench/pipeline.py`` (``--movies``, ``--shows``, ``--speed``, ``--timeout``).
Progress on stderr; a one-line summary, then one JSON object (last line) on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil
import uvloop

from riven_async.core.clock import ScaledClock
from riven_async.demo import radarr_movie_added, sonarr_series_add
from riven_async.sim.fragment import ClockSpec, config_fragment
from riven_async.sim.limits import Window
from riven_async.sim.ports import free_port
from riven_async.sim.server import SimCluster, SimSettings, run_sims
from riven_async.sim.shows import Show
from riven_async.sim.world import LibraryLayout

API_KEY = "bench-api-key-0123456789abcdef"
SETTLED = ("completed", "ongoing")


def log(message: str) -> None:
    sys.stderr.write(f"[pipeline] {message}\n")
    sys.stderr.flush()


def min_time_for(calls: int, window: Window) -> float:
    """The least time ``calls`` requests need under one window (the first window at once)."""
    if calls <= window.limit:
        return 0.0
    return math.ceil(calls / window.limit - 1) * window.span_s


def bound_by_limits(cluster: SimCluster) -> tuple[float, str]:
    """The tightest upstream's least time for the calls made, and which one it was."""
    best, which = 0.0, "-"
    for handle in cluster.handles():
        calls = handle.log.total
        for window in handle.limiter.windows:
            need = min_time_for(calls, window)
            if need > best:
                best, which = need, f"{handle.name} {window}"
    return best, which


def pick_titles(cluster: SimCluster, now: datetime, movies: int,
                shows: int) -> tuple[list[Any], list[Show]]:
    released = [m for m in cluster.catalog.movies() if m.digitally_released(now)]
    aired = [s for s in cluster.catalog.shows() if s.last_aired(now) is not None]
    if len(released) < movies or len(aired) < shows:
        raise SystemExit(f"catalog too small: {len(released)} movies, {len(aired)} shows")
    return released[:movies], aired[:shows]


async def post_all(port: int, bodies: Sequence[tuple[str, dict[str, Any]]]) -> int:
    """Post every webhook over 32 connections; how many were acknowledged (2xx)."""
    connector = aiohttp.TCPConnector(limit=32)
    acknowledged = 0
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    async with aiohttp.ClientSession(connector=connector,
                                     headers={"X-Api-Key": API_KEY}) as session:

        async def sender() -> None:
            nonlocal acknowledged
            while not queue.empty():
                path, body = queue.get_nowait()
                for _ in range(20):
                    async with session.post(
                        f"http://127.0.0.1:{port}{path}", data=orjson.dumps(body),
                        headers={"Content-Type": "application/json"},
                    ) as response:
                        await response.read()
                        if response.status < 300:
                            acknowledged += 1
                            break
                    await asyncio.sleep(0.5)

        await asyncio.gather(*(sender() for _ in range(32)))
    return acknowledged


async def status(session: aiohttp.ClientSession, port: int) -> dict[str, Any]:
    async with session.get(f"http://127.0.0.1:{port}/api/status") as response:
        response.raise_for_status()
        data: dict[str, Any] = orjson.loads(await response.read())
        return data


def roots_by_state(data: dict[str, Any]) -> dict[str, int]:
    by_kind = data["items"]["by_kind"]
    merged: dict[str, int] = {}
    for kind in ("movie", "show"):
        for state, n in by_kind.get(kind, {}).items():
            merged[state] = merged.get(state, 0) + n
    return merged


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return psutil.Process(pid).memory_info().rss / 2**20


async def wait_health(port: int, process: asyncio.subprocess.Process, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise SystemExit(f"daemon exited {process.returncode}")
            try:
                async with session.get(f"http://127.0.0.1:{port}/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("daemon did not become healthy")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="riven-bench-pipeline-"))
    start = datetime.now(UTC).replace(microsecond=0)
    anchor = time.time()
    clock = ScaledClock(start, args.speed, anchor)
    settings = SimSettings(
        seed=args.seed, shows=int(args.shows * 1.6) + 20, movies=int(args.movies * 1.6) + 20,
        mount_dir=work / "mount", mount_lag_s=30.0, sparse_files=True,
        library=LibraryLayout(root=str(work / "library")), prebuild=True,
    )
    process: asyncio.subprocess.Process | None = None
    try:
        async with run_sims(settings, clock) as cluster:
            movies, shows = pick_titles(cluster, clock.now(), args.movies, args.shows)
            episodes = sum(len(s.all_episodes(clock.now())) for s in shows)
            log(f"{len(movies)} movies, {len(shows)} shows ({episodes} episodes), "
                f"speed x{args.speed:g}")
            port = free_port()
            config = work / "config.toml"
            config.write_text(
                f'[server]\nport = {port}\napi_key = "{API_KEY}"\n'
                f'[database]\ndata_dir = "{work / "pg"}"\n[logging]\nlevel = "WARNING"\n'
                + config_fragment(cluster, ClockSpec(start, args.speed, anchor)),
                encoding="utf-8",
            )
            config.chmod(0o600)
            with (work / "daemon.log").open("wb") as daemon_log:
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "riven_async", "run", "--config", str(config),
                    stdin=asyncio.subprocess.DEVNULL, stdout=daemon_log, stderr=daemon_log,
                    env={k: v for k, v in os.environ.items() if not k.startswith("RIVEN_")},
                )
            await wait_health(port, process, 180.0)
            bodies = [("/webhook/radarr", radarr_movie_added(m)) for m in movies]
            bodies += [("/webhook/sonarr", sonarr_series_add(s)) for s in shows]
            began_sim = clock.now()
            began_real = time.monotonic()
            acknowledged = await post_all(port, bodies)
            log(f"{acknowledged} webhooks acknowledged in {time.monotonic() - began_real:.1f}s")
            expected = len(bodies)
            states: dict[str, int] = {}
            finished_sim = None
            async with aiohttp.ClientSession(headers={"X-Api-Key": API_KEY}) as session:
                last_log = 0.0
                quiet = 0
                while time.monotonic() - began_real < args.timeout:
                    document = await status(session, port)
                    states = roots_by_state(document)
                    settled = sum(states.get(s, 0) for s in SETTLED)
                    if time.monotonic() - last_log > 10:
                        last_log = time.monotonic()
                        log(f"sim +{(clock.now() - began_sim).total_seconds():.0f}s: {states}")
                    # Done when every title is settled, or when nothing is left to do now
                    # (titles no source has an acceptable cached release for wait for a
                    # later retry): twice in a row, nothing due or running, inbox empty.
                    busy = document["inbox"]["waiting"] + document["inbox"]["processing"] + sum(
                        c["due"] + c["running"] for c in document["jobs"].values())
                    quiet = quiet + 1 if busy == 0 and sum(states.values()) >= acknowledged \
                        and not states.get("requested") else 0
                    if settled >= expected or quiet >= 2:
                        finished_sim = clock.now()
                        break
                    await asyncio.sleep(1.0)
            elapsed_sim = ((finished_sim or clock.now()) - began_sim).total_seconds()
            bound_s, tightest = bound_by_limits(cluster)
            settled = sum(states.get(s, 0) for s in SETTLED)
            throttled = sum(h.log.by_status[429] for h in cluster.handles())
            calls = {h.name: h.log.total for h in cluster.handles() if h.log.total}
            assert process is not None
            rss = peak_rss_mb(process.pid)
            return {
                "movies": len(movies), "shows": len(shows), "episodes": episodes,
                "speed": args.speed,
                "time_to_all_completed_s": round(elapsed_sim, 1),
                "finished": finished_sim is not None,
                "bound_by_limits_s": round(bound_s, 1), "tightest": tightest,
                "ratio_to_bound": round(bound_s / elapsed_sim, 3) if elapsed_sim else None,
                "calls": calls,
                "calls_per_item": {n: round(c / max(1, settled), 2) for n, c in calls.items()},
                "peak_rss_mb": round(rss, 1),
                "upstream_429s": throttled,
                "violations": sum(h.violations for h in cluster.handles()),
                "lost": max(0, acknowledged - sum(states.values())),
                "completed": settled,
                "waiting": {s: n for s, n in states.items() if s not in SETTLED},
                "real_s": round(time.monotonic() - began_real, 1),
                "cores": os.cpu_count(),
            }
    finally:
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"kept {work}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movies", type=int, default=1000)
    parser.add_argument("--shows", type=int, default=100)
    parser.add_argument("--speed", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=900.0, help="real seconds")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    result = uvloop.run(run(args))
    print(f"pipeline: {result['movies']} movies + {result['shows']} shows settled in "
          f"{result['time_to_all_completed_s']:.0f} sim-s (bound {result['bound_by_limits_s']:.0f}"
          f" s by {result['tightest']}; ratio {result['ratio_to_bound']}), peak RSS "
          f"{result['peak_rss_mb']} MB, 429s {result['upstream_429s']}, lost {result['lost']}")
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()

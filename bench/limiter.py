"""Benchmark: riven_async's limiter against aiolimiter, on scaled time, over loopback HTTP.

Each configuration (RD 250/60s; AllDebrid 12/1s + 600/60s; TorBox 300/60s; TVMaze 20/10s)
is driven as hard as possible by 200 concurrent callers for one simulated hour against a
loopback aiohttp server that enforces the same windows exactly, on its own clock, at
the instant each request *arrives* (as a real upstream does): a request that would put
more than ``limit`` arrivals into any window is refused with a 429 (refusals do not
occupy the window, the lenient reading; Real-Debrid counts them too). Reported per
configuration and contender (medians over the runs):

- ``max_window_ratio``: most requests that arrived in any window / its limit (the
  configuration's worst window; must be <= 1.0);
- ``throughput_pct``: requests the server accepted / the most the windows allow in the
  run (the optimal greedy schedule);
- ``upstream_429s``: requests the server refused.

Contenders:

- ``riven_async``: the production path, ``HttpClient`` built from the configuration's
  windows with the config defaults (10 connections, ``window_hold="done"``);
- ``aiolimiter``: ``AsyncLimiter(limit, seconds)`` per window, nested, in front of a plain
  session (aiolimiter runs on the loop's real time, so its period is divided by the speed);
- ``start_mode`` (``--contenders``): our limiter exact on admission instants only
  (``hold="start"``), to show why the production default holds a place until the response.

The server runs in its own process (the client gets the other core). Scaled time
multiplies real latency by the speed, so every configuration runs at a speed that keeps
a loopback round trip small against its windows; see ``CONFIGS``. The full default run
(4 configurations x 2 contenders x 3 runs x 1 simulated hour) takes about 27 minutes;
``--hours 0.25 --runs 1`` gives a quick look.

Run: ``python bench/limiter.py`` (``--runs``, ``--hours``, ``--only``, ``--contenders``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import platform
import statistics
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
import orjson
import uvloop
from aiohttp import web
from aiolimiter import AsyncLimiter

from riven_async.core.clock import ScaledClock
from riven_async.core.http import HttpClient, UpstreamPolicy
from riven_async.core.ratelimit import SlidingWindowLimiter, Window
from riven_async.errors import RateLimited

CALLERS = 200
START_HEADER = "X-Bench-Start"
CONTENDERS = ("riven_async", "aiolimiter", "start_mode")


@dataclass(frozen=True, slots=True)
class Config:
    name: str
    windows: tuple[Window, ...]
    speed: float  # simulated seconds per real second


# Scaled time multiplies every real delay by the speed, and the hold-until-done limiter
# pays one round trip per window cycle: a loopback round trip of ~2-3 ms (timer wake-up
# included) costs ``speed`` times that in simulated seconds. These speeds keep it to ~1%
# of the shortest binding window, so what is measured is the limiter rather than the
# harness (a busy machine stretches the round trip: see load_average in the report); an
# hour then takes 30-120 s of real time.
CONFIGS = (
    Config("realdebrid", (Window(250, 60.0),), 120.0),
    Config("alldebrid", (Window(12, 1.0), Window(600, 60.0)), 30.0),
    Config("torbox", (Window(300, 60.0),), 120.0),
    Config("tvmaze", (Window(20, 10.0),), 40.0),
)


@dataclass(frozen=True, slots=True)
class Figures:
    max_window_ratio: float
    throughput_pct: float
    upstream_429s: int
    accepted: int
    allowed: int
    sent: int
    start_max_window_ratio: float | None
    real_s: float
    load_1m: float  # the machine's 1-minute load average at the end of the run


class WindowServer:
    """A strict upstream: judges each request on its own clock when it arrives."""

    def __init__(self, windows: Sequence[Window], clock: ScaledClock, origin: float) -> None:
        self.windows = tuple(windows)
        self.clock = clock
        self.origin = origin
        self.recent: tuple[deque[float], ...] = tuple(deque() for _ in windows)
        self.arrivals: list[float] = []
        self.starts: list[float] = []  # admission instants, when the client sends them
        self.accepted: list[float] = []  # arrival instants of accepted requests
        self.refused = 0

    async def handle(self, request: web.Request) -> web.Response:
        now = self.clock.monotonic() - self.origin
        self.arrivals.append(now)
        if START_HEADER in request.headers:
            self.starts.append(float(request.headers[START_HEADER]))
        full = False
        for window, recent in zip(self.windows, self.recent, strict=True):
            # Same comparison as the limiter: an arrival at x is out once now >= x + T.
            while recent and now >= recent[0] + window.seconds:
                recent.popleft()
            full = full or len(recent) >= window.limit
        if full:
            self.refused += 1
            return web.Response(status=429, headers={"Retry-After": "1"})
        for recent in self.recent:
            recent.append(now)
        self.accepted.append(now)
        return web.Response(body=b"{}", content_type="application/json")


def max_in_window(instants: Sequence[float], window: Window) -> int:
    """Most instants inside any half-open interval of the window's length."""
    ordered = sorted(instants)
    best = lo = 0
    for hi, at in enumerate(ordered):
        while at >= ordered[lo] + window.seconds:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def allowed_starts(windows: Sequence[Window], duration_s: float) -> int:
    """The most starts in ``[0, duration)``: the greedy schedule, which is optimal."""
    starts: list[float] = []
    at = 0.0
    while True:
        for w in windows:
            if len(starts) >= w.limit:
                at = max(at, starts[-w.limit] + w.seconds)
        if at >= duration_s:
            return len(starts)
        starts.append(at)


# One caller's loop: returns when the run is over.
Caller = Callable[[], Awaitable[None]]


@dataclass
class Harness:
    config: Config
    clock: ScaledClock
    origin: float
    url: str
    duration_s: float

    def over(self) -> bool:
        return self.clock.monotonic() - self.origin >= self.duration_s


async def drive_riven_async(h: Harness) -> None:
    policy = UpstreamPolicy(
        name=h.config.name,
        base_url=h.url,
        windows=tuple((w.limit, w.seconds) for w in h.config.windows),
        max_retries=0,  # a refusal is a result here, not something to retry
    )
    async with HttpClient(policy, clock=h.clock) as client:

        async def caller(index: int) -> None:
            n = 0
            while not h.over():
                n += 1
                # Distinct URLs: identical in-flight GETs would be coalesced into one.
                with contextlib.suppress(RateLimited):
                    await client.get("/bench", params={"c": index, "n": n})

        await asyncio.gather(*(caller(i) for i in range(CALLERS)))


async def drive_plain(
    h: Harness, admit: Callable[[], Awaitable[tuple[float, Callable[[], None]]]]
) -> None:
    connector = aiohttp.TCPConnector(limit=CALLERS)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def caller() -> None:
            while True:
                started, done = await admit()
                try:
                    if started - h.origin >= h.duration_s:
                        return
                    headers = {START_HEADER: repr(started - h.origin)}
                    async with session.get(h.url + "/bench", headers=headers) as response:
                        await response.read()
                finally:
                    done()

        await asyncio.gather(*(caller() for _ in range(CALLERS)))


async def drive_aiolimiter(h: Harness) -> None:
    buckets = [AsyncLimiter(w.limit, w.seconds / h.config.speed) for w in h.config.windows]

    async def admit() -> tuple[float, Callable[[], None]]:
        for bucket in buckets:
            await bucket.acquire()
        return h.clock.monotonic(), lambda: None

    await drive_plain(h, admit)


async def drive_start_mode(h: Harness) -> None:
    limiter = SlidingWindowLimiter(h.config.windows, h.clock, hold="start")

    async def admit() -> tuple[float, Callable[[], None]]:
        slot = await limiter.acquire()
        return slot.started, lambda: limiter.release(slot)

    await drive_plain(h, admit)
    await limiter.aclose()


DRIVERS: dict[str, Callable[[Harness], Awaitable[None]]] = {
    "riven_async": drive_riven_async,
    "aiolimiter": drive_aiolimiter,
    "start_mode": drive_start_mode,
}


def serve(
    windows: tuple[Window, ...],
    speed: float,
    start: datetime,
    anchor: float,
    origin: float,
    ready: Connection,
) -> None:
    """Run the strict upstream in its own process (the client gets the other core)."""

    async def main() -> None:
        clock = ScaledClock(start, speed, anchor)
        server = WindowServer(windows, clock, origin)
        stop = asyncio.Event()

        async def results(request: web.Request) -> web.Response:
            body = {
                "arrivals": server.arrivals,
                "accepted": server.accepted,
                "starts": server.starts,
                "refused": server.refused,
            }
            stop.set()
            return web.Response(body=orjson.dumps(body), content_type="application/json")

        async def set_origin(request: web.Request) -> web.Response:
            server.origin = float(await request.text())
            return web.Response()

        app = web.Application()
        app.router.add_get("/bench", server.handle)
        app.router.add_post("/_origin", set_origin)
        app.router.add_get("/_results", results)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ready.send(runner.addresses[0][1])
        await stop.wait()
        await asyncio.sleep(0.05)  # let the results response go out
        await runner.cleanup()

    uvloop.run(main())


async def run_once(config: Config, contender: str, duration_s: float) -> Figures:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = ScaledClock(start, config.speed)
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(
        target=serve,
        args=(config.windows, config.speed, start, clock.anchor, clock.monotonic(), child),
        daemon=True,
    )
    process.start()
    port = await asyncio.to_thread(parent.recv)
    url = f"http://127.0.0.1:{port}"
    # The run starts now, with the server up; the server keeps the same origin.
    origin = clock.monotonic()
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/_origin", data=repr(origin)) as response,
    ):
        await response.read()
    harness = Harness(config, clock, origin, url, duration_s)
    began = time.perf_counter()
    await DRIVERS[contender](harness)
    real_s = time.perf_counter() - began
    async with aiohttp.ClientSession() as session, session.get(f"{url}/_results") as response:
        data = orjson.loads(await response.read())
    await asyncio.to_thread(process.join, 10.0)
    arrivals: list[float] = data["arrivals"]
    starts: list[float] = data["starts"]
    # Throughput counts what arrived inside the run (a request admitted just before the
    # end may arrive just after it); the window ratio counts every arrival.
    accepted = sum(1 for at in data["accepted"] if at < duration_s)
    allowed = allowed_starts(config.windows, duration_s)
    return Figures(
        max_window_ratio=max(max_in_window(arrivals, w) / w.limit for w in config.windows),
        throughput_pct=100.0 * accepted / allowed,
        upstream_429s=int(data["refused"]),
        accepted=accepted,
        allowed=allowed,
        sent=len(arrivals),
        start_max_window_ratio=(
            max(max_in_window(starts, w) / w.limit for w in config.windows) if starts else None
        ),
        real_s=real_s,
        load_1m=os.getloadavg()[0],
    )


def median_figures(runs: Sequence[Figures]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in Figures.__dataclass_fields__:
        values = [getattr(r, name) for r in runs]
        if any(v is None for v in values):
            out[name] = None
            continue
        middle = statistics.median(values)
        out[name] = round(middle, 4) if isinstance(middle, float) else middle
    out["runs"] = [asdict(r) for r in runs]
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    duration_s = args.hours * 3600.0
    configs = [c for c in CONFIGS if not args.only or c.name in args.only]
    results: dict[str, Any] = {}
    for config in configs:
        per: dict[str, list[Figures]] = {c: [] for c in args.contenders}
        for run in range(args.runs):
            for contender in args.contenders:
                f = await run_once(config, contender, duration_s)
                per[contender].append(f)
                windows = " + ".join(str(w) for w in config.windows)
                print(
                    f"{config.name:<10} {windows:<16} run {run + 1} {contender:<11} "
                    f"ratio={f.max_window_ratio:.3f} throughput={f.throughput_pct:6.2f}% "
                    f"429s={f.upstream_429s:<5} ({f.real_s:.1f}s real, load {f.load_1m:.1f})",
                    file=sys.stderr,
                    flush=True,
                )
        results[config.name] = {
            "windows": [str(w) for w in config.windows],
            "speed": config.speed,
            **{c: median_figures(per[c]) for c in args.contenders},
        }
    return results


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="riven_async limiter vs aiolimiter")
    parser.add_argument("--runs", type=int, default=3, help="runs per contender (medians)")
    parser.add_argument("--hours", type=float, default=1.0, help="simulated hours per run")
    parser.add_argument("--only", nargs="*", help="configuration names to run")
    parser.add_argument(
        "--contenders",
        nargs="+",
        choices=CONTENDERS,
        default=["riven_async", "aiolimiter"],
        help="what to drive (default: riven_async aiolimiter)",
    )
    return parser.parse_args(argv)


def table(results: dict[str, Any], contenders: Sequence[str]) -> list[str]:
    lines = [
        f"{'config':<10} {'windows':<16} {'contender':<11} {'ratio':>6} {'thru%':>7} "
        f"{'429s':>6} {'start_ratio':>11}"
    ]
    for name, r in results.items():
        for c in contenders:
            f = r[c]
            start = (
                "-" if f["start_max_window_ratio"] is None else f"{f['start_max_window_ratio']:.3f}"
            )
            lines.append(
                f"{name:<10} {' + '.join(r['windows']):<16} {c:<11} "
                f"{f['max_window_ratio']:>6.3f} {f['throughput_pct']:>7.2f} "
                f"{f['upstream_429s']:>6} {start:>11}"
            )
    return lines


def run(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    load_before = os.getloadavg()
    results = uvloop.run(main(args))
    load_after = os.getloadavg()
    contenders: list[str] = args.contenders
    print()
    for line in table(results, contenders):
        print(line)
    summary = "limiter:"
    ok = True
    if "riven_async" in contenders:
        ours = [r["riven_async"] for r in results.values()]
        ok = all(
            f["max_window_ratio"] <= 1.0 and f["throughput_pct"] >= 97.0 and f["upstream_429s"] == 0
            for f in ours
        )
        summary += (
            f" riven_async max_window_ratio<={max(f['max_window_ratio'] for f in ours):.3f},"
            f" throughput>={min(f['throughput_pct'] for f in ours):.2f}%,"
            f" 429s={sum(f['upstream_429s'] for f in ours)}"
        )
    if "aiolimiter" in contenders:
        theirs = [r["aiolimiter"] for r in results.values()]
        summary += (
            f" | aiolimiter max_window_ratio up to"
            f" {max(f['max_window_ratio'] for f in theirs):.3f},"
            f" 429s={sum(f['upstream_429s'] for f in theirs)}"
        )
    verdict = ("PASS" if ok else "FAIL") if "riven_async" in contenders else "no verdict"
    summary += (
        f" ({verdict}: ratio<=1.0, throughput>=97%, 0 429s;"
        f" medians of {args.runs} runs of {args.hours:g} simulated h, {CALLERS} callers)"
    )
    print()
    print(summary)
    report = {
        "benchmark": "limiter",
        "summary": summary,
        "pass": ok,
        "unit": {
            "max_window_ratio": "most requests arriving in any window / its limit",
            "throughput_pct": "accepted requests / most the windows allow in the run, %",
            "upstream_429s": "requests the loopback upstream refused",
            "start_max_window_ratio": "as max_window_ratio on admission instants",
            "speed": "simulated seconds per real second",
            "real_s": "wall-clock seconds per run",
            "load_1m": "1-minute load average at the end of a run (machine is shared)",
        },
        "callers": CALLERS,
        "simulated_s": args.hours * 3600.0,
        "runs": args.runs,
        "cpu_count": os.cpu_count(),
        "load_average": {"before": load_before, "after": load_after},
        "python": platform.python_version(),
        "configs": results,
    }
    print(orjson.dumps(report).decode())


if __name__ == "__main__":
    run()

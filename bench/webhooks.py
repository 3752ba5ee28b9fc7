"""Benchmark of webhook intake: the real daemon on loopback against a bare aiohttp handler.

The daemon runs as ``python -m riven_async run`` (uvloop, its embedded PostgreSQL with
production settings, its inbox worker consuming what the webhooks store). Beside it, in the
same run, a bare aiohttp handler on uvloop that only parses the JSON and answers 202 (no
database) is the machine's ceiling. One load generator (a separate process, raw HTTP/1.1
keep-alive over asyncio streams on uvloop) posts a mix of real-shaped payloads
(``tests/payloads``: Sonarr, Radarr, Overseerr, Jellyfin text/plain, Plex multipart,
show-update) from 64 connections. Every body is unique (one extra top-level field carries a
sequence number), so every 2xx must leave its own inbox row.

Figures (medians over ``--runs`` runs, alternating bare and daemon):

- ``rps``, ``p50_ms``, ``p99_ms``: webhooks per second and latency against the daemon;
- ``non_2xx``: answers that were not 2xx (all runs); ``lost``: 2xx answers minus new inbox
  rows (all runs; must be 0);
- ``bare_rps`` and ``ratio_to_bare`` (median of each run's rps / bare rps);
- ``api_page_p99_ms``: ``GET /api/items?limit=100`` with 250,000 items stored, or, when the
  daemon has no such route yet, ``CatalogRepo.page`` called directly on the daemon's
  database (``api_page_source`` says which);
- ``cpu_us``: CPU time per answered request of the daemon, of its PostgreSQL server and of
  the bare handler (medians). The machine is shared: requests per second move with what
  else runs, CPU per request much less; each run also records the load average.

Run: ``python bench/webhooks.py`` (``--duration`` 20, ``--runs`` 3, ``--connections`` 64). Progress
on stderr; a one-line summary, then one JSON object (last line) on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import psutil
import uvloop
from aiohttp import web

from riven_async.db.catalog import CatalogRepo, PageCursor
from riven_async.db.embedded import EmbeddedPostgres
from riven_async.db.pool import PoolOptions, create_pool
from riven_async.domain.media import MediaKind
from riven_async.domain.states import State
from riven_async.sim.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
PAYLOADS = ROOT / "tests" / "payloads"
API_KEY = "bench-api-key-0123456789abcdef"
PLEX_BOUNDARY = "-" * 24 + "bEnChbOuNdArY0123456789"
SEQ_FIELD = "benchSeq"
ITEMS_FOR_PAGES = 250_000

# (path, payload file, content type, weight): mostly re-checks, as a library sends them.
MIX: tuple[tuple[str, str, str, int], ...] = (
    ("/webhook/sonarr", "sonarr_download.json", "application/json", 3),
    ("/webhook/sonarr", "sonarr_grab.json", "application/json", 2),
    ("/webhook/radarr", "radarr_download.json", "application/json", 2),
    ("/webhook/radarr", "radarr_grab.json", "application/json", 1),
    ("/webhook/overseerr", "overseerr_media_approved_movie.json", "application/json", 1),
    ("/webhook/overseerr", "overseerr_media_auto_approved_tv.json", "application/json", 1),
    ("/webhook/jellyfin", "jellyfin_item_added_episode.json", "text/plain; charset=utf-8", 2),
    ("/webhook/plex", "plex_library_new_episode.json", "multipart", 1),
    ("/webhook/show-update", "", "application/json", 2),
)


def log(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


# -- the load generator (its own process) -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Template:
    """A request whose body is ``prefix + seq + suffix`` (multipart wraps the JSON)."""

    head: bytes  # request line and headers up to Content-Length's value
    prefix: bytes
    suffix: bytes


def templates(host: str) -> list[Template]:
    out: list[Template] = []
    for path, name, content_type, weight in MIX:
        data: dict[str, Any] = (orjson.loads((PAYLOADS / name).read_bytes()) if name
                                else {"tvdb_id": 371980, "title": "Severance"})
        marker = "\x01SEQ\x01"
        json_body = orjson.dumps({SEQ_FIELD: marker, **data})
        if content_type == "multipart":
            content_type = f"multipart/form-data; boundary={PLEX_BOUNDARY}"
            body = b"\r\n".join([
                f"--{PLEX_BOUNDARY}".encode(),
                b'Content-Disposition: form-data; name="payload"',
                b"Content-Type: application/json", b"", json_body,
                f"--{PLEX_BOUNDARY}--".encode(),
            ]) + b"\r\n"
        else:
            body = json_body
        prefix, suffix = body.split(orjson.dumps(marker))
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nX-Api-Key: {API_KEY}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: ").encode()
        out += [Template(head, prefix + b'"', b'"' + suffix)] * weight
    return out


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """The status of one response, and whether the server keeps the connection open."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    keep = True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"content-length":
            length = int(value)
        elif lowered == b"connection" and value.strip().lower() == b"close":
            keep = False
    if length:
        await reader.readexactly(length)
    return status, keep


async def generate_load(port: int, duration_s: float, connections: int, tag: str,
                        get_path: str | None) -> dict[str, Any]:
    host = f"127.0.0.1:{port}"
    mix = templates(host)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    counter = iter(range(10**12))
    deadline = time.perf_counter() + duration_s
    get_request = (f"GET {get_path} HTTP/1.1\r\nHost: {host}\r\nX-Api-Key: {API_KEY}\r\n\r\n"
                   .encode() if get_path else b"")

    async def one_connection(index: int) -> None:
        nonlocal errors
        rng = random.Random(index)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                if get_request:
                    request = get_request
                else:
                    template = mix[rng.randrange(len(mix))]
                    body = b"".join([template.prefix, f"{tag}-{next(counter)}".encode(),
                                     template.suffix])
                    request = b"".join([template.head, str(len(body)).encode(), b"\r\n\r\n",
                                        body])
                started = time.perf_counter()
                writer.write(request)
                try:
                    status, keep = await read_response(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    errors += 1
                    keep = False
                    status = 0
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
                if not keep:
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(one_connection(i) for i in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
    return {
        "requests": len(latencies), "ok": ok, "non_2xx": len(latencies) - ok,
        "errors": errors, "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "rps": round(ok / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
    }


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


# -- the bare handler (its own process) ---------------------------------------------------


async def bare_handler(request: web.Request) -> web.Response:
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        async for part in reader:
            if isinstance(part, aiohttp.BodyPartReader) and (
                    part.headers.get("Content-Type", "").startswith("application/json")):
                orjson.loads(await part.read())
    else:
        orjson.loads(await request.read())
    return web.Response(status=202, body=b'{"status":"accepted"}',
                        content_type="application/json")


async def serve_bare(port: int) -> None:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/webhook/{sender:.*}", bare_handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


# -- the orchestrator ---------------------------------------------------------------------


async def run_load(port: int, duration_s: float, connections: int, tag: str,
                   get_path: str | None = None) -> dict[str, Any]:
    """One load-generator process against ``port``; its JSON result."""
    command = [__file__, "--load", "--port", str(port), "--duration", str(duration_s),
               "--connections", str(connections), "--tag", tag]
    if get_path:
        command += ["--get", get_path]
    process = await asyncio.create_subprocess_exec(
        sys.executable, *command, stdout=asyncio.subprocess.PIPE)
    async with asyncio.timeout(duration_s + 120):
        stdout, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the load generator failed (exit {process.returncode})")
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


async def wait_http(port: int, path: str, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"http://127.0.0.1:{port}{path}") as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"nothing answered on port {port} within {timeout_s}s")


async def inbox_rows(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM inbox"))
    finally:
        await conn.close()


async def api_status(port: int) -> int:
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{port}/api/items?limit=1",
            headers={"X-Api-Key": API_KEY}) as response:
        return response.status


async def seed_items(dsn: str, total: int) -> None:
    """Shows with 24 episodes each (states spread) until ``total`` items are stored."""
    conn = await asyncpg.connect(dsn)
    try:
        have = int(await conn.fetchval("SELECT count(*) FROM items"))
        shows = max(0, (total - have) // 25)
        states = "ARRAY['completed','completed','completed','unreleased','indexed','scraped'," \
                 "'downloaded','requested','ongoing','failed']::item_state[]"
        await conn.execute(f"""
            INSERT INTO items (kind, tmdb_id, title, state, year, state_changed_at)
            SELECT 'show', 50000000 + g, 'Bench Show ' || g, ({states})[1 + g % 10],
                   2000 + g % 25, now() - g * interval '1 minute'
            FROM generate_series(1, {shows}) g""")
        await conn.execute(f"""
            INSERT INTO items (kind, show_id, season_number, episode_number, title, state,
                               state_changed_at)
            SELECT 'episode', s.id, 1 + (e - 1) / 12, 1 + (e - 1) % 12, 'Episode ' || e,
                   ({states})[1 + (s.id + e) % 10], now() - (s.id + e) * interval '1 second'
            FROM items s CROSS JOIN generate_series(1, 24) e
            WHERE s.kind = 'show' AND s.tmdb_id > 50000000""")
        await conn.execute("VACUUM ANALYZE items")
    finally:
        await conn.close()


async def page_p99_direct(dsn: str, calls: int = 2000) -> float:
    """``CatalogRepo.page`` as ``GET /api/items`` would call it: unfiltered, by kind and by
    state, from random keyset positions, 100 rows a page."""
    pool = await create_pool(PoolOptions(dsn=dsn, min_size=1, max_size=2))
    try:
        catalog = CatalogRepo(pool)
        max_id = int(await pool.fetchval("SELECT max(id) FROM items"))
        rng = random.Random(7)
        timings: list[float] = []
        for n in range(calls + 100):
            after = PageCursor(rng.randrange(max_id)) if rng.random() < 0.7 else None
            started = time.perf_counter()
            match n % 4:
                case 0 | 1:
                    await catalog.page(after=after, limit=100)
                case 2:
                    await catalog.page(kind=MediaKind.SHOW, after=after, limit=100)
                case _:
                    await catalog.page(state=State.COMPLETED, limit=100)
            if n >= 100:  # the first calls warm the caches and the statement cache
                timings.append(time.perf_counter() - started)
        timings.sort()
        return round(float(percentile(timings, 0.99)) * 1000, 2)
    finally:
        await pool.close()


async def api_page_figure(daemon: Daemon, skip: bool) -> tuple[float | None, str]:
    """``GET /api/items`` p99 with 250,000 items stored (seeded now), and how it was taken."""
    if skip:
        return None, "skipped (--skip-api-page)"
    log(f"seeding {ITEMS_FOR_PAGES:,} items for the page figure")
    await seed_items(daemon.dsn, ITEMS_FOR_PAGES)
    if await api_status(daemon.port) == 200:
        page = await run_load(daemon.port, 5.0, 1, "page", get_path="/api/items?limit=100")
        return float(page["p99_ms"]), "GET /api/items?limit=100 over HTTP"
    source = "CatalogRepo.page on the daemon's database (no GET /api/items yet)"
    return await page_p99_direct(daemon.dsn), source


@dataclass(slots=True)
class Daemon:
    process: asyncio.subprocess.Process
    port: int
    dsn: str


async def start_daemon(work: Path) -> Daemon:
    """``python -m riven_async run`` with its embedded database in ``work``."""
    port, pg_port = free_port(), free_port()
    data_dir = work / "pg"
    config = work / "config.toml"
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\napi_key = "{API_KEY}"\n'
        f'[database]\ndata_dir = "{data_dir}"\nembedded_port = {pg_port}\n'
        '[logging]\nlevel = "WARNING"\n', encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "riven_async", "run", "--config", str(config), cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    return Daemon(process, port, EmbeddedPostgres(data_dir, port=pg_port).dsn())


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(60):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


def cpu_s(processes: Sequence[psutil.Process]) -> float:
    """User + system CPU seconds of these processes (those still running)."""
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def postgres_processes(data_dir: Path) -> list[psutil.Process]:
    """The embedded server's postmaster and its backends (found by their data directory)."""
    found: list[psutil.Process] = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if any(str(data_dir) in part for part in cmdline):
            try:
                found += [process, *process.children(recursive=True)]
            except psutil.Error:
                continue
    return list({p.pid: p for p in found}.values())


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


async def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    bare_port = free_port()
    bare = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve-bare", "--port", str(bare_port),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    daemon = await start_daemon(work)
    try:
        await wait_http(bare_port, "/")
        await wait_http(daemon.port, "/health")
        log(f"daemon on :{daemon.port}, bare handler on :{bare_port}; warming up")
        await run_load(bare_port, 2.0, args.connections, "warm")
        await run_load(daemon.port, 2.0, args.connections, "warm")
        runs: list[dict[str, Any]] = []
        daemon_process = [psutil.Process(daemon.process.pid)]
        bare_process = [psutil.Process(bare.pid)]
        for n in range(args.runs):
            bare_cpu = cpu_s(bare_process)
            bare_result = await run_load(bare_port, args.duration, args.connections, f"b{n}")
            bare_cpu = cpu_s(bare_process) - bare_cpu
            before = await inbox_rows(daemon.dsn)
            tag = uuid.uuid4().hex[:8]
            postgres = postgres_processes(work / "pg")
            daemon_cpu, postgres_cpu = cpu_s(daemon_process), cpu_s(postgres)
            result = await run_load(daemon.port, args.duration, args.connections, tag)
            daemon_cpu = cpu_s(daemon_process) - daemon_cpu
            postgres_cpu = cpu_s(postgres) - postgres_cpu
            # Every 2xx was answered after its commit, so the rows are there already.
            stored = await inbox_rows(daemon.dsn) - before
            result["lost"] = result["ok"] - stored
            result["bare_rps"] = bare_result["rps"]
            result["bare_p99_ms"] = bare_result["p99_ms"]
            result["ratio_to_bare"] = round(result["rps"] / bare_result["rps"], 3)
            result["cpu_us"] = {
                "daemon": round(daemon_cpu / max(1, result["requests"]) * 1e6, 1),
                "postgres": round(postgres_cpu / max(1, result["requests"]) * 1e6, 1),
                "bare": round(bare_cpu / max(1, bare_result["requests"]) * 1e6, 1),
            }
            result["load_average"] = load_average()
            runs.append(result)
            log(f"run {n + 1}: {result['rps']}/s (bare {bare_result['rps']}/s, ratio "
                f"{result['ratio_to_bare']}), p50 {result['p50_ms']} ms, p99 "
                f"{result['p99_ms']} ms, non-2xx {result['non_2xx']}, lost {result['lost']}, "
                f"cpu/request {result['cpu_us']} us, load {result['load_average']}")
        api_page_p99_ms, source = await api_page_figure(daemon, args.skip_api_page)
        items = await asyncpg_count(daemon.dsn)
    finally:
        await stop(daemon.process)
        await stop(bare)
        shutil.rmtree(work, ignore_errors=True)

    def median(key: str) -> float:
        return round(float(statistics.median(float(r[key]) for r in runs)), 2)

    def median_cpu(key: str) -> float:
        return round(float(statistics.median(float(r["cpu_us"][key]) for r in runs)), 1)

    return {
        "rps": median("rps"), "p50_ms": median("p50_ms"), "p99_ms": median("p99_ms"),
        "non_2xx": sum(r["non_2xx"] for r in runs), "lost": sum(r["lost"] for r in runs),
        "bare_rps": median("bare_rps"), "ratio_to_bare": round(median("ratio_to_bare"), 3),
        "api_page_p99_ms": api_page_p99_ms, "api_page_source": source, "api_page_items": items,
        "cpu_us": {key: median_cpu(key) for key in ("daemon", "postgres", "bare")},
        "units": {"rps": "webhooks/s", "p50_ms": "ms", "p99_ms": "ms", "lost": "2xx without a row",
                  "cpu_us": "CPU microseconds per answered request"},
        "duration_s": args.duration, "runs": runs, "connections": args.connections,
        "cores": os.cpu_count(),
        "targets": {"rps": 3000, "ratio_to_bare": 0.45, "p99_ms": 50, "lost": 0,
                    "api_page_p99_ms": 10},
    }


async def asyncpg_count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM items"))
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--skip-api-page", action="store_true",
                        help="skip seeding 250,000 items for the API page figure")
    parser.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--tag", default="x", help=argparse.SUPPRESS)
    parser.add_argument("--get", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        uvloop.run(serve_bare(args.port))
        return
    if args.load:
        result = uvloop.run(generate_load(args.port, args.duration, args.connections, args.tag,
                                          args.get))
        print(json.dumps(result))
        return
    result = asyncio.run(orchestrate(args))
    print(f"webhooks: {result['rps']:.0f}/s (bare {result['bare_rps']:.0f}/s, ratio "
          f"{result['ratio_to_bare']}), p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
          f"non-2xx {result['non_2xx']}, lost {result['lost']}, API page p99 "
          f"{result['api_page_p99_ms']} ms, cpu/request {result['cpu_us']} us")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

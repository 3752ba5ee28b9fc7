"""Benchmark of ``riven-async import``: 10,000 entries from the Sonarr, Radarr and Overseerr
sims recorded as requests, end to end through the real command.

An embedded PostgreSQL with production settings (fsync on) in a temporary directory; each
run imports into a fresh clone of a migrated template database. Per source, ``--runs``
times (medians reported):

- ``command_s``: the whole ``riven-async import <source> --json`` in-process (config load,
  connect, fetch from the sim on loopback, parse, look-ups, batched writes); the target is
  under 60 s for 10,000 entries;
- ``entries_per_s``: entries read / ``command_s``;
- ``rerun_command_s``: the same command again on the same database (nothing to write);
- ``fetch_s``: the source's list calls alone (the sim building its JSON is most of it);
- ``record_entries_per_s``: the writes alone, ``RequestWriter.write`` in batches of 500 on
  pre-parsed entries (look-up of what is known, then ``request_media``);
- ``raw_request_media_per_s`` and ``ratio_to_raw``: ``db.requests.request_media`` on the
  same batches without the look-up (the floor of a non-idempotent import).

Run: ``python bench/import.py`` (``--entries``, ``--runs``, ``--sources``). Progress on
stderr; a one-line summary, then one JSON object (last line) on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from riven_async.cli import execute
from riven_async.commands import import_sources
from riven_async.commands.base import Output
from riven_async.commands.database import CommandDatabase
from riven_async.commands.import_sources import ReadOptions, SourceName
from riven_async.commands.importer import BATCH_SIZE, RequestWriter
from riven_async.core.clock import SystemClock
from riven_async.core.http import ApiKeyAuth, HttpClient, Secret, UpstreamPolicy
from riven_async.db import migrate, requests
from riven_async.db.embedded import EmbeddedPostgres
from riven_async.db.pool import PoolOptions, create_pool
from riven_async.db.repos import Repos
from riven_async.domain.intents import RequestMedia
from riven_async.domain.queue import new_boot_id
from riven_async.sim.ports import free_port
from riven_async.sim.server import SimCluster, SimHandle, SimSettings, run_sims

TEMPLATE = "bench_import_template"
API_KEY = "bench-api-key-0123456789abcdef"
SOURCES: tuple[SourceName, ...] = ("radarr", "sonarr", "overseerr")


def log(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


class Databases:
    """A migrated template on the embedded server and a fresh clone per run."""

    def __init__(self, server: EmbeddedPostgres) -> None:
        self.server = server

    async def create_template(self) -> None:
        admin = await asyncpg.connect(self.server.dsn("postgres"))
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
            await admin.execute(f"CREATE DATABASE {TEMPLATE}")
        finally:
            await admin.close()
        conn = await asyncpg.connect(self.server.dsn(TEMPLATE))
        try:
            await migrate.apply_migrations(conn)
        finally:
            await conn.close()

    async def fresh(self) -> str:
        name = f"b_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(self.server.dsn("postgres"))
        try:
            await admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        finally:
            await admin.close()
        return self.server.dsn(name)


def write_config(path: Path, dsn: str, work: Path) -> Path:
    path.write_text(
        f'[server]\nport = {free_port()}\napi_key = "{API_KEY}"\n\n'
        f'[database]\nurl = "{dsn}"\n\n'
        f'[library]\nmount_dir = "{work / "mount"}"\nroot = "{work / "library"}"\n',
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


async def run_command(config: Path, source: SourceName, handle: SimHandle[Any]) -> tuple[
    float, dict[str, Any]
]:
    stdout, stderr = io.StringIO(), io.StringIO()
    out = Output(json_mode=True, stdout=stdout, stderr=stderr)
    argv = ["--config", str(config), "import", source, "--url", handle.url,
            "--api-key", handle.api_key, "--json"]
    if source == "overseerr":
        argv += ["--page-size", "500"]
    started = time.perf_counter()
    code = await execute(argv, out=out)
    elapsed = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"import {source} exited {code}: {stderr.getvalue()}")
    report: dict[str, Any] = orjson.loads(stdout.getvalue())
    return elapsed, report


async def fetch_entries(source: SourceName, handle: SimHandle[Any]) -> tuple[
    float, list[RequestMedia]
]:
    client = HttpClient(UpstreamPolicy(
        name=source, base_url=import_sources.normalise_base_url(source, handle.url),
        timeout_s=600.0, api_key=Secret(handle.api_key), auth=ApiKeyAuth("header", "X-Api-Key"),
        max_body_bytes=512 * 1024 * 1024,
    ))
    started = time.perf_counter()
    entries: list[RequestMedia] = []
    try:
        async for batch in import_sources.read_source(source, client,
                                                      ReadOptions(page_size=500)):
            entries.extend(e.request for e in batch.entries if e.request is not None)
    finally:
        await client.aclose()
    return time.perf_counter() - started, _unique(entries)


def _unique(entries: Sequence[RequestMedia]) -> list[RequestMedia]:
    # Batches of distinct titles, as the importer hands them to the writer.
    seen: set[tuple[str, str, object]] = set()
    out: list[RequestMedia] = []
    for entry in entries:
        keys = import_sources.request_keys(entry)
        if any(key in seen for key in keys):
            continue
        seen.update(keys)
        out.append(entry)
    return out


async def time_writes(dsn: str, entries: Sequence[RequestMedia], *, raw: bool) -> float:
    pool = await create_pool(PoolOptions(dsn=dsn, min_size=1, max_size=4))
    try:
        repos = Repos.on(pool, SystemClock(), new_boot_id())
        writer = RequestWriter(CommandDatabase(pool, repos, embedded=True))
        started = time.perf_counter()
        for start in range(0, len(entries), BATCH_SIZE):
            batch = entries[start:start + BATCH_SIZE]
            if raw:
                await requests.request_media(pool, repos, batch)
            else:
                await writer.write(batch)
        return time.perf_counter() - started
    finally:
        await pool.close()


async def bench_source(
    source: SourceName, sims: SimCluster, dbs: Databases, work: Path, runs: int
) -> dict[str, Any]:
    handle = sims[source]
    figures: dict[str, list[float]] = {k: [] for k in (
        "command_s", "entries_per_s", "rerun_command_s", "fetch_s", "record_entries_per_s",
        "raw_request_media_per_s", "ratio_to_raw")}
    last: dict[str, Any] = {}
    for run in range(runs):
        config = write_config(work / f"{source}-{run}.toml", await dbs.fresh(), work)
        elapsed, report = await run_command(config, source, handle)
        rerun_elapsed, rerun = await run_command(config, source, handle)
        if rerun["added"] or rerun["updated"]:
            raise RuntimeError(f"{source}: the second run wrote {rerun}")
        fetch_s, entries = await fetch_entries(source, handle)
        written_s = await time_writes(await dbs.fresh(), entries, raw=False)
        raw_s = await time_writes(await dbs.fresh(), entries, raw=True)
        figures["command_s"].append(elapsed)
        figures["entries_per_s"].append(report["read"] / elapsed)
        figures["rerun_command_s"].append(rerun_elapsed)
        figures["fetch_s"].append(fetch_s)
        figures["record_entries_per_s"].append(len(entries) / written_s)
        figures["raw_request_media_per_s"].append(len(entries) / raw_s)
        figures["ratio_to_raw"].append(raw_s / written_s)
        last = {"read": report["read"], "added": report["added"],
                "already_present": report["already_present"], "skipped": report["skipped"],
                "distinct_titles": len(entries)}
        log(f"{source} run {run + 1}/{runs}: {report['read']:,} entries in {elapsed:.1f}s "
            f"({report['read'] / elapsed:,.0f}/s; fetch {fetch_s:.1f}s), rerun "
            f"{rerun_elapsed:.1f}s, writes {len(entries) / written_s:,.0f}/s "
            f"(raw {len(entries) / raw_s:,.0f}/s)")
    result: dict[str, Any] = {**last}
    for name, values in figures.items():
        result[name] = round(statistics.median(values), 3)
        result[f"{name}_runs"] = [round(v, 3) for v in values]
    return result


async def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="riven-bench-import-"))
    server = EmbeddedPostgres(work / "pg")
    await server.start()
    try:
        dbs = Databases(server)
        await dbs.create_template()
        # Overseerr lists the approved requests made before now: about 0.55 of those it holds.
        settings = SimSettings(seed=11, shows=args.entries, movies=args.entries,
                               requests=int(args.entries * 1.8), request_log_size=1000)
        log(f"sims: {args.entries:,} shows, movies and Overseerr requests")
        async with run_sims(settings) as sims:
            sims.sonarr.sim.stride = 1
            sims.radarr.sim.stride = 1
            results = {source: await bench_source(source, sims, dbs, work, args.runs)
                       for source in args.sources}
    finally:
        await server.stop("fast")
        shutil.rmtree(work, ignore_errors=True)
    return {
        "benchmark": "import",
        "entries": args.entries,
        "runs": args.runs,
        "batch_size": BATCH_SIZE,
        "units": {"*_s": "seconds", "*_per_s": "entries per second"},
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "sources": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sources", nargs="+", choices=SOURCES, default=list(SOURCES))
    args = parser.parse_args()
    result = asyncio.run(orchestrate(args))
    summary = ", ".join(
        f"{name} {r['read']:,} in {r['command_s']:.1f}s ({r['entries_per_s']:,.0f}/s, rerun "
        f"{r['rerun_command_s']:.1f}s, writes {r['record_entries_per_s']:,.0f}/s = "
        f"{r['ratio_to_raw']:.2f}x raw)"
        for name, r in result["sources"].items()
    )
    print(f"import: {summary}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

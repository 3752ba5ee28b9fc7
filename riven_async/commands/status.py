"""``riven-async status``: is the daemon up, what does the library hold, what is stuck, what
comes next, how are the upstreams. From the API when the daemon runs, else the database."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

import orjson
from rich.table import Table

from riven_async import __version__
from riven_async.commands import render
from riven_async.commands.base import (
    EX_OK,
    EX_UNAVAILABLE,
    CommandError,
    Invocation,
    add_common_options,
)
from riven_async.commands.daemon_link import DaemonClient, daemon_is_up, read_pid_file
from riven_async.commands.database import CommandDatabase, open_database
from riven_async.config import Settings
from riven_async.db.status import database_status

Document = dict[str, Any]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``status``."""
    parser = sub.add_parser(
        "status", help="is the daemon running, what it holds, what is stuck or due",
        description="Show whether the daemon runs, its version and database, items by "
        "state, the oldest item stuck in each working state, the next scheduled checks "
        "and each upstream's health. Reads the daemon's API when it runs, the database "
        "otherwise (starting the embedded one for a moment if needed).",
    )
    add_common_options(parser)
    parser.set_defaults(handler=show_status)


async def show_status(inv: Invocation) -> int:
    """Print the status document (text, or JSON with ``--json``)."""
    settings = inv.settings()
    document = await gather_status(settings)
    if inv.out.json_mode:
        inv.out.data(document)
    else:
        print_status(inv, document)
    return EX_OK


async def gather_status(settings: Settings) -> Document:
    """The daemon's ``/api/status`` with a ``daemon`` section, or the same from the database."""
    async with DaemonClient(settings) as client:
        if await client.is_up():
            document: Document = await client.get("/api/status")
            pid = read_pid_file(settings)
            document["daemon"] = {"running": True, "url": client.url,
                                  "pid": None if pid is None else pid.pid}
            return document
        url = client.url
    pid_state = read_pid_file(settings)
    if pid_state is not None and pid_state.alive:
        raise CommandError(f"the daemon (pid {pid_state.pid}) runs but does not answer at {url}",
                           EX_UNAVAILABLE, "is it still starting? check server.host/port")

    async def daemon_appeared() -> bool:
        return await daemon_is_up(settings)

    async with open_database(settings, still_needed=daemon_appeared) as db:
        document = await status_from_database(db)
    document["daemon"] = {"running": False, "url": url, "pid": None}
    return document


async def status_from_database(db: CommandDatabase) -> Document:
    """What ``/api/status`` says, read from the database (no uptime, no upstream health)."""
    async with db.pool.acquire() as conn:
        database = await database_status(db.repos.bound_to(conn))
    size = database.pop("size_bytes")
    document = {
        "version": __version__,
        "uptime_s": None,
        "config": None,
        "database": {"embedded": db.embedded, "size_bytes": size},
        **database,
        "upstreams": None,
    }
    loaded: Document = orjson.loads(orjson.dumps(document))
    return loaded


def print_status(inv: Invocation, doc: Mapping[str, Any]) -> None:
    """The status document for people."""
    out = inv.out
    daemon = doc.get("daemon") or {}
    if daemon.get("running"):
        uptime = doc.get("uptime_s")
        up = f" (up {render.duration(uptime)})" if isinstance(uptime, int | float) else ""
        out.text(f"riven-async {doc.get('version')}: daemon running at {daemon.get('url')}{up}")
        config = doc.get("config") or {}
        if config.get("path"):
            reloads = int(config.get("generation") or 0)
            out.text(f"config:    {config['path']} (reloaded {reloads} time"
                     f"{'' if reloads == 1 else 's'} since start)")
    else:
        out.text(f"riven-async {doc.get('version')}: daemon NOT running "
                 f"(nothing answers at {daemon.get('url')})")
    database = doc.get("database") or {}
    where = "embedded" if database.get("embedded") else "external"
    out.text(f"database:  {where}, {render.size_text(database.get('size_bytes'))}")
    items = doc.get("items") or {}
    out.text(f"items:     {items.get('total', 0):,} "
             f"({render.counts_text(items.get('by_state') or {})})")
    by_kind = items.get("by_kind") or {}
    if by_kind:
        kinds = ", ".join(_plural(sum(v.values()), k) for k, v in by_kind.items())
        out.text(f"           {kinds}")
    _print_oldest(inv, doc.get("oldest") or {})
    checks = doc.get("checks") or {}
    out.text(f"checks:    {checks.get('due_now', 0):,} due now, "
             f"{checks.get('due_next_hour', 0):,} within the hour, "
             f"{checks.get('due_next_day', 0):,} within a day; next "
             f"{render.when(checks.get('next_at'))}")
    _print_jobs(inv, doc.get("jobs") or {})
    inbox = doc.get("inbox") or {}
    if inbox.get("waiting") or inbox.get("processing"):
        out.text(f"inbox:     {inbox.get('waiting', 0):,} webhook deliveries waiting, "
                 f"{inbox.get('processing', 0):,} in progress, oldest "
                 f"{render.age(inbox.get('oldest'))}")
    _print_upstreams(inv, doc.get("upstreams"))


def _print_oldest(inv: Invocation, oldest: Mapping[str, Any]) -> None:
    if not oldest:
        inv.out.text("stuck:     nothing waiting in a working state")
        return
    ordered = sorted(oldest.items(), key=lambda pair: -float(pair[1].get("age_s") or 0))
    for n, (state, item) in enumerate(ordered):
        label = "oldest:" if n == 0 else ""
        inv.out.text(f"{label:<10} {state}: {item.get('title') or '(untitled)'} "
                     f"(item {item.get('id')}, {item.get('kind')}) for "
                     f"{render.duration(float(item.get('age_s') or 0))}")


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _print_jobs(inv: Invocation, jobs: Mapping[str, Any]) -> None:
    busy = {kind: c for kind, c in jobs.items() if any(c.values())}
    if not busy:
        inv.out.text("jobs:      none queued")
        return
    parts = []
    for kind, c in busy.items():
        text = f"{kind} {c.get('due', 0)} due/{c.get('running', 0)} running"
        if c.get("scheduled"):
            text += f"/{c['scheduled']} later"
        if c.get("failed"):
            text += f"/{c['failed']} failed"
        parts.append(text)
    inv.out.text("jobs:      " + "; ".join(parts))


def _print_upstreams(inv: Invocation, upstreams: Mapping[str, Any] | None) -> None:
    if upstreams is None:
        inv.out.text("upstreams: unknown while the daemon is not running")
        return
    if not upstreams:
        inv.out.text("upstreams: none enabled")
        return
    table = Table(box=None, pad_edge=False, header_style="bold", title=None)
    table.add_column("UPSTREAM")
    table.add_column("HEALTH")
    table.add_column("BREAKER")
    for name in ("429s (1H)", "REQUESTS", "5xx/ERR", "P95 MS"):
        table.add_column(name, justify="right")
    table.add_column("PAUSED")
    for name, up in upstreams.items():
        paused = float(up.get("paused_for_s") or 0)
        table.add_row(
            name, "ok" if up.get("healthy") else "DEGRADED", str(up.get("breaker")),
            str(up.get("rate_limited_last_hour", up.get("rate_limited", 0))),
            f"{up.get('requests', 0):,}",
            str(up.get("server_errors", 0)),
            "-" if up.get("p95_ms") is None else str(up.get("p95_ms")),
            render.duration(paused) if paused else "-",
        )
    inv.out.text("upstreams (429s in the last hour; totals since start in --json):")
    inv.out.console.print(table)

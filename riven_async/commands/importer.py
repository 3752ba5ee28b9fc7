"""``riven-async import sonarr|radarr|overseerr``: request everything another tool holds.

Entries are read from the source's API, turned into requests, and written in batches
through ``db.requests.request_media`` (one transaction and one statement per batch), on
the database directly whether or not the daemon runs (its workers wake on the queue's
NOTIFY). A title that a stored request already covers is left alone, so a second run
writes nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from riven_async.commands import import_sources
from riven_async.commands.base import (
    EX_FAILURE,
    EX_OK,
    EX_UNAVAILABLE,
    CommandError,
    Invocation,
    Output,
    add_common_options,
)
from riven_async.commands.daemon_link import daemon_is_up
from riven_async.commands.database import CommandDatabase, open_database
from riven_async.commands.import_sources import Entry, ReadOptions, SourceName
from riven_async.config import Settings
from riven_async.core.http import ApiKeyAuth, HttpClient, Secret, UpstreamPolicy
from riven_async.db import requests
from riven_async.domain.intents import RequestMedia
from riven_async.errors import UpstreamError, UpstreamUnavailable

BATCH_SIZE = 500
MAX_LISTED_SKIPS = 10
PROGRESS_LINE_EVERY_S = 5.0
SOURCE_BODY_LIMIT = 512 * 1024 * 1024
Outcome = Literal["added", "updated", "present"]
_PORTS = {"sonarr": 8989, "radarr": 7878, "overseerr": 5055}

_EPILOG = """\
examples:
  riven-async import sonarr --url http://127.0.0.1:8989 --api-key KEY
  riven-async import radarr --url http://nas:7878 --api-key-file ~/.radarr-key
  riven-async import overseerr          (uses [upstreams.overseerr] from the config)
  riven-async import sonarr --url ... --api-key ... --dry-run

Sonarr: monitored series (only their monitored seasons, or the whole show when all are
monitored). Radarr: monitored movies. Overseerr: approved requests, with their seasons.
Safe to run again: titles already requested are left alone. The API key is in each
tool's Settings > General.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``import`` and its sources."""
    parser = sub.add_parser(
        "import", help="request every series/movie/request from Sonarr, Radarr or Overseerr",
        description="Request everything Sonarr, Radarr or Overseerr holds, in batches, "
        "with a progress bar and a summary.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_options(parser)
    sources = parser.add_subparsers(dest="source", metavar="SOURCE", required=True)
    for name, what in (("sonarr", "series"), ("radarr", "movies"),
                       ("overseerr", "approved requests")):
        child = sources.add_parser(name, help=f"import {name}'s {what}",
                                   description=f"Request {name}'s {what}.",
                                   epilog=_EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
        add_common_options(child)
        default_note = ""
        if name == "overseerr":
            default_note = " (default: [upstreams.overseerr] in the config)"
        child.add_argument("--url", metavar="URL",
                           help=f"{name}'s address, e.g. http://127.0.0.1:{_PORTS[name]}"
                           + default_note)
        keys = child.add_mutually_exclusive_group()
        keys.add_argument("--api-key", metavar="KEY",
                          help="its API key ('-' reads it from stdin)" + default_note)
        keys.add_argument("--api-key-file", type=Path, metavar="PATH",
                          help="read the API key from this file")
        if name != "overseerr":
            child.add_argument("--include-unmonitored", action="store_true",
                               help="also unmonitored titles (and seasons)")
        else:
            child.add_argument("--page-size", type=int, default=250, metavar="N",
                               help="requests per page (default 250)")
        child.add_argument("--dry-run", action="store_true",
                           help="read and compare with the library, but request nothing")
        child.set_defaults(handler=import_command)


# -- the command -------------------------------------------------------------------------------


@dataclass
class ImportReport:
    """What one import did; ``to_json`` is the ``--json`` document."""

    source: str
    url: str
    dry_run: bool
    read: int = 0
    added: int = 0
    updated: int = 0
    already_present: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    elapsed_s: float = 0.0

    def count(self, outcome: Outcome) -> None:
        if outcome == "added":
            self.added += 1
        elif outcome == "updated":
            self.updated += 1
        else:
            self.already_present += 1

    def reasons(self) -> dict[str, int]:
        return dict(Counter(reason for _, reason in self.skipped).most_common())

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source, "url": self.url, "dry_run": self.dry_run,
            "read": self.read, "added": self.added, "updated": self.updated,
            "already_present": self.already_present, "skipped": len(self.skipped),
            "skipped_by_reason": self.reasons(),
            "skipped_entries": [{"title": t, "reason": r} for t, r in self.skipped],
            "elapsed_s": round(self.elapsed_s, 3),
            "entries_per_s": round(self.read / self.elapsed_s, 1) if self.elapsed_s else None,
        }


async def import_command(inv: Invocation) -> int:
    """Read the source, request its titles, print the summary."""
    args = inv.args
    name: SourceName = args.source
    settings = inv.settings()
    url, key = await _source_access(name, args, settings)
    options = ReadOptions(include_unmonitored=getattr(args, "include_unmonitored", False),
                          page_size=max(1, min(getattr(args, "page_size", 250), 10_000)))

    async def daemon_appeared() -> bool:
        return await daemon_is_up(settings)

    async with open_database(settings, still_needed=daemon_appeared) as db:
        report = await run_import(name, url, key, db, options, out=inv.out,
                                  dry_run=args.dry_run)
    if inv.out.json_mode:
        inv.out.data(report.to_json())
    else:
        print_report(inv.out, report)
    return EX_OK


async def run_import(
    name: SourceName,
    url: str,
    api_key: str,
    db: CommandDatabase,
    options: ReadOptions,
    *,
    out: Output | None = None,
    dry_run: bool = False,
) -> ImportReport:
    """Read ``name`` at ``url`` page by page and request its titles in batches."""
    report = ImportReport(name, url, dry_run)
    writer = RequestWriter(db, dry_run=dry_run)
    progress = _Progress(out, name)
    started = time.perf_counter()
    pending: _PendingBatch = _PendingBatch()
    async with _source_client(name, url, api_key) as client:
        try:
            async for batch in import_sources.read_source(name, client, options):
                progress.total(batch.total)
                for entry in batch.entries:
                    report.read += 1
                    if entry.request is None:
                        report.skipped.append((entry.label, entry.skipped or "skipped"))
                    else:
                        merged = pending.add(entry)
                        if merged is not None:
                            report.skipped.append((entry.label, merged))
                    if len(pending) >= BATCH_SIZE:
                        await _flush(pending, writer, report)
                        pending = _PendingBatch()
                    progress.advance(1)
            await _flush(pending, writer, report)
        except UpstreamError as exc:
            raise _source_error(name, url, exc) from None
        finally:
            progress.stop()
    report.elapsed_s = time.perf_counter() - started
    return report


async def _flush(pending: _PendingBatch, writer: RequestWriter, report: ImportReport) -> None:
    if not pending.requests:
        return
    for outcome in await writer.write(pending.requests):
        report.count(outcome)


class _PendingBatch:
    """Requests waiting to be written; the same title listed twice becomes one request
    (seasons merged), since one statement cannot tell which of two new rows came first."""

    def __init__(self) -> None:
        self.requests: list[RequestMedia] = []
        self._by_key: dict[tuple[str, str, object], int] = {}

    def __len__(self) -> int:
        return len(self.requests)

    def add(self, entry: Entry) -> str | None:
        """Queue the entry's request; the skip reason when it merged into an earlier one."""
        request = entry.request
        assert request is not None
        keys = import_sources.request_keys(request)
        for key in keys:
            index = self._by_key.get(key)
            if index is not None:
                first = self.requests[index]
                self.requests[index] = replace(first, seasons=_union(first.seasons,
                                                                     request.seasons))
                return "listed again (merged into the first)"
        for key in keys:
            self._by_key[key] = len(self.requests)
        self.requests.append(request)
        return None


def _union(a: tuple[int, ...] | None, b: tuple[int, ...] | None) -> tuple[int, ...] | None:
    if a is None or b is None:
        return None
    return tuple(sorted(set(a) | set(b)))


class RequestWriter:
    """Writes a batch: one look-up of what is known, then one ``request_media`` for the
    rest (its own transaction: one ``request_many`` and one ``enqueue_many``)."""

    def __init__(self, db: CommandDatabase, *, dry_run: bool = False) -> None:
        self._db = db
        self._dry_run = dry_run

    async def write(self, batch: Sequence[RequestMedia]) -> list[Outcome]:
        known = await self._db.repos.catalog.known_requests(batch)
        todo = [i for i, k in enumerate(known) if not k.covered]
        outcomes: list[Outcome] = ["present"] * len(batch)
        if self._dry_run:
            for i in todo:
                outcomes[i] = "added" if known[i].item_id is None else "updated"
            return outcomes
        written = await requests.request_media(self._db.pool, self._db.repos,
                                               [batch[i] for i in todo])
        for i, result in zip(todo, written, strict=True):
            outcomes[i] = "added" if result.created else "updated"
        return outcomes


# -- source access -----------------------------------------------------------------------------


async def _source_access(
    name: SourceName, args: argparse.Namespace, settings: Settings
) -> tuple[str, str]:
    url: str | None = args.url
    key: str | None = args.api_key
    if args.api_key_file is not None:
        try:
            key = (await anyio.to_thread.run_sync(args.api_key_file.read_text)).strip()
        except OSError as exc:
            raise CommandError(f"cannot read {args.api_key_file}: {exc.strerror}") from None
    elif key == "-":
        key = (await anyio.to_thread.run_sync(sys.stdin.read)).strip()
    if name == "overseerr":
        section = settings.upstreams.overseerr
        url = url or section.base_url
        key = key or section.api_key.get_secret_value()
    if not url:
        raise CommandError(f"--url is required: where {name} answers, "
                           "e.g. http://127.0.0.1:8989")
    if not key:
        raise CommandError(f"--api-key or --api-key-file is required ({name}: Settings > "
                           "General > API Key)")
    return import_sources.normalise_base_url(name, url), key


@contextlib.asynccontextmanager
async def _source_client(name: SourceName, url: str, api_key: str) -> AsyncIterator[HttpClient]:
    client = HttpClient(UpstreamPolicy(
        name=name, base_url=url, timeout_s=600.0, connect_timeout_s=10.0, max_retries=3,
        api_key=Secret(api_key), auth=ApiKeyAuth("header", "X-Api-Key"),
        headers=(("Accept", "application/json"),), max_body_bytes=SOURCE_BODY_LIMIT,
    ))
    try:
        yield client
    finally:
        await client.aclose()


def _source_error(name: str, url: str, exc: UpstreamError) -> CommandError:
    if isinstance(exc, UpstreamUnavailable):
        return CommandError(f"{name} at {url} does not answer: {exc.reason or exc}",
                            EX_UNAVAILABLE, "check --url (and that it runs)")
    if exc.status in (401, 403):
        return CommandError(f"{name} refused the API key (HTTP {exc.status})", EX_FAILURE,
                            f"copy it from {name}'s Settings > General")
    if exc.status == 404:
        return CommandError(f"no {name} API at {url} (HTTP 404)", EX_FAILURE,
                            "check --url (with its URL base, if one is set)")
    if exc.status is not None and exc.status >= 500:
        return CommandError(f"{name} failed: {exc}", EX_UNAVAILABLE)
    return CommandError(f"{name}: {exc}", EX_FAILURE)


# -- output ------------------------------------------------------------------------------------


class _Progress:
    """A rich progress bar on a terminal; otherwise a plain line every few seconds."""

    def __init__(self, out: Output | None, name: str) -> None:
        self._out = out
        self._name = name
        self._done = 0
        self._total: int | None = None
        self._last_line = time.monotonic()
        self._bar: Progress | None = None
        self._task: Any = None
        if out is not None and not out.json_mode and out.errors.is_terminal:
            self._bar = Progress(
                TextColumn(f"{name}: requesting"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), console=out.errors, transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(name, total=None)

    def total(self, total: int | None) -> None:
        if total is not None and total != self._total:
            self._total = total
            if self._bar is not None:
                self._bar.update(self._task, total=total)

    def advance(self, n: int) -> None:
        self._done += n
        if self._bar is not None:
            self._bar.update(self._task, advance=n)
        elif self._out is not None and not self._out.json_mode:
            now = time.monotonic()
            if now - self._last_line >= PROGRESS_LINE_EVERY_S:
                self._last_line = now
                of = f"/{self._total:,}" if self._total else ""
                self._out.note(f"{self._name}: {self._done:,}{of} entries")

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def print_report(out: Output, report: ImportReport) -> None:
    """The summary for people: counts, then skipped entries with their reasons."""
    verb = "would request" if report.dry_run else "requested"
    rate = f", {report.read / report.elapsed_s:,.0f}/s" if report.elapsed_s else ""
    out.text(f"{report.source}: {report.read:,} entries read in {report.elapsed_s:.1f}s{rate}")
    out.text(f"  {verb} {report.added:,} new, {report.updated:,} already there with more "
             f"seasons; {report.already_present:,} already present; "
             f"{len(report.skipped):,} skipped")
    for reason, n in report.reasons().items():
        out.text(f"  skipped {n:,}: {reason}")
    for title, reason in itertools.islice(report.skipped, MAX_LISTED_SKIPS):
        out.text(f"    - {title}: {reason}")
    if len(report.skipped) > MAX_LISTED_SKIPS:
        out.text(f"    ... and {len(report.skipped) - MAX_LISTED_SKIPS:,} more (--json lists "
                 "all)")


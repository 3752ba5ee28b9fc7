"""``riven-async sim``: run every simulated upstream on loopback until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import uvloop

from riven_async.core.clock import ScaledClock
from riven_async.sim.fragment import ClockSpec, config_fragment
from riven_async.sim.limits import parse_windows
from riven_async.sim.server import SIM_NAMES, SimCluster, SimSettings, run_sims
from riven_async.sim.world import LibraryLayout

log = logging.getLogger(__name__)

EX_OK, EX_UNAVAILABLE, EX_FORCED = 0, 69, 130
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class SimOptions:
    """Everything ``riven-async sim`` was asked for."""

    settings: SimSettings
    speed: float = 1.0
    start: datetime | None = None
    write_config: Path | None = None
    quiet: bool = False
    extra: dict[str, str] = field(default_factory=dict)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="riven-async sim",
        description="Run simulated TMDB, TVMaze, scrapers, debrid services and media servers "
        "on loopback, print a config fragment pointing at them, and serve until stopped.",
    )
    parser.add_argument("--seed", type=int, default=1, help="catalog seed (default 1)")
    parser.add_argument("--shows", type=int, default=200, help="number of shows (default 200)")
    parser.add_argument("--movies", type=int, default=200, help="number of movies (default 200)")
    parser.add_argument("--requests", type=int, default=12, help="Overseerr requests")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="simulated seconds per real second (default 1)"
    )
    parser.add_argument("--start", help="simulated start time, ISO-8601 (default: now, UTC)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument(
        "--port-base",
        type=int,
        help="first port; sims take consecutive ports in this order: " + ", ".join(SIM_NAMES),
    )
    parser.add_argument(
        "--port",
        action="append",
        default=[],
        metavar="NAME=PORT",
        help="pin one sim to a port (repeatable)",
    )
    parser.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME=WINDOWS",
        help="replace a sim's limits, e.g. realdebrid=250/60s or "
        "alldebrid=12/1s,600/60s; 'none' for no limit (repeatable)",
    )
    parser.add_argument(
        "--mount-dir", type=Path, help="debrid mount directory (default: a new temporary directory)"
    )
    parser.add_argument(
        "--mount-lag",
        type=float,
        default=30.0,
        help="simulated seconds before a downloaded torrent appears (default 30)",
    )
    parser.add_argument(
        "--small-files",
        action="store_true",
        help="write tiny files instead of sparse files of the real size",
    )
    parser.add_argument(
        "--library-root",
        help="the daemon's symlink library as media servers see it (default: a new temporary "
        "directory next to the default mount)",
    )
    parser.add_argument(
        "--infringing-ratio",
        type=float,
        default=0.02,
        help="share of hashes Real-Debrid refuses with 451 (default 0.02)",
    )
    parser.add_argument(
        "--write-config",
        type=Path,
        metavar="PATH",
        help="also write the config fragment to PATH (mode 0600)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not print the fragment")
    return parser


def parse_options(argv: Sequence[str] | None) -> SimOptions:
    """Parse and validate; exit with argparse's usage error on bad input."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        ports = dict(_pair(item, int) for item in args.port)
        limits = {name: _limits(text) for name, text in (_pair(i, str) for i in args.limit)}
        start = datetime.fromisoformat(args.start) if args.start else None
        if start is not None and start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        if args.speed <= 0:
            raise ValueError("--speed must be positive")
        if args.shows < 0 or args.movies < 0:
            raise ValueError("--shows and --movies must not be negative")
    except ValueError as exc:
        parser.error(str(exc))
    mount_dir, library_root = _default_paths(args.mount_dir, args.library_root)
    settings = SimSettings(
        seed=args.seed,
        shows=args.shows,
        movies=args.movies,
        requests=args.requests,
        host=args.host,
        ports=ports,
        port_base=args.port_base,
        mount_dir=mount_dir.resolve(),
        mount_lag_s=args.mount_lag,
        sparse_files=not args.small_files,
        library=LibraryLayout(root=library_root),
        rate_limits=limits,
        infringing_ratio=args.infringing_ratio,
        prebuild=True,
    )
    return SimOptions(settings, args.speed, start, args.write_config, args.quiet)


def _default_paths(mount_dir: Path | None, library_root: str | None) -> tuple[Path, str]:
    """Paths not given go to one fresh directory, so a hand-run daemon needs no root."""
    if mount_dir is not None and library_root is not None:
        return mount_dir, library_root
    scratch = Path(tempfile.mkdtemp(prefix="riven-sim-"))
    return mount_dir or scratch / "mount", library_root or str(scratch / "library")


def _pair(item: str, convert: Callable[[str], _T]) -> tuple[str, _T]:
    name, sep, value = item.partition("=")
    if not sep or name not in SIM_NAMES:
        raise ValueError(f"{item!r}: expected NAME=VALUE with NAME one of {', '.join(SIM_NAMES)}")
    return name, convert(value)


def _limits(text: str) -> list[str]:
    windows = [] if text.strip() == "none" else [w.strip() for w in text.split(",") if w.strip()]
    parse_windows(windows)
    return windows


async def serve(
    options: SimOptions,
    stop: asyncio.Event,
    on_ready: Callable[[SimCluster, str], None] | None = None,
) -> int:
    """Run the sims on a scaled clock until ``stop`` is set; return an exit status."""
    start = options.start or datetime.now(UTC).replace(microsecond=0)
    anchor = time.time()
    clock = ScaledClock(start, options.speed, anchor)
    settings = options.settings
    async with run_sims(settings, clock) as cluster:
        fragment = config_fragment(cluster, ClockSpec(start, options.speed, anchor))
        if options.write_config is not None:
            _write_private(options.write_config, fragment)
        if not options.quiet:
            sys.stdout.write(fragment)
            sys.stdout.flush()
        log.info(
            "%d sims up (seed %d, speed %g); stop with Ctrl-C",
            len(cluster.handles()),
            settings.seed,
            options.speed,
            extra={"action": "sim_ready"},
        )
        if on_ready is not None:
            on_ready(cluster, fragment)
        await stop.wait()
    return EX_OK


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` with mode 0600, atomically: a watcher never reads half a fragment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(partial, path)


async def _run(options: SimOptions) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()

    def on_signal() -> None:
        # The first signal stops gracefully; a second one cancels the shutdown itself.
        if stop.is_set() and main_task is not None:
            main_task.cancel()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        return await serve(options, stop)
    except asyncio.CancelledError:
        return EX_FORCED
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``riven-async sim``; returns the process exit status."""
    options = parse_options(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    settings = options.settings
    try:
        for directory in (settings.mount_dir, Path(settings.library.root)):
            if directory is not None:
                directory.mkdir(parents=True, exist_ok=True)
        return uvloop.run(_run(options))
    except OSError as exc:
        log.error("cannot start the sims: %s", exc, extra={"action": "sim_start"})
        return EX_UNAVAILABLE

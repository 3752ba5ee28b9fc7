"""``riven-async``: run the daemon, check the config, migrate, start the sims."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from riven_async import __version__, daemon
from riven_async.config import (
    EX_CONFIG,
    LiveSettings,
    Settings,
    default_config_path,
    load_settings,
    write_initial_config,
)
from riven_async.db import lifecycle
from riven_async.errors import ConfigError, RivenError
from riven_async.logs import setup_logging
from riven_async.sim import cli as sim_cli

log = logging.getLogger("riven_async")

EX_UNAVAILABLE = 69


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="riven-async",
        description="Turn media requests into a ready-to-play library (see README.md).",
    )
    parser.add_argument("--version", action="version", version=f"riven-async {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", type=Path, metavar="PATH",
                       help=f"config file (default: {default_config_path()})")
        return p

    with_config(sub.add_parser("run", help="run the daemon (creates a config on first run)"))
    with_config(sub.add_parser("check-config", help="validate the config file; exit 0 or 78"))
    with_config(sub.add_parser("migrate", help="apply database migrations and exit"))
    sim = sub.add_parser("sim", help="run the simulated upstreams on loopback",
                         add_help=False)
    sim.add_argument("sim_args", nargs=argparse.REMAINDER)
    return parser


def _resolve_config(path: Path | None, *, create: bool) -> Path:
    if path is not None:
        return path
    default = default_config_path()
    if create and not default.exists():
        write_initial_config(default)
        print(f"created {default} with a new API key; edit it to add your services",
              file=sys.stderr)
    return default


def _load_or_exit(path: Path) -> Settings:
    try:
        return load_settings(path)
    except ConfigError as exc:
        print(f"riven-async: config error: {exc}", file=sys.stderr)
        raise SystemExit(EX_CONFIG) from None


def _cmd_run(args: argparse.Namespace) -> int:
    path = _resolve_config(args.config, create=args.config is None)
    settings = _load_or_exit(path)
    secret_filter = setup_logging(settings.logging.level, settings.secrets())
    # Until the event loop installs its own handlers, a stop signal ends us cleanly.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    log.info("riven-async %s starting with %s", __version__, path, extra={"action": "startup"})
    return daemon.run(LiveSettings(settings, path), secret_filter)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _cmd_check_config(args: argparse.Namespace) -> int:
    path = _resolve_config(args.config, create=False)
    _load_or_exit(path)
    print(f"{path}: ok")
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    path = _resolve_config(args.config, create=False)
    settings = _load_or_exit(path)
    setup_logging(settings.logging.level, settings.secrets())

    async def migrate() -> None:
        async with lifecycle.open_database(settings):
            pass

    try:
        asyncio.run(migrate())
    except RivenError as exc:
        print(f"riven-async: {exc}", file=sys.stderr)
        return 1
    print("migrations applied")
    return 0


def _cmd_sim(args: argparse.Namespace) -> int:
    return sim_cli.main(list(args.sim_args))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``riven-async`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sim"]:
        # The sims own their options (argparse's REMAINDER would swallow --help badly).
        raise SystemExit(sim_cli.main(argv[1:]))
    args = _parser().parse_args(argv)
    handlers = {
        "run": _cmd_run,
        "check-config": _cmd_check_config,
        "migrate": _cmd_migrate,
        "sim": _cmd_sim,
    }
    try:
        code = handlers[args.command](args)
    except KeyboardInterrupt:
        code = 130
    raise SystemExit(code)

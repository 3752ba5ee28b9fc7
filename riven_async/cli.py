"""``riven-async``: run the daemon, and drive it from a shell (config, status, items, import)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import asyncpg

from riven_async import __version__, daemon, demo
from riven_async.commands import config_cmd, config_file, importer, items, status
from riven_async.commands.base import (
    EX_FAILURE,
    EX_OK,
    EX_UNAVAILABLE,
    CommandError,
    Invocation,
    Output,
    add_common_options,
    config_path,
    load_or_fail,
)
from riven_async.commands.daemon_link import daemon_is_up
from riven_async.commands.database import open_database
from riven_async.config import LiveSettings, default_config_path
from riven_async.errors import DatabaseUnavailable, RivenError, UpstreamUnavailable
from riven_async.logs import setup_logging
from riven_async.sim import cli as sim_cli

log = logging.getLogger("riven_async")

EX_INTERRUPTED = 130
# Commands that parse their own options (argparse's REMAINDER would swallow --help badly).
PASS_THROUGH: dict[str, Callable[[list[str]], int]] = {"sim": sim_cli.main, "demo": demo.main}
_PASS_THROUGH_HELP = {
    "sim": "run the simulated upstreams on loopback (see riven-async sim --help)",
    "demo": "the whole pipeline offline in one command: webhooks in, a library out",
}

_DESCRIPTION = """\
Turn media requests into a ready-to-play library (see README.md).

First steps:
  riven-async config init            write ~/.config/riven-async/config.toml
  riven-async config set upstreams.realdebrid.enabled true
  riven-async run                    start the daemon (or: systemctl start riven-async)
  riven-async status                 is it running, what is it doing
  riven-async items add --tmdb 693134 --kind movie

Every command takes --config PATH; listing commands take --json. Exit codes: 0 ok,
1 failed, 69 daemon/database/service unavailable, 78 bad config.
"""


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; ``riven-async COMMAND --help`` explains each command."""
    parser = argparse.ArgumentParser(
        prog="riven-async", description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"riven-async {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log what happens underneath (INFO) on stderr")
    add_common_options(parser, at_top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="run the daemon (creates a config on first run)",
                         description="Run the daemon in the foreground until SIGTERM/SIGINT.")
    add_common_options(run)
    run.set_defaults(sync_handler=_cmd_run)
    check = sub.add_parser("check-config", help="validate the config file; exit 0 or 78",
                           description="Validate the config file (the same as config "
                           "validate); exit 0, or 78 naming the bad key.")
    add_common_options(check)
    check.set_defaults(handler=config_cmd.validate)
    migrate = sub.add_parser("migrate", help="apply database migrations and exit",
                             description="Apply pending database migrations and exit.")
    add_common_options(migrate)
    migrate.set_defaults(handler=_migrate)

    status.register(sub)
    items.register(sub)
    importer.register(sub)
    config_cmd.register(sub)
    for name in PASS_THROUGH:
        sub.add_parser(name, help=_PASS_THROUGH_HELP[name], add_help=False)
    return parser


def _resolve_config(path: Path | None, *, create: bool) -> Path:
    """``--config``, else the default path (created from the example when ``create``)."""
    if path is not None:
        return path
    default = default_config_path()
    if create and not default.exists():
        config_file.write_new_config(default, force=False)
        print(f"created {default} with a new API key; edit it to add your services",
              file=sys.stderr)
    return default


def _cmd_run(args: argparse.Namespace) -> int:
    path = _resolve_config(args.config, create=args.config is None)
    settings = load_or_fail(path)
    secret_filter = setup_logging(settings.logging.level, settings.secrets())
    # Until the event loop installs its own handlers, a stop signal ends us cleanly.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    log.info("riven-async %s starting with %s", __version__, path, extra={"action": "startup"})
    return daemon.run(LiveSettings(settings, path), secret_filter)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)


async def _migrate(inv: Invocation) -> int:
    """Apply pending migrations (an embedded server started for this is stopped again)."""
    settings = inv.settings()
    async with open_database(settings, still_needed=lambda: daemon_is_up(settings)) as db:
        applied = db.migrated
    if inv.out.json_mode:
        inv.out.data({"applied": list(applied)})
    elif applied:
        inv.out.text(f"applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        inv.out.text("the database schema is up to date")
    return EX_OK


async def execute(argv: Sequence[str], out: Output | None = None) -> int:
    """Parse and run one async command in the running loop; return its exit code.

    ``main`` runs this under ``asyncio.run``; tests await it directly.
    """
    args = build_parser().parse_args(list(argv))
    handler = getattr(args, "handler", None)
    if handler is None:
        raise CommandError(f"{args.command} cannot run inside an event loop")
    output = out or Output(json_mode=args.json)
    invocation = Invocation(args, output, config_path(args.config))
    try:
        code: int = await handler(invocation)
    except CommandError as exc:
        _report(output, exc)
        return exc.code
    except (DatabaseUnavailable, UpstreamUnavailable) as exc:
        _report(output, CommandError(str(exc), EX_UNAVAILABLE))
        return EX_UNAVAILABLE
    except asyncpg.PostgresError as exc:
        _report(output, CommandError(f"database error: {type(exc).__name__}: {exc}"))
        return EX_FAILURE
    except RivenError as exc:
        _report(output, CommandError(str(exc)))
        return EX_FAILURE
    return code


def _report(out: Output, exc: CommandError) -> None:
    out.note(f"riven-async: {exc.message}")
    if exc.hint:
        out.note(f"  hint: {exc.hint}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``riven-async`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in PASS_THROUGH:
        raise SystemExit(PASS_THROUGH[argv[0]](argv[1:]))
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        sync_handler = getattr(args, "sync_handler", None)
        code = sync_handler(args) if sync_handler is not None else asyncio.run(execute(argv))
    except CommandError as exc:
        _report(Output(), exc)
        code = exc.code
    except KeyboardInterrupt:
        code = EX_INTERRUPTED
    except Exception as exc:
        if args.verbose:
            raise
        _report(Output(), CommandError(f"unexpected error: {type(exc).__name__}: {exc}",
                                       hint="run again with --verbose for the traceback"))
        code = EX_FAILURE
    raise SystemExit(code)


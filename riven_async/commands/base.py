"""What every command shares: exit codes, the error a command stops with, and its output."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson
from rich.console import Console

from riven_async.config import EX_CONFIG, Settings, default_config_path, load_settings
from riven_async.errors import ConfigError

EX_OK = 0
EX_FAILURE = 1
EX_UNAVAILABLE = 69  # sysexits EX_UNAVAILABLE: the daemon, the database or a service is down
__all__ = ["EX_CONFIG", "EX_FAILURE", "EX_OK", "EX_UNAVAILABLE"]


class CommandError(Exception):
    """Stops a command: ``message`` goes to stderr (with ``hint`` below it), ``code`` is the
    process exit code."""

    def __init__(self, message: str, code: int = EX_FAILURE, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.hint = hint


class Output:
    """Where a command writes: rich text for people, or one JSON document with ``--json``."""

    def __init__(
        self, *, json_mode: bool = False, stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.json_mode = json_mode
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        # Markup stays off: titles such as "Show [2024]" must print as they are.
        self.console = Console(file=self.stdout, highlight=False, markup=False, soft_wrap=True)
        self.errors = Console(file=self.stderr, highlight=False, markup=False, soft_wrap=True)

    def data(self, document: Any) -> None:
        """Write ``document`` as indented JSON (datetimes as ISO 8601) on stdout."""
        text = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
        self.stdout.write(text.decode() + "\n")
        self.stdout.flush()

    def text(self, line: str) -> None:
        """One line of plain text on stdout (no markup, no wrapping)."""
        self.stdout.write(line + "\n")
        self.stdout.flush()

    def note(self, line: str) -> None:
        """A remark for people on stderr (kept out of stdout so scripts can parse it)."""
        self.stderr.write(line + "\n")
        self.stderr.flush()


@dataclass(frozen=True, slots=True)
class Invocation:
    """One command's parsed arguments, its output and the config file it works on."""

    args: argparse.Namespace
    out: Output
    config_path: Path

    def settings(self) -> Settings:
        """The validated config (env overrides applied), or a CommandError with exit 78."""
        return load_or_fail(self.config_path)


Handler = Callable[[Invocation], Awaitable[int]]


def config_path(given: Path | None) -> Path:
    """``--config PATH``, else ``$XDG_CONFIG_HOME/riven-async/config.toml``."""
    return given if given is not None else default_config_path()


def load_or_fail(path: Path) -> Settings:
    """Load and validate ``path``; a bad file becomes a CommandError with exit 78."""
    try:
        return load_settings(path)
    except ConfigError as exc:
        raise config_error(exc) from None


def config_error(exc: ConfigError) -> CommandError:
    """A ConfigError as the command's error (exit 78), with a hint for a missing file."""
    hint = None
    if not exc.path.exists():
        hint = "create one with: riven-async config init"
    return CommandError(f"config error: {exc}", EX_CONFIG, hint)


def add_common_options(parser: argparse.ArgumentParser, *, at_top: bool = False) -> None:
    """``--config`` and ``--json`` on the top parser and (again) on every subcommand.

    On subcommands the defaults are SUPPRESS, so ``riven-async --json items list`` and
    ``riven-async items list --json`` both work and neither resets the other.
    """
    default_path: Any = None if at_top else argparse.SUPPRESS
    default_json: Any = False if at_top else argparse.SUPPRESS
    parser.add_argument(
        "--config", type=Path, metavar="PATH", default=default_path,
        help=f"the config file (default: {default_config_path()})",
    )
    parser.add_argument(
        "--json", action="store_true", default=default_json,
        help="print one JSON document on stdout (for scripts) instead of text",
    )

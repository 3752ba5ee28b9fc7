"""``riven-async config show|get|set|unset|validate|path|init``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import anyio.to_thread
import tomlkit

from riven_async.commands import config_file
from riven_async.commands.base import (
    EX_FAILURE,
    EX_OK,
    CommandError,
    Invocation,
    add_common_options,
    config_error,
    load_or_fail,
)
from riven_async.commands.daemon_link import Reload, reload_daemon
from riven_async.config import Settings
from riven_async.errors import ConfigError
from riven_async.upstreams import STREMIO_ADDONS, addon_config_segment

# Read once at start-up: the daemon must be restarted for these to take effect.
_RESTART_PREFIXES = ("server.host", "server.port", "server.pid_file", "database.")
_MASK = "********"

_EPILOG = """\
examples:
  riven-async config init                          write a commented config with a new API key
  riven-async config set server.port 9000
  riven-async config set ranking.resolutions 2160p,1080p
  riven-async config set upstreams.realdebrid.enabled true
  riven-async config set upstreams.realdebrid.api_key -     (reads the key from stdin)
  riven-async config get server.api_key --reveal
  riven-async config unset server.pid_file                  (back to the default)

Values are parsed for the key's type: numbers, true/false, lists as a,b,c or TOML
["a", "b"], strings as they are. Every change is checked against the whole config before
the file is written; an invalid value changes nothing and names the key. Comments and
formatting of the file are kept. A running daemon is told to reload.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``config`` and its actions."""
    parser = sub.add_parser(
        "config", help="show, check and edit the config file",
        description="Show, check and edit the TOML config file.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_options(parser)
    actions = parser.add_subparsers(dest="config_action", metavar="ACTION", required=True)

    def action(name: str, help_text: str, handler: Any) -> argparse.ArgumentParser:
        child = actions.add_parser(name, help=help_text, description=help_text[0].upper()
                                   + help_text[1:] + ".")
        add_common_options(child)
        child.set_defaults(handler=handler)
        return child

    action("show", "print the config in force (file, env overrides, defaults; secrets masked)",
           show)
    get = action("get", "print one key or section", get_key)
    get.add_argument("key", metavar="KEY", help="dotted key, e.g. server.port or upstreams.tmdb")
    get.add_argument("--reveal", action="store_true", help="print secrets instead of a mask")
    set_ = action("set", "change one key in the file (validated first; comments kept)",
                  set_key)
    set_.add_argument("key", metavar="KEY", help="dotted key, e.g. server.port")
    set_.add_argument("value", metavar="VALUE",
                      help="the new value; '-' reads it from stdin (keeps secrets out of "
                           "shell history)")
    set_.add_argument("--no-reload", action="store_true",
                      help="do not ask a running daemon to reload")
    unset = action("unset", "remove one key from the file (its default applies again)",
                   unset_key)
    unset.add_argument("key", metavar="KEY", help="dotted key, e.g. server.pid_file")
    unset.add_argument("--no-reload", action="store_true",
                       help="do not ask a running daemon to reload")
    action("validate", "check the config file; exit 0, or 78 naming the bad key", validate)
    action("path", "print which config file is used", show_path)
    init = action("init", "write a fresh commented config with a generated API key", init_file)
    init.add_argument("--force", action="store_true",
                      help="replace an existing file (its settings are lost)")


async def show(inv: Invocation) -> int:
    """Print the effective config, secrets masked."""
    settings = inv.settings()
    data = shown_settings(settings, reveal=False)
    if inv.out.json_mode:
        inv.out.data(data)
        return EX_OK
    inv.out.text(f"# {inv.config_path}: the config in force (env overrides applied, defaults "
                 "filled in, secrets masked)")
    inv.out.text(config_file.to_toml(data).rstrip("\n"))
    return EX_OK


async def get_key(inv: Invocation) -> int:
    """Print one key's (or one section's) value in force."""
    settings = inv.settings()
    key: str = inv.args.key
    try:
        parts = config_file.split_key(key)
        config_file.field_annotation(parts, path=inv.config_path)
    except ConfigError as exc:
        raise config_error(exc) from None
    try:
        value = config_file.value_at(shown_settings(settings, reveal=inv.args.reveal), parts)
    except KeyError:
        raise CommandError(f"{key} is not set") from None
    if inv.out.json_mode:
        inv.out.data({"key": key, "value": value})
    elif isinstance(value, dict):
        nested: dict[str, Any] = value
        for part in reversed(parts):
            nested = {part: nested}
        inv.out.text(config_file.to_toml(nested).rstrip("\n"))
    else:
        inv.out.text(_scalar_text(value))
    return EX_OK


async def set_key(inv: Invocation) -> int:
    """Set one key in the file, then tell a running daemon to reload."""
    key: str = inv.args.key
    text: str = inv.args.value
    if text == "-":
        text = await anyio.to_thread.run_sync(sys.stdin.read)
        text = text.rstrip("\r\n")
    running = _current_or_none(inv)
    try:
        edit = await anyio.to_thread.run_sync(config_file.set_value, inv.config_path, key, text)
    except ConfigError as exc:
        raise _unchanged(exc) from None
    except OSError as exc:
        raise CommandError(f"cannot write {inv.config_path}: {exc.strerror}") from None
    shown = _MASK if _is_secret(key) and edit.value else edit.value
    done = f"set {key} = {_scalar_text(shown)}"
    return await _after_edit(inv, running, edit, done, f"{key} is {_scalar_text(shown)} already")


async def unset_key(inv: Invocation) -> int:
    """Remove one key from the file, then tell a running daemon to reload."""
    key: str = inv.args.key
    running = _current_or_none(inv)
    try:
        edit = await anyio.to_thread.run_sync(config_file.unset_value, inv.config_path, key)
    except ConfigError as exc:
        raise _unchanged(exc) from None
    except OSError as exc:
        raise CommandError(f"cannot write {inv.config_path}: {exc.strerror}") from None
    return await _after_edit(inv, running, edit, f"removed {key} (its default applies)",
                             f"{key} is not in the file (its default applies)")


async def validate(inv: Invocation) -> int:
    """The same check as ``check-config``: exit 0, or 78 with the key named."""
    try:
        load_or_fail(inv.config_path)
    except CommandError as exc:
        if inv.out.json_mode:
            inv.out.data({"path": str(inv.config_path), "valid": False, "error": exc.message})
        raise
    if inv.out.json_mode:
        inv.out.data({"path": str(inv.config_path), "valid": True})
    else:
        inv.out.text(f"{inv.config_path}: ok")
    return EX_OK


async def show_path(inv: Invocation) -> int:
    """Print the config file's path (and, on stderr, whether it exists)."""
    path = inv.config_path
    exists = path.exists()
    if inv.out.json_mode:
        inv.out.data({"path": str(path), "exists": exists})
        return EX_OK
    inv.out.text(str(path))
    if not exists:
        inv.out.note("(it does not exist yet; create it with: riven-async config init)")
    return EX_OK


async def init_file(inv: Invocation) -> int:
    """Write the commented example with a fresh API key (0600); refuse to overwrite."""
    path = inv.config_path
    try:
        await anyio.to_thread.run_sync(
            lambda: config_file.write_new_config(path, force=inv.args.force))
    except FileExistsError:
        raise CommandError(f"{path} exists already; nothing written",
                           hint="use --force to replace it (its settings are lost)") from None
    except ConfigError as exc:
        raise config_error(exc) from None
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror}") from None
    if inv.out.json_mode:
        inv.out.data({"path": str(path), "created": True})
        return EX_OK
    inv.out.text(f"wrote {path} (mode 0600) with a new API key")
    inv.out.note("next: riven-async config set upstreams.realdebrid.enabled true, then "
                 "riven-async config set upstreams.realdebrid.api_key -  (see --help)")
    inv.out.note("the API key for webhooks: riven-async config get server.api_key --reveal")
    return EX_OK


# -- helpers ---------------------------------------------------------------------------------


def shown_settings(settings: Settings, *, reveal: bool) -> dict[str, Any]:
    """The settings as plain data; unless ``reveal``, secrets and the config segment of a
    stremio addon's URL (which may carry a debrid key) are masked."""
    data: dict[str, Any] = config_file.plain(settings, reveal=reveal)
    if not reveal:
        for name in STREMIO_ADDONS:
            section = data["upstreams"][name]
            segment = addon_config_segment(section["base_url"])
            if segment is not None:
                section["base_url"] = section["base_url"].replace(segment, _MASK)
    return data


def _current_or_none(inv: Invocation) -> Settings | None:
    # The settings before the edit say where the running daemon listens and its key.
    try:
        return load_or_fail(inv.config_path)
    except CommandError:
        return None


async def _after_edit(
    inv: Invocation, running: Settings | None, edit: config_file.Edit, done: str, same: str
) -> int:
    reload: Reload | None = None
    if edit.changed and not inv.args.no_reload and running is not None:
        reload = await reload_daemon(running, inv.config_path)
    if inv.out.json_mode:
        value = _MASK if _is_secret(edit.key) and edit.value else edit.value
        inv.out.data({
            "path": str(inv.config_path), "key": edit.key, "value": value,
            "changed": edit.changed, "overridden_by": edit.overridden_by,
            "reload": None if reload is None else {"how": reload.how, "ok": reload.ok,
                                                   "detail": reload.detail},
        })
    else:
        inv.out.text(f"{done} in {inv.config_path}" if edit.changed
                     else f"nothing to change: {same}")
        if reload is not None:
            inv.out.note(reload.detail)
    if edit.overridden_by:
        inv.out.note(f"note: {edit.overridden_by} is set in this environment and overrides "
                     "the file")
    if reload is not None and reload.how in ("api", "signal") and edit.key.startswith(
        _RESTART_PREFIXES
    ):
        inv.out.note(f"note: {edit.key} takes effect when the daemon restarts")
    if reload is not None and not reload.ok:
        raise CommandError(f"the file was written, but the daemon did not reload: "
                           f"{reload.detail}", EX_FAILURE)
    return EX_OK


def _unchanged(exc: ConfigError) -> CommandError:
    error = config_error(exc)
    error.message += " (nothing was written)"
    return error


def _is_secret(key: str) -> bool:
    try:
        return config_file.is_secret(config_file.split_key(key))
    except ConfigError:
        return False


def _scalar_text(value: Any) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, str):
        return value
    return str(tomlkit.item(value).as_string())

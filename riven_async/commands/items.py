"""``riven-async items list|show|add|retry|remove|pause|unpause``."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import anyio.to_thread
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from riven_async.commands import item_actions, render
from riven_async.commands.base import EX_OK, CommandError, Invocation, add_common_options
from riven_async.commands.item_actions import AddRequest, Document
from riven_async.domain.intents import ExternalIds
from riven_async.domain.media import MediaKind
from riven_async.domain.states import State

MAX_PAGE = 500
DEFAULT_PAGE = 100
MAX_EXTERNAL_ID = 2**31 - 1
_IMDB_RE = re.compile(r"^tt\d{5,12}$")
_ERROR_CHARS = 60

_EPILOG = """\
examples:
  riven-async items list --state failed
  riven-async items list --kind show --search "breaking"
  riven-async items show 42
  riven-async items add --tmdb 693134 --kind movie
  riven-async items add --tvdb 81189 --seasons 1,2
  riven-async items retry 42          (a failed item, and anything failed below it)
  riven-async items pause 42          (the item and everything below it)
  riven-async items remove 42 --yes

With the daemon running these go through its API; otherwise straight to the database.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``items`` and its actions."""
    parser = sub.add_parser(
        "items", help="list, show, add, retry, pause and remove movies and shows",
        description="List, inspect and act on items (movies, shows, seasons, episodes).",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_options(parser)
    actions = parser.add_subparsers(dest="items_action", metavar="ACTION", required=True)

    def action(name: str, help_text: str, handler: Any) -> argparse.ArgumentParser:
        child = actions.add_parser(name, help=help_text,
                                   description=help_text[0].upper() + help_text[1:] + ".")
        add_common_options(child)
        child.set_defaults(handler=handler)
        return child

    listing = action("list", "list items, newest first (oldest in state with --state)",
                     list_items)
    listing.add_argument("--state", choices=[s.value for s in State], help="only this state")
    listing.add_argument("--kind", choices=[k.value for k in MediaKind], help="only this kind")
    listing.add_argument("--search", metavar="TEXT", help="movie and show titles like TEXT")
    listing.add_argument("--limit", type=_page_size, default=DEFAULT_PAGE, metavar="N",
                         help=f"items per page, 1-{MAX_PAGE} (default {DEFAULT_PAGE})")
    listing.add_argument("--after", metavar="CURSOR",
                         help="continue after a page (its 'next' value in --json output)")
    listing.add_argument("--all", action="store_true", help="every page, not just the first")

    show = action("show", "one item with its seasons, episodes and best releases", show_item)
    show.add_argument("item_id", type=_item_id, metavar="ID")

    add = action("add", "request a movie or show (safe to repeat: one item per title)",
                 add_item)
    add.add_argument("--tmdb", type=_external_id, metavar="ID", help="TMDB id")
    add.add_argument("--tvdb", type=_external_id, metavar="ID", help="TVDB id (a show)")
    add.add_argument("--imdb", type=_imdb_id, metavar="ID", help="IMDb id, like tt0903747")
    add.add_argument("--tvmaze", type=_external_id, metavar="ID", help="TVMaze id (a show)")
    add.add_argument("--kind", choices=("movie", "show"),
                     help="movie or show (needed with --tmdb or --imdb alone)")
    add.add_argument("--seasons", type=_seasons, metavar="N,N",
                     help="only these seasons of a show, e.g. 1,2 (default: all)")
    add.add_argument("--title", help="a title to show until the item is indexed")
    add.add_argument("--year", type=int, help="the release year, with --title")

    for name, help_text, handler in (
        ("retry", "send a failed item (and failed items below it) back to work", retry_item),
        ("pause", "pause an item and everything below it", pause_item),
        ("unpause", "resume a paused item where it was", unpause_item),
        ("remove", "delete an item, everything below it and its symlink records",
         remove_item),
    ):
        child = action(name, help_text, handler)
        child.add_argument("item_id", type=_item_id, metavar="ID")
        if name == "remove":
            child.add_argument("--yes", action="store_true", help="do not ask for confirmation")


# -- handlers --------------------------------------------------------------------------------


async def list_items(inv: Invocation) -> int:
    """Print one page of items (or all of them with ``--all``)."""
    args = inv.args
    rows: list[Document] = []
    after: str | None = args.after
    async with item_actions.connect(inv.settings()) as actions:
        while True:
            page = await actions.page(kind=args.kind, state=args.state, search=args.search,
                                      after=after, limit=args.limit)
            rows.extend(page["items"])
            after = page.get("next")
            if not args.all or after is None:
                break
    if inv.out.json_mode:
        inv.out.data({"items": rows, "next": after})
        return EX_OK
    if not rows:
        inv.out.text("no items match")
        return EX_OK
    inv.out.console.print(_items_table(rows))
    if after is not None:
        inv.out.note(f"more: --after {after}  (or --all)")
    return EX_OK


async def show_item(inv: Invocation) -> int:
    """Print one item as a tree: seasons, episodes, states, best releases."""
    async with item_actions.connect(inv.settings()) as actions:
        document = await actions.tree(inv.args.item_id)
    if inv.out.json_mode:
        inv.out.data(document)
    else:
        inv.out.console.print(item_tree(document))
    return EX_OK


async def add_item(inv: Invocation) -> int:
    """Request a movie or show by its ids."""
    wanted = add_request(inv.args)
    async with item_actions.connect(inv.settings()) as actions:
        outcome = await actions.add(wanted)
    if inv.out.json_mode:
        inv.out.data(outcome)
    elif outcome.get("created"):
        inv.out.text(f"requested: item {outcome['id']} ({wanted.kind}, "
                     f"{render.ids_text(wanted.ids.as_dict())})")
    else:
        inv.out.text(f"already there: item {outcome['id']} "
                     f"({render.ids_text(wanted.ids.as_dict())})")
    return EX_OK


async def retry_item(inv: Invocation) -> int:
    """Retry a failed item."""
    async with item_actions.connect(inv.settings()) as actions:
        done = await actions.retry(inv.args.item_id)
    if inv.out.json_mode:
        inv.out.data(done)
        return EX_OK
    retried = done.get("retried") or []
    inv.out.text(f"item {done['id']} is {done['state']}: {len(retried)} failed item(s) retried")
    for entry in retried:
        job = entry.get("job")
        inv.out.text(f"  item {entry['id']} -> {entry['state']}"
                     + (f" (queued: {job})" if job else ""))
    return EX_OK


async def pause_item(inv: Invocation) -> int:
    """Pause an item and everything below it."""
    return await _one_change(inv, lambda a, i: a.pause(i), "paused")


async def unpause_item(inv: Invocation) -> int:
    """Resume a paused item."""
    return await _one_change(inv, lambda a, i: a.unpause(i), "resumed")


async def remove_item(inv: Invocation) -> int:
    """Delete an item (asks first unless ``--yes``)."""
    item_id: int = inv.args.item_id
    if not inv.args.yes:
        await _confirm(inv, f"delete item {item_id} and everything below it?")
    async with item_actions.connect(inv.settings()) as actions:
        done = await actions.remove(item_id)
    if inv.out.json_mode:
        inv.out.data(done)
    else:
        inv.out.text(f"deleted item {item_id} ({done['deleted']} rows with what was below it)")
    return EX_OK


async def _one_change(inv: Invocation, act: Any, verb: str) -> int:
    async with item_actions.connect(inv.settings()) as actions:
        done: Document = await act(actions, inv.args.item_id)
    if inv.out.json_mode:
        inv.out.data(done)
    else:
        inv.out.text(f"item {done['id']} is {done['state']} ({done.get(verb, 0)} {verb})")
    return EX_OK


async def _confirm(inv: Invocation, question: str) -> None:
    if not sys.stdin.isatty():
        raise CommandError("refusing to delete without confirmation", hint="add --yes")
    answer = await anyio.to_thread.run_sync(input, f"{question} [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise CommandError("nothing deleted")


def add_request(args: argparse.Namespace) -> AddRequest:
    """The ``items add`` options as one request (the kind inferred where it is clear)."""
    ids = ExternalIds(tmdb=args.tmdb, tvdb=args.tvdb, imdb=args.imdb, tvmaze=args.tvmaze)
    if ids.is_empty():
        raise CommandError("give at least one id: --tmdb, --tvdb, --imdb or --tvmaze")
    kind: str | None = args.kind
    show_hint = args.tvdb is not None or args.tvmaze is not None or args.seasons is not None
    if kind is None and show_hint:
        kind = "show"
    if kind is None:
        raise CommandError("say --kind movie or --kind show (a TMDB or IMDb id names either)")
    if kind == "movie" and show_hint:
        raise CommandError("--tvdb, --tvmaze and --seasons are for shows, not movies")
    return AddRequest(kind=kind, ids=ids, seasons=args.seasons, title=args.title,
                      year=args.year)


# -- rendering -------------------------------------------------------------------------------


def _items_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("ID", justify="right")
    for name in ("KIND", "TITLE", "STATE", "SINCE", "NOTE"):
        table.add_column(name)
    for row in rows:
        error = row.get("last_error") or ""
        if len(error) > _ERROR_CHARS:
            error = error[: _ERROR_CHARS - 1] + "…"
        table.add_row(str(row["id"]), str(row["kind"]), render.item_label(row),
                      str(row["state"]), render.age(row.get("state_changed_at")), error)
    return table


def item_tree(document: Mapping[str, Any]) -> Tree:
    """An item document (``GET /api/items/{id}``) as a rich tree."""
    tree = Tree(Text(_node_line(document), style="bold"))
    details = [f"ids: {render.ids_text(document.get('ids'))}"]
    schedule = document.get("schedule")
    if isinstance(schedule, Mapping):
        details.append(f"status: {schedule.get('status') or 'not indexed yet'}; next check "
                       f"{render.when(schedule.get('next_check_at'))}")
    if document.get("episode_states"):
        details.append(f"episodes: {render.counts_text(document['episode_states'])}")
    if document.get("last_error"):
        details.append(f"last error: {document['last_error']}")
    for line in details:
        tree.add(Text(line, style="dim"))
    _add_releases(tree, document)
    for season in document.get("seasons") or []:
        branch = tree.add(Text(_node_line(season)))
        _add_releases(branch, season)
        for episode in season.get("episodes") or []:
            leaf = branch.add(Text(_node_line(episode)))
            _add_releases(leaf, episode)
    for episode in document.get("episodes") or []:
        leaf = tree.add(Text(_node_line(episode)))
        _add_releases(leaf, episode)
    return tree


def _node_line(node: Mapping[str, Any]) -> str:
    parts = [render.item_label(node), str(node.get("state")), f"item {node.get('id')}"]
    if node.get("kind") in ("movie", "show"):
        parts.insert(1, str(node.get("kind")))
    aired = node.get("aired_at")
    if node.get("kind") == "episode" and aired:
        parts.append(f"airs {render.when(aired)}" if node.get("state") == "unreleased"
                     else f"aired {str(aired)[:10]}")
    if node.get("kind") != "show" and node.get("kind") != "movie" and node.get("last_error"):
        parts.append(f"error: {node['last_error']}")
    return " · ".join(parts)


def _add_releases(tree: Tree, node: Mapping[str, Any]) -> None:
    for release in node.get("releases") or []:
        cached = ", ".join(release.get("cached_on") or []) or "not cached"
        tree.add(Text(f"release {release.get('title')} · rank {release.get('rank')} · "
                      f"{render.size_text(release.get('size_bytes'))} · {cached}",
                      style="dim"))


# -- argument types --------------------------------------------------------------------------


def _item_id(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 2**63:
        raise argparse.ArgumentTypeError("an item id is a positive whole number")
    return int(text)


def _external_id(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= MAX_EXTERNAL_ID:
        raise argparse.ArgumentTypeError("must be a positive whole number")
    return int(text)


def _imdb_id(text: str) -> str:
    if not _IMDB_RE.match(text.strip()):
        raise argparse.ArgumentTypeError("must look like tt0903747")
    return text.strip()


def _seasons(text: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(p.isascii() and p.isdigit() and int(p) <= 9999 for p in parts):
        raise argparse.ArgumentTypeError("seasons are numbers separated by commas, e.g. 1,2")
    return tuple(sorted({int(p) for p in parts}))


def _page_size(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_PAGE:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_PAGE}")
    return int(text)

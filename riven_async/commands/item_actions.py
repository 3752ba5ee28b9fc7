"""What ``riven-async items`` does, two ways: through the running daemon's API, or straight
on the database when the daemon is down. Both answer with the API's JSON documents."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from riven_async.commands.base import EX_FAILURE, EX_UNAVAILABLE, CommandError
from riven_async.commands.daemon_link import DaemonClient, daemon_is_up, read_pid_file
from riven_async.commands.database import CommandDatabase, open_database
from riven_async.config import Settings
from riven_async.db import requests
from riven_async.db.catalog import ItemPage, PageCursor
from riven_async.db.repos import Repos
from riven_async.domain.intents import ExternalIds, RequestMedia
from riven_async.domain.media import ItemId, MediaItem, MediaKind
from riven_async.domain.queue import NewJob
from riven_async.domain.states import State
from riven_async.logs import SecretFilter
from riven_async.web.api import job_after_retry, summary_json, tree_json

CLI_SOURCE = "cli"
Document = dict[str, Any]


@dataclass(frozen=True, slots=True)
class AddRequest:
    """``items add``: a movie or show by its ids (a show optionally by seasons)."""

    kind: str
    ids: ExternalIds
    seasons: tuple[int, ...] | None = None
    title: str | None = None
    year: int | None = None

    def body(self) -> Document:
        """The ``POST /api/items`` body."""
        body: Document = {"kind": self.kind, "tmdb_id": self.ids.tmdb, "tvdb_id": self.ids.tvdb,
                          "imdb_id": self.ids.imdb, "tvmaze_id": self.ids.tvmaze,
                          "requester": CLI_SOURCE}
        if self.seasons is not None:
            body["seasons"] = list(self.seasons)
        if self.title:
            body["title"] = self.title
        if self.year is not None:
            body["year"] = self.year
        return {k: v for k, v in body.items() if v is not None}


class ItemActions(Protocol):
    """The item operations; every answer is the API's JSON document for it."""

    where: str

    async def page(self, *, kind: str | None, state: str | None, search: str | None,
                   after: str | None, limit: int) -> Document: ...

    async def tree(self, item_id: int) -> Document: ...

    async def add(self, wanted: AddRequest) -> Document: ...

    async def retry(self, item_id: int) -> Document: ...

    async def pause(self, item_id: int) -> Document: ...

    async def unpause(self, item_id: int) -> Document: ...

    async def remove(self, item_id: int) -> Document: ...


@contextlib.asynccontextmanager
async def connect(settings: Settings) -> AsyncIterator[ItemActions]:
    """The running daemon's API when it answers, else the database directly."""
    client = DaemonClient(settings)
    try:
        if await client.is_up():
            yield ApiItems(client)
            return
    finally:
        await client.aclose()
    state = read_pid_file(settings)
    if state is not None and state.alive:
        raise CommandError(f"the daemon (pid {state.pid}) runs but does not answer at "
                           f"{client.url}", EX_UNAVAILABLE,
                           "is it still starting? check server.host and server.port")

    async def daemon_appeared() -> bool:
        return await daemon_is_up(settings)

    async with open_database(settings, still_needed=daemon_appeared) as db:
        yield DatabaseItems(db, SecretFilter(settings.secrets()).redact)


class ApiItems:
    """Items through ``/api/items`` of the running daemon."""

    def __init__(self, client: DaemonClient) -> None:
        self._client = client
        self.where = f"the daemon at {client.url}"

    async def page(self, *, kind: str | None, state: str | None, search: str | None,
                   after: str | None, limit: int) -> Document:
        params = {"kind": kind, "state": state, "q": search, "after": after, "limit": limit}
        found: Document = await self._client.get(
            "/api/items", {k: v for k, v in params.items() if v is not None})
        return found

    async def tree(self, item_id: int) -> Document:
        found: Document = await self._client.get(f"/api/items/{item_id}")
        return found

    async def add(self, wanted: AddRequest) -> Document:
        added: Document = await self._client.post("/api/items", wanted.body())
        return added

    async def retry(self, item_id: int) -> Document:
        done: Document = await self._client.post(f"/api/items/{item_id}/retry")
        return done

    async def pause(self, item_id: int) -> Document:
        done: Document = await self._client.post(f"/api/items/{item_id}/pause")
        return done

    async def unpause(self, item_id: int) -> Document:
        done: Document = await self._client.post(f"/api/items/{item_id}/unpause")
        return done

    async def remove(self, item_id: int) -> Document:
        done: Document = await self._client.delete(f"/api/items/{item_id}")
        return done


Change = Callable[[Repos, list[int]], Awaitable[list[ItemId]]]


class DatabaseItems:
    """The same operations on the database, with the API's rules (the daemon is down)."""

    def __init__(self, db: CommandDatabase, redact: Callable[[str], str]) -> None:
        self._db = db
        self._repos = db.repos
        self._redact = redact
        self.where = "the database (the daemon is not running)"

    async def page(self, *, kind: str | None, state: str | None, search: str | None,
                   after: str | None, limit: int) -> Document:
        chosen_state = State(state) if state else None
        cursor = parse_cursor(after)
        if cursor is not None and chosen_state is not None and search is None and (
            cursor.changed_at is None
        ):
            raise CommandError("this cursor is from a listing without --state")
        page = await self._repos.catalog.page(
            kind=MediaKind(kind) if kind else None, state=chosen_state, text=search or None,
            after=cursor, limit=limit)
        return _json({"items": [summary_json(i, self._redact) for i in page.items],
                      "next": cursor_text(page)})

    async def tree(self, item_id: int) -> Document:
        found = await self._repos.catalog.tree(item_id)
        if found is None:
            raise _not_found(item_id)
        return _json(tree_json(found, self._redact))

    async def add(self, wanted: AddRequest) -> Document:
        request = RequestMedia(kind="movie" if wanted.kind == "movie" else "show",
                               ids=wanted.ids, title=wanted.title, year=wanted.year,
                               seasons=wanted.seasons, source=CLI_SOURCE)
        [outcome] = await requests.request_media(self._db.pool, self._repos, [request])
        return {"id": outcome.item_id, "created": outcome.created}

    async def retry(self, item_id: int) -> Document:
        found = await self._repos.catalog.tree(item_id, releases_per_item=0)
        if found is None:
            raise _not_found(item_id)
        root = found.root.item
        failed = [n.item for n in (found.root, *found.children) if n.item.state is State.FAILED]
        if not failed:
            raise CommandError(f"item {item_id} is {root.state}, with nothing failed below it")
        kinds = {item.id: item.kind for item in failed}
        async with self._transaction() as tx:
            moved = await tx.items.retry_many(list(kinds))
            await tx.jobs.enqueue_many(
                NewJob(job, item_id=i) for i, state in moved.items()
                if (job := job_after_retry(kinds[i], state)) is not None)
            refreshed = await _refresh_parents(tx, root)
        retried = [{"id": i, "state": state, "job": job_after_retry(kinds[i], state)}
                   for i, state in sorted(moved.items())]
        state = refreshed.get(root.id) or moved.get(root.id) or root.state
        return _json({"id": item_id, "state": state, "retried": retried})

    async def pause(self, item_id: int) -> Document:
        return await self._change(item_id, "paused", lambda tx, ids: tx.items.pause_many(ids))

    async def unpause(self, item_id: int) -> Document:
        return await self._change(item_id, "resumed",
                                  lambda tx, ids: tx.items.resume_many(ids))

    async def remove(self, item_id: int) -> Document:
        item = await self._repos.catalog.get(item_id)
        if item is None:
            raise _not_found(item_id)
        async with self._transaction() as tx:
            deleted = await tx.items.delete_many([item_id])
            if item.show_id is not None:
                await tx.items.refresh_parent_states([item.show_id])
        if not deleted:
            raise _not_found(item_id)
        return {"id": item_id, "deleted": deleted}

    async def _change(self, item_id: int, verb: str, change: Change) -> Document:
        item = await self._repos.catalog.get(item_id)
        if item is None:
            raise _not_found(item_id)
        async with self._transaction() as tx:
            changed = await change(tx, [item_id])
            if changed:
                await _refresh_parents(tx, item)
                item = await tx.catalog.get(item_id) or item
        if not changed:
            raise CommandError(f"item {item_id} is {item.state}: nothing was {verb}")
        return _json({"id": item_id, "state": item.state, verb: len(changed)})

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Repos]:
        async with self._db.pool.acquire() as conn, conn.transaction():
            yield self._repos.bound_to(conn)


async def _refresh_parents(tx: Repos, item: MediaItem) -> dict[ItemId, State]:
    show_id = item.id if item.kind is MediaKind.SHOW else item.show_id
    if show_id is None:
        return {}
    return await tx.items.refresh_parent_states([show_id])


def _not_found(item_id: int) -> CommandError:
    return CommandError(f"no item {item_id}", EX_FAILURE, "list them with: riven-async items list")


def _json(document: Document) -> Document:
    # The same types as the API's answers (datetimes as ISO strings, enums as values).
    loaded: Document = orjson.loads(orjson.dumps(document))
    return loaded


def parse_cursor(text: str | None) -> PageCursor | None:
    """The API's page cursor: ``"<id>"``, or ``"<microseconds>.<id>"`` on state pages."""
    if not text:
        return None
    try:
        return PageCursor.parse(text)
    except ValueError:
        raise CommandError("--after must be the 'next' cursor of a previous page") from None


def cursor_text(page: ItemPage) -> str | None:
    """The next page's cursor, in the API's format."""
    return None if page.next is None else page.next.to_text()

"""The HTTP API over items: list, show, request, retry, pause, resume, delete (JSON, orjson).

Every route sits behind the API key (the auth middleware). Bad input is a 4xx
``{"error", "field"}`` naming what is wrong, never a 500: query parameters are checked
here and body fields by a pydantic model before anything touches the database.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import asyncpg
from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter

from riven_async import keys
from riven_async.db import requests
from riven_async.db.catalog import ItemPage, PageCursor
from riven_async.db.pool import CONNECTION_ERRORS
from riven_async.db.repos import Repos
from riven_async.domain.intents import ExternalIds, RequestMedia
from riven_async.domain.media import (
    ItemId,
    ItemNode,
    ItemSummary,
    ItemTree,
    MediaItem,
    MediaKind,
    RequestOutcome,
)
from riven_async.domain.queue import JOB_FOR_STATE, JobKind, NewJob
from riven_async.domain.releases import Release
from riven_async.domain.states import State
from riven_async.errors import DatabaseUnavailable, PayloadError
from riven_async.web.middleware import error_response, json_response, read_limited_body
from riven_async.web.webhooks import ExternalId, ImdbId, load_json, validate

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 100
MAX_SEARCH_CHARS = 200
MAX_REQUESTS_PER_CALL = 500
MAX_ITEM_ID = 2**63 - 1
API_SOURCE = "api"
_KINDS = ", ".join(MediaKind)
_E = TypeVar("_E", MediaKind, State)
_STATES = ", ".join(State)


def add_api_routes(app: web.Application) -> None:
    """Register the item routes of the HTTP API."""
    router = app.router
    router.add_get("/api/items", list_items)
    router.add_post("/api/items", request_items)
    router.add_get("/api/items/{id}", get_item)
    router.add_delete("/api/items/{id}", delete_item)
    router.add_post("/api/items/{id}/retry", retry_item)
    router.add_post("/api/items/{id}/pause", pause_item)
    router.add_post("/api/items/{id}/unpause", unpause_item)


@contextlib.asynccontextmanager
async def database_calls() -> AsyncIterator[None]:
    """Turn "PostgreSQL is unreachable" into DatabaseUnavailable (a 503 with Retry-After)."""
    try:
        yield
    except CONNECTION_ERRORS as exc:
        raise DatabaseUnavailable(f"database unreachable: {type(exc).__name__}") from exc


# -- reading -------------------------------------------------------------------------------


async def list_items(request: web.Request) -> web.Response:
    """``GET /api/items?kind=&state=&q=&after=&limit=``: one keyset page and its ``next``."""
    query = request.query
    kind = _choice(query, "kind", MediaKind, _KINDS)
    state = _choice(query, "state", State, _STATES)
    text = _search_text(query.get("q"))
    limit = _limit(query.get("limit"))
    after = _cursor(query.get("after"))
    if after is not None and state is not None and text is None and after.changed_at is None:
        raise PayloadError("this cursor is from a listing without state=; start without after",
                           "after")
    repos = _repos(request)
    async with database_calls():
        page = await repos.catalog.page(kind=kind, state=state, text=text, after=after,
                                        limit=limit)
    redact = _redactor(request)
    return json_response({
        "items": [summary_json(item, redact) for item in page.items],
        "next": _next_cursor(page),
    })


async def get_item(request: web.Request) -> web.Response:
    """``GET /api/items/{id}``: the item with its seasons, episodes and best releases."""
    item_id = _item_id(request)
    async with database_calls():
        tree = await _repos(request).catalog.tree(item_id)
    if tree is None:
        raise _not_found(item_id)
    return json_response(tree_json(tree, _redactor(request)))


# -- requesting ----------------------------------------------------------------------------


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]


class ItemRequest(BaseModel):
    """``POST /api/items``: a movie or show by any of its ids (a show optionally by seasons)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["movie", "show"]
    tmdb_id: ExternalId = None
    tvdb_id: ExternalId = None
    imdb_id: ImdbId = None
    tvmaze_id: ExternalId = None
    seasons: list[Annotated[int, Field(ge=0, le=9999, strict=True)]] | None = Field(
        default=None, max_length=1000
    )
    title: Text | None = Field(default=None, max_length=500)
    year: int | None = Field(default=None, ge=1800, le=2200, strict=True)
    requester: Text | None = Field(default=None, max_length=200)


_ONE_REQUEST: TypeAdapter[ItemRequest] = TypeAdapter(ItemRequest)
_MANY_REQUESTS: TypeAdapter[list[ItemRequest]] = TypeAdapter(list[ItemRequest])


async def request_items(request: web.Request) -> web.Response:
    """``POST /api/items``: make the request an item at once (201) or name the existing one.

    The body is one request object, or a list of them (answered with ``{"items": [...]}``).
    """
    limit = request.app[keys.SETTINGS].current.server.max_body_bytes
    data, _canonical = load_json(await read_limited_body(request, limit))
    if isinstance(data, list):
        if len(data) > MAX_REQUESTS_PER_CALL:
            raise PayloadError(f"at most {MAX_REQUESTS_PER_CALL} requests per call", None, 422)
        bodies: list[ItemRequest] = validate(_MANY_REQUESTS, data)
        wanted = [_media_request(body, f"[{n}].") for n, body in enumerate(bodies)]
    elif isinstance(data, dict):
        wanted = [_media_request(validate(_ONE_REQUEST, data), "")]
    else:
        raise PayloadError("the body must be a JSON object (or a list of them)", None, 422)
    if not wanted:
        return json_response({"items": []})
    async with database_calls():
        outcomes = await requests.request_media(request.app[keys.POOL], _repos(request), wanted)
    if isinstance(data, dict):
        outcome = outcomes[0]
        return json_response(_outcome_json(outcome), 201 if outcome.created else 200)
    return json_response({"items": [_outcome_json(o) for o in outcomes]})


def _media_request(body: ItemRequest, where: str) -> RequestMedia:
    ids = ExternalIds(tmdb=body.tmdb_id, tvdb=body.tvdb_id, imdb=body.imdb_id,
                      tvmaze=body.tvmaze_id)
    if ids.is_empty():
        raise PayloadError(f"{where}tmdb_id, tvdb_id, imdb_id or tvmaze_id is required",
                           f"{where}tmdb_id", 422)
    if body.seasons is not None and body.kind != "show":
        raise PayloadError(f"{where}seasons: only a show has seasons", f"{where}seasons", 422)
    seasons = None if body.seasons is None else tuple(sorted(set(body.seasons)))
    return RequestMedia(kind=body.kind, ids=ids, title=body.title or None, year=body.year,
                        seasons=seasons, source=API_SOURCE, requester=body.requester)


def _outcome_json(outcome: RequestOutcome) -> dict[str, Any]:
    return {"id": outcome.item_id, "created": outcome.created}


# -- acting on one item --------------------------------------------------------------------


async def retry_item(request: web.Request) -> web.Response:
    """``POST /api/items/{id}/retry``: failed items (this one and any below it) go back to
    the state they failed in, each with the job that moves it on from there."""
    item_id = _item_id(request)
    repos = _repos(request)
    async with database_calls():
        tree = await repos.catalog.tree(item_id, releases_per_item=0)
        if tree is None:
            raise _not_found(item_id)
        root = tree.root.item
        failed = [n.item for n in (tree.root, *tree.children) if n.item.state is State.FAILED]
        if not failed:
            return _conflict(f"item {item_id} is {root.state}, with nothing failed below it")
        kinds = {item.id: item.kind for item in failed}
        async with _transaction(request) as tx:
            moved = await tx.items.retry_many(list(kinds))
            jobs = [NewJob(job, item_id=i) for i, state in moved.items()
                    if (job := job_after_retry(kinds[i], state)) is not None]
            await tx.jobs.enqueue_many(jobs)
            refreshed = await _refresh_parents(tx, root)
    retried = [
        {"id": i, "state": state, "job": job_after_retry(kinds[i], state)}
        for i, state in sorted(moved.items())
    ]
    state = refreshed.get(root.id) or moved.get(root.id) or root.state
    return json_response({"id": item_id, "state": state, "retried": retried})


def job_after_retry(kind: MediaKind, state: State) -> JobKind | None:
    """The job a retried item needs: movies and episodes by ``JOB_FOR_STATE``.

    Shows and seasons take their state from their episodes, so only a show whose index
    failed (back to requested) has a job of its own.
    """
    if kind is MediaKind.MOVIE or kind is MediaKind.EPISODE:
        return JOB_FOR_STATE.get(state)
    if kind is MediaKind.SHOW and state is State.REQUESTED:
        return JobKind.INDEX
    return None


async def pause_item(request: web.Request) -> web.Response:
    """``POST /api/items/{id}/pause``: the item and everything below it; jobs wait."""
    return await _change(request, "paused", lambda repos, ids: repos.items.pause_many(ids))


async def unpause_item(request: web.Request) -> web.Response:
    """``POST /api/items/{id}/unpause``: back to where each paused item was; jobs due now."""
    return await _change(request, "resumed", lambda repos, ids: repos.items.resume_many(ids))


async def delete_item(request: web.Request) -> web.Response:
    """``DELETE /api/items/{id}``: the item, everything below it and what refers to them."""
    item_id = _item_id(request)
    async with database_calls():
        item = await _repos(request).catalog.get(item_id)
        if item is None:
            raise _not_found(item_id)
        async with _transaction(request) as tx:
            deleted = await tx.items.delete_many([item_id])
            if item.show_id is not None:
                await tx.items.refresh_parent_states([item.show_id])
    if not deleted:
        raise _not_found(item_id)
    return json_response({"id": item_id, "deleted": deleted})


Change = Callable[[Repos, list[int]], Any]


async def _change(request: web.Request, verb: str, change: Change) -> web.Response:
    item_id = _item_id(request)
    async with database_calls():
        item = await _repos(request).catalog.get(item_id)
        if item is None:
            raise _not_found(item_id)
        async with _transaction(request) as tx:
            changed: list[ItemId] = await change(tx, [item_id])
            if changed:
                await _refresh_parents(tx, item)
                item = await tx.catalog.get(item_id) or item
    if not changed:
        return _conflict(f"item {item_id} is {item.state}: nothing was {verb}")
    return json_response({"id": item_id, "state": item.state, verb: len(changed)})


async def _refresh_parents(tx: Repos, item: MediaItem) -> dict[ItemId, State]:
    """Re-derive the show's and its seasons' states after a change below them."""
    show_id = item.id if item.kind is MediaKind.SHOW else item.show_id
    if show_id is None:
        return {}
    return await tx.items.refresh_parent_states([show_id])


@contextlib.asynccontextmanager
async def _transaction(request: web.Request) -> AsyncIterator[Repos]:
    pool: asyncpg.Pool = request.app[keys.POOL]
    async with pool.acquire() as conn, conn.transaction():
        yield _repos(request).bound_to(conn)


# -- rendering -----------------------------------------------------------------------------

Redact = Callable[[str], str]


def summary_json(item: ItemSummary, redact: Redact) -> dict[str, Any]:
    """An item as lists show it; ``last_error`` is why a failed item failed."""
    return {
        "id": item.id,
        "kind": item.kind,
        "title": item.title,
        "state": item.state,
        "state_changed_at": item.state_changed_at,
        "ids": item.ids.as_dict(),
        "show_id": item.show_id,
        "season_number": item.season_number,
        "episode_number": item.episode_number,
        "year": item.year,
        "aired_at": item.aired_at,
        "last_error": None if item.last_error is None else redact(item.last_error),
    }


def item_json(item: MediaItem, redact: Redact) -> dict[str, Any]:
    """An item with everything stored about it."""
    data = {
        "id": item.id,
        "kind": item.kind,
        "title": item.title,
        "state": item.state,
        "state_changed_at": item.state_changed_at,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
        "ids": item.ids.as_dict(),
        "show_id": item.show_id,
        "season_number": item.season_number,
        "episode_number": item.episode_number,
        "year": item.year,
        "aired_at": item.aired_at,
        "air_date": item.air_date,
        "resume_state": item.resume_state,
        "last_error": None if item.last_error is None else redact(item.last_error),
        "scraped_at": item.scraped_at,
        "scrape_count": item.scrape_count,
    }
    schedule = item.schedule
    if schedule is not None:
        data["schedule"] = {
            "status": schedule.status,
            "status_checked_at": schedule.status_checked_at,
            "next_check_at": _finite(schedule.next_check_at),
            "last_air_at": schedule.last_air_at,
            "next_air_at": schedule.next_air_at,
            "air_timezone": schedule.air_timezone,
        }
    return data


def release_json(release: Release) -> dict[str, Any]:
    """One stored release, best first within its item."""
    return {
        "id": release.id,
        "infohash": release.infohash,
        "title": release.raw_title,
        "rank": release.rank,
        "scraper": release.scraper,
        "size_bytes": release.size_bytes,
        "seeders": release.seeders,
        "cached_on": list(release.cached_on),
        "found_at": release.found_at,
    }


def tree_json(tree: ItemTree, redact: Redact) -> dict[str, Any]:
    """The root with its seasons (each with its episodes) or its episodes, and state counts."""

    def node(n: ItemNode) -> dict[str, Any]:
        return {**item_json(n.item, redact), "releases": [release_json(r) for r in n.releases]}

    root = node(tree.root)
    seasons: dict[int | None, dict[str, Any]] = {}
    for season in tree.seasons():
        seasons[season.item.season_number] = {**node(season), "episodes": []}
    loose: list[dict[str, Any]] = []
    for episode in tree.episodes():
        parent = seasons.get(episode.item.season_number)
        (parent["episodes"] if parent is not None else loose).append(node(episode))
    if tree.root.item.kind is MediaKind.SHOW:
        root["seasons"] = list(seasons.values())
    if loose or tree.root.item.kind is MediaKind.SEASON:
        root["episodes"] = loose
    if tree.children:
        root["episode_states"] = _count_states(tree.episodes())
    return root


def _count_states(nodes: Iterable[ItemNode]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for n in nodes:
        state = n.item.state.value
        counts[state] = counts.get(state, 0) + 1
    return counts


def _finite(value: datetime | None) -> datetime | None:
    # 'infinity' (paused schedules) comes back as datetime.max: say "never" instead.
    if value is None or value.year >= 9999 or value.year <= 1:
        return None
    return value


# -- request parsing -----------------------------------------------------------------------


def _repos(request: web.Request) -> Repos:
    return request.app[keys.REPOS]


def _redactor(request: web.Request) -> Redact:
    return request.app[keys.SECRET_FILTER].redact


def _item_id(request: web.Request) -> int:
    text = request.match_info["id"]
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > MAX_ITEM_ID:
        raise PayloadError("the item id must be a positive whole number", "id")
    return int(text)


def _not_found(item_id: int) -> PayloadError:
    return PayloadError(f"no item {item_id}", "id", 404)


def _conflict(message: str) -> web.Response:
    return error_response(message, "id", 409)


def _choice(
    query: Mapping[str, str], name: str, enum: type[_E], allowed: str
) -> _E | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    try:
        return enum(value)
    except ValueError:
        raise PayloadError(f"{name} must be one of: {allowed}", name) from None


def _search_text(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if len(text) > MAX_SEARCH_CHARS:
        raise PayloadError(f"q must be at most {MAX_SEARCH_CHARS} characters", "q")
    if "\x00" in text or not _encodable(text):
        raise PayloadError("q contains characters that cannot be searched for", "q")
    return text


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _limit(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_PAGE_SIZE
    if not (value.isascii() and value.isdigit() and len(value) <= 4) or not (
        1 <= int(value) <= MAX_PAGE_SIZE
    ):
        raise PayloadError(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}", "limit")
    return int(value)


def _cursor(value: str | None) -> PageCursor | None:
    """``"<id>"``, or ``"<microseconds since 1970>.<id>"`` for pages filtered by state."""
    if value is None or value == "":
        return None
    try:
        return PageCursor.parse(value)
    except ValueError:
        raise PayloadError("after must be the next cursor of a previous page", "after") from None


def _next_cursor(page: ItemPage) -> str | None:
    return None if page.next is None else page.next.to_text()

"""Reading items: by id or external id, a whole tree in one query, keyset pages, search."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from riven_async.db import rows
from riven_async.db.executor import Executor
from riven_async.db.queries import QueryFile
from riven_async.db.repository import Now, Repository, ids_array, utc_now
from riven_async.domain.intents import ExternalIds, RequestMedia
from riven_async.domain.media import (
    ItemId,
    ItemNode,
    ItemSummary,
    ItemTree,
    MediaItem,
    MediaKind,
)
from riven_async.domain.states import State

MAX_PAGE_SIZE = 1000
DEFAULT_RELEASES_PER_ITEM = 5
# Keyset starts: before every id, and (for pages sorted by state_changed_at) every time.
_BEFORE_ANY_ID = 0
_BEFORE_ANY_TIME = datetime.min.replace(tzinfo=UTC)
_ALL_KINDS = list(MediaKind)
_ALL_STATES = list(State)


_CURSOR_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_CURSOR_US = 10**17  # year 5138: larger is not a cursor we made
_MAX_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Where a page ended: the last row's id, and its ``state_changed_at`` on state pages.

    As text (the API's ``next``/``after``, the CLI's ``--after``): ``"<id>"``, or
    ``"<microseconds since 1970>.<id>"`` on state pages.
    """

    id: int
    changed_at: datetime | None = None

    def to_text(self) -> str:
        """The cursor as the API and the CLI show it."""
        if self.changed_at is None:
            return str(self.id)
        micros = (self.changed_at - _CURSOR_EPOCH) // timedelta(microseconds=1)
        return f"{micros}.{self.id}"

    @classmethod
    def parse(cls, text: str) -> PageCursor:
        """Read ``to_text``'s output; ValueError for anything else (ids clamp to bigint)."""
        head, dot, tail = text.partition(".")
        parts = (head, tail) if dot else (head,)
        if not all(p.isascii() and p.isdigit() and len(p) <= 19 for p in parts):
            raise ValueError("not a page cursor")
        if not dot:
            return cls(min(int(head), _MAX_ID))
        micros = int(head)
        if micros > _MAX_CURSOR_US:
            raise ValueError("not a page cursor")
        return cls(min(int(tail), _MAX_ID), _CURSOR_EPOCH + timedelta(microseconds=micros))


@dataclass(frozen=True, slots=True)
class ItemPage:
    """One page of items; ``next`` is None on the last page."""

    items: tuple[ItemSummary, ...]
    next: PageCursor | None


@dataclass(frozen=True, slots=True)
class KnownRequest:
    """A title about to be requested: the movie or show it names already (None: none yet),
    and whether a stored request asks for as much already (so requesting it adds nothing)."""

    item_id: ItemId | None
    covered: bool


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A title search result with its trigram word similarity (0..1)."""

    item: ItemSummary
    score: float


class CatalogRepo(Repository):
    """Reads of ``items``; every method is one statement (one round trip)."""

    FEATURE = "catalog"

    def __init__(
        self, executor: Executor, queries: QueryFile | None = None, *, now: Now = utc_now
    ) -> None:
        super().__init__(executor, queries, now=now)
        self._get_many = self._sql("get_many")
        self._find_roots = self._sql("find_roots")
        self._tree = self._sql("tree")
        self._page = self._sql("page")
        self._page_by_kind = self._sql("page_by_kind")
        self._page_episodes = self._sql("page_episodes")
        self._page_by_state = self._sql("page_by_state")
        self._search_page = self._sql("search_page")
        self._search_titles = self._sql("search_titles")
        self._known_requests = self._sql("known_requests")

    async def get(self, item_id: int) -> MediaItem | None:
        """One item, or None."""
        found = await self.get_many([item_id])
        return found[0] if found else None

    async def get_many(self, item_ids: Iterable[int]) -> list[MediaItem]:
        """Items by id, in id order (missing ids are left out)."""
        records = await self._executor.fetch(self._get_many, ids_array(list(item_ids)))
        return [rows.media_item(r) for r in records]

    async def find_roots(self, kind: MediaKind, ids: ExternalIds) -> list[MediaItem]:
        """Movies or shows named by any of ``ids`` (more than one only before a merge)."""
        if not kind.is_root:
            raise ValueError("only movies and shows carry external ids")
        records = await self._executor.fetch(self._find_roots, kind, ids.tmdb, ids.tvdb,
                                             ids.imdb, ids.tvmaze)
        return [rows.media_item(r) for r in records]

    async def tree(
        self, item_id: int, releases_per_item: int = DEFAULT_RELEASES_PER_ITEM
    ) -> ItemTree | None:
        """An item with all its seasons/episodes and their best releases, in one query."""
        records = await self._executor.fetch(self._tree, item_id, releases_per_item)
        if not records:
            return None
        nodes = [ItemNode(rows.media_item(r), rows.node_releases(r)) for r in records]
        return ItemTree(nodes[0], tuple(nodes[1:]))

    async def page(
        self,
        *,
        kind: MediaKind | None = None,
        state: State | None = None,
        text: str | None = None,
        after: PageCursor | None = None,
        limit: int = 100,
    ) -> ItemPage:
        """A keyset page of items, filtered by kind, state and title text.

        Pages filtered by state are sorted by (time in that state, id), oldest first; the
        others by id. Rows inserted while paging never shift a page. ``text`` matches
        movie and show titles only.
        """
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}")
        after_id = after.id if after is not None else _BEFORE_ANY_ID
        fetch = limit + 1
        kinds = _ALL_KINDS if kind is None else [kind]
        if text is not None:
            states = _ALL_STATES if state is None else [state]
            records = await self._executor.fetch(self._search_page, text, kinds, states,
                                                 after_id, fetch)
        elif state is not None:
            changed_at = after.changed_at if after is not None else None
            if after is not None and changed_at is None:
                raise ValueError("a state page continues from a cursor with changed_at")
            records = await self._executor.fetch(
                self._page_by_state, state, kinds,
                changed_at if changed_at is not None else _BEFORE_ANY_TIME,
                after_id, fetch,
            )
        elif kind is MediaKind.EPISODE:
            records = await self._executor.fetch(self._page_episodes, after_id, fetch)
        elif kind is not None:
            records = await self._executor.fetch(self._page_by_kind, kind, after_id, fetch)
        else:
            records = await self._executor.fetch(self._page, after_id, fetch)
        items = tuple(rows.item_summary(r) for r in records[:limit])
        if len(records) <= limit:
            return ItemPage(items, None)
        last = items[-1]
        by_state = state is not None and text is None
        return ItemPage(items, PageCursor(last.id, last.state_changed_at if by_state else None))

    async def search_titles(self, text: str, limit: int = 20) -> list[SearchHit]:
        """Movies and shows ranked by trigram word similarity to ``text``."""
        records = await self._executor.fetch(self._search_titles, text, limit)
        return [SearchHit(rows.item_summary(r), float(r["score"])) for r in records]

    async def known_requests(self, requests: Sequence[RequestMedia]) -> list[KnownRequest]:
        """For each request, in order: the item it names and whether it is covered (an
        import run twice requests nothing the second time)."""
        if not requests:
            return []
        records = await self._executor.fetch(
            self._known_requests,
            [MediaKind(r.kind) for r in requests],
            [r.ids.tmdb for r in requests],
            [r.ids.tvdb for r in requests],
            [r.ids.imdb for r in requests],
            [r.ids.tvmaze for r in requests],
            [None if r.seasons is None else "{" + ",".join(str(int(n)) for n in r.seasons) + "}"
             for r in requests],
        )
        return [
            KnownRequest(None if r["item_id"] is None else ItemId(r["item_id"]), r["covered"])
            for r in records
        ]

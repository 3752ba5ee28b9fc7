"""The inbox worker: stored webhook deliveries become requests, re-checks and removals.

It takes waiting inbox rows (woken by NOTIFY ``riven_inbox``, polling as a fallback) inside
one transaction that also applies their intents set-based, so the effects and the
"processed" mark commit together: a rollback or a crash leaves the deliveries waiting, and
there is no claim to lease or take back. When a batch fails, each delivery is tried again
in its own transaction, so a bad one fails alone. Every effect is idempotent (requests are
unique per delivery and item, re-checks only move a due time, index jobs dedupe). Shows a
media server names without ids are looked up after the commit (Plex, else TMDB by title).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from urllib.parse import quote

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from riven_async.config import LiveSettings
from riven_async.core.http import HttpClient
from riven_async.core.retry import DoublingBackoff
from riven_async.core.tasks import BackgroundTasks
from riven_async.db.executor import Executor
from riven_async.db.notify import CHANNEL_INBOX, wait_for_wake
from riven_async.db.pool import CONNECTION_ERRORS, DB_PASS_ERRORS
from riven_async.db.repos import Repos
from riven_async.db.requests import request_media_groups_on
from riven_async.domain.intents import (
    ExternalIds,
    Intent,
    RecheckMovie,
    RecheckShow,
    RemoveMedia,
    RequestMedia,
    intent_from_dict,
)
from riven_async.domain.media import ItemId, MediaKind
from riven_async.domain.queue import Backoff, InboxMessage, JobKind, NewJob
from riven_async.errors import RivenError
from riven_async.pipeline.runtime import Runtime
from riven_async.services.indexers.tmdb import TmdbIndexer
from riven_async.web.webhooks.plex import guid_ids

log = logging.getLogger(__name__)

BATCH_SIZE = 250
POLL_S = 5.0
GATHER_S = 0.05
OUTAGE_MIN_S = 0.5
OUTAGE_MAX_S = 30.0
# Webhooks are someone waiting: they go ahead of the background schedule.
WEBHOOK_PRIORITY = 10
TITLE_CANDIDATES = 10
MAX_TITLE_LOOKUPS = 50
# Shows a media server names without ids, resolved upstream after the batch commits.
MAX_RESOLVES = 20
RESOLVE_BUDGET_S = 20.0
TMDB_MATCHES = 3

# A delivery failing for these reasons is retried with backoff, then given up.
_MESSAGE_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, RivenError,
                                                     ValueError)


class _PlexGuid(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str


class _PlexItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    guid: str | None = None
    guids: list[_PlexGuid] = Field(default_factory=list, alias="Guid")


class _PlexContainer(BaseModel):
    model_config = ConfigDict(extra="ignore")
    metadata: list[_PlexItem] = Field(default_factory=list, alias="Metadata")


class _PlexMetadata(BaseModel):
    model_config = ConfigDict(extra="ignore")
    container: _PlexContainer = Field(alias="MediaContainer")


class ShowResolver:
    """The ids of a show a media server names only by its own key and its title.

    Plex (when configured) answers for its rating key with the show's ``Guid[]``; otherwise
    a TMDB title search (when TMDB has a key) gives the shows of exactly that title.
    """

    def __init__(self, plex: HttpClient | None = None, tmdb: TmdbIndexer | None = None) -> None:
        self._plex = plex
        self._tmdb = tmdb

    @classmethod
    def from_runtime(cls, runtime: Runtime) -> ShowResolver:
        """Plex and TMDB as the daemon configured them (either may be missing)."""
        settings = runtime.settings
        tmdb_http = runtime.upstreams.get("tmdb")
        tmdb = None
        if tmdb_http is not None and settings.upstreams.tmdb.api_key.get_secret_value():
            tmdb = TmdbIndexer(tmdb_http, clock=runtime.clock,
                               language=settings.indexer.language or None)
        return cls(runtime.upstreams.get("plex"), tmdb)

    def can_resolve(self, recheck: RecheckShow | RecheckMovie) -> bool:
        """Whether an upstream could say which show ``recheck`` names."""
        if not isinstance(recheck, RecheckShow):
            return False
        plex_key = _plex_key(recheck)
        return ((self._plex is not None and plex_key is not None)
                or (self._tmdb is not None and bool(recheck.title)))

    async def ids_of(self, recheck: RecheckShow) -> list[ExternalIds]:
        """Candidate ids for the show (several when TMDB knows several of that title)."""
        plex_key = _plex_key(recheck)
        if self._plex is not None and plex_key is not None:
            ids = await self._plex_show_ids(self._plex, plex_key)
            if not ids.is_empty():
                return [ids]
        if self._tmdb is None or not recheck.title:
            return []
        wanted = _normalise(recheck.title)
        hits = await self._tmdb.search_shows(recheck.title, recheck.year)
        exact = [hit for hit in hits if _normalise(hit.title) == wanted
                 or _normalise(hit.original_title or "") == wanted]
        return [ExternalIds(tmdb=hit.tmdb_id) for hit in exact[:TMDB_MATCHES]]

    async def _plex_show_ids(self, plex: HttpClient, rating_key: str) -> ExternalIds:
        # A key from another server the account reaches may be unknown here: 404, no ids.
        # Plex answers XML unless JSON is asked for.
        response = await plex.get(f"/library/metadata/{quote(rating_key, safe='')}",
                                  params={"includeGuids": 1}, accept=(404,),
                                  headers={"Accept": "application/json"})
        if response.status == 404:
            return ExternalIds()
        try:
            body = _PlexMetadata.model_validate(response.json())
        except (ValidationError, ValueError) as exc:
            log.warning("plex metadata for %s is unreadable: %s", rating_key,
                        type(exc).__name__, extra={"action": "inbox_resolve"})
            return ExternalIds()
        for item in body.container.metadata:
            ids = guid_ids([g.id for g in item.guids] + [item.guid or ""])
            if not ids.is_empty():
                return ids
        return ExternalIds()


def _resolve_key(recheck: RecheckShow) -> tuple[str | None, str, int | None]:
    return _plex_key(recheck), _normalise(recheck.title or ""), recheck.year


def _plex_key(recheck: RecheckShow) -> str | None:
    ref = recheck.server_ref
    return ref.item_key if ref is not None and ref.server == "plex" else None


@dataclass(slots=True)
class IntakeStats:
    """What the worker did since start-up."""

    processed: int = 0
    failed: int = 0
    given_up: int = 0
    requests: int = 0
    items_created: int = 0
    rechecked: int = 0
    unknown: int = 0
    removed: int = 0
    resolved: int = 0


@dataclass(slots=True)
class _Work:
    """One segment's intents, grouped by effect."""

    requests: list[tuple[int | None, Sequence[RequestMedia]]] = field(default_factory=list)
    rechecks: list[RecheckShow | RecheckMovie] = field(default_factory=list)
    removes: list[RemoveMedia] = field(default_factory=list)


class InboxIntake:
    """Turns waiting inbox deliveries into their effects; any number may run at once."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        repos: Repos,
        live: LiveSettings,
        wake: asyncio.Event,
        *,
        batch_size: int = BATCH_SIZE,
        poll_s: float = POLL_S,
        gather_s: float = GATHER_S,
        resolver: ShowResolver | None = None,
    ) -> None:
        self._pool = pool
        self._repos = repos
        self._live = live
        self._wake = wake
        self._batch_size = batch_size
        self._poll_s = poll_s
        self._gather_s = gather_s
        self._backoff = Backoff(base_s=30.0, cap_s=3600.0)
        self._resolver = resolver or ShowResolver()
        self.stats = IntakeStats()

    @classmethod
    def from_runtime(cls, runtime: Runtime) -> InboxIntake:
        """The worker of the daemon's runtime, woken by NOTIFY ``riven_inbox``."""
        return cls(runtime.pool, runtime.repos, runtime.live,
                   runtime.listener.wake_event(CHANNEL_INBOX),
                   resolver=ShowResolver.from_runtime(runtime))

    async def run(self) -> None:
        """Process until cancelled; database outages are waited out."""
        outage = DoublingBackoff(OUTAGE_MIN_S, OUTAGE_MAX_S)
        while True:
            try:
                handled = await self.process_batch()
                outage.reset()
            except DB_PASS_ERRORS as exc:
                delay_s = outage.next_s()
                log.warning("inbox worker: database unavailable (%r); retrying in %.1fs",
                            exc, delay_s, extra={"action": "inbox_intake"})
                await asyncio.sleep(delay_s)
                continue
            if handled < self._batch_size:
                await wait_for_wake(self._wake, self._poll_s)
                if handled:
                    # Under a stream of webhooks, gather a few before taking again:
                    # a batch costs about as many statements whatever its size.
                    await asyncio.sleep(self._gather_s)

    async def process_batch(self) -> int:
        """Take and act on up to one batch; returns how many deliveries were taken."""
        taken: list[InboxMessage] = []
        unresolved: list[RecheckShow] = []
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                taken = await self._repos.inbox.bound_to(conn).take(self._batch_size)
                unreadable = await self._act(conn, taken, unresolved)
            self._count(len(taken), unreadable)
        except _MESSAGE_ERRORS as exc:
            if isinstance(exc, CONNECTION_ERRORS) or not taken:
                raise
            # The batch rolled back: each delivery once more on its own, so a bad one
            # fails alone and its batch mates take effect.
            if len(taken) == 1:
                await self._retry_later(taken[0], exc)
            else:
                await self._one_by_one(taken)
        else:
            await self._resolve(unresolved)
        return len(taken)

    async def _one_by_one(self, messages: Sequence[InboxMessage]) -> None:
        for message in messages:
            unresolved: list[RecheckShow] = []
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    again = await self._repos.inbox.bound_to(conn).take_ids([message.id])
                    unreadable = await self._act(conn, again, unresolved)
                self._count(len(again), unreadable)
            except _MESSAGE_ERRORS as exc:
                if isinstance(exc, CONNECTION_ERRORS):
                    raise
                await self._retry_later(message, exc)
            else:
                await self._resolve(unresolved)

    async def _retry_later(self, message: InboxMessage, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {exc}"
        given_up = await self._repos.inbox.retry_later(
            message.id, error, self._backoff.delay_s(message.attempts))
        if given_up:
            self.stats.given_up += 1
        else:
            self.stats.failed += 1
        log.warning("inbox message %d (%s %s) failed%s: %s", message.id, message.source,
                    message.event, " for good" if given_up else "", error,
                    extra={"action": "inbox_intake", "sender": message.source})

    def _count(self, taken: int, unreadable: int) -> None:
        self.stats.processed += taken - unreadable
        self.stats.given_up += unreadable

    async def _act(self, conn: Executor, messages: Sequence[InboxMessage],
                   unresolved: list[RecheckShow]) -> int:
        """Every taken delivery's effects, on ``conn`` inside the taking transaction;
        returns how many were unreadable (they stay processed, with their error).

        Shows named without ids and not found by title go to ``unresolved``: they are
        looked up upstream once the transaction has committed (no upstream call holds it).
        """
        decoded: list[tuple[InboxMessage, list[Intent]]] = []
        unreadable: list[tuple[int, str]] = []
        for message in messages:
            try:
                decoded.append((message, [intent_from_dict(d) for d in message.intents]))
            except (ValueError, TypeError, AttributeError) as exc:
                # Retrying cannot make a malformed message readable: it stays processed.
                unreadable.append((message.id, f"unreadable intents: {exc}"))
                log.error("inbox message %d has unreadable intents: %s", message.id, exc,
                          extra={"action": "inbox_intake"})
        if unreadable:
            await self._repos.inbox.bound_to(conn).record_errors(unreadable)
        for work in _segments(decoded):
            await self._apply_work(conn, work, unresolved)
        return len(unreadable)

    async def _apply_work(self, conn: Executor, work: _Work,
                          unresolved: list[RecheckShow]) -> None:
        if work.requests:
            groups = await request_media_groups_on(conn, self._repos, work.requests,
                                                   priority=WEBHOOK_PRIORITY)
            for outcomes in groups:
                self.stats.requests += len(outcomes)
                self.stats.items_created += sum(1 for o in outcomes if o.created)
        if work.rechecks:
            await self._recheck(conn, work.rechecks, unresolved)
        if work.removes:
            await self._remove(conn, work.removes)

    async def _recheck(self, conn: Executor, rechecks: Sequence[RecheckShow | RecheckMovie],
                       unresolved: list[RecheckShow]) -> None:
        by_ids = [r for r in rechecks if not r.ids.is_empty()]
        # A season's import sends a webhook per episode: each title is looked up once.
        titles = list(dict.fromkeys((_kind(r), r.ids) for r in by_ids))
        found: list[ItemId | None] = []
        if titles:
            items = await self._repos.schedule.bound_to(conn).check_now_by_external_ids(
                titles, WEBHOOK_PRIORITY)
            item_of = dict(zip(titles, items, strict=True))
            found = [item_of[(_kind(r), r.ids)] for r in by_ids]
        movies: set[int] = set()
        shows: set[int] = set()
        # Only media servers send no ids; a title they name is looked up by its title. Ids
        # that match nothing mean an untracked title: a title match would only be a guess.
        by_title: list[RecheckShow | RecheckMovie] = [r for r in rechecks if r.ids.is_empty()]
        for recheck, item_id in zip(by_ids, found, strict=True):
            if item_id is None:
                self._ignore_unknown(recheck)
            elif isinstance(recheck, RecheckMovie):
                movies.add(item_id)
            else:
                shows.add(item_id)
        matched = await self._match_titles(conn, by_title)
        shows_by_title: set[int] = set()
        for recheck in by_title:
            item_id = matched.get(_title_key(recheck))
            if item_id is None:
                if isinstance(recheck, RecheckShow) and self._resolver.can_resolve(recheck):
                    unresolved.append(recheck)
                else:
                    self._ignore_unknown(recheck)
            elif isinstance(recheck, RecheckMovie):
                movies.add(item_id)
            else:
                shows_by_title.add(item_id)
        # Shows found by their ids are due already (check_now_by_external_ids).
        if shows_by_title - shows:
            await self._repos.schedule.bound_to(conn).check_now(
                sorted(shows_by_title - shows), WEBHOOK_PRIORITY)
        shows |= shows_by_title
        if movies:
            await self._repos.jobs.bound_to(conn).enqueue_many(
                NewJob(JobKind.INDEX, item_id=i, priority=WEBHOOK_PRIORITY)
                for i in sorted(movies))
        self.stats.rechecked += len(shows) + len(movies)

    async def _resolve(self, rechecks: Sequence[RecheckShow]) -> None:
        """Ask Plex or TMDB for the ids of shows named only by key and title, then make
        the tracked shows those ids name due now. Best effort: the show keeps its schedule
        when the upstreams cannot tell (a re-check is a hint, not a request)."""
        if not rechecks:
            return
        candidates: dict[tuple[str | None, str, int | None], list[ExternalIds]] = {}
        try:
            async with asyncio.timeout(RESOLVE_BUDGET_S):
                for recheck in rechecks:
                    key = _resolve_key(recheck)
                    if key in candidates or len(candidates) >= MAX_RESOLVES:
                        continue
                    candidates[key] = []
                    try:
                        candidates[key] = await self._resolver.ids_of(recheck)
                    except RivenError as exc:
                        log.info("cannot resolve %s show %r upstream: %s", recheck.source,
                                 recheck.title, exc, extra={"action": "inbox_resolve"})
        except TimeoutError:
            log.warning("resolving shows named by title took over %.0fs; the rest keep "
                        "their schedule", RESOLVE_BUDGET_S, extra={"action": "inbox_resolve"})
        keys = [key for key, found in candidates.items() for _ in found]
        wanted = [(MediaKind.SHOW, ids) for found in candidates.values() for ids in found]
        hits = (await self._repos.schedule.check_now_by_external_ids(wanted, WEBHOOK_PRIORITY)
                if wanted else [])
        matched = {key for key, item_id in zip(keys, hits, strict=True) if item_id is not None}
        shows = {item_id for item_id in hits if item_id is not None}
        self.stats.resolved += len(shows)
        self.stats.rechecked += len(shows)
        for recheck in rechecks:
            if _resolve_key(recheck) not in matched:
                self._ignore_unknown(recheck)

    def _ignore_unknown(self, recheck: RecheckShow | RecheckMovie) -> None:
        self.stats.unknown += 1
        log.debug("%s re-check of a title we do not track (%s, %s): ignored",
                  recheck.source, recheck.title, recheck.ids.as_dict(),
                  extra={"action": "inbox_intake", "sender": recheck.source})

    async def _match_titles(
        self, conn: Executor, rechecks: Sequence[RecheckShow | RecheckMovie]
    ) -> dict[tuple[MediaKind, str, int | None], ItemId]:
        """Tracked titles named by title (and year) only: media servers send no show ids."""
        wanted = {_title_key(r) for r in rechecks if r.title}
        catalog = self._repos.catalog.bound_to(conn)
        matched: dict[tuple[MediaKind, str, int | None], ItemId] = {}
        for key in sorted(wanted, key=str)[:MAX_TITLE_LOOKUPS]:
            kind, title, year = key
            hits = await catalog.search_titles(title, TITLE_CANDIDATES)
            exact = [h.item for h in hits if h.item.kind == kind
                     and _normalise(h.item.title) == title
                     and (year is None or h.item.year is None or h.item.year == year)]
            if exact:
                matched[key] = min(exact, key=lambda item: item.id).id
        return matched

    async def _remove(self, conn: Executor, removes: Sequence[RemoveMedia]) -> None:
        if not self._live.current.webhooks.follow_deletes:
            for remove in removes:
                log.debug("%s removal ignored: webhooks.follow_deletes is off", remove.source,
                          extra={"action": "inbox_intake", "sender": remove.source})
            return
        catalog = self._repos.catalog.bound_to(conn)
        doomed: set[int] = set()
        for remove in removes:
            if remove.ids.is_empty():
                continue
            doomed.update(item.id for item in
                          await catalog.find_roots(MediaKind(remove.kind), remove.ids))
        if doomed:
            deleted = await self._repos.items.bound_to(conn).delete_many(sorted(doomed))
            self.stats.removed += deleted
            log.info("removed %d items deleted by their sender", len(doomed),
                     extra={"action": "inbox_intake"})


def _segments(decoded: Sequence[tuple[InboxMessage, list[Intent]]]) -> Iterator[_Work]:
    """Group intents by effect, cut after each message that removes something.

    Within a segment requests go first and removals last, so "added, then deleted" in one
    batch ends deleted and "deleted, then added again" ends requested.
    """
    work = _Work()
    for message, intents in decoded:
        requests = [i for i in intents if isinstance(i, RequestMedia) and not i.ids.is_empty()]
        if requests:
            work.requests.append((message.id, requests))
        work.rechecks.extend(i for i in intents if isinstance(i, RecheckShow | RecheckMovie))
        removes = [i for i in intents if isinstance(i, RemoveMedia)]
        if removes:
            work.removes.extend(removes)
            yield work
            work = _Work()
    if work.requests or work.rechecks:
        yield work


def _kind(recheck: RecheckShow | RecheckMovie) -> MediaKind:
    return MediaKind.MOVIE if isinstance(recheck, RecheckMovie) else MediaKind.SHOW


def _normalise(title: str) -> str:
    return " ".join(title.split()).casefold()


def _title_key(recheck: RecheckShow | RecheckMovie) -> tuple[MediaKind, str, int | None]:
    return _kind(recheck), _normalise(recheck.title or ""), recheck.year


async def start_intake(runtime: Runtime, tasks: BackgroundTasks, stack: AsyncExitStack) -> None:
    """The ``inbox-intake`` loop."""
    tasks.start("inbox-intake", InboxIntake.from_runtime(runtime).run)

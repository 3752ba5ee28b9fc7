"""What the indexer writes: whole show trees, movies, and the identity of requested titles."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from riven_async.db.executor import Executor
from riven_async.db.queries import QueryFile
from riven_async.db.repository import Now, Repository, epoch_s, utc_now
from riven_async.domain.intents import RequestMedia
from riven_async.domain.media import (
    ItemId,
    MediaKind,
    MovieRecord,
    ShowTree,
    ShowUpsertResult,
    TmdbId,
)
from riven_async.errors import RivenError

# The children of shows that import_show_trees creates are written with COPY, straight
# into items: PostgreSQL then inserts heap rows in batches (one WAL record per page), about
# half the server time of an INSERT ... SELECT from arrays (measured at 250k episodes).
_COPY_COLUMNS = ("kind", "show_id", "season_number", "episode_number", "title", "aired_at",
                 "air_date", "fingerprint", "state")
_NO_CHILDREN: tuple[tuple[()], ...] = ((),) * 11


class IdentityConflict(RivenError):
    """Two indexed items name the same title by different ids; a person must merge them."""


@dataclass(frozen=True, slots=True)
class MovieUpsertResult:
    """What a movie's upsert wrote."""

    item_id: ItemId
    tmdb_id: TmdbId
    created: bool


class TreesRepo(Repository):
    """Writes of the indexer: show trees (seasons, episodes), movies, merged identities."""

    FEATURE = "trees"

    def __init__(
        self, executor: Executor, queries: QueryFile | None = None, *, now: Now = utc_now
    ) -> None:
        super().__init__(executor, queries, now=now)
        self._upsert_show_trees = self._sql("upsert_show_trees")
        self._upsert_movies = self._sql("upsert_movies")
        self._adopt_identity = self._sql("adopt_identity")
        self._existing_shows = self._sql("existing_shows")
        self._set_release_due = self._sql("set_release_due")
        self._season_fingerprints = self._sql("season_fingerprints")

    async def upsert_show_trees(self, trees: Sequence[ShowTree]) -> list[ShowUpsertResult]:
        """Upsert show trees, whatever their size, in one round trip; results in input order.

        Unchanged seasons and episodes are not written; new episodes start ``unreleased``;
        seasons and episodes not passed are left alone. Safe under any concurrency: upserts
        of one show run one after the other and leave one tree.
        """
        ordered = _checked(trees)
        if not ordered:
            return []
        rows = await self._executor.fetch(self._upsert_show_trees, self._now(),
                                          *_show_arrays(ordered), *_child_arrays(ordered))
        return _in_input_order(trees, rows)

    async def import_show_trees(self, trees: Sequence[ShowTree]) -> list[ShowUpsertResult]:
        """``upsert_show_trees`` for large batches (an import): same result, less CPU.

        Shows that exist already go through ``upsert_show_trees``. New ones, in one
        transaction: upsert their rows, then COPY the children of those this call created
        (nobody else can have written any); one that another writer created meanwhile takes
        the usual path. Two to seven round trips per call, whatever the batch size. Needs a
        pool or a connection; any other executor gets ``upsert_show_trees``.
        """
        executor = self._executor
        if isinstance(executor, asyncpg.Pool):
            async with executor.acquire() as conn:
                return await self._import_on(conn, trees)
        if isinstance(executor, asyncpg.Connection | asyncpg.pool.PoolConnectionProxy):
            return await self._import_on(executor, trees)
        return await self.upsert_show_trees(trees)

    async def _import_on(
        self, conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
        trees: Sequence[ShowTree],
    ) -> list[ShowUpsertResult]:
        ordered = _checked(trees)
        if not ordered:
            return []
        now = self._now()
        known = {r["tmdb_id"] for r in await conn.fetch(
            self._existing_shows, [t.ids.tmdb for t in ordered])}
        results: dict[int, ShowUpsertResult] = {}
        later = [t for t in ordered if t.ids.tmdb in known]
        fresh = [t for t in ordered if t.ids.tmdb not in known]
        if fresh:
            async with conn.transaction():
                shows = await conn.fetch(self._upsert_show_trees, now, *_show_arrays(fresh),
                                         *_NO_CHILDREN)
                created = {r["tmdb_id"]: r["show_id"] for r in shows if r["created"]}
                records = [row for t in fresh if t.ids.tmdb in created
                           for row in _child_records(created[t.ids.tmdb], t)]
                if records:
                    await conn.copy_records_to_table("items", records=records,
                                                     columns=_COPY_COLUMNS)
                    firsts = {t.ids.tmdb: _first_air_s(t) for t in fresh if t.ids.tmdb in created}
                    await conn.execute(self._set_release_due,
                                       [created[t] for t in firsts], list(firsts.values()))
            for tree in fresh:
                tmdb = _tmdb(tree)
                if tmdb in created:
                    results[tmdb] = ShowUpsertResult(
                        ItemId(created[tmdb]), TmdbId(tmdb), True,
                        len(tree.seasons) + tree.episode_count, 0)
                else:
                    later.append(tree)
        if later:
            rows = await conn.fetch(self._upsert_show_trees, now, *_show_arrays(later),
                                    *_child_arrays(later))
            results.update((r.tmdb_id, r) for r in _in_input_order(later, rows))
        return [results[t.ids.tmdb] for t in trees if t.ids.tmdb is not None]

    async def upsert_movies(self, movies: Sequence[MovieRecord]) -> list[MovieUpsertResult]:
        """Insert or update movies by tmdb id, in one round trip; results in input order."""
        if not movies:
            return []
        tmdb_ids = [m.ids.tmdb for m in movies]
        if len(set(tmdb_ids)) != len(tmdb_ids):
            raise ValueError("upsert_movies: a movie is listed twice")
        rows = await self._executor.fetch(
            self._upsert_movies, self._now(), tmdb_ids, [m.ids.tvdb for m in movies],
            [m.ids.imdb for m in movies], [m.title for m in movies],
            [m.year for m in movies], [epoch_s(m.released_at) for m in movies],
            [m.release_date for m in movies], [epoch_s(m.next_check_at) for m in movies],
            [m.fingerprint for m in movies],
        )
        return [MovieUpsertResult(ItemId(r["item_id"]), TmdbId(r["tmdb_id"]), r["created"])
                for r in rows]

    async def season_fingerprints(self, show_id: int) -> dict[int, str]:
        """The stored seasons of a show and their fingerprints (empty ones included)."""
        records = await self._executor.fetch(self._season_fingerprints, show_id)
        return {r["season_number"]: r["fingerprint"] or "" for r in records}

    async def adopt_identity(
        self, item_id: int | None, kind: MediaKind, named: RequestMedia | ShowTree | MovieRecord
    ) -> ItemId | None:
        """Make one row the title these ids name, merging bare requests for it.

        Call it before upserting the tree of a requested item: a title requested by tvdb id
        and by tmdb id is two rows until the indexer knows both. Returns the row to use
        (None when the item is gone and no row has these ids).
        """
        ids = named.ids
        try:
            found = await self._executor.fetchval(
                self._adopt_identity, item_id, kind, ids.tmdb, ids.tvdb, ids.imdb, ids.tvmaze
            )
        except asyncpg.UniqueViolationError as exc:
            raise IdentityConflict(str(exc)) from exc
        return None if found is None else ItemId(found)


def _tmdb(tree: ShowTree) -> int:
    """The tree's tmdb id (ShowTree refuses to exist without one)."""
    assert tree.ids.tmdb is not None
    return tree.ids.tmdb


def _checked(trees: Sequence[ShowTree]) -> list[ShowTree]:
    """The trees in tmdb order (children of new shows then arrive in key order)."""
    tmdb_ids = [t.ids.tmdb for t in trees]
    if len(set(tmdb_ids)) != len(tmdb_ids):
        raise ValueError("a show is listed twice in one upsert")
    return sorted(trees, key=lambda t: t.ids.tmdb or 0)


def _in_input_order(
    trees: Sequence[ShowTree], rows: Sequence[asyncpg.Record]
) -> list[ShowUpsertResult]:
    by_tmdb = {
        r["tmdb_id"]: ShowUpsertResult(ItemId(r["show_id"]), TmdbId(r["tmdb_id"]),
                                       r["created"], r["children_inserted"],
                                       r["children_updated"])
        for r in rows
    }
    return [by_tmdb[t.ids.tmdb] for t in trees if t.ids.tmdb is not None]


def _show_arrays(trees: Sequence[ShowTree]) -> list[list[Any]]:
    """The 12 show columns of ``upsert_show_trees`` ($2..$13)."""
    return [
        [t.ids.tmdb for t in trees], [t.ids.tvdb for t in trees], [t.ids.imdb for t in trees],
        [t.ids.tvmaze for t in trees], [t.title for t in trees], [t.year for t in trees],
        [t.status for t in trees], [epoch_s(t.last_air_at) for t in trees],
        [epoch_s(t.next_air_at) for t in trees], [epoch_s(t.next_check_at) for t in trees],
        [t.air_timezone for t in trees], [t.fingerprint for t in trees],
    ]


def _child_arrays(trees: Sequence[ShowTree]) -> list[list[Any]]:
    """The 5 season and 6 episode columns ($14..$24); shows are referenced by position."""
    columns: list[list[Any]] = [[] for _ in range(11)]
    s_show, s_number, s_title, s_air_date, s_fingerprint = columns[:5]
    e_show, e_season, e_number, e_title, e_aired, e_air_date = columns[5:]
    for ordinal, tree in enumerate(trees, start=1):
        for season in tree.seasons:
            s_show.append(ordinal)
            s_number.append(season.number)
            s_title.append(season.title)
            s_air_date.append(season.air_date)
            s_fingerprint.append(season.fingerprint)
            for episode in season.episodes:
                e_show.append(ordinal)
                e_season.append(season.number)
                e_number.append(episode.number)
                e_title.append(episode.title)
                e_aired.append(None if episode.aired_at is None else episode.aired_at.timestamp())
                e_air_date.append(episode.air_date)
    return columns


def _first_air_s(tree: ShowTree) -> float | None:
    """The earliest air time of a new show's episodes (all unreleased), epoch seconds."""
    times = [e.aired_at for s in tree.seasons for e in s.episodes if e.aired_at is not None]
    return min(times).timestamp() if times else None


def _child_records(show_id: int, tree: ShowTree) -> list[tuple[Any, ...]]:
    """COPY rows (``_COPY_COLUMNS``) of one new show's seasons and episodes."""
    rows: list[tuple[Any, ...]] = []
    for season in tree.seasons:
        rows.append(("season", show_id, season.number, None, season.title, None,
                     season.air_date, season.fingerprint, "indexed"))
        rows.extend(("episode", show_id, season.number, e.number, e.title, e.aired_at,
                     e.air_date, None, "unreleased") for e in season.episodes)
    return rows

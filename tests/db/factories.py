"""Builders of show trees, movies and requests for the SQL-layer tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import asyncpg

from riven_async.db.catalog import CatalogRepo
from riven_async.db.executor import Executor
from riven_async.db.inbox import InboxRepo
from riven_async.db.items import ItemsRepo
from riven_async.db.jobs import JobsRepo
from riven_async.db.releases import ReleasesRepo
from riven_async.db.schedule import ScheduleRepo
from riven_async.db.stats import StatsRepo
from riven_async.db.trees import TreesRepo
from riven_async.domain.intents import ExternalIds, RequestMedia
from riven_async.domain.media import (
    EpisodeRecord,
    MovieRecord,
    SeasonRecord,
    ShowStatus,
    ShowTree,
)
from riven_async.domain.queue import BootId, new_boot_id

T0 = datetime(2025, 1, 6, 20, 0, tzinfo=UTC)


@dataclass
class ManualClock:
    """A clock the test moves by hand."""

    at: datetime = T0

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@dataclass
class Repos:
    """Every repository on one executor, sharing a manual clock and a boot id."""

    executor: Executor
    clock: ManualClock = field(default_factory=ManualClock)
    boot_id: BootId = field(default_factory=new_boot_id)

    def __post_init__(self) -> None:
        now = self.clock.now
        self.items = ItemsRepo(self.executor, now=now)
        self.trees = TreesRepo(self.executor, now=now)
        self.catalog = CatalogRepo(self.executor, now=now)
        self.jobs = JobsRepo(self.executor, now=now, boot_id=self.boot_id)
        self.schedule = ScheduleRepo(self.executor, now=now)
        self.releases = ReleasesRepo(self.executor, now=now)
        self.inbox = InboxRepo(self.executor, now=now, boot_id=self.boot_id)
        self.stats = StatsRepo(self.executor, now=now)


def show_tree(
    tmdb: int,
    *,
    seasons: int = 2,
    episodes: int = 3,
    title: str | None = None,
    first_air: datetime = T0 - timedelta(days=60),
    episode_title: str = "Episode",
    status: ShowStatus = ShowStatus.ONGOING,
) -> ShowTree:
    """A show with ``seasons`` x ``episodes`` weekly episodes from ``first_air``."""
    season_records = []
    for s in range(1, seasons + 1):
        eps = []
        for e in range(1, episodes + 1):
            aired = first_air + timedelta(weeks=(s - 1) * episodes + e - 1)
            eps.append(EpisodeRecord(e, f"{episode_title} {s}x{e}", aired, aired.date()))
        season_records.append(
            SeasonRecord(s, f"Season {s}", tuple(eps), eps[0].air_date if eps else None))
    return ShowTree(
        ids=ExternalIds(tmdb=tmdb, tvdb=tmdb + 100_000, imdb=f"tt{tmdb:07d}"),
        title=title or f"Show {tmdb}",
        next_check_at=T0 + timedelta(days=1),
        status=status,
        year=first_air.year,
        seasons=tuple(season_records),
    )


def movie(tmdb: int, *, title: str | None = None, released: datetime | None = None) -> MovieRecord:
    """A movie released a month before T0 unless told otherwise."""
    released_at = released or T0 - timedelta(days=30)
    return MovieRecord(
        ids=ExternalIds(tmdb=tmdb, imdb=f"tt{tmdb + 5_000_000:07d}"),
        title=title or f"Movie {tmdb}",
        next_check_at=T0 + timedelta(days=7),
        year=released_at.year,
        released_at=released_at,
        release_date=date(released_at.year, released_at.month, released_at.day),
    )


def request(
    kind: str = "show",
    *,
    tmdb: int | None = None,
    tvdb: int | None = None,
    imdb: str | None = None,
    seasons: tuple[int, ...] | None = None,
    source: str = "overseerr",
) -> RequestMedia:
    """A request as a webhook would make it."""
    assert kind in ("movie", "show")
    return RequestMedia(
        kind="movie" if kind == "movie" else "show",
        ids=ExternalIds(tmdb=tmdb, tvdb=tvdb, imdb=imdb),
        title=None,
        year=None,
        seasons=seasons,
        source=source,
        requester="alice",
    )


async def count(conn: Executor, sql: str, *args: object) -> int:
    """``SELECT count(*) ...`` as an int."""
    value = await conn.fetchval(sql, *args)
    assert isinstance(value, int)
    return value


async def truncate_all(conn: asyncpg.Connection | asyncpg.Pool) -> None:
    """Empty every table but the migrations' (hypothesis examples share one database);
    read from the catalog, so a table added by a new migration is emptied too."""
    tables = [r["tablename"] for r in await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        " AND tablename <> 'schema_migrations'")]
    await conn.execute(
        "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY")

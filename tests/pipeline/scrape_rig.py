"""A rig for the SCRAPE step: the scraper sims, a real database, the daemon's runtime.

The sims and the HTTP clients run on real time (retries and timeouts really wait); the
runtime's clock is a manual one starting at the sims' now, so the re-scrape schedule and
the database's timestamps are the test's to move.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg

from riven_async.config import LiveSettings, Settings, load_settings_from_dict
from riven_async.core.clock import ManualClock
from riven_async.core.locks import KeyedLock
from riven_async.db.notify import Listener
from riven_async.db.repos import Repos
from riven_async.domain.intents import ExternalIds, RequestMedia
from riven_async.domain.media import (
    EpisodeRecord,
    ItemId,
    MediaItem,
    SeasonRecord,
    ShowStatus,
    ShowTree,
)
from riven_async.domain.queue import Job, JobId, JobKind, JobStatus, new_boot_id
from riven_async.domain.releases import Release
from riven_async.domain.states import State
from riven_async.pipeline.runtime import Runtime
from riven_async.pipeline.steps import scrape
from riven_async.sim.fragment import config_fragment
from riven_async.sim.movies import Movie
from riven_async.sim.server import SimCluster, SimSettings
from riven_async.sim.shows import Show
from riven_async.upstreams import UpstreamClients
from riven_async.web.metrics import MetricsRegistry
from tests.conftest import TEST_API_KEY
from tests.services.scraper_fixtures import FAST_POLICY, STREMIO_SUFFIX, SimEnv, sim_env

SCRAPERS = ("torrentio", "comet", "mediafusion", "torznab", "zilean")


@dataclass
class ScrapeRig:
    """Sims, the runtime on a manual clock, and the SCRAPE step built as the daemon builds it."""

    env: SimEnv
    clock: ManualClock
    runtime: Runtime
    step: scrape.ScrapeStep
    jobs: int = field(default=0)

    @property
    def sims(self) -> SimCluster:
        return self.env.cluster

    @property
    def repos(self) -> Repos:
        return self.runtime.repos

    def job(self, item_id: int) -> Job:
        """A claimed SCRAPE job for ``item_id`` (the stage worker would hand this over)."""
        self.jobs += 1
        now = self.clock.now()
        return Job(
            id=JobId(self.jobs), kind=JobKind.SCRAPE, item_id=item_id,
            dedupe_key=f"scrape:{item_id}", status=JobStatus.RUNNING, run_at=now, priority=0,
            attempts=1, max_attempts=5, payload=None, last_error=None,
            claimed_by=self.runtime.boot_id, claimed_at=now, created_at=now,
        )

    async def add_movie(self, movie: Movie, *, imdb: str | None = None) -> ItemId:
        """The movie as an indexed item (``imdb`` overrides its IMDb id)."""
        [outcome] = await self.repos.items.request_many([RequestMedia(
            kind="movie", ids=ExternalIds(tmdb=movie.tmdb_id, imdb=imdb or movie.imdb_id),
            title=movie.title, year=movie.year, seasons=None, source="test")])
        await self.repos.items.set_state_many([outcome.item_id], State.INDEXED)
        return outcome.item_id

    async def add_show(
        self, show: Show, seasons: Sequence[int]
    ) -> dict[tuple[int, int], ItemId]:
        """The show's tree with ``seasons``; aired episodes indexed. (season, episode) -> id."""
        now = self.sims.world.now()
        records = []
        for number in seasons:
            episodes = tuple(
                EpisodeRecord(e.number, e.name, e.air_at) for e in show.episodes(number, now)
            )
            records.append(SeasonRecord(number, f"Season {number}", episodes))
        tree = ShowTree(
            ids=ExternalIds(tmdb=show.tmdb_id, tvdb=show.tvdb_id, imdb=show.imdb_id),
            title=show.title, next_check_at=now + timedelta(days=1), status=ShowStatus.ONGOING,
            year=show.year, seasons=tuple(records),
        )
        [result] = await self.repos.trees.upsert_show_trees([tree])
        tree_read = await self.repos.catalog.tree(result.show_id, releases_per_item=0)
        assert tree_read is not None
        ids = {(n.item.season_number or 0, n.item.episode_number or 0): n.item.id
               for n in tree_read.episodes()}
        aired = [n.item.id for n in tree_read.episodes()
                 if n.item.aired_at is not None and n.item.aired_at <= now]
        await self.repos.items.set_state_many(aired, State.INDEXED)
        return ids

    async def item(self, item_id: int) -> MediaItem:
        found = await self.repos.catalog.get(item_id)
        assert found is not None
        return found

    async def releases(self, item_id: int) -> list[Release]:
        return (await self.repos.releases.best_for_items([item_id], 1000)).get(item_id, [])

    def calls(self, name: str, *, path: str = "", query: str = "") -> int:
        """Requests a sim saw whose path contains ``path`` and query contains ``query``."""
        return sum(1 for r in self.sims[name].requests if path in r.path and query in r.query)


def scrape_settings(env: SimEnv, dsn: str, **sections: Mapping[str, Any]) -> Settings:
    """The daemon's settings: the sims' fragment, scrapers only, fast failure handling."""
    data: dict[str, Any] = copy.deepcopy(tomllib.loads(config_fragment(env.cluster)))
    for name, section in data["upstreams"].items():
        if name in SCRAPERS:
            section.update(FAST_POLICY)
            section["base_url"] += STREMIO_SUFFIX.get(name, "")
        else:
            section["enabled"] = False
    for name, values in sections.items():
        if name == "upstreams":
            for upstream, override in values.items():
                data["upstreams"][upstream].update(override)
        else:
            data[name] = {**data.get(name, {}), **values}
    data["server"] = {"port": 0, "api_key": TEST_API_KEY}
    data["database"] = {"url": dsn}
    return load_settings_from_dict(data)


@asynccontextmanager
async def scrape_rig(
    db_pool: asyncpg.Pool, db_dsn: str, *, sim: SimSettings | None = None,
    before: Any = None, **sections: Mapping[str, Any],
) -> AsyncIterator[ScrapeRig]:
    """Sims (checked for unexpected limit violations on exit), runtime and SCRAPE step.

    ``before(env)`` runs once the sims are up, before the clients are built.
    """
    chosen = sim or SimSettings(shows=40, movies=40, infringing_ratio=0.0)
    async with sim_env(chosen) as env, AsyncExitStack() as stack:
        if before is not None:
            before(env)
        settings = scrape_settings(env, db_dsn, **sections)
        upstreams = UpstreamClients.from_settings(settings)
        stack.push_async_callback(upstreams.aclose)
        clock = ManualClock(env.cluster.world.now())
        boot_id = new_boot_id()
        runtime = Runtime(
            live=LiveSettings(settings), clock=clock, pool=db_pool,
            repos=Repos.on(db_pool, clock, boot_id), upstreams=upstreams, locks=KeyedLock(),
            metrics=MetricsRegistry(), listener=Listener(lambda: asyncpg.connect(db_dsn)),
            boot_id=boot_id,
        )
        step = await scrape.build(runtime, stack)
        assert isinstance(step, scrape.ScrapeStep)
        yield ScrapeRig(env, clock, runtime, step)

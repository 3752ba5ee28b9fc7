"""The whole way after a request is indexed: scrape, download, link and scan against the sims.

A movie and a season are scraped by the SCRAPE step, then every due job is claimed through
``runtime.repos.jobs`` and run by its step until both reach Completed: links under the
library point at files on the simulated mount, each media server saw exactly the expected
refreshes, no debrid sim saw a torrent added twice, and no sim saw a limit violation.
"""

from __future__ import annotations

from collections import Counter
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path

import asyncpg

from riven_async.domain.intents import ExternalIds, RequestMedia
from riven_async.domain.media import EpisodeRecord, ItemId, SeasonRecord, ShowStatus, ShowTree
from riven_async.domain.queue import JobKind, NewJob
from riven_async.domain.states import State
from riven_async.pipeline.steps import scrape
from riven_async.sim.movies import Movie
from riven_async.sim.server import SimCluster
from riven_async.sim.shows import Show
from tests.pipeline.media_rig import ADD_PATHS, MediaRig, media_rig, on_disk

STAGES = (JobKind.SCRAPE, JobKind.DOWNLOAD, JobKind.LINK, JobKind.SCAN)
WATCHABLE = frozenset({"1080p", "720p"})


def _movie(sims: SimCluster) -> Movie:
    """A movie whose watchable releases are mostly cached on Real-Debrid."""
    now = sims.clock.now()
    for movie in sims.catalog.movies():
        releases = [r for r in sims.catalog.movie_releases(movie, now)
                    if r.resolution in WATCHABLE and r.seeders > 0 and not r.junk]
        cached = [r for r in releases if sims.world.is_cached("realdebrid", r.infohash, now)]
        if len(releases) >= 2 and len(cached) * 2 >= len(releases):
            return movie
    raise AssertionError("no movie fits")


def _season(sims: SimCluster) -> tuple[Show, int]:
    """A show and a fully aired season with a watchable pack cached on Real-Debrid."""
    now = sims.clock.now()
    for show in sims.catalog.shows():
        for plan in show.seasons:
            aired = show.episodes(plan.number, now)
            if plan.number == 0 or len(aired) < 4 or len(aired) != len(plan.air_epochs):
                continue
            packs = [r for r in sims.catalog.season_releases(show, plan.number, now)
                     if len(r.episodes) == len(aired) and r.resolution in WATCHABLE
                     and r.seeders > 0 and not r.junk]
            if packs and all(sims.world.is_cached("realdebrid", r.infohash, now) for r in packs):
                return show, plan.number
    raise AssertionError("no season fits")


async def _request(
    rig: MediaRig, movie: Movie, show: Show, season: int
) -> tuple[ItemId, list[ItemId]]:
    """The movie and the season as indexed items, each with its SCRAPE job."""
    repos, now = rig.repos, rig.sims.world.now()
    [outcome] = await repos.items.request_many([RequestMedia(
        kind="movie", ids=ExternalIds(tmdb=movie.tmdb_id, imdb=movie.imdb_id),
        title=movie.title, year=movie.year, seasons=None, source="test")])
    tree = ShowTree(
        ids=ExternalIds(tmdb=show.tmdb_id, tvdb=show.tvdb_id, imdb=show.imdb_id),
        title=show.title, next_check_at=now + timedelta(days=1), status=ShowStatus.ENDED,
        year=show.year,
        seasons=(SeasonRecord(season, f"Season {season}", tuple(
            EpisodeRecord(e.number, e.name, e.air_at) for e in show.episodes(season, now))),),
    )
    [upserted] = await repos.trees.upsert_show_trees([tree])
    read = await repos.catalog.tree(upserted.show_id, releases_per_item=0)
    assert read is not None
    episodes = [n.item.id for n in read.episodes(season)]
    await repos.items.set_state_many([outcome.item_id, *episodes], State.INDEXED)
    await repos.jobs.enqueue_many([NewJob(JobKind.SCRAPE, item_id=i)
                                   for i in (outcome.item_id, *episodes)])
    return outcome.item_id, episodes


async def _drive(rig: MediaRig) -> Counter[JobKind]:
    """Claim and run every due job, stage by stage, until nothing is left to do."""
    ran: Counter[JobKind] = Counter()
    for _ in range(20):
        progress = False
        for kind in STAGES:
            outcomes = await rig.run_due(kind)
            ran[kind] += len(outcomes)
            progress |= bool(outcomes)
            for outcome in outcomes:
                assert outcome.error is None, outcome
        if not progress:
            if not await rig.runtime.pool.fetchval("SELECT count(*) FROM jobs"):
                return ran
            # The mount catches up, and the coalesce window ends.
            await rig.advance(rig.sims.mount.lag_s)
    raise AssertionError(f"jobs left after 20 rounds: {ran}")


async def test_a_scraped_movie_and_season_reach_completed_against_the_sims(
    db_pool: asyncpg.Pool, db_dsn: str, tmp_path: Path
) -> None:
    async with media_rig(db_pool, db_dsn, tmp_path, scrapers=("torrentio",)) as rig, \
            AsyncExitStack() as stack:
        rig.others[JobKind.SCRAPE] = await scrape.build(rig.runtime, stack)
        movie = _movie(rig.sims)
        show, season = _season(rig.sims)
        movie_id, episodes = await _request(rig, movie, show, season)

        ran = await _drive(rig)

        items = [movie_id, *episodes]
        assert await rig.states(items) == {State.COMPLETED}
        show_id = (await rig.item(episodes[0])).show_id
        parents = await rig.runtime.pool.fetch(
            "SELECT kind, state FROM items WHERE id = $1 OR (show_id = $1 AND kind = 'season')",
            show_id)
        assert {(r["kind"], r["state"]) for r in parents} == {
            ("show", "completed"), ("season", "completed")}

        # Links under the library, pointing at files on the simulated mount.
        entries = {e.item_id: e for e in await rig.entries(items)}
        assert set(entries) == set(items)
        for entry in entries.values():
            link = Path(entry.link_path)
            assert link.is_relative_to(rig.library_root)
            disk = on_disk(link)
            assert disk.points_at == Path(entry.target_path)
            assert Path(entry.target_path).is_relative_to(rig.mount_root)
            assert disk.resolves_to_file
        movie_dir = Path(entries[movie_id].link_path).parent
        season_dir = Path(entries[episodes[0]].link_path).parent
        assert {Path(entries[i].link_path).parent for i in episodes} == {season_dir}
        assert season_dir.name == f"Season {season:02d}"

        # Each media server: one refresh of the movie's folder, one of the season's.
        expected = sorted([str(movie_dir), str(season_dir)])
        for name in ("plex", "jellyfin", "emby"):
            scans = rig.sims[name].sim.scans
            assert sorted(s.path for s in scans) == expected, name
            assert all(s.matched for s in scans), name
        assert ran[JobKind.SCAN] == 2

        # The season came from one pack: one add, whatever service took it.
        added = {name: rig.add_calls(name) for name in ADD_PATHS}
        assert sum(added.values()) >= 2
        duplicates = {h: n for h, n in rig.sims.realdebrid.sim.adds_per_hash.items() if n > 1}
        assert duplicates == {}
        downloads = await rig.repos.downloads.for_items(items)
        assert len({d.infohash for d in downloads}) == 2
    # media_rig's exit checked that no sim saw a limit violation.

"""The TMDB indexer against the TMDB and TVMaze sims, counting what each sim was asked."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given, settings, strategies as st

from riven_async.core.clock import ManualClock, ScaledClock
from riven_async.domain import media
from riven_async.domain.intents import ExternalIds
from riven_async.errors import UpstreamPayloadError
from riven_async.services.indexers.records import (
    AirTimeSource,
    IndexedShow,
    MetadataNotFound,
    ReleaseBasis,
    ReleaseDates,
    Resolved,
    SearchHit,
    SeasonFingerprint,
    SeasonSummary,
)
from riven_async.services.indexers.tmdb import (
    TmdbIndexer,
    best_match,
    plan_season_fetches,
    released_at,
)
from riven_async.sim.limits import Window
from riven_async.sim.movies import Movie
from riven_async.sim.shows import DAY_S, HOUR_S, Show, ShowKind
from tests.services.conftest import ClientFactory, Handler, UpstreamFactory
from tests.services.indexer_fixtures import IndexerRig, indexer_rig, load_sample
from tests.sim.simtest import START

NOW_S = START.timestamp()
MOVIE = media.MediaKind.MOVIE
SHOW = media.MediaKind.SHOW


def _regular(show: Show, at: datetime = START) -> list[int]:
    return [p.number for p in show.visible_seasons(at) if p.number > 0]


def _airing(show: Show) -> bool:
    """Returning, mid-season: an episode aired lately and the next is announced."""
    upcoming, last = show.next_to_air(START), show.last_aired(START)
    return (
        show.kind is ShowKind.RETURNING
        and upcoming is not None
        and last is not None
        and upcoming.season == last.season
        and len(_regular(show)) >= 2
    )


def _airing_quietly(show: Show) -> bool:
    """Airing, and nothing else is announced before the next episode has aired."""
    upcoming = show.next_to_air(START)
    if not _airing(show) or upcoming is None:
        return False
    until = upcoming.air_epoch + HOUR_S
    return not any(
        NOW_S < moment <= until for p in show.seasons for moment in (p.announced_at, p.extension_at)
    )


def _quiet_then_announced(show: Show) -> bool:
    """A regular season is announced within days, and every listed season is long over."""
    later = [p for p in show.seasons if p.number > 0 and NOW_S < p.announced_at < NOW_S + 5 * DAY_S]
    if not later or show.kind is ShowKind.REVIVED:
        return False
    announced = later[0].announced_at
    others = [p for p in show.seasons if p.number not in (0, later[0].number)]
    return bool(others) and all(p.air_epochs[-1] < announced - 10 * DAY_S for p in others)


def _show(rig: IndexerRig, predicate: Any) -> Show:
    found = rig.sims.catalog.find_show(predicate)
    assert found is not None, "the catalog has no show for this test"
    return found


def _known(indexed: IndexedShow) -> dict[int, str]:
    """What the database keeps between passes: each season's fingerprint."""
    return {s.number: s.fingerprint for s in indexed.seasons}


# --- resolving ------------------------------------------------------------------------


async def test_resolving_by_tmdb_id_with_a_kind_asks_nothing(
    clock: ManualClock, tmp_path: Path
) -> None:
    async with indexer_rig(clock, tmp_path) as rig:
        show = rig.sims.catalog.show(3)
        found = await rig.tmdb.resolve(ExternalIds(tmdb=show.tmdb_id), "show")
        assert found == Resolved(SHOW, media.TmdbId(show.tmdb_id))
        assert rig.tmdb_paths() == []
        with pytest.raises(ValueError, match="give the kind"):
            await rig.tmdb.resolve(ExternalIds(tmdb=show.tmdb_id))


async def test_resolving_by_imdb_id_finds_shows_and_movies_with_one_find_each(
    clock: ManualClock, tmp_path: Path
) -> None:
    async with indexer_rig(clock, tmp_path) as rig:
        show, movie = rig.sims.catalog.show(5), rig.sims.catalog.movie(7)
        assert await rig.tmdb.resolve(ExternalIds(imdb=show.imdb_id), "show") == Resolved(
            SHOW, media.TmdbId(show.tmdb_id)
        )
        # The kind comes from TMDB when the sender did not give one.
        assert await rig.tmdb.resolve(ExternalIds(imdb=movie.imdb_id)) == Resolved(
            MOVIE, media.TmdbId(movie.tmdb_id)
        )
        assert rig.tmdb_paths() == [f"/3/find/{show.imdb_id}", f"/3/find/{movie.imdb_id}"]
        assert [r.query.count("external_source=imdb_id") for r in rig.sims.tmdb.requests] == [1, 1]


async def test_resolving_by_tvdb_id_finds_the_show(clock: ManualClock, tmp_path: Path) -> None:
    async with indexer_rig(clock, tmp_path) as rig:
        show = rig.sims.catalog.show(11)
        found = await rig.tmdb.resolve(ExternalIds(tvdb=show.tvdb_id), "show")
        assert found == Resolved(SHOW, media.TmdbId(show.tmdb_id))
        assert rig.tmdb_paths() == [f"/3/find/{show.tvdb_id}"]
        assert "external_source=tvdb_id" in rig.sims.tmdb.requests[0].query


async def test_an_unknown_imdb_id_falls_back_to_the_tvdb_id(
    clock: ManualClock, tmp_path: Path
) -> None:
    async with indexer_rig(clock, tmp_path) as rig:
        show = rig.sims.catalog.show(2)
        found = await rig.tmdb.resolve(ExternalIds(imdb="tt9999998", tvdb=show.tvdb_id), "show")
        assert found.tmdb_id == show.tmdb_id
        assert rig.tmdb_paths() == ["/3/find/tt9999998", f"/3/find/{show.tvdb_id}"]


async def test_resolving_by_tvmaze_id_goes_through_tvmazes_externals(
    clock: ManualClock, tmp_path: Path
) -> None:
    async with indexer_rig(clock, tmp_path) as rig:
        show = rig.sims.catalog.show(9)
        found = await rig.tmdb.resolve(ExternalIds(tvmaze=show.tvmaze_id), "show")
        assert found == Resolved(SHOW, media.TmdbId(show.tmdb_id))
        assert rig.tvmaze_paths() == [f"/shows/{show.tvmaze_id}"]
        assert rig.tmdb_paths() == [f"/3/find/{show.imdb_id}"]  # IMDb first, as always


async def test_a_title_only_request_is_searched_with_its_year(
    clock: ManualClock, tmp_path: Path
) -> None:
    async with indexer_rig(clock, tmp_path) as rig:
        show, movie = rig.sims.catalog.show(13), rig.sims.catalog.movie(4)
        found = await rig.tmdb.resolve(ExternalIds(), "show", title=show.title, year=show.year)
        assert found == Resolved(SHOW, media.TmdbId(show.tmdb_id))
        hits = await rig.tmdb.search_movies(movie.title.upper(), movie.year)
        assert movie.tmdb_id in {h.tmdb_id for h in hits}
        found = await rig.tmdb.resolve(ExternalIds(), "movie", title=movie.title, year=movie.year)
        assert found == Resolved(MOVIE, media.TmdbId(movie.tmdb_id))
        searched = [r for r in rig.sims.tmdb.requests if r.path.startswith("/3/search/")]
        assert [r.path for r in searched] == ["/3/search/tv", "/3/search/movie", "/3/search/movie"]
        assert f"first_air_date_year={show.year}" in searched[0].query
        assert f"year={movie.year}" in searched[1].query


async def test_unknown_ids_are_a_typed_not_found(clock: ManualClock, tmp_path: Path) -> None:
    async with indexer_rig(clock, tmp_path) as rig:
        with pytest.raises(MetadataNotFound, match="tv 999999"):
            await rig.tmdb.show(999_999)
        with pytest.raises(MetadataNotFound, match="movie 999999"):
            await rig.tmdb.movie(999_999)
        with pytest.raises(MetadataNotFound, match="imdb tt0000001"):
            await rig.tmdb.resolve(ExternalIds(imdb="tt0000001"), "show")
        with pytest.raises(MetadataNotFound, match="title 'no such title'"):
            await rig.tmdb.resolve(ExternalIds(), "movie", title="no such title")
        with pytest.raises(MetadataNotFound):
            await rig.tvmaze.show(999_999)
        assert await rig.tvmaze.lookup(tvdb=1) is None
        assert {r.status for r in rig.sims.tmdb.requests} == {200, 404}


# --- indexing shows ---------------------------------------------------------------------


async def test_first_index_fetches_every_season_with_exact_air_times_merged(
    clock: ManualClock, tmp_path: Path
) -> None:
    async with indexer_rig(clock, tmp_path) as rig:
        show = _show(rig, _airing)
        indexed = await rig.tmdb.show(show.tmdb_id)

        seasons = _regular(show)
        assert rig.tmdb_paths() == [
            f"/3/tv/{show.tmdb_id}",
            *(f"/3/tv/{show.tmdb_id}/season/{n}" for n in seasons),
        ]
        # Lookup (its redirect is the second request), then the show with its episodes.
        assert rig.tvmaze_paths() == ["/lookup/shows", *[f"/shows/{show.tvmaze_id}"] * 2]
        assert indexed.ids == ExternalIds(
            tmdb=show.tmdb_id, tvdb=show.tvdb_id, imdb=show.imdb_id, tvmaze=show.tvmaze_id
        )
        assert (indexed.title, indexed.year) == (show.title, show.year)
        assert (indexed.tmdb_status, indexed.status) == (
            "Returning Series",
            media.ShowStatus.ONGOING,
        )
        assert indexed.air_timezone == show.network.timezone
        assert indexed.fetched_seasons == tuple(seasons)

        for season in indexed.seasons:
            expected = show.episodes(season.number, START)
            assert [e.number for e in season.episodes] == [e.number for e in expected]
            for mine, theirs in zip(season.episodes, expected, strict=True):
                if theirs.date_known:
                    assert (mine.air_at, mine.air_source) == (theirs.air_at, AirTimeSource.EXACT)
                    assert mine.air_date == show.local_air(theirs).date()
                else:
                    assert (mine.air_at, mine.air_date, mine.air_source) == (None, None, None)
                assert mine.tmdb_id == theirs.tmdb_id
                assert mine.runtime_min == theirs.runtime
        upcoming, last = show.next_to_air(START), show.last_aired(START)
        assert upcoming is not None
        assert last is not None
        assert indexed.next_air_at == upcoming.air_at
        assert indexed.last_air_at == last.air_at
        assert indexed.next_episode is not None
        assert (indexed.next_episode.season, indexed.next_episode.number) == (
            upcoming.season,
            upcoming.number,
        )


async def test_a_recheck_fetches_only_the_airing_season(clock: ManualClock, tmp_path: Path) -> None:
    async with indexer_rig(clock, tmp_path) as rig:
        show = _show(rig, _airing_quietly)
        first = await rig.tmdb.show(show.tmdb_id)
        upcoming = show.next_to_air(START)
        assert upcoming is not None

        clock.set_elapsed(upcoming.air_epoch - NOW_S + HOUR_S)  # the next episode has aired
        mark = rig.mark()
        again = await rig.tmdb.show(
            show.tmdb_id, known_seasons=_known(first), fresh=True, tvmaze_id=first.ids.tvmaze
        )
        assert rig.tmdb_paths(mark) == [
            f"/3/tv/{show.tmdb_id}",
            f"/3/tv/{show.tmdb_id}/season/{upcoming.season}",
        ]
        assert rig.tvmaze_paths(mark) == [f"/shows/{show.tvmaze_id}"]  # no lookup this time
        assert again.fetched_seasons == (upcoming.season,)
        assert again.last_air_at == upcoming.air_at
        aired = next(
            e
            for e in again.seasons[0].episodes
            if (e.season, e.number) == (upcoming.season, upcoming.number)
        )
        assert (aired.air_at, aired.air_source) == (upcoming.air_at, AirTimeSource.EXACT)


async def test_a_season_announced_later_is_fetched_alone_once_it_appears(
    clock: ManualClock, tmp_path: Path
) -> None:
    async with indexer_rig(clock, tmp_path, shows=200) as rig:
        show = _show(rig, _quiet_then_announced)
        new = next(p for p in show.seasons if p.number > 0 and p.announced_at > NOW_S)
        first = await rig.tmdb.show(show.tmdb_id)
        assert new.number not in first.fetched_seasons
        assert new.number not in {s.number for s in first.listed}

        clock.set_elapsed(new.announced_at - NOW_S - 60)  # a minute before: nothing new
        mark = rig.mark()
        quiet = await rig.tmdb.show(show.tmdb_id, known_seasons=_known(first), fresh=True)
        assert rig.tmdb_paths(mark) == [f"/3/tv/{show.tmdb_id}"]
        assert rig.tvmaze_paths(mark) == []
        assert quiet.seasons == ()
        assert quiet.fingerprint == first.fingerprint

        clock.set_elapsed(new.announced_at - NOW_S + 60)
        mark = rig.mark()
        announced = await rig.tmdb.show(
            show.tmdb_id, known_seasons=_known(first), fresh=True, tvmaze_id=first.ids.tvmaze
        )
        assert rig.tmdb_paths(mark) == [
            f"/3/tv/{show.tmdb_id}",
            f"/3/tv/{show.tmdb_id}/season/{new.number}",
        ]
        assert announced.fetched_seasons == (new.number,)
        assert announced.fingerprint != first.fingerprint
        assert announced.status is media.ShowStatus.ONGOING
        premiere = announced.seasons[0].episodes[0]
        assert premiere.air_at == datetime.fromtimestamp(new.air_epochs[0], UTC)
        assert announced.next_air_at == premiere.air_at


async def test_a_settled_ended_show_costs_one_call_to_recheck(
    clock: ManualClock, tmp_path: Path
) -> None:
    async with indexer_rig(clock, tmp_path) as rig:
        show = _show(rig, lambda s: s.kind is ShowKind.ENDED and len(_regular(s)) >= 2)
        first = await rig.tmdb.show(show.tmdb_id)
        assert first.status is media.ShowStatus.ENDED
        assert first.next_air_at is None
        clock.advance(30 * DAY_S)
        mark = rig.mark()
        again = await rig.tmdb.show(show.tmdb_id, known_seasons=_known(first), fresh=True)
        assert rig.tmdb_paths(mark) == [f"/3/tv/{show.tmdb_id}"]
        assert rig.tvmaze_paths(mark) == []
        assert again.seasons == ()
        assert again.status is media.ShowStatus.ENDED


async def test_a_seasons_hint_forces_that_season(clock: ManualClock, tmp_path: Path) -> None:
    async with indexer_rig(clock, tmp_path) as rig:
        show = _show(rig, lambda s: s.kind is ShowKind.ENDED and len(_regular(s)) >= 2)
        first = await rig.tmdb.show(show.tmdb_id)
        mark = rig.mark()
        await rig.tmdb.show(show.tmdb_id, known_seasons=_known(first), seasons=[1], fresh=True)
        assert rig.tmdb_paths(mark) == [f"/3/tv/{show.tmdb_id}", f"/3/tv/{show.tmdb_id}/season/1"]


async def test_cached_details_serve_a_first_index_but_never_a_recheck(
    clock: ManualClock, tmp_path: Path
) -> None:
    async with indexer_rig(clock, tmp_path) as rig:
        show = _show(rig, _airing)
        await rig.tmdb.show(show.tmdb_id)
        mark = rig.mark()
        await rig.tmdb.show(show.tmdb_id)
        assert rig.tmdb_paths(mark) == []  # details and seasons from the cache
        await rig.tmdb.show(show.tmdb_id, fresh=True)
        assert len(rig.tmdb_paths(mark)) == 1 + len(_regular(show))


async def test_a_hiatus_show_is_indexed_as_hiatus(clock: ManualClock, tmp_path: Path) -> None:
    async with indexer_rig(clock, tmp_path) as rig:
        show = _show(
            rig,
            lambda s: (
                s.status(START) in ("Returning Series", "In Production")
                and s.next_to_air(START) is None
                and (last := s.last_aired(START)) is not None
                and last.air_epoch < NOW_S - 120 * DAY_S
            ),
        )
        indexed = await rig.tmdb.show(show.tmdb_id)
        assert indexed.status is media.ShowStatus.HIATUS
        assert indexed.next_episode is None


async def test_the_indexed_show_becomes_the_tree_the_upsert_takes(
    clock: ManualClock, tmp_path: Path
) -> None:
    async with indexer_rig(clock, tmp_path) as rig:
        show = _show(rig, _airing)
        indexed = await rig.tmdb.show(show.tmdb_id)
        due = START + timedelta(hours=3)
        tree = indexed.to_tree(due)
        assert isinstance(tree, media.ShowTree)
        assert (tree.ids, tree.title, tree.next_check_at) == (indexed.ids, show.title, due)
        assert (tree.status, tree.next_air_at, tree.last_air_at) == (
            indexed.status,
            indexed.next_air_at,
            indexed.last_air_at,
        )
        assert tree.air_timezone == show.network.timezone
        assert [s.number for s in tree.seasons] == list(indexed.fetched_seasons)
        assert tree.episode_count == sum(len(s.episodes) for s in indexed.seasons)
        first_season = tree.seasons[0]
        assert first_season.fingerprint == indexed.seasons[0].fingerprint
        assert first_season.episodes[0].aired_at == indexed.seasons[0].episodes[0].air_at


async def test_specials_are_indexed_only_when_asked(clock: ManualClock, tmp_path: Path) -> None:
    async with indexer_rig(clock, tmp_path, include_specials=True) as rig:
        show = _show(rig, lambda s: any(p.number == 0 for p in s.visible_seasons(START)))
        indexed = await rig.tmdb.show(show.tmdb_id)
        assert indexed.fetched_seasons[0] == 0
        assert f"/3/tv/{show.tmdb_id}/season/0" in rig.tmdb_paths()
        # Specials have no number on TVMaze: their time is the show's weekly slot.
        special = indexed.seasons[0].episodes[0]
        assert special.air_source is AirTimeSource.SCHEDULE


# --- movies -----------------------------------------------------------------------------


async def test_a_movie_comes_with_release_dates_by_type_in_one_call(
    clock: ManualClock, tmp_path: Path
) -> None:
    async with indexer_rig(clock, tmp_path) as rig:
        movie = rig.sims.catalog.find_movie(lambda m: m.digital_s > NOW_S > m.theatrical_s)
        assert movie is not None
        indexed = await rig.tmdb.movie(movie.tmdb_id)
        assert rig.tmdb_paths() == [f"/3/movie/{movie.tmdb_id}"]
        assert "append_to_response=external_ids,release_dates" in rig.sims.tmdb.requests[0].query
        at = _at
        assert indexed.releases == ReleaseDates(
            premiere=at(movie.premiere_s),
            theatrical=at(movie.theatrical_s),
            digital=at(movie.digital_s),
            physical=at(movie.physical_s),
        )
        assert (indexed.released_at, indexed.released_basis) == (
            at(movie.digital_s),
            ReleaseBasis.DIGITAL,
        )
        assert indexed.ids == ExternalIds(tmdb=movie.tmdb_id, imdb=movie.imdb_id)
        assert (indexed.title, indexed.year, indexed.tmdb_status) == (
            movie.title,
            movie.year,
            "Released",
        )
        record = indexed.to_record(START)
        assert isinstance(record, media.MovieRecord)
        assert (record.released_at, record.release_date) == (
            at(movie.digital_s),
            at(movie.theatrical_s).date(),
        )


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


async def test_release_regions_narrow_the_dates(clock: ManualClock, tmp_path: Path) -> None:
    async with indexer_rig(clock, tmp_path, release_regions=["GB"]) as rig:
        movie: Movie = rig.sims.catalog.movie(0)
        indexed = await rig.tmdb.movie(movie.tmdb_id)
        # The sim's GB entry repeats the US theatrical date only.
        assert indexed.releases == ReleaseDates(theatrical=_at(movie.theatrical_s))
        assert indexed.released_basis is ReleaseBasis.ESTIMATE


# --- change feeds -----------------------------------------------------------------------


async def test_change_feeds_return_every_changed_id_across_pages_and_spans(
    clock: ManualClock, tmp_path: Path
) -> None:
    async with indexer_rig(clock, tmp_path, shows=600, movies=300) as rig:
        clock.advance(3 * DAY_S)
        start = START - timedelta(days=17)
        ids = await rig.tmdb.changed_shows(start)
        catalog = rig.sims.catalog
        day = datetime.combine(start.date(), datetime.min.time(), UTC)
        end = clock.now()  # TMDB's feed ends now, whatever the end date says
        middle = day + timedelta(days=14)  # an end_date covers its whole day
        expected = {s.tmdb_id for s in catalog.changed_shows(day, middle)}
        expected |= {s.tmdb_id for s in catalog.changed_shows(middle, end)}
        assert ids == expected
        pages = [r for r in rig.sims.tmdb.requests if r.path == "/3/tv/changes"]
        assert len(pages) > 2, "the range spans two requests and more than one page"
        assert {r.status for r in pages} == {200}
        assert any("page=2" in r.query for r in pages)

        movies = await rig.tmdb.changed_movies(START - timedelta(days=10))
        first = datetime.combine((START - timedelta(days=10)).date(), datetime.min.time(), UTC)
        assert movies == {m.tmdb_id for m in catalog.changed_movies(first, end)}
        with pytest.raises(ValueError, match="start"):
            await rig.tmdb.changed_shows(clock.now() + timedelta(days=1))


# --- limits -----------------------------------------------------------------------------


async def test_a_burst_of_indexing_stays_inside_both_upstreams_limits(tmp_path: Path) -> None:
    clock = ScaledClock(START, speed=25.0)
    real_limits = {"tmdb": ["40/1s"], "tvmaze": ["20/10s"]}
    async with indexer_rig(clock, tmp_path, shows=30, rate_limits=real_limits) as rig:
        shows = [rig.sims.catalog.show(i) for i in range(24)]
        indexed = await asyncio.gather(*(rig.tmdb.show(s.tmdb_id) for s in shows))
        # TVMaze is asked only for shows with a season to fetch (not one still unannounced).
        timed = [s for s in shows if _regular(s)]
        assert [i.ids.tvmaze for i in indexed if i.seasons] == [s.tvmaze_id for s in timed]
        assert rig.sims.tmdb.violations == 0
        assert rig.sims.tvmaze.violations == 0
        assert len(rig.tmdb_paths()) > 40  # more than one window's worth
        assert len(rig.tvmaze_paths()) == 3 * len(timed) > 20


async def test_a_surprise_429_burst_is_absorbed_by_the_http_client(tmp_path: Path) -> None:
    clock = ScaledClock(START, speed=25.0)
    async with indexer_rig(clock, tmp_path, shows=30, tvmaze=False) as rig:
        # Our config says 40/1s; TMDB now refuses past 8/1s.
        rig.sims.tmdb.limiter.set_windows([Window(8, 1.0)])
        shows = [rig.sims.catalog.show(i) for i in range(12)]
        indexed = await asyncio.gather(*(rig.tmdb.show(s.tmdb_id) for s in shows))
        assert [i.title for i in indexed] == [s.title for s in shows]
        assert [i.fetched_seasons for i in indexed] == [tuple(_regular(s)) for s in shows]
        stats = rig.clients["tmdb"].stats()
        assert stats.rate_limited > 0
        assert rig.sims.tmdb.log.by_status[429] == rig.sims.tmdb.violations > 0


# --- pure rules -------------------------------------------------------------------------

TODAY = date(2026, 3, 1)


def _fp(count: int, first: str | None, last: str | None, pending: bool = False) -> str:
    return SeasonFingerprint(
        count,
        date.fromisoformat(first) if first else None,
        date.fromisoformat(last) if last else None,
        pending,
    ).encode()


def test_the_plan_fetches_new_changed_pending_and_recent_seasons_only() -> None:
    listed = [
        SeasonSummary(1, 10, date(2020, 1, 1)),  # settled
        SeasonSummary(2, 12, date(2021, 1, 1)),  # one more episode than we knew
        SeasonSummary(3, 8, date(2022, 1, 1)),  # premiere moved
        SeasonSummary(4, 8, date(2025, 9, 1)),  # an episode had no date
        SeasonSummary(5, 8, date(2026, 1, 10)),  # aired five days ago
        SeasonSummary(6, 6, date(2026, 6, 1)),  # new
        SeasonSummary(7, 0, None),  # announced, no episodes yet
    ]
    known = {
        1: _fp(10, "2020-01-01", "2020-03-01"),
        2: _fp(11, "2021-01-01", "2021-03-01"),
        3: _fp(8, "2022-01-08", "2022-03-01"),
        4: _fp(8, "2025-09-01", "2025-10-20", pending=True),
        5: _fp(8, "2026-01-10", "2026-02-24"),
    }
    assert plan_season_fetches(listed, known, today=TODAY) == (2, 3, 4, 5, 6)
    assert plan_season_fetches(listed, known, today=TODAY, settle_days=3) == (2, 3, 4, 6)
    assert plan_season_fetches(listed, known, always={1, 7}, today=TODAY) == (1, 2, 3, 4, 5, 6, 7)
    # A season TMDB serves before its details list it (the next episode's, a hint).
    assert plan_season_fetches(listed, known, always={9}, today=TODAY) == (2, 3, 4, 5, 6, 9)
    assert plan_season_fetches(listed, None, today=TODAY) == (1, 2, 3, 4, 5, 6)
    assert plan_season_fetches(listed, {n: "garbage" for n in range(1, 8)}, today=TODAY) == (
        1,
        2,
        3,
        4,
        5,
        6,
    )


@settings(max_examples=200, deadline=None)
@given(
    count=st.integers(0, 5000),
    first=st.none() | st.dates(),
    last=st.none() | st.dates(),
    pending=st.booleans(),
)
def test_season_fingerprints_round_trip(
    count: int, first: date | None, last: date | None, pending: bool
) -> None:
    fingerprint = SeasonFingerprint(count, first, last, pending)
    assert SeasonFingerprint.parse(fingerprint.encode()) == fingerprint


@pytest.mark.parametrize(
    "text", [None, "", "v0|1||||", "v1|x|||settled", "v1|1|2020-13-01||pending"]
)
def test_foreign_fingerprints_parse_as_unknown(text: str | None) -> None:
    assert SeasonFingerprint.parse(text) is None


def test_best_match_prefers_the_exact_title_and_year() -> None:
    def hit(ident: int, title: str, year: int | None) -> SearchHit:
        return SearchHit(SHOW, media.TmdbId(ident), title, year)

    hits = [hit(1, "The Office (US)", 2005), hit(2, "The Office", 2001), hit(3, "The Office", 2005)]
    assert best_match(hits, "the office", 2005) == hits[2]
    assert best_match(hits, "The Office", 2002) == hits[1]  # a year off
    assert best_match(hits, "The Office!", None) == hits[1]
    assert best_match(hits, "Office", 2005) == hits[0]
    assert best_match(hits, "Office", None) == hits[0]
    assert best_match([], "Office", None) is None


def test_a_movie_without_home_release_dates_is_estimated_from_the_cinema() -> None:
    cinema = datetime(2026, 2, 1, tzinfo=UTC)
    digital = datetime(2026, 3, 20, tzinfo=UTC)
    physical = datetime(2026, 3, 10, tzinfo=UTC)
    assert released_at(ReleaseDates(theatrical=cinema, digital=digital), None, DAY_S) == (
        digital,
        ReleaseBasis.DIGITAL,
    )
    both = ReleaseDates(theatrical=cinema, digital=digital, physical=physical)
    assert released_at(both, None, DAY_S) == (physical, ReleaseBasis.PHYSICAL)
    assert released_at(ReleaseDates(theatrical=cinema), None, 10 * DAY_S) == (
        cinema + timedelta(days=10),
        ReleaseBasis.ESTIMATE,
    )
    assert released_at(ReleaseDates(), date(2026, 2, 1), 0.0) == (cinema, ReleaseBasis.ESTIMATE)
    assert released_at(ReleaseDates(), None, 0.0) == (None, None)


# --- real-shaped samples ----------------------------------------------------------------


def _json(payload: Any) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(payload)

    return handler


async def test_the_upstream_samples_index_without_tvmaze(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    details = load_sample("tmdb_tv_details.json")
    season = load_sample("tmdb_tv_season_details_airing.json")
    movie = load_sample("tmdb_movie_details.json")
    show_id, number = details["id"], season["season_number"]
    up = await make_upstream(
        {
            f"/tv/{show_id}": _json(details),
            f"/tv/{show_id}/season/{number}": _json(season),
            f"/movie/{movie['id']}": _json(movie),
        }
    )
    clock = ManualClock(datetime(2025, 1, 10, tzinfo=UTC))
    indexer = TmdbIndexer(make_client(up, name="tmdb"), clock=clock)
    settled = {
        entry["season_number"]: _fp(entry["episode_count"], entry["air_date"], "2000-01-01")
        for entry in details["seasons"]
        if entry["season_number"] != number
    }
    indexed = await indexer.show(show_id, known_seasons=settled)
    assert indexed.ids == ExternalIds(tmdb=2734, tvdb=75692, imdb="tt0203259")
    assert indexed.status is media.ShowStatus.ONGOING
    assert indexed.fetched_seasons == (number,)
    # NBC is a US network: the fallback zone is New York's prime time, 20:00 EST.
    assert indexed.air_timezone == "America/New_York"
    assert indexed.next_air_at == datetime(2025, 1, 17, 1, 0, tzinfo=UTC)
    undated = [e for e in indexed.seasons[0].episodes if e.air_date is None]
    assert undated
    assert all(e.air_at is None for e in undated)
    assert all(
        e.air_source is AirTimeSource.FALLBACK for e in indexed.seasons[0].episodes if e.air_at
    )
    stored = SeasonFingerprint.parse(indexed.seasons[0].fingerprint)
    assert stored is not None
    assert stored.pending

    film = await indexer.movie(movie["id"])
    assert film.ids == ExternalIds(tmdb=693134, imdb="tt15239678")
    assert film.released_basis is ReleaseBasis.DIGITAL
    assert film.released_at == datetime(2024, 4, 16, tzinfo=UTC)


async def test_tmdbs_next_episode_aired_by_its_exact_time_is_the_last_one_not_missing_data(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    # TMDB still lists S26E09 (2025-01-16, 20:00 EST = 01:00 UTC) as next at 02:00 UTC.
    details = load_sample("tmdb_tv_details.json")
    season = load_sample("tmdb_tv_season_details_airing.json")
    show_id, number = details["id"], season["season_number"]
    aired = datetime(2025, 1, 17, 1, 0, tzinfo=UTC)
    settled = {
        entry["season_number"]: _fp(entry["episode_count"], entry["air_date"], "2000-01-01")
        for entry in details["seasons"]
        if entry["season_number"] != number
    }
    served = await make_upstream({f"/tv/{show_id}": _json(details),
                                  f"/tv/{show_id}/season/{number}": _json(season)})
    clock = ManualClock(aired + timedelta(hours=1))
    indexer = TmdbIndexer(make_client(served, name="tmdb"), clock=clock)
    indexed = await indexer.show(show_id, known_seasons=settled)
    assert indexed.next_episode is not None
    assert indexed.next_episode.air_at == aired
    # E10 has no date yet: nothing is next; the aired one is the last (the weekly slot).
    assert (indexed.next_air_at, indexed.last_air_at) == (None, aired)
    assert indexed.status is media.ShowStatus.ONGOING
    # Its season not served: its data is missing, so the passed time stays (re-checked).
    missing = await make_upstream({f"/tv/{show_id}": _json(details)})
    indexer = TmdbIndexer(make_client(missing, name="tmdb"), clock=clock)
    indexed = await indexer.show(show_id, known_seasons=settled)
    assert indexed.fetched_seasons == ()
    assert indexed.next_air_at == aired


async def test_a_season_the_details_list_but_tmdb_does_not_serve_is_skipped(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    details = load_sample("tmdb_tv_details_ended.json")
    season = load_sample("tmdb_tv_season_details.json")
    found = load_sample("tmdb_find_by_imdb.json")
    up = await make_upstream(
        {
            "/find/tt0903747": _json(found),
            "/tv/1396": _json(details),
            "/tv/1396/season/1": _json(season),
        }
    )
    indexer = TmdbIndexer(make_client(up, name="tmdb"), clock=ManualClock(START))
    resolved = await indexer.resolve(ExternalIds(imdb="tt0903747"), "show")
    assert resolved == Resolved(SHOW, media.TmdbId(1396))
    indexed = await indexer.show(resolved.tmdb_id)
    assert [path for path, hits in up.hits.items() if hits] == [
        "/find/tt0903747",
        "/tv/1396",
        *(f"/tv/1396/season/{n}" for n in range(1, 6)),
    ]
    assert indexed.fetched_seasons == (1,)
    assert [s.number for s in indexed.listed] == [0, 1, 2, 3, 4, 5]
    assert (indexed.status, indexed.next_air_at) == (media.ShowStatus.ENDED, None)
    assert indexed.last_air_at == datetime(2013, 9, 30, 0, 0, tzinfo=UTC)  # 20:00 EDT
    pilot = indexed.seasons[0].episodes[0]
    assert (pilot.title, pilot.runtime_min) == (season["episodes"][0]["name"], 59)
    assert pilot.air_at == datetime(2008, 1, 21, 1, 0, tzinfo=UTC)  # 20:00 EST


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


async def test_a_malformed_answer_is_a_typed_payload_error(
    clock: ManualClock, tmp_path: Path
) -> None:
    async with indexer_rig(clock, tmp_path) as rig:
        rig.sims.tmdb.faults.set(malformed_rate=1.0)
        with pytest.raises(UpstreamPayloadError, match="tmdb: HTTP 200"):
            await rig.tmdb.show(rig.sims.catalog.show(1).tmdb_id)


async def test_upstream_slips_in_a_season_are_absorbed_or_typed(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    details = load_sample("tmdb_tv_details_ended.json")
    season = load_sample("tmdb_tv_season_details.json")
    twice = dict(season, episodes=[*season["episodes"], season["episodes"][0]])
    negative = dict(season, season_number=-1)
    up = await make_upstream(
        {
            "/tv/1396": _json(details),
            "/tv/1396/season/1": _json(twice),
            "/tv/1396/season/2": _json(negative),
        }
    )
    indexer = TmdbIndexer(make_client(up, name="tmdb"), clock=ManualClock(START))
    settled = {
        entry["season_number"]: _fp(entry["episode_count"], entry["air_date"], "2000-01-01")
        for entry in details["seasons"]
    }
    indexed = await indexer.show(1396, known_seasons=settled, seasons=[1])
    assert indexed.fetched_seasons == (1,)
    numbers = [e.number for e in indexed.seasons[0].episodes]
    assert numbers == list(range(1, len(season["episodes"]) + 1))  # the repeat is dropped
    assert indexed.to_tree(START).episode_count == len(numbers)
    with pytest.raises(UpstreamPayloadError, match="season_number"):
        await indexer.show(1396, known_seasons=settled, seasons=[2])

"""TVMaze: matching, exact air times, the updates feed, and the air-time fallbacks."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings, strategies as st

from riven_async.core.clock import ManualClock
from riven_async.domain import media
from riven_async.domain.intents import ExternalIds
from riven_async.services.indexers.records import (
    AirTimeSource,
    EpisodeAiring,
    MetadataNotFound,
    TvmazeShowInfo,
)
from riven_async.services.indexers.tvmaze import (
    COUNTRY_ZONES,
    AirTimeRule,
    find_airings,
    zone_named,
)
from riven_async.sim.shows import DAY_S, HOUR_S, Show, ShowKind
from tests.services.indexer_fixtures import IndexerRig, indexer_rig
from tests.sim.simtest import START

NOW_S = START.timestamp()
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


def _show(rig: IndexerRig, index: int = 13) -> Show:
    return rig.sims.catalog.show(index)


# --- matching and reading -------------------------------------------------------------


async def test_lookup_by_tvdb_or_imdb_follows_the_redirect_to_the_show(
    clock: ManualClock, tmp_path: Path
) -> None:
    async with indexer_rig(clock, tmp_path) as rig:
        show = _show(rig)
        assert await rig.tvmaze.lookup(tvdb=show.tvdb_id) == show.tvmaze_id
        assert await rig.tvmaze.lookup(imdb=show.imdb_id) == show.tvmaze_id
        assert rig.tvmaze_paths() == ["/lookup/shows", f"/shows/{show.tvmaze_id}"] * 2
        queries = [r.query for r in rig.sims.tvmaze.requests if r.path == "/lookup/shows"]
        assert queries == [f"thetvdb={show.tvdb_id}", f"imdb={show.imdb_id}"]
        assert await rig.tvmaze.lookup(tvdb=12) is None  # 404: TVMaze has no such show
        with pytest.raises(ValueError, match="exactly one"):
            await rig.tvmaze.lookup()
        with pytest.raises(ValueError, match="exactly one"):
            await rig.tvmaze.lookup(tvdb=show.tvdb_id, imdb=show.imdb_id)


async def test_a_show_comes_with_its_zone_slot_ids_and_every_airstamp(
    clock: ManualClock, tmp_path: Path
) -> None:
    async with indexer_rig(clock, tmp_path) as rig:
        show = _show(rig)
        info = await rig.tvmaze.show(show.tvmaze_id)
        assert rig.tvmaze_paths() == [f"/shows/{show.tvmaze_id}"]  # one call, episodes embedded
        assert (info.tvmaze_id, info.title, info.status) == (show.tvmaze_id, show.title, "Running")
        assert (info.tvdb_id, info.imdb_id) == (show.tvdb_id, show.imdb_id)
        assert info.timezone == show.network.timezone
        assert info.schedule_time == time.fromisoformat(show.airtime)
        listed = show.all_episodes(START)
        assert [(a.season, a.number) for a in info.airings] == [
            (e.season, e.number) for e in listed
        ]
        for airing, episode in zip(info.airings, listed, strict=True):
            if episode.date_known:
                assert airing.air_at == episode.air_at
                assert airing.air_date == show.local_air(episode).date()
                assert airing.air_time == show.local_air(episode).time()
            else:
                assert (airing.air_at, airing.air_date, airing.air_time) == (None, None, None)
            assert airing.runtime_min == show.runtime


async def test_find_uses_a_known_tvmaze_id_and_rematches_a_stale_one(
    clock: ManualClock, tmp_path: Path
) -> None:
    async with indexer_rig(clock, tmp_path) as rig:
        show = _show(rig)
        ids = ExternalIds(tmdb=show.tmdb_id, tvdb=show.tvdb_id, imdb=show.imdb_id)
        found = await rig.tvmaze.find(ExternalIds(tvmaze=show.tvmaze_id, tvdb=show.tvdb_id))
        assert found is not None
        assert found.tvmaze_id == show.tvmaze_id
        assert rig.tvmaze_paths() == [f"/shows/{show.tvmaze_id}"]

        mark = rig.mark()
        stale = ExternalIds(tvmaze=999_999, tvdb=show.tvdb_id)
        found = await rig.tvmaze.find(stale, fresh=True)
        assert found is not None
        assert found.tvmaze_id == show.tvmaze_id
        assert rig.tvmaze_paths(mark) == [
            "/shows/999999",
            "/lookup/shows",
            f"/shows/{show.tvmaze_id}",
            f"/shows/{show.tvmaze_id}",
        ]
        assert await rig.tvmaze.find(ExternalIds(tmdb=show.tmdb_id)) is None
        assert (await rig.tvmaze.find(ids)) == found


async def test_the_updates_feed_names_shows_changed_since_a_moment(
    clock: ManualClock, tmp_path: Path
) -> None:
    async with indexer_rig(clock, tmp_path) as rig:
        clock.advance(2 * DAY_S)
        now = clock.now()
        day = await rig.tvmaze.updated_shows("day")
        expected = {
            s.tvmaze_id: s.last_change(now)
            for s in rig.sims.catalog.shows()
            if s.last_change(now) >= now.timestamp() - DAY_S
        }
        assert day == expected
        assert day, "some shows changed in the last day"

        since = now - timedelta(days=3)
        recent = await rig.tvmaze.updated_since(since, now)
        assert recent == {
            s.tvmaze_id: s.last_change(now)
            for s in rig.sims.catalog.shows()
            if s.last_change(now) >= since.timestamp()
        }
        assert [r.query for r in rig.sims.tvmaze.requests] == ["since=day", "since=week"]
        await rig.tvmaze.updated_since(now - timedelta(days=45), now)
        assert rig.sims.tvmaze.requests[-1].query == ""  # beyond a month: the whole list


async def test_an_unknown_show_is_a_typed_not_found(clock: ManualClock, tmp_path: Path) -> None:
    async with indexer_rig(clock, tmp_path) as rig:
        with pytest.raises(MetadataNotFound, match="tvmaze: show 424242 not found"):
            await rig.tvmaze.show(424_242)


# --- merged into the TMDB tree ----------------------------------------------------------


async def test_without_tvmaze_air_times_fall_back_to_20_00_in_the_networks_zone(
    clock: ManualClock, tmp_path: Path
) -> None:
    async with indexer_rig(clock, tmp_path, tvmaze=False) as rig:
        show = _show(rig)
        indexed = await rig.tmdb.show(show.tmdb_id)
        assert rig.tvmaze_paths() == []
        zone = ZoneInfo(show.network.timezone)
        assert COUNTRY_ZONES[show.network.country] == show.network.timezone
        assert indexed.air_timezone == show.network.timezone
        assert indexed.ids.tvmaze is None
        dated = [(e, e.air_date) for s in indexed.seasons for e in s.episodes if e.air_date]
        assert dated
        for episode, day in dated:
            assert episode.air_source is AirTimeSource.FALLBACK
            assert episode.air_at == datetime.combine(day, time(20), zone).astimezone(UTC)


async def test_with_no_zone_known_air_times_fall_back_to_utc(
    clock: ManualClock, tmp_path: Path
) -> None:
    rule = AirTimeRule(fallback_time=time(21, 30), country_zones={})
    async with indexer_rig(clock, tmp_path, tvmaze=False, air_times=rule) as rig:
        show = _show(rig)
        indexed = await rig.tmdb.show(show.tmdb_id)
        assert indexed.air_timezone is None
        episode = indexed.seasons[0].episodes[0]
        assert episode.air_date is not None
        assert episode.air_source is AirTimeSource.UTC
        assert episode.air_at == datetime.combine(episode.air_date, time(21, 30), UTC)


async def test_a_tvmaze_outage_never_fails_an_index(clock: ManualClock, tmp_path: Path) -> None:
    async with indexer_rig(clock, tmp_path) as rig:
        show = _show(rig)
        rig.sims.tvmaze.faults.outage(DAY_S)  # 503 with a Retry-After too long to wait for
        indexed = await rig.tmdb.show(show.tmdb_id)
        assert rig.tvmaze_paths() == ["/lookup/shows"]
        assert indexed.ids.tvmaze is None
        assert {e.air_source for s in indexed.seasons for e in s.episodes if e.air_at} == {
            AirTimeSource.FALLBACK
        }
        assert indexed.air_timezone == show.network.timezone


async def test_a_revived_show_is_matched_with_exact_times_for_its_new_season(
    clock: ManualClock, tmp_path: Path
) -> None:
    async with indexer_rig(clock, tmp_path) as rig:
        show = rig.sims.catalog.find_show(
            lambda s: s.kind is ShowKind.REVIVED and s.revival_at < NOW_S + 3 * DAY_S
        )
        assert show is not None
        first = await rig.tmdb.show(show.tmdb_id)
        assert first.status is media.ShowStatus.ENDED
        clock.set_elapsed(show.revival_at - NOW_S + HOUR_S)
        known = {s.number: s.fingerprint for s in first.seasons}
        again = await rig.tmdb.show(
            show.tmdb_id, known_seasons=known, fresh=True, tvmaze_id=first.ids.tvmaze
        )
        assert again.status is media.ShowStatus.ONGOING
        assert again.tmdb_status == "Returning Series"
        new = show.seasons[-1]
        assert again.fetched_seasons == (new.number,)
        premiere = again.seasons[0].episodes[0]
        assert premiere.air_source is AirTimeSource.EXACT
        assert premiere.air_at == datetime.fromtimestamp(new.air_epochs[0], UTC)
        assert again.next_air_at == premiere.air_at


# --- the rule, pure ---------------------------------------------------------------------

RULE = AirTimeRule()
WINTER, SUMMER = date(2026, 1, 15), date(2026, 7, 1)


def _info(zone: str | None, slot: time | None = None) -> TvmazeShowInfo:
    return TvmazeShowInfo(
        tvmaze_id=media.TvmazeId(1),
        title="x",
        status="Running",
        timezone=zone,
        schedule_time=slot,
        tvdb_id=None,
        imdb_id=None,
        updated=None,
    )


def test_an_airstamp_is_exact_whatever_else_is_known() -> None:
    stamp = datetime(2026, 1, 16, 2, 0, tzinfo=UTC)
    airing = EpisodeAiring(1, 1, WINTER, time(21), stamp)
    assert RULE.air_time(date(2020, 1, 1), airing, NEW_YORK, time(18)) == (
        stamp,
        AirTimeSource.EXACT,
    )


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (WINTER, datetime(2026, 1, 16, 2, 0, tzinfo=UTC)),  # 21:00 EST = UTC-5
        (SUMMER, datetime(2026, 7, 2, 1, 0, tzinfo=UTC)),  # 21:00 EDT = UTC-4
    ],
)
def test_tvmazes_local_date_and_time_are_read_in_the_networks_zone(
    day: date, expected: datetime
) -> None:
    airing = EpisodeAiring(1, 1, day, time(21), None)
    assert RULE.air_time(None, airing, NEW_YORK) == (expected, AirTimeSource.SCHEDULE)


def test_without_an_episode_time_the_shows_slot_then_the_fallback_time_apply() -> None:
    slot = time(22, 30)
    assert RULE.air_time(WINTER, None, NEW_YORK, slot) == (
        datetime(2026, 1, 16, 3, 30, tzinfo=UTC),
        AirTimeSource.SCHEDULE,
    )
    assert RULE.air_time(SUMMER, None, NEW_YORK) == (
        datetime(2026, 7, 2, 0, 0, tzinfo=UTC),
        AirTimeSource.FALLBACK,
    )
    dateless = EpisodeAiring(1, 1, None, None, None)
    assert RULE.air_time(WINTER, dateless, ZoneInfo("Europe/London")) == (
        datetime(2026, 1, 15, 20, 0, tzinfo=UTC),
        AirTimeSource.FALLBACK,
    )
    assert RULE.air_time(None, dateless, NEW_YORK, slot) == (None, None)


def test_with_no_zone_the_date_is_read_in_utc() -> None:
    late = AirTimeRule(fallback_time=time(23, 15))
    assert late.air_time(WINTER, None, None) == (
        datetime(2026, 1, 15, 23, 15, tzinfo=UTC),
        AirTimeSource.UTC,
    )


def test_the_zone_is_tvmazes_then_the_countrys_then_none() -> None:
    assert RULE.zone(_info("Asia/Tokyo"), ["US"]) == ZoneInfo("Asia/Tokyo")
    assert RULE.zone(_info(None), ["gb", "US"]) == ZoneInfo("Europe/London")
    assert RULE.zone(None, ["XX", "DE"]) == ZoneInfo("Europe/Berlin")
    assert RULE.zone(_info("Mars/Olympus_Mons"), ["XX"]) is None
    assert RULE.zone(None, []) is None
    assert AirTimeRule(country_zones={"US": "America/Los_Angeles"}).zone(None, ["US"]) == (
        ZoneInfo("America/Los_Angeles")
    )
    assert zone_named("") is None
    assert zone_named("../etc/passwd") is None


def test_every_country_zone_exists() -> None:
    assert all(zone_named(name) is not None for name in COUNTRY_ZONES.values())


@settings(max_examples=300, deadline=None)
@given(
    day=st.dates(min_value=date(1990, 1, 1), max_value=date(2035, 12, 31)),
    zone=st.sampled_from(sorted(set(COUNTRY_ZONES.values()))),
    local=st.times(min_value=time(6), max_value=time(23, 59)),
)
def test_a_fallback_time_reads_back_as_that_wall_clock_time_on_that_day(
    day: date, zone: str, local: time
) -> None:
    tz = ZoneInfo(zone)
    at, source = AirTimeRule(fallback_time=local).air_time(day, None, tz)
    assert source is AirTimeSource.FALLBACK
    assert at is not None
    assert at.tzinfo is UTC
    back = at.astimezone(tz)
    # DST switches happen at night, so a day-time wall clock always exists exactly once.
    assert (back.date(), back.time().replace(tzinfo=None)) == (day, local)


async def test_find_airings_is_none_when_tvmaze_is_off() -> None:
    assert await find_airings(None, ExternalIds(tvdb=1)) is None

"""The shared clock drives what every sim says: airings, announcements, revivals, releases."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import aiohttp

from riven_async.core.clock import ManualClock, ScaledClock
from riven_async.sim.server import SimCluster, SimSettings, run_sims
from riven_async.sim.shows import DAY_S, HOUR_S, Show, ShowKind
from tests.sim.simtest import START, get

NOW_S = START.timestamp()


def _tomorrow(show: Show) -> bool:
    upcoming = show.next_to_air(START)
    return upcoming is not None and 12 * HOUR_S <= upcoming.air_epoch - NOW_S <= 36 * HOUR_S


async def test_clock_moves_a_show_from_next_episode_tomorrow_to_aired(
    sims: SimCluster, clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    show = sims.catalog.find_show(lambda s: _tomorrow(s) and s.last_aired(START) is not None)
    assert show is not None
    episode = show.next_to_air(START)
    assert episode is not None
    tmdb_url = f"{sims.tmdb.base_url}/tv/{show.tmdb_id}"
    auth = {"api_key": sims.tmdb.api_key}
    stream_url = (
        f"{sims.torrentio.base_url}/stream/series/{show.imdb_id}:"
        f"{episode.season}:{episode.number}.json"
    )
    before = (await get(http, tmdb_url, params=auth)).body
    assert before["next_episode_to_air"]["id"] == episode.tmdb_id
    assert before["last_episode_to_air"]["id"] != episode.tmdb_id
    assert before["next_episode_to_air"]["air_date"] == show.local_air(episode).date().isoformat()
    assert (await get(http, stream_url)).body["streams"] == []
    maze = (await get(http, f"{sims.tvmaze.base_url}/shows/{show.tvmaze_id}")).body
    assert maze["_links"]["nextepisode"]["href"].endswith(f"/episodes/{episode.tvmaze_id}")

    clock.set_elapsed(episode.air_epoch - NOW_S + 1)
    after = (await get(http, tmdb_url, params=auth)).body
    assert after["last_episode_to_air"]["id"] == episode.tmdb_id
    assert after["last_episode_to_air"]["runtime"] == show.runtime
    assert (after["next_episode_to_air"] or {}).get("id") != episode.tmdb_id
    maze = (await get(http, f"{sims.tvmaze.base_url}/shows/{show.tvmaze_id}")).body
    assert maze["_links"]["previousepisode"]["href"].endswith(f"/episodes/{episode.tvmaze_id}")
    changes = (await get(http, f"{sims.tmdb.base_url}/tv/changes", params=auth)).body
    assert show.tmdb_id in {c["id"] for c in changes["results"]}

    clock.advance(12 * HOUR_S)
    streams = (await get(http, stream_url)).body["streams"]
    assert streams, "releases appear within hours of the air time"


async def test_a_season_appears_when_its_announce_time_passes(
    sims: SimCluster, clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    show = sims.catalog.find_show(
        lambda s: (
            any(p.announced_at > NOW_S and p.number > 0 for p in s.seasons)
            and s.kind is not ShowKind.REVIVED
        )
    )
    assert show is not None
    season = next(p for p in show.seasons if p.announced_at > NOW_S)
    auth = {"api_key": sims.tmdb.api_key}
    tmdb_url = f"{sims.tmdb.base_url}/tv/{show.tmdb_id}"
    season_url = f"{tmdb_url}/season/{season.number}"
    maze_url = f"{sims.tvmaze.base_url}/shows/{show.tvmaze_id}/episodes"
    before = (await get(http, tmdb_url, params=auth)).body
    assert season.number not in {s["season_number"] for s in before["seasons"]}
    assert (await get(http, season_url, params=auth)).status == 404
    assert season.number not in {e["season"] for e in (await get(http, maze_url)).body}

    clock.set_elapsed(season.announced_at - NOW_S)
    after = (await get(http, tmdb_url, params=auth)).body
    listed = {s["season_number"]: s for s in after["seasons"]}
    assert listed[season.number]["episode_count"] == len(season.air_epochs)
    assert (await get(http, season_url, params=auth)).status == 200
    assert season.number in {e["season"] for e in (await get(http, maze_url)).body}
    day = clock.now().date().isoformat()
    changes = await get(
        http,
        f"{sims.tmdb.base_url}/tv/changes",
        params={**auth, "start_date": day, "end_date": day},
    )
    assert show.tmdb_id in {c["id"] for c in changes.body["results"]}
    updates = (
        await get(http, f"{sims.tvmaze.base_url}/updates/shows", params={"since": "day"})
    ).body
    assert updates[str(show.tvmaze_id)] == season.announced_at


async def test_a_revived_show_returns_when_the_revival_is_announced(
    sims: SimCluster, clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    show = sims.catalog.find_show(lambda s: s.kind is ShowKind.REVIVED)
    assert show is not None
    url = f"{sims.tmdb.base_url}/tv/{show.tmdb_id}"
    auth = {"api_key": sims.tmdb.api_key}
    before = (await get(http, url, params=auth)).body
    assert (before["status"], before["in_production"]) == ("Ended", False)
    clock.set_elapsed(show.revival_at - NOW_S)
    after = (await get(http, url, params=auth)).body
    assert (after["status"], after["in_production"]) == ("Returning Series", True)
    assert after["number_of_seasons"] == before["number_of_seasons"] + 1
    maze = (await get(http, f"{sims.tvmaze.base_url}/shows/{show.tvmaze_id}")).body
    assert maze["status"] == "Running"


async def test_an_episode_order_extension_adds_episodes_to_the_current_season(
    sims: SimCluster, clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    show = sims.catalog.find_show(lambda s: any(p.extension_from for p in s.seasons))
    assert show is not None
    season = next(p for p in show.seasons if p.extension_from)
    url = f"{sims.tmdb.base_url}/tv/{show.tmdb_id}/season/{season.number}"
    auth = {"api_key": sims.tmdb.api_key}
    before = (await get(http, url, params=auth)).body["episodes"]
    assert len(before) == season.extension_from - 1
    assert before[-1]["episode_type"] != "finale"
    clock.set_elapsed(season.extension_at - NOW_S)
    after = (await get(http, url, params=auth)).body["episodes"]
    assert len(after) == len(season.air_epochs)
    assert after[-1]["episode_type"] == "finale"


def test_air_times_follow_the_networks_wall_clock_across_dst(sims: SimCluster) -> None:
    show = sims.catalog.find_show(
        lambda s: (
            s.network.timezone == "America/New_York"
            and any(len(p.air_epochs) >= 8 for p in s.seasons if p.number)
        )
    )
    assert show is not None
    local_times = {show.local_air(e).strftime("%H:%M") for e in show.all_episodes(START)}
    assert len(local_times) == 1


def test_a_simulated_week_moves_many_shows(sims: SimCluster, clock: ManualClock) -> None:
    catalog = sims.catalog
    week = START + timedelta(days=7)
    aired = [
        s
        for s in catalog.shows()
        if any(NOW_S < e.air_epoch <= week.timestamp() for e in s.all_episodes(week))
    ]
    changed = catalog.changed_shows(START, week)
    assert aired
    assert {s.index for s in aired} <= {s.index for s in changed}
    clock.set_elapsed(7 * DAY_S)
    assert all(s.last_aired(clock.now()) is not None for s in aired)


async def test_a_scaled_clock_runs_days_of_airings_in_real_seconds(
    http: aiohttp.ClientSession,
) -> None:
    week_in_two_seconds = 7 * DAY_S / 2
    clock = ScaledClock(START, week_in_two_seconds)
    async with run_sims(SimSettings(shows=80, movies=5), clock) as sims:
        show = sims.catalog.find_show(_tomorrow)
        assert show is not None
        episode = show.next_to_air(START)
        assert episode is not None
        url = f"{sims.tmdb.base_url}/tv/{show.tmdb_id}"
        params = {"api_key": sims.tmdb.api_key}
        wait_s = (episode.air_epoch - NOW_S) / week_in_two_seconds + 0.05
        await asyncio.sleep(wait_s)
        body = (await get(http, url, params=params)).body
        assert body["last_episode_to_air"]["id"] == episode.tmdb_id
        assert wait_s < 1.0

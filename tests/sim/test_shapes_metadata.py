"""TMDB and TVMaze answer with the same keys and value types as the real APIs' samples."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp

from riven_async.sim.server import SimCluster
from riven_async.sim.shows import ShowKind
from tests.sim.simtest import assert_same_shape, get

Sample = Callable[[str], Any]


def _tmdb_auth(sims: SimCluster) -> dict[str, str]:
    return {"Authorization": f"Bearer {sims.tmdb.api_key}"}


async def test_tmdb_tv_details_match_returning_and_ended_samples(
    sims: SimCluster, http: aiohttp.ClientSession, sample: Sample
) -> None:
    catalog, now = sims.catalog, sims.clock.now()
    airing = catalog.find_show(
        lambda s: s.next_to_air(now) is not None and s.last_aired(now) is not None
    )
    ended = catalog.find_show(lambda s: s.kind is ShowKind.ENDED)
    assert airing is not None
    assert ended is not None
    bodies = []
    for show, name in ((airing, "tmdb_tv_details.json"), (ended, "tmdb_tv_details_ended.json")):
        reply = await get(
            http,
            f"{sims.tmdb.base_url}/tv/{show.tmdb_id}",
            params={"append_to_response": "external_ids"},
            headers=_tmdb_auth(sims),
        )
        assert reply.status == 200
        assert_same_shape(reply.body, sample(name))
        assert reply.body["external_ids"]["imdb_id"] == show.imdb_id
        assert reply.body["external_ids"]["tvdb_id"] == show.tvdb_id
        bodies.append(reply.body)
    assert bodies[0]["next_episode_to_air"] is not None
    assert bodies[1]["status"] == "Ended"
    assert bodies[1]["next_episode_to_air"] is None


async def test_tmdb_season_details_match_complete_and_airing_samples(
    sims: SimCluster, http: aiohttp.ClientSession, sample: Sample
) -> None:
    now = sims.clock.now()
    show = sims.catalog.find_show(
        lambda s: s.next_to_air(now) is not None and s.last_aired(now) is not None
    )
    assert show is not None
    upcoming = show.next_to_air(now)
    assert upcoming is not None
    reply = await get(
        http,
        f"{sims.tmdb.base_url}/tv/{show.tmdb_id}/season/{upcoming.season}",
        headers=_tmdb_auth(sims),
    )
    assert reply.status == 200
    assert_same_shape(
        reply.body,
        sample("tmdb_tv_season_details.json"),
        sample("tmdb_tv_season_details_airing.json"),
    )
    first = await get(
        http,
        f"{sims.tmdb.base_url}/tv/{show.tmdb_id}/season/1",
        params={"api_key": sims.tmdb.api_key},
    )
    assert_same_shape(first.body, sample("tmdb_tv_season_details.json"))


async def test_tmdb_movie_details_with_release_dates_match_the_sample(
    sims: SimCluster, http: aiohttp.ClientSession, sample: Sample
) -> None:
    movie = sims.catalog.movie(0)
    reply = await get(
        http,
        f"{sims.tmdb.base_url}/movie/{movie.tmdb_id}",
        params={"append_to_response": "external_ids,release_dates"},
        headers=_tmdb_auth(sims),
    )
    assert reply.status == 200
    assert_same_shape(reply.body, sample("tmdb_movie_details.json"))
    types = [d["type"] for d in reply.body["release_dates"]["results"][0]["release_dates"]]
    assert types == [1, 3, 4, 5]


async def test_tmdb_find_by_imdb_and_tvdb_cross_links_ids(
    sims: SimCluster, http: aiohttp.ClientSession, sample: Sample
) -> None:
    show, movie = sims.catalog.show(3), sims.catalog.movie(3)
    base, auth = sims.tmdb.base_url, _tmdb_auth(sims)
    tv = await get(
        http, f"{base}/find/{show.imdb_id}", params={"external_source": "imdb_id"}, headers=auth
    )
    assert_same_shape(tv.body, sample("tmdb_find_by_imdb.json"))
    assert [r["id"] for r in tv.body["tv_results"]] == [show.tmdb_id]
    film = await get(
        http, f"{base}/find/{movie.imdb_id}", params={"external_source": "imdb_id"}, headers=auth
    )
    assert_same_shape(film.body, sample("tmdb_find_movie_by_imdb.json"))
    assert [r["id"] for r in film.body["movie_results"]] == [movie.tmdb_id]
    by_tvdb = await get(
        http, f"{base}/find/{show.tvdb_id}", params={"external_source": "tvdb_id"}, headers=auth
    )
    assert [r["id"] for r in by_tvdb.body["tv_results"]] == [show.tmdb_id]


async def test_tmdb_changes_and_errors_match_the_samples(
    sims: SimCluster, http: aiohttp.ClientSession, sample: Sample
) -> None:
    base, auth = sims.tmdb.base_url, _tmdb_auth(sims)
    changes = await get(http, f"{base}/tv/changes", headers=auth)
    assert changes.status == 200
    assert_same_shape(changes.body, sample("tmdb_tv_changes.json"))
    errors = {
        e["body"]["status_code"]: (e["http_status"], e["body"]) for e in sample("tmdb_errors.json")
    }
    missing = await get(http, f"{base}/tv/999999999", headers=auth)
    assert (missing.status, missing.body) == errors[34]
    bad_key = await get(http, f"{base}/tv/60000", params={"api_key": "wrong"})
    assert (bad_key.status, bad_key.body) == errors[7]
    too_long = await get(
        http,
        f"{base}/tv/changes",
        headers=auth,
        params={"start_date": "2025-01-01", "end_date": "2025-02-01"},
    )
    assert (too_long.status, too_long.body) == errors[20]
    big_page = await get(
        http, f"{base}/search/tv", headers=auth, params={"query": "x", "page": "501"}
    )
    assert (big_page.status, big_page.body) == errors[22]
    appends = ",".join(f"a{i}" for i in range(21))
    too_many = await get(
        http, f"{base}/tv/60000", headers=auth, params={"append_to_response": appends}
    )
    assert (too_many.status, too_many.body) == errors[27]


async def test_tmdb_search_finds_titles_by_words(
    sims: SimCluster, http: aiohttp.ClientSession
) -> None:
    show = sims.catalog.show(7)
    reply = await get(
        http,
        f"{sims.tmdb.base_url}/search/tv",
        headers=_tmdb_auth(sims),
        params={"query": show.title.lower()},
    )
    assert reply.body["results"][0]["id"] == show.tmdb_id
    assert {"page", "results", "total_pages", "total_results"} == reply.body.keys()


async def test_tvmaze_show_and_episodes_carry_exact_air_times(
    sims: SimCluster, http: aiohttp.ClientSession
) -> None:
    now = sims.clock.now()
    show = sims.catalog.find_show(lambda s: s.next_to_air(now) is not None)
    assert show is not None
    lookup = await get(
        http, f"{sims.tvmaze.base_url}/lookup/shows", params={"thetvdb": str(show.tvdb_id)}
    )
    assert lookup.status == 302
    assert lookup.headers["Location"] == f"{sims.tvmaze.base_url}/shows/{show.tvmaze_id}"
    assert (
        await get(http, f"{sims.tvmaze.base_url}/lookup/shows", params={"imdb": "tt0000001"})
    ).status == 404
    body = (await get(http, lookup.headers["Location"])).body
    assert body["externals"] == {"tvrage": None, "thetvdb": show.tvdb_id, "imdb": show.imdb_id}
    assert body["network"]["country"]["timezone"] == show.network.timezone
    assert body["schedule"]["time"] == show.airtime
    assert len(body["schedule"]["days"]) == 1
    episodes = (await get(http, f"{sims.tvmaze.base_url}/shows/{show.tvmaze_id}/episodes")).body
    upcoming = show.next_to_air(now)
    assert upcoming is not None
    listed = next(
        e for e in episodes if (e["season"], e["number"]) == (upcoming.season, upcoming.number)
    )
    assert listed["airstamp"] == upcoming.air_at.isoformat()
    assert listed["airtime"] == show.airtime
    assert {
        "id",
        "url",
        "name",
        "season",
        "number",
        "type",
        "airdate",
        "airtime",
        "airstamp",
        "runtime",
        "rating",
        "image",
        "summary",
        "_links",
    } == listed.keys()


async def test_tvmaze_updates_feed_maps_ids_to_epochs(
    sims: SimCluster, http: aiohttp.ClientSession
) -> None:
    reply = await get(http, f"{sims.tvmaze.base_url}/updates/shows")
    assert len(reply.body) == sims.catalog.show_count
    assert all(key.isdigit() and isinstance(value, int) for key, value in reply.body.items())
    bad = await get(http, f"{sims.tvmaze.base_url}/updates/shows", params={"since": "year"})
    assert bad.status == 400

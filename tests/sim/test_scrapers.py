"""Scraper sims filter, sort and mark results the way the real addons and indexers do."""

from __future__ import annotations

import aiohttp

from riven_async.core.clock import ManualClock
from riven_async.sim.limits import Window
from riven_async.sim.server import SimCluster
from riven_async.sim.shows import Show, ShowKind
from riven_async.sim.stremio import encode_config
from tests.sim.simtest import get, xml_tree

_RANK = {"4k": 0, "1080p": 1, "720p": 2, "480p": 3}


def _show(sims: SimCluster) -> Show:
    show = sims.catalog.find_show(
        lambda s: s.kind is ShowKind.ENDED and sum(1 for p in s.seasons if p.number) >= 2
    )
    assert show is not None
    return show


async def test_torrentio_sorts_by_quality_then_size_and_limits_per_quality(
    sims: SimCluster, http: aiohttp.ClientSession
) -> None:
    show = _show(sims)
    url = (
        f"{sims.torrentio.base_url}/sort=qualitysize|limit=1/stream/series/{show.imdb_id}:1:1.json"
    )
    streams = (await get(http, url)).body["streams"]
    qualities = [s["name"].split("\n")[1].split(" ")[0] for s in streams]
    assert len(qualities) == len(set(qualities))
    assert qualities == sorted(qualities, key=lambda q: _RANK.get(q, 9))


async def test_torrentio_marks_each_simulated_debrid_from_its_own_cache(
    sims: SimCluster, http: aiohttp.ClientSession
) -> None:
    show = _show(sims)
    releases = {r.title: r for r in sims.catalog.episode_releases(show, 1, 1, sims.clock.now())}
    for moch, short in (("alldebrid", "AD"), ("torbox", "TB"), ("premiumize", "PM")):
        url = f"{sims.torrentio.base_url}/{moch}=KEY/stream/series/{show.imdb_id}:1:1.json"
        for stream in (await get(http, url)).body["streams"]:
            release = releases[stream["title"].split("\n")[0]]
            cached = moch != "premiumize" and sims.world.is_cached(moch, release.infohash)
            assert stream["name"].startswith(f"[{short}+]" if cached else f"[{short} download]")
            assert f"/resolve/{moch}/KEY/{release.infohash}/" in stream["url"]


async def test_comet_debrid_mode_and_cached_only(
    sims: SimCluster, http: aiohttp.ClientSession
) -> None:
    show = _show(sims)
    now = sims.clock.now()
    releases = sims.catalog.episode_releases(show, 1, 1, now)
    cached = {r.infohash for r in releases if sims.world.is_cached("realdebrid", r.infohash)}
    config = encode_config({"debridService": "realdebrid", "debridApiKey": "K", "cachedOnly": True})
    url = f"{sims.comet.base_url}/{config}/stream/series/{show.imdb_id}:1:1.json"
    streams = (await get(http, url)).body["streams"]
    assert len(streams) == len(cached)
    assert all(s["name"].startswith("[RD⚡] Comet") and "infoHash" not in s for s in streams)
    assert {s["url"].split("/playback/")[1].split("/")[0] for s in streams} == cached


async def test_torznab_filters_by_category_and_season(
    sims: SimCluster, http: aiohttp.ClientSession
) -> None:
    show = _show(sims)
    base, key = sims.torznab.base_url, sims.torznab.api_key
    season = await get(
        http, f"{base}/api", params={"apikey": key, "t": "tvsearch", "q": show.title, "season": "2"}
    )
    items = xml_tree(season.text)["rss"][0]["channel"][0]["item"]
    expected = sims.catalog.season_releases(show, 2, sims.clock.now())
    assert len(items) == len(expected)
    uhd = await get(
        http,
        f"{base}/api",
        params={"apikey": key, "t": "tvsearch", "q": f"{show.title} S01E01", "cat": "5045"},
    )
    attr = "{http://torznab.com/schemas/2015/feed}attr"
    for item in xml_tree(uhd.text)["rss"][0]["channel"][0].get("item", []):
        assert {a["@value"] for a in item[attr] if a["@name"] == "category"} == {"5045"}
    movies = await get(
        http,
        f"{base}/api",
        params={
            "apikey": key,
            "t": "movie",
            "imdbid": sims.catalog.movie(2).imdb_id.removeprefix("tt"),
        },
    )
    assert movies.status == 200
    unknown = await get(
        http,
        f"{sims.torznab.url}/api/v2.0/indexers/nope/results/torznab/api",
        params={"apikey": key, "t": "caps"},
    )
    assert unknown.status == 200
    assert 'code="201"' in unknown.text
    bad_function = await get(
        http, f"{sims.torznab.url}/3/api", params={"apikey": key, "t": "music"}
    )
    assert bad_function.status == 400


async def test_torznab_rate_limit_is_an_xml_error_with_retry_after(
    sims: SimCluster, clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    sims.torznab.limiter.set_windows([Window(1, 60.0)])
    base, key = sims.torznab.base_url, sims.torznab.api_key
    await get(http, f"{base}/api", params={"apikey": key, "t": "caps"})
    limited = await get(http, f"{base}/api", params={"apikey": key, "t": "caps"})
    assert limited.status == 429
    assert limited.headers["Retry-After"] == "60"
    assert 'code="900"' in limited.text


async def test_zilean_filters_by_resolution_and_category(
    sims: SimCluster, http: aiohttp.ClientSession
) -> None:
    show = _show(sims)
    hd = await get(
        http,
        f"{sims.zilean.base_url}/dmm/filtered",
        params={"query": show.title, "resolution": "1080p"},
    )
    assert hd.body
    assert {r["resolution"] for r in hd.body} == {"1080p"}
    movie = sims.catalog.movie(4)
    films = await get(
        http,
        f"{sims.zilean.base_url}/dmm/filtered",
        params={"imdbid": movie.imdb_id, "category": "movie"},
    )
    assert all(r["category"] == "movie" and r["parsed_title"] == movie.title for r in films.body)
    found = await get(
        http, f"{sims.zilean.base_url}/torznab/api", params={"t": "search", "q": show.title}
    )
    assert "<item>" in found.text
    assert "magnet:?xt=urn:btih:" in found.text

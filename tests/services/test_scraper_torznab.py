"""Torznab scraper (Jackett, Prowlarr) against the sim, the samples and a .torrent server."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs

import aiohttp
import pytest
from hypothesis import given, strategies as st

from riven_async.errors import RateLimited, UpstreamError, UpstreamPayloadError
from riven_async.services.scrapers import ParseError, ScrapeQuery
from riven_async.services.scrapers.torznab import (
    CAPS_NAMESPACE,
    JACKETT_FEED,
    PROWLARR_FEED,
    Caps,
    FeedItem,
    SearchMode,
    TorznabErrorReply,
    TorznabScraper,
    parse_caps,
    parse_feed,
    parse_xml,
    redirected_magnet,
    search_params,
)
from riven_async.sim.limits import Window
from riven_async.sim.torznab_feed import INDEXERS, indexer_for
from tests.services.scraper_fixtures import (
    EpisodePick,
    SimEnv,
    make_torrent,
    pick_episode,
    sim_env,
    torrent_feed_server,
    torrent_infohash,
)

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "upstream-samples"
EPISODE = ScrapeQuery.for_episode(1, 2, imdb_id="tt0903747", tvdb_id=81189, title="Breaking Bad")
SEASON = ScrapeQuery.for_season(3, imdb_id="tt0903747", title="Breaking Bad")
MOVIE = ScrapeQuery.for_movie(imdb_id="tt0133093", tmdb_id=603, title="The Matrix", year=1999)


@pytest.fixture
async def env() -> AsyncIterator[SimEnv]:
    async with sim_env() as running:
        yield running


def _sample(name: str) -> bytes:
    path = SAMPLES / name
    if not path.is_file():
        pytest.skip(f"upstream sample {name} not found")
    return path.read_bytes()


def _query(pick: EpisodePick) -> ScrapeQuery:
    return ScrapeQuery.for_episode(
        pick.season, pick.episode, imdb_id=pick.show.imdb_id, title=pick.show.title
    )


def _params(query: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(query).items()}


# -- parsing ------------------------------------------------------------------------------


def test_caps_sample() -> None:
    caps = parse_caps(_sample("torznab_caps.xml"))
    assert caps.server == "Jackett"
    assert caps.limit_max == 100
    assert caps.tv == SearchMode(True, frozenset({"q", "season", "ep", "imdbid", "tvdbid"}))
    assert caps.movie == SearchMode(True, frozenset({"q", "imdbid", "tmdbid"}))
    assert caps.search.available
    assert {2000, 2045, 5000, 5070, 100001} <= caps.categories


def test_feed_sample() -> None:
    items = parse_feed(_sample("torznab_search.xml"))
    assert items == [
        FeedItem(
            title="Breaking.Bad.S01E01.720p.HDTV.x264-CTU",
            infohash="8c3a9f0e1d2b4c5d6e7f8091a2b3c4d5e6f70812",
            link="http://localhost:9117/dl/1337x/?jackett_apikey=JACKETTAPIKEY"
            "&path=Q2ZESjhHZ2xFd1hPdE1kR0tN&file=Breaking.Bad.S01E01.720p.HDTV.x264-CTU",
            size_bytes=1170378588,
            seeders=31,
            provider="1337x",
        ),
        FeedItem(
            title="Breaking Bad S01 1080p BluRay x265-RARBG",
            infohash="2b3f1c6a9d8e7f6054433221100ffeeddccbbaa9",
            link=None,
            size_bytes=8053063680,
            seeders=142,
            provider="The Pirate Bay",
        ),
    ]


def test_empty_feed_and_error_samples() -> None:
    assert parse_feed(_sample("torznab_search_empty.xml")) == []
    assert parse_feed(_sample("torznab_error.xml")) == TorznabErrorReply(100, "Invalid API Key")


def test_magnet_only_items_get_their_hash_from_the_magnet() -> None:
    infohash = "8c3a9f0e1d2b4c5d6e7f8091a2b3c4d5e6f70812"
    base32 = base64.b32encode(bytes.fromhex(infohash))
    body = (
        b'<rss version="2.0"><channel><item><title>A</title>'
        b"<link>magnet:?xt=urn:btih:" + base32 + b"&amp;dn=A</link>"
        b"</item></channel></rss>"
    )
    items = parse_feed(body)
    assert isinstance(items, list)
    assert [(i.infohash, i.link) for i in items] == [(infohash, None)]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<rss><channel>",
        b"<html>blocked</html>",
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><rss><channel/></rss>',
    ],
)
def test_unusable_xml_is_a_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_feed(body)


@given(st.binary(max_size=400))
def test_feed_parser_on_arbitrary_bytes_raises_only_parse_error(body: bytes) -> None:
    with contextlib.suppress(ParseError):
        parse_feed(body)
    with contextlib.suppress(ParseError):
        parse_caps(body)


@given(
    st.lists(
        st.sampled_from(
            [
                "<item>",
                "</item>",
                "<title>T</title>",
                '<torznab:attr name="seeders" value="x"/>',
                '<torznab:attr name="infohash" value="zz"/>',
                '<torznab:attr name="size" value="99999999999999999999999"/>',
                "<size>-5</size>",
                "<link>magnet:?xt=urn:btih:</link>",
                "<link>http://h/x</link>",
                "<enclosure/>",
            ]
        ),
        max_size=12,
    )
)
def test_feed_parser_on_odd_items_raises_only_parse_error(parts: list[str]) -> None:
    body = (
        '<rss xmlns:torznab="http://torznab.com/schemas/2015/feed"><channel>'
        + "".join(parts)
        + "</channel></rss>"
    ).encode()
    with contextlib.suppress(ParseError):
        parse_feed(body)


def test_xml_size_is_bounded() -> None:
    with pytest.raises(ParseError, match="limit"):
        parse_xml(b"<rss>" + b" " * (16 * 1024 * 1024) + b"</rss>")


# -- which search each caps allows ----------------------------------------------------------


FULL = Caps(
    tv=SearchMode(True, frozenset({"q", "season", "ep", "imdbid", "tvdbid"})),
    movie=SearchMode(True, frozenset({"q", "imdbid", "tmdbid"})),
    categories=frozenset({2000, 5000}),
    limit_max=50,
)


def test_ids_when_caps_advertise_them() -> None:
    assert search_params(FULL, EPISODE) == {
        "t": "tvsearch",
        "imdbid": "0903747",
        "tvdbid": "81189",
        "season": "1",
        "ep": "2",
        "cat": "5000",
        "limit": "50",
    }
    assert search_params(FULL, SEASON) == {
        "t": "tvsearch",
        "imdbid": "0903747",
        "season": "3",
        "cat": "5000",
        "limit": "50",
    }
    assert search_params(FULL, MOVIE) == {
        "t": "movie",
        "imdbid": "0133093",
        "tmdbid": "603",
        "cat": "2000",
        "limit": "50",
    }


def test_q_when_caps_take_no_ids() -> None:
    caps = Caps(tv=SearchMode(True, frozenset({"q", "season", "ep"})))
    assert search_params(caps, EPISODE) == {
        "t": "tvsearch",
        "season": "1",
        "ep": "2",
        "q": "Breaking Bad",
        "cat": "5000",
        "limit": "100",
    }
    only_q = Caps(tv=SearchMode(True, frozenset({"q"})), movie=SearchMode(True, frozenset({"q"})))
    assert search_params(only_q, EPISODE)["q"] == "Breaking Bad S01E02"  # type: ignore[index]
    assert search_params(only_q, MOVIE)["q"] == "The Matrix 1999"  # type: ignore[index]


def test_plain_search_when_tv_search_is_unavailable() -> None:
    assert search_params(Caps(), SEASON) == {
        "t": "search",
        "q": "Breaking Bad S03",
        "cat": "5000",
        "limit": "100",
    }


def test_nothing_to_search_with() -> None:
    no_title = ScrapeQuery.for_episode(1, 1, imdb_id="tt1")
    assert search_params(Caps(), no_title) is None
    no_search = Caps(search=SearchMode(False))
    assert search_params(no_search, EPISODE) is None


def test_categories_the_indexer_lacks_are_not_sent() -> None:
    caps = Caps(categories=frozenset({100001}))
    assert "cat" not in search_params(caps, EPISODE, tv_categories=(5000, 5040))  # type: ignore[operator]


# -- against the sim ----------------------------------------------------------------------


async def test_episode_happy_path_with_ids_and_one_caps(env: SimEnv) -> None:
    pick = pick_episode(env.cluster, lambda rs: any(not r.indexed_hash for r in rs))
    scraper = TorznabScraper(env.client("torznab"))
    result = await scraper.scrape(_query(pick))
    assert result.soft_failure is None
    by_hash = {r.infohash: r for r in result.releases}
    assert set(by_hash) == {r.infohash for r in pick.releases}
    for release in pick.releases:
        found = by_hash[release.infohash]
        assert found.raw_title == release.title
        assert found.size_bytes == release.size
        assert found.seeders == release.seeders
        assert found.provider == indexer_for(release).name
    log = env.cluster.torznab.requests
    calls = [_params(r.query) for r in log if r.path.endswith("/api")]
    assert [c["t"] for c in calls] == ["caps", "tvsearch"]
    assert calls[1]["imdbid"] == pick.show.imdb_id.removeprefix("tt")
    assert (calls[1]["season"], calls[1]["ep"]) == (str(pick.season), str(pick.episode))
    # Items without infohash or magnet had their link fetched; it redirected to a magnet.
    unindexed = [r for r in pick.releases if not r.indexed_hash]
    assert len([r for r in log if r.path.startswith("/dl/")]) == len(unindexed)


async def test_caps_are_fetched_once_per_indexer(env: SimEnv) -> None:
    pick = pick_episode(env.cluster)
    scraper = TorznabScraper(env.client("torznab"))
    await scraper.start()
    for _ in range(3):
        await scraper.scrape(_query(pick))
    caps_calls = [r for r in env.cluster.torznab.requests if "t=caps" in r.query]
    assert len(caps_calls) == 1
    assert scraper.caps()["/api/v2.0/indexers/all/results/torznab"].tv.available


async def test_caps_go_through_the_clients_cache_namespace(env: SimEnv) -> None:
    client = env.client("torznab", cache_ttl_s={CAPS_NAMESPACE: 3600.0})
    first, second = TorznabScraper(client), TorznabScraper(client)
    await first.start()
    await second.start()  # a second scraper on the same client: served from the cache
    caps_calls = [r for r in env.cluster.torznab.requests if "t=caps" in r.query]
    assert len(caps_calls) == 1
    assert client.stats().cache.hits == 1
    await second.refresh_caps()  # past the cache
    assert len([r for r in env.cluster.torznab.requests if "t=caps" in r.query]) == 2
    assert second.caps()


async def test_concurrent_first_scrapes_share_the_caps_request(env: SimEnv) -> None:
    pick = pick_episode(env.cluster)
    scraper = TorznabScraper(env.client("torznab"))
    await asyncio.gather(*(scraper.scrape(_query(pick)) for _ in range(4)))
    assert len([r for r in env.cluster.torznab.requests if "t=caps" in r.query]) == 1


async def test_jackett_per_indexer_feeds(env: SimEnv) -> None:
    pick = pick_episode(env.cluster)
    keys = [i.key for i in INDEXERS]
    scraper = TorznabScraper(env.client("torznab"), indexers=keys, feed_path=JACKETT_FEED)
    result = await scraper.scrape(_query(pick))
    assert {r.infohash for r in result.releases} == {r.infohash for r in pick.releases}
    paths = {r.path for r in env.cluster.torznab.requests if "t=caps" in r.query}
    assert paths == {JACKETT_FEED.format(indexer=k) for k in keys}


async def test_prowlarr_per_indexer_feeds(env: SimEnv) -> None:
    pick = pick_episode(env.cluster)
    ids = [str(i.prowlarr_id) for i in INDEXERS]
    scraper = TorznabScraper(env.client("torznab"), indexers=ids, feed_path=PROWLARR_FEED)
    result = await scraper.scrape(_query(pick))
    assert result.soft_failure is None
    assert {r.infohash for r in result.releases} == {r.infohash for r in pick.releases}
    assert all(r.provider for r in result.releases)


async def test_one_failing_indexer_of_several_is_a_soft_failure(env: SimEnv) -> None:
    pick = pick_episode(env.cluster)
    scraper = TorznabScraper(
        env.client("torznab"), indexers=["1337x", "nope"], feed_path=JACKETT_FEED
    )
    result = await scraper.scrape(_query(pick))
    assert result.soft_failure is not None
    assert "1 of 2 indexers failed" in result.soft_failure
    assert "201" in result.soft_failure  # Jackett: indexer is not configured


async def test_movie_search(env: SimEnv) -> None:
    now = env.cluster.world.now()
    movie = env.cluster.catalog.find_movie(
        lambda m: bool(env.cluster.catalog.movie_releases(m, now))
    )
    assert movie is not None
    result = await TorznabScraper(env.client("torznab")).scrape(
        ScrapeQuery.for_movie(imdb_id=movie.imdb_id, tmdb_id=movie.tmdb_id, title=movie.title)
    )
    expected = {r.infohash for r in env.cluster.catalog.movie_releases(movie, now)}
    assert {r.infohash for r in result.releases} == expected
    searches = [_params(r.query) for r in env.cluster.torznab.requests if r.path.endswith("/api")]
    assert searches[-1]["t"] == "movie"
    assert searches[-1]["imdbid"] == movie.imdb_id.removeprefix("tt")
    assert searches[-1]["tmdbid"] == str(movie.tmdb_id)


async def test_empty_feed_is_no_results(env: SimEnv) -> None:
    result = await TorznabScraper(env.client("torznab")).scrape(
        ScrapeQuery.for_episode(1, 1, imdb_id="tt9999999")
    )
    assert result.releases == ()
    assert result.soft_failure is None


async def test_jacketts_200_with_error_is_an_error_without_the_key(env: SimEnv) -> None:
    client = env.client("torznab", api_key="wrong-key-0123456789")
    with pytest.raises(UpstreamError) as caught:
        await TorznabScraper(client).scrape(EPISODE)
    error = caught.value
    assert error.status == 200
    assert "torznab error 100: Invalid API Key" in str(error)
    for key in [*env.api_keys(), "wrong-key-0123456789"]:
        assert key not in f"{error} {error.url} {error!r}"


async def test_malformed_feed_is_a_payload_error(env: SimEnv) -> None:
    scraper = TorznabScraper(env.client("torznab"))
    await scraper.start()
    env.cluster.torznab.faults.set(malformed_rate=1.0)
    with pytest.raises(UpstreamPayloadError) as caught:
        await scraper.scrape(EPISODE)
    assert env.cluster.torznab.api_key not in str(caught.value)


async def test_caps_that_fail_at_start_are_fetched_again_on_first_use(env: SimEnv) -> None:
    env.cluster.torznab.faults.set(malformed_rate=1.0, budget=1)
    pick = pick_episode(env.cluster)
    scraper = TorznabScraper(env.client("torznab"))
    await scraper.start()  # logged, not raised: the daemon starts with the indexer down
    assert scraper.caps() == {}
    result = await scraper.scrape(_query(pick))
    assert result.releases
    assert len([r for r in env.cluster.torznab.requests if "t=caps" in r.query]) == 2


async def test_caps_that_are_not_caps_fall_back_to_plain_searches(env: SimEnv) -> None:
    files = {"Show.S01E02.1080p": make_torrent("Show.S01E02.1080p.mkv")}
    async with torrent_feed_server(files, caps=b"<html><body>hi</body></html>") as server:
        client = env.client("torznab", base_url=server.base_url, rate_limits=[])
        scraper = TorznabScraper(client)
        first = await scraper.scrape(EPISODE)
        await scraper.scrape(EPISODE)
        hits = dict(server.hits)
    assert len(first.releases) == 1
    assert hits["/api:caps"] == 1  # remembered: no caps request per search
    assert hits["/api:search"] == 2


async def test_429_with_retry_after_raises_rate_limited(env: SimEnv) -> None:
    torznab = env.cluster.torznab
    torznab.limiter.set_windows([Window(2, 60.0)])
    env.allow_violations("torznab")
    scraper = TorznabScraper(env.client("torznab", rate_limits=["2/60s"]))
    async with aiohttp.ClientSession() as other:  # another app uses the same Jackett
        for _ in range(2):
            params = {"t": "caps", "apikey": torznab.api_key}
            async with other.get(f"{torznab.base_url}/api", params=params) as reply:
                assert reply.status == 200
    with pytest.raises(RateLimited) as caught:
        await scraper.scrape(EPISODE)
    assert 55.0 <= caught.value.retry_after_s <= 60.0
    assert scraper.blocked_for() > 55.0
    assert torznab.api_key not in str(caught.value)


async def test_timeout(env: SimEnv) -> None:
    env.cluster.torznab.faults.set(timeout_rate=1.0, hang_s=2.0)
    client = env.client("torznab", timeout_s=0.3, max_retries=0)
    with pytest.raises(UpstreamError, match="timed out"):
        await TorznabScraper(client).scrape(EPISODE)


# -- items that carry only a .torrent link ------------------------------------------------


async def test_missing_infohash_is_computed_from_the_torrent_file(env: SimEnv) -> None:
    files = {
        "Show.S01E02.1080p.WEB-DL": make_torrent("Show.S01E02.1080p.WEB-DL.mkv"),
        "Show.S01E02.720p.HDTV": make_torrent("Show.S01E02.720p.HDTV.mkv", 7_000),
        "Broken.Torrent": b"d4:infod4:name1:aee",  # no pieces: not a v1 torrent
        "Not.A.Torrent": b"<html>login required</html>",
    }
    async with torrent_feed_server(files) as server:
        client = env.client("torznab", base_url=server.base_url, rate_limits=[])
        result = await TorznabScraper(client).scrape(EPISODE)
        hits = dict(server.hits)
    assert {r.raw_title: r.infohash for r in result.releases} == {
        "Show.S01E02.1080p.WEB-DL": torrent_infohash(files["Show.S01E02.1080p.WEB-DL"]),
        "Show.S01E02.720p.HDTV": torrent_infohash(files["Show.S01E02.720p.HDTV"]),
    }
    assert all(r.seeders == 12 for r in result.releases)
    assert hits == {"/api:caps": 1, "/api:tvsearch": 1} | {
        f"/file/{i}.torrent": 1 for i in range(4)
    }


async def test_links_are_fetched_only_from_the_servers_own_origin(env: SimEnv) -> None:
    files = {"Show.S01E02.1080p": make_torrent("Show.S01E02.1080p.mkv")}
    async with torrent_feed_server(files) as elsewhere:
        foreign = f"{elsewhere.base_url}/file/0.torrent"
        async with torrent_feed_server(files, links={"Show.S01E02.1080p": foreign}) as server:
            client = env.client("torznab", base_url=server.base_url, rate_limits=[])
            refused = await TorznabScraper(client).scrape(EPISODE)
            trusted = await TorznabScraper(client, link_origins=[elsewhere.base_url]).scrape(
                EPISODE
            )
    assert refused.releases == ()  # the API key is never sent to another host
    assert [r.infohash for r in trusted.releases] == [torrent_infohash(files["Show.S01E02.1080p"])]


async def test_link_fetches_are_capped_per_scrape(env: SimEnv) -> None:
    files = {f"Show.S01E02.v{i}": make_torrent(f"Show.S01E02.v{i}.mkv") for i in range(6)}
    async with torrent_feed_server(files) as server:
        client = env.client("torznab", base_url=server.base_url, rate_limits=[])
        result = await TorznabScraper(client, max_link_fetches=2).scrape(EPISODE)
        fetched = sum(n for path, n in server.hits.items() if path.startswith("/file/"))
    assert fetched == 2
    assert len(result.releases) == 2


async def test_oversized_torrent_is_refused(env: SimEnv) -> None:
    big = make_torrent("Big.mkv", extra=b"x" * 4096)
    async with torrent_feed_server({"Big": big}) as server:
        client = env.client("torznab", base_url=server.base_url, rate_limits=[])
        result = await TorznabScraper(client, torrent_max_bytes=1024).scrape(EPISODE)
    assert result.releases == ()


def test_redirected_magnet_reads_only_the_clients_non_http_redirect_error() -> None:
    magnet = "magnet:?xt=urn:btih:8c3a9f0e1d2b4c5d6e7f8091a2b3c4d5e6f70812&dn=x"
    redirect = UpstreamError("torznab", None, "u", f"NonHttpUrlRedirectClientError: {magnet}")
    assert redirected_magnet(redirect) == magnet
    assert redirected_magnet(UpstreamError("torznab", 500, "u", magnet)) is None
    assert redirected_magnet(UpstreamError("torznab", None, "u", "timed out")) is None

"""Zilean scraper against its sim and the sample."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs

import aiohttp
import pytest

from riven_async.errors import RateLimited, UpstreamError, UpstreamPayloadError
from riven_async.services.scrapers import ScrapeQuery
from riven_async.services.scrapers.zilean import ZileanScraper, read_torrent_info, zilean_params
from riven_async.sim.limits import Window
from tests.services.scraper_fixtures import SimEnv, json_server, pick_episode, sim_env

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "upstream-samples"


@pytest.fixture
async def env() -> AsyncIterator[SimEnv]:
    async with sim_env() as running:
        yield running


def _params(query: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(query).items()}


def test_params_for_each_kind() -> None:
    assert zilean_params(ScrapeQuery.for_episode(2, 5, imdb_id="tt0903747")) == {
        "ImdbId": "tt0903747",
        "Category": "tvSeries",
        "Season": "2",
        "Episode": "5",
    }
    assert zilean_params(ScrapeQuery.for_season(2, imdb_id="tt0903747")) == {
        "ImdbId": "tt0903747",
        "Category": "tvSeries",
        "Season": "2",
    }
    assert zilean_params(ScrapeQuery.for_movie(title="The  Matrix", year=1999)) == {
        "Query": "The Matrix",
        "Year": "1999",
        "Category": "movie",
    }
    assert zilean_params(ScrapeQuery.for_movie(tmdb_id=603)) is None


async def test_episode_happy_path(env: SimEnv) -> None:
    pick = pick_episode(env.cluster)
    scraper = ZileanScraper(env.client("zilean"))
    result = await scraper.scrape(
        ScrapeQuery.for_episode(pick.season, pick.episode, imdb_id=pick.show.imdb_id)
    )
    assert result.soft_failure is None
    by_hash = {r.infohash: r for r in result.releases}
    assert set(by_hash) == {r.infohash for r in pick.releases}
    for release in pick.releases:
        assert by_hash[release.infohash].raw_title == release.title
        assert by_hash[release.infohash].size_bytes == release.size
        assert by_hash[release.infohash].seeders is None  # DMM lists carry none
    (request,) = env.cluster.zilean.requests
    assert request.path == "/dmm/filtered"
    assert _params(request.query) == {
        "ImdbId": pick.show.imdb_id,
        "Category": "tvSeries",
        "Season": str(pick.season),
        "Episode": str(pick.episode),
    }


async def test_season_and_movie(env: SimEnv) -> None:
    catalog, now = env.cluster.catalog, env.cluster.world.now()
    pick = pick_episode(env.cluster)
    scraper = ZileanScraper(env.client("zilean"))
    season = await scraper.scrape(ScrapeQuery.for_season(pick.season, imdb_id=pick.show.imdb_id))
    expected = {r.infohash for r in catalog.season_releases(pick.show, pick.season, now)}
    assert {r.infohash for r in season.releases} == expected
    movie = catalog.find_movie(lambda m: bool(catalog.movie_releases(m, now)))
    assert movie is not None
    found = await scraper.scrape(ScrapeQuery.for_movie(imdb_id=movie.imdb_id))
    assert {r.infohash for r in found.releases} == {
        r.infohash for r in catalog.movie_releases(movie, now)
    }


async def test_empty_list_is_no_results(env: SimEnv) -> None:
    result = await ZileanScraper(env.client("zilean")).scrape(
        ScrapeQuery.for_episode(1, 1, imdb_id="tt9999999")
    )
    assert result.releases == ()
    assert result.soft_failure is None


async def test_malformed_body_is_a_payload_error(env: SimEnv) -> None:
    env.cluster.zilean.faults.set(malformed_rate=1.0)
    with pytest.raises(UpstreamPayloadError):
        await ZileanScraper(env.client("zilean")).scrape(ScrapeQuery.for_movie(imdb_id="tt1"))


async def test_json_that_is_not_a_list_is_a_payload_error(env: SimEnv) -> None:
    async with json_server("/dmm/filtered", {"title": "Bad Request"}) as base_url:
        client = env.client("zilean", base_url=base_url, rate_limits=[])
        with pytest.raises(UpstreamPayloadError, match="JSON list"):
            await ZileanScraper(client).scrape(ScrapeQuery.for_movie(imdb_id="tt1"))


async def test_429_with_retry_after_raises_rate_limited(env: SimEnv) -> None:
    zilean = env.cluster.zilean
    zilean.limiter.set_windows([Window(2, 60.0)])
    env.allow_violations("zilean")
    scraper = ZileanScraper(env.client("zilean", rate_limits=["2/60s"]))
    async with aiohttp.ClientSession() as other:
        for _ in range(2):
            async with other.get(f"{zilean.base_url}/healthchecks/ping") as reply:
                assert reply.status == 200
    with pytest.raises(RateLimited) as caught:
        await scraper.scrape(ScrapeQuery.for_movie(imdb_id="tt1"))
    assert 55.0 <= caught.value.retry_after_s <= 60.0
    assert scraper.blocked_for() > 55.0


async def test_timeout(env: SimEnv) -> None:
    env.cluster.zilean.faults.set(timeout_rate=1.0, hang_s=2.0)
    client = env.client("zilean", timeout_s=0.3, max_retries=0)
    with pytest.raises(UpstreamError, match="timed out"):
        await ZileanScraper(client).scrape(ScrapeQuery.for_movie(imdb_id="tt1"))


def test_sample_records_and_bad_records() -> None:
    path = SAMPLES / "zilean_dmm_filtered.json"
    if not path.is_file():
        pytest.skip("zilean sample not found")
    sample = json.loads(path.read_text(encoding="utf-8"))
    rows = [
        *sample,
        {"raw_title": "no hash"},
        {"raw_title": "bad hash", "info_hash": "xyz"},
        {"raw_title": "   ", "info_hash": "a" * 40},
        {"raw_title": "Odd size", "info_hash": "B" * 40, "size": "12 GB"},
        "not an object",
    ]
    releases = [r for r in (read_torrent_info(row, "zilean") for row in rows) if r is not None]
    assert [(r.raw_title, r.infohash, r.size_bytes) for r in releases] == [
        ("Breaking Bad S01 1080p BluRay x265-RARBG", sample[0]["info_hash"], 8053063680),
        ("Breaking.Bad.S01E01.720p.HDTV.x264-CTU", sample[1]["info_hash"], 1170378588),
        ("Odd size", "b" * 40, None),
    ]

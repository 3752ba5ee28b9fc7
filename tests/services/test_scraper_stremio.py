"""Stremio addon scrapers (Torrentio, Comet, MediaFusion) against their sims and samples."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import given, strategies as st

from riven_async.errors import (
    RateLimited,
    UpstreamError,
    UpstreamPayloadError,
    UpstreamUnavailable,
)
from riven_async.services.scrapers import ParseError, ScrapeQuery
from riven_async.services.scrapers.stremio import (
    StreamText,
    StremioScraper,
    infohash_from_url,
    is_cached_name,
    masked_error,
    parse_stream_text,
    stremio_id,
)
from riven_async.sim.limits import Window
from riven_async.sim.stremio import encode_config, human_size
from tests.services.scraper_fixtures import (
    EpisodePick,
    SimEnv,
    json_server,
    pick_episode,
    sim_env,
)

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "upstream-samples"
GB = 1024**3
STREAM_ROUTE = "/cfg/stream/{type}/{id}.json"


@pytest.fixture
async def env() -> AsyncIterator[SimEnv]:
    async with sim_env() as running:
        yield running


def _sample(name: str) -> Any:
    path = SAMPLES / name
    if not path.is_file():
        pytest.skip(f"upstream sample {name} not found")
    return json.loads(path.read_text(encoding="utf-8"))


def _query(pick: EpisodePick) -> ScrapeQuery:
    return ScrapeQuery.for_episode(
        pick.season, pick.episode, imdb_id=pick.show.imdb_id, title=pick.show.title
    )


# -- title lines and descriptions ---------------------------------------------------------


def test_torrentio_title_lines_of_a_season_pack() -> None:
    stream = _sample("torrentio_stream_series.json")["streams"][0]
    assert parse_stream_text(stream["title"]) == StreamText(
        torrent_name="Breaking Bad S01 1080p BluRay x265-RARBG",
        file_name="Breaking.Bad.S01E01.Pilot.1080p.BluRay.x265-RARBG.mp4",
        seeders=142,
        size_bytes=int(1.17 * GB),
        provider="ThePirateBay",
    )


def test_torrentio_title_lines_without_file_line_and_with_flags() -> None:
    streams = _sample("torrentio_stream_series.json")["streams"]
    single = parse_stream_text(streams[1]["title"])
    assert single.torrent_name == "Breaking.Bad.S01E01.720p.HDTV.x264-CTU"
    assert single.file_name is None
    assert (single.seeders, single.provider) == (31, "1337x")
    flagged = parse_stream_text(streams[2]["title"])
    assert flagged.file_name is None
    assert flagged.provider == "TorrentGalaxy"
    assert flagged.size_bytes == int(6.43 * GB)


def test_comet_description() -> None:
    stream = _sample("comet_stream_series.json")["streams"][0]
    assert parse_stream_text(stream["description"]) == StreamText(
        torrent_name="Breaking Bad S01 1080p BluRay x265-RARBG",
        seeders=142,
        size_bytes=int(1.17 * GB),
        provider="ThePirateBay",
    )


def test_mediafusion_description() -> None:
    stream = _sample("mediafusion_stream_series.json")["streams"][0]
    assert parse_stream_text(stream["description"]) == StreamText(
        torrent_name="Breaking Bad S01 1080p BluRay x265-RARBG",
        file_name="Breaking.Bad.S01E01.Pilot.1080p.BluRay.x265-RARBG.mp4",
        seeders=142,
        size_bytes=int(1.17 * GB),
        provider="ThePirateBay",
    )


@pytest.mark.parametrize(
    "text", ["", "\n\n", "👤 5 💾 1 GB ⚙️ x", "📄   ", "📂 ┈➤ file.mkv", "x" * 9000]
)
def test_text_without_a_torrent_name_is_a_parse_error(text: str) -> None:
    with pytest.raises(ParseError):
        parse_stream_text(text)


@pytest.mark.parametrize(
    ("name", "cached"),
    [
        ("[RD+] Torrentio\n1080p", True),
        ("[RD download] Torrentio\n720p", False),
        ("[AD+] Torrentio\n4k", True),
        ("[RD⚡] Comet 1080p", True),
        ("[RD⬇️] Comet 1080p", False),
        ("[TORRENT🧲] Comet 1080p", False),
        ("MediaFusion RD ⚡️ 1080p", True),
        ("MediaFusion RD ⏳ 1080p", False),
        ("Torrentio\n1080p", False),
    ],
)
def test_cached_markers(name: str, cached: bool) -> None:
    assert is_cached_name(name) is cached


def test_infohash_from_debrid_urls() -> None:
    debrid = _sample("torrentio_stream_series_debrid.json")["streams"]
    assert infohash_from_url(debrid[0]["url"]) == "2b3f1c6a9d8e7f6054433221100ffeeddccbbaa9"
    assert infohash_from_url(debrid[1]["url"]) == "8c3a9f0e1d2b4c5d6e7f8091a2b3c4d5e6f70812"
    comet = "http://c/eyJ9/playback/8C3A9F0E1D2B4C5D6E7F8091A2B3C4D5E6F70812/realdebrid/0/1/2"
    assert infohash_from_url(comet) == "8c3a9f0e1d2b4c5d6e7f8091a2b3c4d5e6f70812"
    assert infohash_from_url("http://127.0.0.1:7001") is None
    assert infohash_from_url("http://x/resolve/realdebrid/KEY/nothash/null/0/f") is None


_TITLE_CHARS = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\n\r")


@given(
    st.text(_TITLE_CHARS, min_size=1, max_size=80).filter(lambda t: t.strip() != ""),
    st.one_of(st.none(), st.text(_TITLE_CHARS, min_size=1, max_size=60)),
    st.integers(0, 10**6),
    st.integers(1, 2**45),
    st.from_regex(r"[A-Za-z0-9]{1,20}", fullmatch=True),
)
def test_torrentio_lines_round_trip(
    name: str, file_name: str | None, seeders: int, size: int, provider: str
) -> None:
    name = name.strip()
    if any(m in name for m in ("👤", "💾", "⚙", "📄", "📂", "🔎", "🔗")) or name[0] in "📹⭐🏷🔊🌐":
        return  # a title starting with a marker is ambiguous by construction
    lines = [name]
    if file_name is not None and file_name.strip():
        lines.append(file_name)
    lines.append(f"👤 {seeders} 💾 {human_size(size)} ⚙️ {provider}")
    try:
        parsed = parse_stream_text("\n".join(lines))
    except ParseError:
        return  # e.g. a "name" made only of flags: refusing it is the right answer
    assert parsed.torrent_name == name
    assert parsed.seeders == seeders
    assert parsed.provider == provider
    assert parsed.size_bytes is not None
    assert abs(parsed.size_bytes - size) <= max(size * 0.01, 1024)


@given(st.text(max_size=400))
def test_parse_stream_text_raises_only_parse_error(text: str) -> None:
    with contextlib.suppress(ParseError):
        parse_stream_text(text)


@given(
    st.lists(
        st.sampled_from(
            ["👤", "💾", "⚙️", "🔎", "🔗", "📄", "📂", "┈➤", "\n", " ", "9", ".", "GB", "kB", "x"]
        ),
        max_size=40,
    )
)
def test_parse_stream_text_on_marker_soup_raises_only_parse_error(parts: list[str]) -> None:
    with contextlib.suppress(ParseError):
        parse_stream_text("".join(parts))


@given(st.text(max_size=300))
def test_url_and_name_helpers_never_raise(text: str) -> None:
    infohash_from_url(text)
    infohash_from_url("http://h/resolve/a/b/" + text)
    is_cached_name(text)


def test_stremio_ids() -> None:
    assert stremio_id(ScrapeQuery.for_movie(imdb_id="tt0133093")) == ("movie", "tt0133093")
    episode = ScrapeQuery.for_episode(2, 5, imdb_id="tt0903747")
    assert stremio_id(episode) == ("series", "tt0903747:2:5")
    season = ScrapeQuery.for_season(3, imdb_id="tt0903747")
    assert stremio_id(season) == ("series", "tt0903747:3:1")
    with pytest.raises(ValueError, match="IMDb"):
        stremio_id(ScrapeQuery.for_movie(title="No Id"))


# -- against the sims --------------------------------------------------------------------


async def test_torrentio_episode_happy_path(env: SimEnv) -> None:
    pick = pick_episode(env.cluster)
    scraper = StremioScraper(env.client("torrentio"))
    result = await scraper.scrape(_query(pick))
    assert result.soft_failure is None
    by_hash = {r.infohash: r for r in result.releases}
    assert set(by_hash) == {r.infohash for r in pick.releases}
    for release in pick.releases:
        found = by_hash[release.infohash]
        assert found.raw_title == release.title
        assert found.seeders == release.seeders
        assert found.provider == release.tracker
        assert found.source == "torrentio"
        assert not found.cached_hint
        index = release.file_index(pick.season, pick.episode) if release.multi_file else None
        assert found.file_idx == index
        if index is not None and release.files[index].name != release.title:
            video = release.files[index]
            assert found.file_name == video.name
            assert found.file_size_bytes is not None
            assert abs(found.file_size_bytes - video.size) <= video.size * 0.01
    path = env.cluster.torrentio.requests[-1].path
    assert path == f"/stream/series/{pick.show.imdb_id}:{pick.season}:1.json"


async def test_a_pack_stream_reports_the_files_size_not_the_torrents(env: SimEnv) -> None:
    pick = pick_episode(env.cluster)
    result = await StremioScraper(env.client("torrentio")).scrape(_query(pick))
    packs = {r.infohash for r in pick.releases if len([f for f in r.files if f.is_video]) > 1}
    assert packs
    for release in result.releases:
        if release.infohash in packs:
            assert release.size_bytes is None
            assert release.file_name is not None
            assert release.file_size_bytes is not None


async def test_torrentio_season_asks_for_episode_one_like_riven(env: SimEnv) -> None:
    pick = pick_episode(env.cluster)
    query = ScrapeQuery.for_season(pick.season, imdb_id=pick.show.imdb_id)
    result = await StremioScraper(env.client("torrentio")).scrape(query)
    assert result.releases
    path = env.cluster.torrentio.requests[-1].path
    assert path == f"/stream/series/{pick.show.imdb_id}:{pick.season}:1.json"


async def test_torrentio_movie(env: SimEnv) -> None:
    now = env.cluster.world.now()
    movie = env.cluster.catalog.find_movie(
        lambda m: bool(env.cluster.catalog.movie_releases(m, now))
    )
    assert movie is not None
    result = await StremioScraper(env.client("torrentio")).scrape(
        ScrapeQuery.for_movie(imdb_id=movie.imdb_id, title=movie.title, year=movie.year)
    )
    expected = {r.infohash for r in env.cluster.catalog.movie_releases(movie, now)}
    assert {r.infohash for r in result.releases} == expected
    assert env.cluster.torrentio.requests[-1].path == f"/stream/movie/{movie.imdb_id}.json"


async def test_torrentio_debrid_variant_takes_hashes_from_resolve_urls(env: SimEnv) -> None:
    rd_key = env.cluster.realdebrid.api_key
    client = env.client(
        "torrentio", base_url=f"{env.cluster.torrentio.base_url}/realdebrid={rd_key}"
    )
    pick = pick_episode(env.cluster)
    result = await StremioScraper(client).scrape(_query(pick))
    assert {r.infohash for r in result.releases} == {r.infohash for r in pick.releases}
    for release in result.releases:
        cached = env.cluster.world.is_cached("realdebrid", release.infohash)
        assert release.cached_hint is cached


async def test_comet_happy_path_and_cached_debrid_streams(env: SimEnv) -> None:
    pick = pick_episode(env.cluster)
    plain = await StremioScraper(env.client("comet")).scrape(_query(pick))
    assert {r.infohash for r in plain.releases} == {r.infohash for r in pick.releases}
    assert all(r.seeders is not None and r.provider for r in plain.releases)
    config = encode_config({"debridService": "realdebrid", "debridApiKey": "K", "cachedOnly": True})
    client = env.client("comet", base_url=f"{env.cluster.comet.base_url}/{config}")
    cached = await StremioScraper(client).scrape(_query(pick))
    expected = {
        r.infohash
        for r in pick.releases
        if env.cluster.world.is_cached("realdebrid", r.infohash, release=r)
    }
    assert {r.infohash for r in cached.releases} == expected
    assert all(r.cached_hint for r in cached.releases)


async def test_mediafusion_happy_path(env: SimEnv) -> None:
    pick = pick_episode(env.cluster)
    result = await StremioScraper(env.client("mediafusion")).scrape(_query(pick))
    assert result.soft_failure is None
    assert {r.infohash for r in result.releases} == {r.infohash for r in pick.releases}
    assert all(r.file_name and r.file_idx is not None for r in result.releases)


async def test_empty_answer_is_no_results_not_a_failure(env: SimEnv) -> None:
    result = await StremioScraper(env.client("torrentio")).scrape(
        ScrapeQuery.for_episode(1, 1, imdb_id="tt9999999")
    )
    assert result.releases == ()
    assert result.soft_failure is None


async def test_comet_obsolete_config_notice_is_a_soft_failure(env: SimEnv) -> None:
    pick = pick_episode(env.cluster)
    client = env.client("comet", base_url=env.cluster.comet.base_url)  # no config segment
    result = await StremioScraper(client).scrape(_query(pick))
    assert result.releases == ()
    assert result.soft_failure is not None
    assert "OBSOLETE CONFIGURATION" in result.soft_failure


async def test_comet_unknown_id_notice_is_a_soft_failure(env: SimEnv) -> None:
    result = await StremioScraper(env.client("comet")).scrape(
        ScrapeQuery.for_episode(1, 1, imdb_id="tt9999999")
    )
    assert result.releases == ()
    assert result.soft_failure is not None
    assert "Unable to get metadata" in result.soft_failure


async def test_mediafusion_rate_limit_notice_is_a_soft_failure_and_pauses(
    env: SimEnv,
) -> None:
    env.cluster.mediafusion.limiter.set_windows([Window(1, 60.0)])
    env.allow_violations("mediafusion")
    scraper = StremioScraper(env.client("mediafusion", rate_limits=[]), rate_limit_pause_s=30.0)
    pick = pick_episode(env.cluster)
    first = await scraper.scrape(_query(pick))
    assert first.releases
    second = await scraper.scrape(_query(pick))
    assert second.releases == ()
    assert second.soft_failure is not None
    assert "rate-limit exceeded" in second.soft_failure
    assert 29.0 < scraper.blocked_for() <= 30.0


async def test_malformed_body_is_a_payload_error(env: SimEnv) -> None:
    env.cluster.torrentio.faults.set(malformed_rate=1.0)
    pick = pick_episode(env.cluster)
    with pytest.raises(UpstreamPayloadError):
        await StremioScraper(env.client("torrentio")).scrape(_query(pick))


async def test_json_without_a_streams_list_is_a_payload_error(env: SimEnv) -> None:
    async with json_server(STREAM_ROUTE, {"streams": "nope"}) as base_url:
        client = env.client("torrentio", base_url=base_url + "/cfg", rate_limits=[])
        with pytest.raises(UpstreamPayloadError, match="no streams list"):
            await StremioScraper(client).scrape(ScrapeQuery.for_movie(imdb_id="tt0000001"))


async def test_unreadable_streams_are_skipped_and_the_rest_kept(env: SimEnv) -> None:
    good = _sample("torrentio_stream_series.json")["streams"][1]
    streams = [
        "not an object",
        {"name": "x", "infoHash": "zz", "title": "bad hash\n👤 1"},
        {"name": "x", "infoHash": good["infoHash"], "fileIdx": "not a number"},
        {"name": "x", "infoHash": "A" * 40},  # no text at all: nothing to call it
        good,
        {**good, "title": "dup of the same torrent\n👤 500"},
    ]
    async with json_server(STREAM_ROUTE, {"streams": streams}) as base_url:
        client = env.client("torrentio", base_url=base_url + "/cfg", rate_limits=[])
        result = await StremioScraper(client).scrape(ScrapeQuery.for_movie(imdb_id="tt0000001"))
    assert result.soft_failure is None
    (release,) = result.releases
    assert release.infohash == good["infoHash"]
    assert release.raw_title == "Breaking.Bad.S01E01.720p.HDTV.x264-CTU"
    assert release.seeders == 500  # the duplicate's higher count wins the merge


async def test_429_with_retry_after_raises_rate_limited_and_pauses_the_client(
    env: SimEnv,
) -> None:
    torrentio = env.cluster.torrentio
    torrentio.limiter.set_windows([Window(2, 60.0)])
    env.allow_violations("torrentio")
    scraper = StremioScraper(env.client("torrentio", rate_limits=["2/60s"]))
    pick = pick_episode(env.cluster)
    async with aiohttp.ClientSession() as other:  # another app on the same IP eats the quota
        for _ in range(2):
            async with other.get(f"{torrentio.base_url}/manifest.json") as reply:
                assert reply.status == 200
    with pytest.raises(RateLimited) as caught:
        await scraper.scrape(_query(pick))
    assert 55.0 <= caught.value.retry_after_s <= 60.0
    assert scraper.blocked_for() > 55.0
    assert torrentio.log.matching(status=429)[-1].path.startswith("/stream/")


async def test_timeout_is_an_unavailable_upstream(env: SimEnv) -> None:
    env.cluster.torrentio.faults.set(timeout_rate=1.0, hang_s=2.0)
    client = env.client("torrentio", timeout_s=0.3, max_retries=0)
    with pytest.raises(UpstreamError, match="timed out"):
        await StremioScraper(client).scrape(ScrapeQuery.for_movie(imdb_id="tt0000001"))


async def test_server_error_after_retries(env: SimEnv) -> None:
    env.cluster.torrentio.faults.set(error_rate=1.0)
    with pytest.raises(UpstreamError) as caught:
        await StremioScraper(env.client("torrentio")).scrape(
            ScrapeQuery.for_movie(imdb_id="tt0000001")
        )
    assert caught.value.status == 500
    assert len(env.cluster.torrentio.requests) == 2  # one retry (FAST_POLICY)


async def test_no_key_in_any_error_text(env: SimEnv) -> None:
    rd_key = env.cluster.realdebrid.api_key
    client = env.client(
        "torrentio", base_url=f"{env.cluster.torrentio.base_url}/realdebrid={rd_key}"
    )
    scraper = StremioScraper(client)
    messages = []
    faults = env.cluster.torrentio.faults
    for rate in ("error", "malformed"):
        faults.clear()
        if rate == "error":
            faults.set(error_rate=1.0)
        else:
            faults.set(malformed_rate=1.0)
        with pytest.raises(UpstreamError) as caught:
            await scraper.scrape(ScrapeQuery.for_movie(imdb_id="tt0000001"))
        messages.append(f"{caught.value} {caught.value.url} {caught.value!r}")
    for key in [*env.api_keys(), rd_key]:
        assert all(key not in m for m in messages)


async def test_scraper_needs_an_imdb_id(env: SimEnv) -> None:
    scraper = StremioScraper(env.client("torrentio"))
    assert scraper.supports(ScrapeQuery.for_movie(imdb_id="tt1"))
    assert not scraper.supports(ScrapeQuery.for_movie(title="Only a title"))
    assert scraper.blocked_for() == 0.0


async def test_a_config_segment_with_a_key_never_reaches_an_error(env: SimEnv) -> None:
    key = "UNREGISTERED-debrid-key-0042"  # configured nowhere else, so no scrubber knows it
    config = encode_config({"debridService": "realdebrid", "debridApiKey": key})
    comet = env.client("comet", base_url=f"{env.cluster.comet.base_url}/{config}")
    torrentio = env.client(
        "torrentio", base_url=f"{env.cluster.torrentio.base_url}/realdebrid={key}"
    )
    env.cluster.comet.faults.set(error_rate=1.0)
    env.cluster.torrentio.faults.set(malformed_rate=1.0)
    for scraper, kind in (
        (StremioScraper(comet), UpstreamError),
        (StremioScraper(torrentio), UpstreamPayloadError),
    ):
        with pytest.raises(kind) as caught:
            await scraper.scrape(ScrapeQuery.for_movie(imdb_id="tt0000001"))
        error = caught.value
        text = f"{error} {error.url} {error.reason} {error!r}"
        assert key not in text
        assert config not in text
        assert "/***/stream/movie/tt0000001.json" in error.url


def test_masked_error_keeps_type_and_fields() -> None:
    limited = RateLimited("comet", "http://h/SECRET/x", 12.5, body=b"b")
    masked = masked_error(limited, ("SECRET",))
    assert isinstance(masked, RateLimited)
    assert (masked.url, masked.retry_after_s, masked.body) == ("http://h/***/x", 12.5, b"b")
    down = UpstreamUnavailable(
        "comet", None, "http://h/SECRET/x", "SECRET timed out", retry_after_s=3
    )
    masked_down = masked_error(down, ("SECRET",))
    assert type(masked_down) is UpstreamUnavailable
    assert (masked_down.reason, masked_down.retry_after_s) == ("*** timed out", 3)
    assert "SECRET" not in str(masked_down)

"""Every sim holds its limits exactly: the N+1-th request in a window is refused with 429."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from riven_async.core.clock import ManualClock
from riven_async.sim.limits import RateLimiter, Window
from riven_async.sim.server import SimCluster, SimSettings, run_sims
from riven_async.sim.stremio import encode_config
from tests.sim.simtest import START, get, pick_release, post


def test_window_parses_and_prints_the_config_grammar() -> None:
    assert Window.parse("250/60s") == Window(250, 60.0)
    assert str(Window.parse("5000/1d")) == "5000/1d"
    assert str(Window.parse("60/1h")) == "60/1h"
    assert str(Window(12, 1.0)) == "12/1s"
    with pytest.raises(ValueError, match="count/seconds"):
        Window.parse("lots")


def test_limiter_refuses_the_n_plus_first_request_until_the_window_slides() -> None:
    clock = ManualClock(START)
    limiter = RateLimiter([Window(3, 10.0)], clock)
    assert [limiter.admit().allowed for _ in range(3)] == [True, True, True]
    refused = limiter.admit()
    assert not refused.allowed
    assert refused.retry_after_s == 10.0
    assert refused.retry_after_header == "10"
    assert refused.window == Window(3, 10.0)
    clock.advance(4)
    limiter.admit()
    clock.advance(5.5)
    assert limiter.admit().retry_after_s == pytest.approx(0.5)
    assert limiter.admit().retry_after_header == "1"
    clock.advance(0.5)
    assert limiter.admit().allowed
    assert (limiter.admitted, limiter.violations) == (4, 4)


def test_every_window_holds_at_every_instant() -> None:
    clock = ManualClock(START)
    limiter = RateLimiter([Window(12, 1.0), Window(20, 60.0)], clock)
    assert all(limiter.admit().allowed for _ in range(12))
    assert limiter.admit().window == Window(12, 1.0)
    clock.advance(1)
    assert all(limiter.admit().allowed for _ in range(8))
    blocked = limiter.admit()
    assert blocked.window == Window(20, 60.0)
    assert blocked.retry_after_s == pytest.approx(59)


def test_refused_requests_count_when_the_upstream_says_so() -> None:
    clock = ManualClock(START)
    strict = RateLimiter([Window(2, 10.0)], clock, count_refused=True)
    lenient = RateLimiter([Window(2, 10.0)], clock)
    for limiter in (strict, lenient):
        limiter.admit()
        limiter.admit()
    clock.advance(6)
    assert not strict.admit().allowed
    assert not lenient.admit().allowed
    clock.advance(4)  # the first two left the window; the refusal at t=6 did not (strict)
    assert strict.admit().allowed
    assert lenient.admit().allowed
    assert not strict.admit().allowed
    assert lenient.admit().allowed
    # Each refusal occupies a slot too: hammering keeps pushing the wait out.
    assert strict.admit().retry_after_s == pytest.approx(10)


async def test_tmdb_answers_429_code_25_past_forty_a_second(
    sims: SimCluster, clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    url = f"{sims.tmdb.base_url}/tv/60000"
    params = {"api_key": sims.tmdb.api_key}
    replies = await asyncio.gather(*(get(http, url, params=params) for _ in range(40)))
    assert {r.status for r in replies} == {200}
    refused = await get(http, url, params=params)
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.body["status_code"] == 25
    assert refused.body["success"] is False
    assert sims.tmdb.violations == 1
    clock.advance(1)
    assert (await get(http, url, params=params)).status == 200


async def test_real_debrid_keeps_counting_refused_requests(
    sims: SimCluster, clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    rd = sims.realdebrid
    rd.limiter.set_windows([Window(5, 60.0)])
    auth = {"Authorization": f"Bearer {rd.api_key}"}
    for _ in range(5):
        assert (await get(http, f"{rd.base_url}/user", headers=auth)).status == 200
    clock.advance(30)
    hammered = await get(http, f"{rd.base_url}/user", headers=auth)
    assert hammered.status == 429
    assert hammered.body == {"error": "too_many_requests", "error_code": 34}
    clock.advance(30)
    statuses = [(await get(http, f"{rd.base_url}/user", headers=auth)).status for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]
    assert rd.violations == 2
    stats = (await get(http, f"{rd.url}/_sim/stats")).body
    assert stats["violations"] == 2
    assert stats["limits"][0]["in_window"] == 6


def _probe(sims: SimCluster, name: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """A cheap authenticated GET on each sim: (url, params, headers)."""
    handle = sims[name]
    show = sims.catalog.show(0)
    base, key = handle.base_url, handle.api_key
    bearer = {"Authorization": f"Bearer {key}"}
    comet_config = encode_config({"debridService": "torrent"})
    probes: dict[str, tuple[str, dict[str, str], dict[str, str]]] = {
        "tmdb": (f"{base}/tv/{show.tmdb_id}", {"api_key": key}, {}),
        "tvmaze": (f"{base}/shows/{show.tvmaze_id}", {}, {}),
        "torrentio": (f"{base}/stream/series/{show.imdb_id}:1:1.json", {}, {}),
        "comet": (f"{base}/{comet_config}/stream/series/{show.imdb_id}:1:1.json", {}, {}),
        "torznab": (f"{base}/api", {"apikey": key, "t": "caps"}, {}),
        "zilean": (f"{base}/healthchecks/ping", {}, {}),
        "realdebrid": (f"{base}/user", {}, bearer),
        "alldebrid": (f"{base}/v4/user", {}, bearer),
        "torbox": (f"{base}/user/me", {}, bearer),
        "plex": (f"{base}/identity", {}, {}),
        "jellyfin": (f"{base}/System/Info/Public", {}, {}),
        "emby": (f"{base}/System/Info/Public", {}, {}),
        "overseerr": (f"{base}/auth/me", {}, {"X-Api-Key": key}),
        "sonarr": (f"{base}/series", {}, {"X-Api-Key": key}),
        "radarr": (f"{base}/movie", {}, {"X-Api-Key": key}),
    }
    return probes[name]


@pytest.mark.parametrize(
    "name",
    [
        "tmdb",
        "tvmaze",
        "torrentio",
        "comet",
        "torznab",
        "zilean",
        "realdebrid",
        "alldebrid",
        "torbox",
        "plex",
        "jellyfin",
        "emby",
        "overseerr",
        "sonarr",
        "radarr",
    ],
)
async def test_the_n_plus_first_request_in_a_window_is_429_with_retry_after(
    name: str, clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    limited = SimSettings(shows=5, movies=5, rate_limits={name: ["3/10s"]})
    async with run_sims(limited, clock) as sims:
        url, params, headers = _probe(sims, name)
        for _ in range(3):
            assert (await get(http, url, params=params, headers=headers)).status == 200
        refused = await get(http, url, params=params, headers=headers)
        assert refused.status == 429
        assert refused.headers["Retry-After"] == "10"
        assert sims[name].violations == 1
        clock.advance(10)
        assert (await get(http, url, params=params, headers=headers)).status == 200


async def test_torrentio_refuses_like_express_rate_limit(
    sims: SimCluster, http: aiohttp.ClientSession
) -> None:
    sims.torrentio.limiter.set_windows([Window(1, 86400.0)])
    url, _, _ = _probe(sims, "torrentio")
    await get(http, url)
    refused = await get(http, url)
    assert refused.status == 429
    assert refused.text == "Too many requests, please try again later."
    assert refused.headers["RateLimit-Policy"] == "1;w=86400"
    assert refused.headers["Retry-After"] == "86400"


async def test_mediafusion_signals_its_limit_with_a_notice_stream(
    sims: SimCluster, http: aiohttp.ClientSession
) -> None:
    mf = sims.mediafusion
    mf.limiter.set_windows([Window(1, 60.0)])
    token = (await post(http, f"{mf.base_url}/encrypt-user-data", json={})).body["encrypted_str"]
    url = f"{mf.base_url}/{token}/stream/movie/{sims.catalog.movie(0).imdb_id}.json"
    notice = await get(http, url)
    assert notice.status == 200
    assert "rate-limit exceeded" in notice.body["streams"][0]["name"]
    assert "infoHash" not in notice.body["streams"][0]
    assert mf.violations == 1


async def test_torbox_limits_uncached_creations_separately(
    sims: SimCluster, http: aiohttp.ClientSession
) -> None:
    tb = sims.torbox
    tb.sim.create_limiter.set_windows([Window(1, 3600.0)])
    auth = {"Authorization": f"Bearer {tb.api_key}"}
    first = pick_release(sims, "torbox", cached=False)
    created = await post(
        http, f"{tb.base_url}/torrents/createtorrent", data={"magnet": first.magnet}, headers=auth
    )
    assert created.body["detail"] == "Torrent added successfully."
    others = [
        r
        for s in sims.catalog.shows()
        for r in sims.catalog.show_releases(s, START)
        if r.infohash != first.infohash and not sims.world.is_cached("torbox", r.infohash)
    ]
    refused = await post(
        http,
        f"{tb.base_url}/torrents/createtorrent",
        data={"magnet": others[0].magnet},
        headers=auth,
    )
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "3600"
    assert refused.body["error"] == "TOO_MANY_REQUESTS"
    cached = pick_release(sims, "torbox", cached=True)
    allowed = await post(
        http, f"{tb.base_url}/torrents/createtorrent", data={"magnet": cached.magnet}, headers=auth
    )
    assert allowed.status == 200
    assert tb.violations == 1


async def test_limits_can_be_replaced_over_the_control_endpoint(
    sims: SimCluster, http: aiohttp.ClientSession
) -> None:
    control = f"{sims.tvmaze.url}/_sim/limits"
    assert (await get(http, control)).body == {"rate_limits": ["20/10s"]}
    changed = await http.put(control, json={"rate_limits": ["1/1h"]})
    assert (await changed.json()) == {"rate_limits": ["1/1h"]}
    bad = await http.put(control, json={"rate_limits": ["many"]})
    assert bad.status == 400
    url, _, _ = _probe(sims, "tvmaze")
    assert [(await get(http, url)).status for _ in range(2)] == [200, 429]

"""HttpClient against a local aiohttp server: retries, Retry-After, breaker, coalescing, cache."""

from __future__ import annotations

import asyncio
import logging
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import orjson
import pytest
from aiohttp import web

from riven_async.config import load_settings_from_dict
from riven_async.core.cache import CacheState
from riven_async.core.clock import ManualClock, ScaledClock
from riven_async.core.http import ApiKeyAuth, HttpClient, Scrubber, Secret, UpstreamPolicy
from riven_async.errors import (
    RateLimited,
    UpstreamError,
    UpstreamPayloadError,
    UpstreamUnavailable,
)
from riven_async.upstreams import UpstreamClients, default_auth, policy_from_section
from tests.services.conftest import ClientFactory, FakeUpstream, Handler, UpstreamFactory


def json_handler(payload: object, status: int = 200) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(payload, status=status)

    return handler


def sequence(*responses: tuple[int, dict[str, str]]) -> Handler:
    """Answer with each (status, headers) in turn, then 200 {"ok": true} forever."""
    queue = list(responses)

    async def handler(request: web.Request) -> web.Response:
        if queue:
            status, headers = queue.pop(0)
            return web.json_response({"status": status}, status=status, headers=headers)
        return web.json_response({"ok": True})

    return handler


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- plain requests -------------------------------------------------------------------


async def test_get_returns_status_headers_body_and_json(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    up = await make_upstream({"/tv/{id}": json_handler({"id": 1396, "name": "Breaking Bad"})})
    client = make_client(up)
    response = await client.get("/tv/1396", params={"append_to_response": "external_ids"})
    assert response.status == 200
    assert response.ok
    assert response.json() == {"id": 1396, "name": "Breaking Bad"}
    assert response.headers["Content-Type"].startswith("application/json")
    assert "Breaking Bad" in response.text()
    assert response.url.endswith("/tv/1396?append_to_response=external_ids")
    assert response.cache is CacheState.UNCACHED
    assert up.requests[0].headers["User-Agent"].startswith("riven_async/")


async def test_params_booleans_and_repeated_values(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    up = await make_upstream({"/checkcached": json_handler({"data": {}})})
    client = make_client(up)
    await client.get("/checkcached", params={"hash": ["a", "b"], "list_files": True, "n": 3})
    query = up.requests[0].query
    assert query.getall("hash") == ["a", "b"]
    assert query["list_files"] == "true"
    assert query["n"] == "3"


async def test_post_json_and_form_and_rd_status_codes(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    bodies: list[tuple[str, bytes]] = []

    async def add_magnet(request: web.Request) -> web.Response:
        bodies.append((request.content_type, await request.read()))
        return web.json_response({"id": "ABC", "uri": "x"}, status=201)

    async def select(request: web.Request) -> web.Response:
        bodies.append((request.content_type, await request.read()))
        return web.Response(status=204)

    up = await make_upstream(
        {"/torrents/addMagnet": add_magnet, "/torrents/selectFiles/{id}": select}
    )
    client = make_client(up)
    created = await client.post("/torrents/addMagnet", data={"magnet": "magnet:?xt=urn:btih:ab"})
    assert created.status == 201
    assert created.json()["id"] == "ABC"
    selected = await client.post("/torrents/selectFiles/ABC", json={"files": "1,3"})
    assert selected.status == 204
    assert selected.body == b""
    assert bodies[0] == (
        "application/x-www-form-urlencoded",
        b"magnet=magnet%3A%3Fxt%3Durn%3Abtih%3Aab",
    )
    assert bodies[1][0] == "application/json"
    assert orjson.loads(bodies[1][1]) == {"files": "1,3"}


async def test_error_status_raises_with_body_unless_accepted(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    payload = {"error": "unknown_ressource", "error_code": 7}
    up = await make_upstream({"/torrents/info/{id}": json_handler(payload, status=404)})
    client = make_client(up)
    with pytest.raises(UpstreamError) as caught:
        await client.get("/torrents/info/NOPE")
    error = caught.value
    assert type(error) is UpstreamError
    assert (error.service, error.status, error.method) == ("test", 404, "GET")
    assert orjson.loads(error.body) == payload
    assert str(error).startswith("test: HTTP 404 on GET http://127.0.0.1:")
    accepted = await client.get("/torrents/info/NOPE", accept={404})
    assert accepted.status == 404
    assert up.hits["/torrents/info/NOPE"] == 2  # 4xx is an answer: never retried


async def test_invalid_json_is_a_payload_error(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>cloudflare</html>", content_type="text/html")

    up = await make_upstream({"/x": html})
    response = await make_client(up).get("/x")
    with pytest.raises(UpstreamPayloadError, match="invalid JSON"):
        response.json()


async def test_oversized_body_is_refused(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    async def big(request: web.Request) -> web.StreamResponse:
        stream = web.StreamResponse()
        await stream.prepare(request)
        for _ in range(20):
            await stream.write(b"x" * 1024)
        await stream.write_eof()
        return stream

    up = await make_upstream({"/big": big, "/sized": json_handler("y" * 5000)})
    client = make_client(up, max_body_bytes=4096)
    with pytest.raises(UpstreamPayloadError, match="body over 4096 bytes"):
        await client.get("/big")
    with pytest.raises(UpstreamPayloadError, match="body over 4096 bytes"):
        await client.get("/sized")


# --- retries and backoff --------------------------------------------------------------


async def test_5xx_is_retried_with_backoff_until_success(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    up = await make_upstream({"/flaky": sequence((500, {}), (502, {}), (504, {}))})
    client = make_client(up, max_retries=3)
    response = await client.get("/flaky")
    assert response.json() == {"ok": True}
    assert up.hits["/flaky"] == 4
    stats = client.stats()
    assert stats.retries == 3
    assert stats.requests["5xx"] == 3
    assert stats.requests["2xx"] == 1


async def test_5xx_after_the_last_retry_raises(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    up = await make_upstream({"/down": json_handler({"status_code": 11}, status=500)})
    client = make_client(up, max_retries=2, breaker_failures=100)
    with pytest.raises(UpstreamError, match="HTTP 500") as caught:
        await client.get("/down")
    assert caught.value.status == 500
    assert up.hits["/down"] == 3


async def test_a_post_is_not_repeated_after_a_500_but_is_after_a_503(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    up = await make_upstream(
        {
            "/once": sequence((500, {})),
            "/refused": sequence((503, {})),
            "/idem": sequence((500, {})),
        }
    )
    client = make_client(up, max_retries=3)
    with pytest.raises(UpstreamError, match="HTTP 500"):
        await client.post("/once", json={})
    assert up.hits["/once"] == 1
    assert (await client.post("/refused", json={})).status == 200
    assert up.hits["/refused"] == 2
    assert (await client.post("/idem", json={}, idempotent=True)).status == 200
    assert up.hits["/idem"] == 2


async def test_connection_refused_is_retried_then_unavailable(make_client: ClientFactory) -> None:
    client = make_client(f"http://127.0.0.1:{closed_port()}", max_retries=2)
    with pytest.raises(UpstreamUnavailable, match="no answer on GET") as caught:
        await client.get("/anything")
    assert caught.value.status is None
    assert "ClientConnectorError" in caught.value.reason
    stats = client.stats()
    assert stats.retries == 2
    assert stats.requests["error"] == 3


async def test_a_timeout_is_retried_then_unavailable(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.json_response({})

    up = await make_upstream({"/slow": slow})
    client = make_client(up, timeout_s=0.05, max_retries=1)
    with pytest.raises(UpstreamUnavailable, match="timed out"):
        await client.get("/slow")
    assert up.hits["/slow"] == 2


async def test_a_failure_the_retry_budget_allows_per_request(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    up = await make_upstream({"/flaky": sequence((500, {}))})
    client = make_client(up, max_retries=3)
    with pytest.raises(UpstreamError):
        await client.get("/flaky", max_retries=0)
    assert up.hits["/flaky"] == 1


# --- Retry-After and 429 --------------------------------------------------------------


async def test_429_retry_after_seconds_pauses_the_whole_service(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    clock = ScaledClock(datetime(2026, 1, 1, tzinfo=UTC), speed=20.0)
    arrivals: dict[str, float] = {}

    async def limited(request: web.Request) -> web.Response:
        arrivals.setdefault(f"limited{len(arrivals)}", clock.monotonic())
        return web.json_response({}, status=429, headers={"Retry-After": "2"})

    async def other(request: web.Request) -> web.Response:
        arrivals["other"] = clock.monotonic()
        return web.json_response({"ok": True})

    up = await make_upstream({"/limited": limited, "/other": other})
    client = make_client(up, clock=clock, max_retries=0, backoff_max_s=10.0)
    with pytest.raises(RateLimited) as caught:
        await client.get("/limited")
    assert caught.value.retry_after_s == 2.0
    assert caught.value.status == 429
    assert client.stats().limiter.paused_for_s > 1.5
    # A different request to the same upstream waits out the pause.
    await client.get("/other")
    assert arrivals["other"] - arrivals["limited0"] >= 2.0
    assert client.stats().rate_limited == 1
    assert client.stats().rate_limited_last_hour == 1


async def test_429_is_retried_after_the_pause(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    clock = ScaledClock(datetime(2026, 1, 1, tzinfo=UTC), speed=50.0)
    up = await make_upstream({"/x": sequence((429, {"Retry-After": "1"}))})
    client = make_client(up, clock=clock, max_retries=2, backoff_max_s=10.0)
    before = clock.monotonic()
    assert (await client.get("/x")).json() == {"ok": True}
    assert clock.monotonic() - before >= 1.0
    assert client.stats().retries == 1


async def test_429_retry_after_http_date(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    clock = ScaledClock(datetime(2026, 1, 1, tzinfo=UTC), speed=20.0)

    async def limited(request: web.Request) -> web.Response:
        when = format_datetime(clock.now() + timedelta(seconds=3), usegmt=True)
        return web.json_response({}, status=429, headers={"Retry-After": when})

    up = await make_upstream({"/x": limited})
    client = make_client(up, clock=clock, max_retries=0, backoff_max_s=10.0)
    with pytest.raises(RateLimited) as caught:
        await client.get("/x")
    # An HTTP date has whole seconds, so 3 s ahead parses as 2 < wait <= 3.
    assert 2.0 < caught.value.retry_after_s <= 3.0


async def test_429_without_retry_after_still_pauses(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    up = await make_upstream({"/x": json_handler({}, status=429)})
    client = make_client(up, max_retries=0, backoff_base_s=5.0, backoff_max_s=30.0)
    with pytest.raises(RateLimited):
        await client.get("/x")
    assert client.stats().limiter.paused_for_s > 4.0


async def test_a_long_retry_after_raises_at_once_instead_of_waiting(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    async def long(request: web.Request) -> web.Response:
        return web.json_response({}, status=429, headers={"Retry-After": "600"})

    up = await make_upstream({"/x": long})
    client = make_client(up, max_retries=5, backoff_max_s=30.0)
    with pytest.raises(RateLimited, match=r"retry after 600\.0s"):
        await asyncio.wait_for(client.get("/x"), timeout=2.0)
    assert up.hits["/x"] == 1
    assert client.stats().limiter.paused_for_s > 590.0
    # Everyone else waits for the pause too: nothing reaches the upstream.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(client.get("/y"), timeout=0.1)
    assert up.hits["/y"] == 0


async def test_503_retry_after_is_honoured_for_the_retry(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    clock = ScaledClock(datetime(2026, 1, 1, tzinfo=UTC), speed=50.0)
    up = await make_upstream({"/x": sequence((503, {"Retry-After": "2"}))})
    client = make_client(up, clock=clock, max_retries=1, backoff_max_s=10.0)
    before = clock.monotonic()
    assert (await client.get("/x")).status == 200
    assert clock.monotonic() - before >= 2.0


async def test_503_after_the_last_retry_is_unavailable_with_retry_after(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    async def maintenance(request: web.Request) -> web.Response:
        return web.json_response({}, status=503, headers={"Retry-After": "120"})

    up = await make_upstream({"/x": maintenance})
    client = make_client(up, max_retries=3)
    with pytest.raises(UpstreamUnavailable, match="HTTP 503") as caught:
        await client.get("/x")
    assert caught.value.retry_after_s == 120.0
    assert up.hits["/x"] == 1  # 120 s is longer than backoff_max_s: no inline wait


# --- circuit breaker ------------------------------------------------------------------


async def test_breaker_opens_and_an_outage_costs_one_probe_per_interval(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    clock = ManualClock()
    up = await make_upstream({"/x": json_handler({}, status=500)})
    client = make_client(up, clock=clock, max_retries=0, breaker_failures=3, breaker_reset_s=30.0)
    for _ in range(3):
        with pytest.raises(UpstreamError, match="HTTP 500"):
            await client.get("/x")
    assert client.stats().breaker.state == "open"
    for _ in range(50):
        with pytest.raises(UpstreamUnavailable, match="circuit open"):
            await client.get("/x")
    assert up.hits["/x"] == 3
    for interval in range(1, 4):
        clock.advance(30.0)
        results = await asyncio.gather(
            *(client.get("/x") for _ in range(20)), return_exceptions=True
        )
        assert all(isinstance(r, UpstreamError) for r in results)
        assert up.hits["/x"] == 3 + interval  # exactly one probe each interval


async def test_breaker_closes_when_the_probe_succeeds(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    clock = ManualClock()
    up = await make_upstream({"/x": sequence((500, {}), (500, {}))})
    client = make_client(up, clock=clock, max_retries=0, breaker_failures=2, breaker_reset_s=10.0)
    for _ in range(2):
        with pytest.raises(UpstreamError):
            await client.get("/x")
    with pytest.raises(UpstreamUnavailable) as caught:
        await client.get("/x")
    assert caught.value.retry_after_s == 10.0
    clock.advance(10.0)
    assert (await client.get("/x")).status == 200
    assert client.stats().breaker.state == "closed"
    assert [(await client.get("/x")).status for _ in range(5)] == [200] * 5


async def test_retries_stop_once_the_breaker_opens(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    up = await make_upstream({"/x": json_handler({}, status=502)})
    client = make_client(up, max_retries=10, breaker_failures=3)
    with pytest.raises(UpstreamUnavailable, match="circuit open"):
        await client.get("/x")
    assert up.hits["/x"] == 3


async def test_4xx_does_not_count_as_an_outage(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    up = await make_upstream({"/x": json_handler({}, status=404)})
    client = make_client(up, breaker_failures=2)
    for _ in range(10):
        with pytest.raises(UpstreamError):
            await client.get("/x")
    assert client.stats().breaker.state == "closed"


# --- rate windows ---------------------------------------------------------------------


async def test_the_windows_hold_requests_back(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    clock = ManualClock()
    up = await make_upstream({"/x": json_handler({})})
    client = make_client(up, clock=clock, windows=((3, 10.0),))
    tasks = [asyncio.create_task(client.get("/x", params={"i": i})) for i in range(5)]
    done, pending = await asyncio.wait(tasks, timeout=0.5)
    assert (len(done), len(pending)) == (3, 2)
    stats = client.stats().limiter
    assert stats.waiters == 2
    assert stats.windows[0].used == 3
    clock.advance(10.0)
    await asyncio.gather(*tasks)
    assert up.hits["/x"] == 5


async def test_a_request_holds_its_window_place_until_its_response_is_in(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    clock = ManualClock()
    gate = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await gate.wait()
        return web.json_response({})

    up = await make_upstream({"/slow": slow, "/fast": json_handler({})})
    client = make_client(up, clock=clock, windows=((1, 10.0),))
    first = asyncio.create_task(client.get("/slow"))
    await asyncio.sleep(0.05)
    clock.set_elapsed(50.0)  # long past the window, but the first is still on the wire
    second = asyncio.create_task(client.get("/fast"))
    await asyncio.sleep(0.05)
    assert up.hits["/fast"] == 0
    assert client.stats().limiter.in_flight == 1
    gate.set()
    await first  # done at t=50: its window runs to t=60
    await asyncio.sleep(0.05)
    assert up.hits["/fast"] == 0
    clock.set_elapsed(60.0)
    await second
    assert up.hits["/fast"] == 1


async def test_a_failed_connect_hands_its_window_place_back(make_client: ClientFactory) -> None:
    clock = ManualClock()
    client = make_client(
        f"http://127.0.0.1:{closed_port()}", clock=clock, windows=((1, 60.0),), max_retries=2
    )
    task = asyncio.create_task(client.get("/x"))
    # Backoff sleeps run on the manual clock: jump over them as they come.
    await asyncio.wait([task], timeout=0.01)
    while not task.done():
        deadline = clock.next_deadline()
        if deadline is not None:
            clock.set_elapsed(deadline)
        await asyncio.wait([task], timeout=0.01)
    with pytest.raises(UpstreamUnavailable):
        await task
    assert clock.monotonic() < 1.0  # three attempts, none waited for the 60 s window
    assert client.stats().limiter.refunded == 3


# --- coalescing -----------------------------------------------------------------------


async def test_100_identical_concurrent_gets_make_one_upstream_call(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.05)
        return web.json_response({"id": 1396})

    up = await make_upstream({"/tv/{id}": slow})
    client = make_client(up)
    results = await asyncio.gather(*(client.get("/tv/1396") for _ in range(100)))
    assert up.hits["/tv/1396"] == 1
    assert all(r.json() == {"id": 1396} for r in results)
    assert client.stats().coalesced == 99


async def test_different_urls_or_headers_are_not_coalesced_and_posts_never_are(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.02)
        return web.json_response({})

    up = await make_upstream({"/a": slow, "/b": slow})
    client = make_client(up)
    await asyncio.gather(
        client.get("/a"),
        client.get("/a", params={"page": 2}),
        client.get("/a", headers={"Accept": "application/xml"}),
        client.get("/b"),
        *(client.post("/b", json={}) for _ in range(3)),
    )
    assert up.hits == {"/a": 3, "/b": 4}


async def test_a_cancelled_caller_does_not_cancel_the_shared_call(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.05)
        return web.json_response({"ok": True})

    up = await make_upstream({"/x": slow})
    client = make_client(up)
    first = asyncio.create_task(client.get("/x"))
    second = asyncio.create_task(client.get("/x"))
    await asyncio.sleep(0.01)
    first.cancel()
    assert (await second).json() == {"ok": True}
    assert first.cancelled()
    assert up.hits["/x"] == 1


async def test_errors_are_shared_by_every_coalesced_caller(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    async def slow_404(request: web.Request) -> web.Response:
        await asyncio.sleep(0.02)
        return web.json_response({}, status=404)

    up = await make_upstream({"/x": slow_404})
    client = make_client(up)
    results = await asyncio.gather(*(client.get("/x") for _ in range(10)), return_exceptions=True)
    assert all(isinstance(r, UpstreamError) and r.status == 404 for r in results)
    assert up.hits["/x"] == 1


# --- cache ----------------------------------------------------------------------------


async def test_static_data_is_cached_per_namespace_ttl(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    clock = ManualClock()
    up = await make_upstream(
        {"/movie/{id}": json_handler({"id": 693134}), "/tv/{id}": json_handler({})}
    )
    client = make_client(
        up, clock=clock, cache_ttl_s=(("movie", 21600.0), ("tv", 7200.0)), cache_stale_s=0.0
    )
    first = await client.get("/movie/693134", cache_namespace="movie")
    assert first.cache is CacheState.MISS
    again = await client.get("/movie/693134", cache_namespace="movie")
    assert again.cache is CacheState.FRESH
    assert again.json() == {"id": 693134}
    await client.get("/tv/1", cache_namespace="tv")
    clock.advance(7200.0)
    await client.get("/tv/1", cache_namespace="tv")
    await client.get("/movie/693134", cache_namespace="movie")
    assert up.hits == {"/movie/693134": 1, "/tv/1": 2}
    stats = client.stats().cache
    assert (stats.hits, stats.misses) == (2, 3)


async def test_live_data_is_never_cached(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    up = await make_upstream({"/torrents/info/{id}": json_handler({"status": "downloading"})})
    client = make_client(up, cache_ttl_s=(("movie", 3600.0),))
    for _ in range(3):
        response = await client.get("/torrents/info/A")  # cache_namespace defaults to None
        assert response.cache is CacheState.UNCACHED
    await client.get("/torrents/info/A", cache_namespace="availability")  # no TTL: not cached
    await client.get("/torrents/info/A", cache_namespace="availability")
    assert up.hits["/torrents/info/A"] == 5
    assert client.stats().cache.entries == 0


async def test_bypass_fetches_afresh_and_refreshes_the_entry(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    counter = {"n": 0}

    async def versioned(request: web.Request) -> web.Response:
        counter["n"] += 1
        return web.json_response({"version": counter["n"]})

    up = await make_upstream({"/tv/1": versioned})
    client = make_client(up, cache_ttl_s=(("tv", 3600.0),))
    assert (await client.get("/tv/1", cache_namespace="tv")).json() == {"version": 1}
    fresh = await client.get("/tv/1", cache_namespace="tv", bypass_cache=True)
    assert fresh.json() == {"version": 2}
    assert fresh.cache is CacheState.BYPASS
    assert (await client.get("/tv/1", cache_namespace="tv")).json() == {"version": 2}


async def test_errors_are_not_cached(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    up = await make_upstream({"/movie/0": json_handler({"status_code": 34}, status=404)})
    client = make_client(up, cache_ttl_s=(("movie", 3600.0),))
    for _ in range(2):
        with pytest.raises(UpstreamError):
            await client.get("/movie/0", cache_namespace="movie")
    assert up.hits["/movie/0"] == 2


async def test_stale_while_revalidate_through_the_client(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    clock = ManualClock()
    counter = {"n": 0}

    async def versioned(request: web.Request) -> web.Response:
        counter["n"] += 1
        await asyncio.sleep(0.02)
        return web.json_response({"version": counter["n"]})

    up = await make_upstream({"/configuration": versioned})
    client = make_client(
        up, clock=clock, cache_ttl_s=(("configuration", 86400.0),), cache_stale_s=3600.0
    )
    await client.get("/configuration", cache_namespace="configuration")
    clock.advance(86400.0 + 10.0)
    stale = await asyncio.gather(
        *(client.get("/configuration", cache_namespace="configuration") for _ in range(30))
    )
    assert {r.json()["version"] for r in stale} == {1}
    assert {r.cache for r in stale} == {CacheState.STALE}
    await asyncio.sleep(0.1)
    assert up.hits["/configuration"] == 2  # exactly one background refresh
    fresh = await client.get("/configuration", cache_namespace="configuration")
    assert (fresh.json(), fresh.cache) == ({"version": 2}, CacheState.FRESH)


async def test_caching_a_post_is_refused(make_client: ClientFactory) -> None:
    client = make_client("http://127.0.0.1:9")
    with pytest.raises(ValueError, match="only GET"):
        await client.request("POST", "/x", cache_namespace="movie")


# --- secrets --------------------------------------------------------------------------

KEY = "SEKRETkey-0123456789abcdef"
PATH_SECRET = "PATHsecret-9876543210"
HEADER_SECRET = "HEADERsecret-55555"


async def test_no_secret_reaches_an_exception_a_repr_a_log_line_or_the_stats(
    make_upstream: UpstreamFactory, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async def not_found(request: web.Request) -> web.Response:
        return web.json_response({"error": "bad_token"}, status=404)

    async def broken(request: web.Request) -> web.Response:
        return web.json_response({}, status=500)

    async def limited(request: web.Request) -> web.Response:
        return web.json_response({}, status=429, headers={"Retry-After": "0"})

    async def garbage(request: web.Request) -> web.Response:
        return web.Response(text="not json")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.json_response({})

    up = await make_upstream(
        {
            "/nf": not_found,
            "/broken": broken,
            "/limited": limited,
            "/garbage": garbage,
            "/slow": slow,
            f"/{PATH_SECRET}/stream": not_found,
        }
    )
    policy: dict[str, Any] = {
        "api_key": Secret(KEY),
        "auth": ApiKeyAuth("query", "api_key"),
        "scrub": (Secret(PATH_SECRET), Secret(HEADER_SECRET)),
        "max_retries": 1,
        "breaker_failures": 3,
        "timeout_s": 0.05,
    }
    client = make_client(up, **policy)
    down = make_client(f"http://127.0.0.1:{closed_port()}", **policy)
    rendered: list[str] = [repr(client), repr(client.policy), str(client.policy)]
    caught: list[BaseException] = []
    with caplog.at_level(logging.DEBUG):
        calls = [
            client.get("/nf", params={"token": HEADER_SECRET}),
            client.get(f"/{PATH_SECRET}/stream"),
            client.get("/limited"),
            client.get("/slow", headers={"Authorization": f"Bearer {HEADER_SECRET}"}),
            client.get("/broken"),
            client.get("/broken"),  # opens the breaker
            client.get("/broken"),
            client.post("/broken", data={"password": HEADER_SECRET}),
            down.get("/x"),
            down.post("/x", json={"key": KEY}),
        ]
        for call in calls:
            try:
                await call
            except UpstreamError as exc:
                caught.append(exc)
        try:
            (await client.get("/garbage")).json()
        except UpstreamError as exc:
            caught.append(exc)
    assert len(caught) == 11
    assert {type(e) for e in caught} >= {UpstreamError, RateLimited, UpstreamUnavailable}
    for error in caught:
        rendered += [str(error), repr(error), repr(error.args)]
    # Our own log lines (the fake upstream's access log shows what it received, naturally).
    ours = [r for r in caplog.records if r.name.startswith("riven_async")]
    assert ours
    rendered += [caplog.handler.format(r) for r in ours]
    rendered.append(orjson.dumps(client.stats().to_dict()).decode())
    rendered.append(orjson.dumps(down.stats().to_dict()).decode())
    everything = "\n".join(rendered)
    for secret in (KEY, PATH_SECRET, HEADER_SECRET):
        assert secret not in everything
    assert "token=***" in everything
    assert "/***/stream" in everything
    # ...while the upstream did get the key.
    assert up.requests[0].query["api_key"] == KEY


async def test_header_auth_is_sent_and_never_rendered(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    up = await make_upstream({"/user": json_handler({"id": 1})})
    client = make_client(
        up, api_key=Secret(KEY), auth=ApiKeyAuth("header", "Authorization", "Bearer {key}")
    )
    await client.get("/user")
    assert up.requests[0].headers["Authorization"] == f"Bearer {KEY}"
    assert KEY not in repr(client.policy)
    assert KEY not in repr(client.policy.api_key)
    assert "key" not in up.requests[0].query


def test_secret_in_the_base_url_is_scrubbed_from_repr() -> None:
    client = HttpClient(
        UpstreamPolicy(
            name="torrentio",
            base_url=f"https://torrentio.example/realdebrid={KEY}",
            api_key=Secret(KEY),
        )
    )
    assert KEY not in repr(client)
    assert "realdebrid=***" in repr(client)


# --- stats and lifecycle --------------------------------------------------------------


async def test_stats_shape_for_the_metrics_endpoint(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    up = await make_upstream({"/ok": json_handler({}), "/nf": json_handler({}, status=404)})
    client = make_client(up, windows=((250, 60.0),), cache_ttl_s=(("movie", 60.0),))
    for _ in range(5):
        await client.get("/ok", params={"n": _})
    await client.get("/ok", cache_namespace="movie")
    await client.get("/ok", cache_namespace="movie")
    with pytest.raises(UpstreamError):
        await client.get("/nf")
    data = client.stats().to_dict()
    assert data["service"] == "test"
    assert data["requests"] == {"1xx": 0, "2xx": 6, "3xx": 0, "4xx": 1, "5xx": 0, "error": 0}
    assert data["rate_limited"] == 0
    assert data["retries"] == 0
    assert data["breaker"] == {
        "state": "closed",
        "consecutive_failures": 0,
        "opened_total": 0,
        "retry_in_s": 0.0,
    }
    assert data["limiter"]["windows"] == [{"limit": 250, "seconds": 60.0, "used": 7}]
    assert data["limiter"]["waiters"] == 0
    assert data["cache"]["hits"] == 1
    assert data["cache"]["misses"] == 1
    assert data["latency"]["samples"] == 7
    assert 0 < data["latency"]["p50_s"] <= data["latency"]["p95_s"] <= data["latency"]["p99_s"]
    assert orjson.loads(orjson.dumps(data)) == data


async def test_closed_client_refuses_requests(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    up = await make_upstream({"/x": json_handler({})})
    client = make_client(up)
    await client.get("/x")
    await client.aclose()
    await client.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await client.get("/x")


async def test_absolute_urls_go_through_the_same_limiter(
    make_upstream: UpstreamFactory, make_client: ClientFactory
) -> None:
    up = await make_upstream({"/dl": json_handler({"ok": True})})
    client = make_client("http://127.0.0.1:9/api")
    response = await client.get(f"{up.base_url}/dl")
    assert response.json() == {"ok": True}
    assert client.stats().limiter.admitted == 1


async def test_context_manager_closes(make_upstream: UpstreamFactory) -> None:
    up: FakeUpstream = await make_upstream({"/x": json_handler({})})
    async with HttpClient(UpstreamPolicy(name="t", base_url=up.base_url)) as client:
        assert (await client.get("/x")).status == 200
    with pytest.raises(RuntimeError, match="closed"):
        await client.get("/x")


# --- building clients from the config -------------------------------------------------


def test_policy_from_section_mirrors_the_config() -> None:
    settings = load_settings_from_dict(
        {
            "upstreams": {
                "alldebrid": {
                    "enabled": True,
                    "api_key": KEY,
                    "max_connections": 4,
                    "cache_ttl_s": {"user": 60.0},
                }
            }
        }
    )
    policy = policy_from_section("alldebrid", settings.upstreams.alldebrid)
    assert policy.windows == ((12, 1.0), (600, 60.0))
    assert policy.max_connections == 4
    assert policy.cache_ttl_s == (("user", 60.0),)
    assert policy.api_key.reveal() == KEY
    assert policy.auth == ApiKeyAuth("header", "Authorization", "Bearer {key}")
    assert KEY not in repr(policy)


def test_tmdb_takes_a_v4_token_as_bearer_and_a_v3_key_as_a_query_param() -> None:
    assert default_auth("tmdb", "eyJhbGciOiJIUzI1NiJ9.eyJhdWQiOiJ4In0.sig") == ApiKeyAuth(
        "header", "Authorization", "Bearer {key}"
    )
    assert default_auth("tmdb", "0123456789abcdef0123456789abcdef") == ApiKeyAuth(
        "query", "api_key"
    )
    assert default_auth("tvmaze", "") is None


async def test_clients_from_settings_one_per_enabled_upstream(
    make_upstream: UpstreamFactory,
) -> None:
    up = await make_upstream({"/user": json_handler({"id": 1}), "/stream/{x}": json_handler({})})
    settings = load_settings_from_dict(
        {
            "upstreams": {
                "realdebrid": {"enabled": True, "base_url": up.base_url, "api_key": KEY},
                "torrentio": {"base_url": up.base_url},
                "tvmaze": {"enabled": False},
            }
        }
    )
    async with UpstreamClients.from_settings(settings, clock=ManualClock()) as clients:
        assert set(clients) == {"tmdb", "torrentio", "realdebrid"}
        assert "tvmaze" not in clients
        assert len(clients) == 3
        with pytest.raises(KeyError, match="not enabled"):
            clients["tvmaze"]
        assert clients.get("tvmaze") is None
        rd = clients["realdebrid"]
        assert (await rd.get("/user")).json() == {"id": 1}
        assert up.requests[-1].headers["Authorization"] == f"Bearer {KEY}"
        assert up.requests[-1].headers["Accept"] == "application/json"
        # The RD key inside torrentio's config segment is masked in torrentio's errors too.
        with pytest.raises(UpstreamError) as caught:
            await clients["torrentio"].get(f"/realdebrid={KEY}/nothing")
        assert KEY not in str(caught.value)
        stats = clients.stats_dict()
        assert set(stats) == {"tmdb", "torrentio", "realdebrid"}
        assert stats["realdebrid"]["limiter"]["windows"] == [
            {"limit": 250, "seconds": 60.0, "used": 1}
        ]
        assert "realdebrid" in repr(clients)
    with pytest.raises(RuntimeError, match="closed"):
        await rd.get("/user")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://h/x?api_key=abc&page=2", "https://h/x?api_key=***&page=2"),
        ("https://h/x?APIKEY=abc", "https://h/x?APIKEY=***"),
        ("https://h/dl?token=abc&torrent_id=1", "https://h/dl?token=***&torrent_id=1"),
        ("https://user:pw@h/x", "https://***@h/x"),
        (f"https://h/sort=size%7Crealdebrid={KEY}/stream", "https://h/sort=size%7Crealdebrid=***/stream"),
        ("nothing secret here", "nothing secret here"),
    ],
)  # fmt: skip
def test_scrubber_masks_credential_params_userinfo_and_listed_secrets(
    text: str, expected: str
) -> None:
    assert Scrubber([KEY, ""]).text(text) == expected


def test_scrubber_masks_percent_encoded_secrets() -> None:
    secret = "a/b+c d"
    scrubber = Scrubber([secret])
    for shown in (secret, "a%2Fb%2Bc%20d", "a%2Fb%2Bc+d"):
        assert scrubber.text(f"x={shown}.") == "x=***."

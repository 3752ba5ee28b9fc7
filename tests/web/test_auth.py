"""API-key auth: every place each sender can put the key, and every way to get it wrong."""

from __future__ import annotations

import base64
import hmac
import logging
from collections.abc import Callable

import pytest
from multidict import CIMultiDict

from riven_async import keys
from riven_async.config import Settings
from riven_async.web import auth
from tests.conftest import TEST_API_KEY
from tests.payloads import load
from tests.payloads.harness import AiohttpClient, FakeSink, build_webhook_app

Settings_ = Callable[..., Settings]
GRAB = load("sonarr_grab.json")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


ACCEPTED: list[tuple[str, dict[str, str], str]] = [
    ("x-api-key header", {"X-Api-Key": TEST_API_KEY}, ""),
    ("x-api-key any case", {"x-api-key": TEST_API_KEY}, ""),
    ("bearer", {"Authorization": f"Bearer {TEST_API_KEY}"}, ""),
    ("bearer lower case", {"Authorization": f"bearer {TEST_API_KEY}"}, ""),
    ("basic, sonarr style", {"Authorization": basic("sonarr", TEST_API_KEY)}, ""),
    ("basic, empty user", {"Authorization": basic("", TEST_API_KEY)}, ""),
    ("bare authorization value", {"Authorization": TEST_API_KEY}, ""),
    ("?apikey=", {}, f"?apikey={TEST_API_KEY}"),
    ("?api_key=", {}, f"?api_key={TEST_API_KEY}"),
    ("one good among bad", {"X-Api-Key": "nope"}, f"?apikey={TEST_API_KEY}"),
]
REJECTED: list[tuple[str, dict[str, str], str]] = [
    ("no key", {}, ""),
    ("wrong key", {"X-Api-Key": "wrong-key-0123456789"}, ""),
    ("key prefix", {"X-Api-Key": TEST_API_KEY[:-1]}, ""),
    ("key with a suffix", {"X-Api-Key": TEST_API_KEY + "x"}, ""),
    ("empty header", {"X-Api-Key": ""}, ""),
    ("wrong bearer", {"Authorization": "Bearer wrong"}, ""),
    ("wrong basic password", {"Authorization": basic("sonarr", "hunter2")}, ""),
    ("key as basic user", {"Authorization": basic(TEST_API_KEY, "")}, ""),
    ("key as basic user, other password", {"Authorization": basic(TEST_API_KEY, "x")}, ""),
    ("basic without colon",
     {"Authorization": "Basic " + base64.b64encode(TEST_API_KEY.encode()).decode()}, ""),
    ("basic not base64", {"Authorization": "Basic %%%not-base64%%%"}, ""),
    ("key in another header", {"X-Api-Token": TEST_API_KEY}, ""),
    ("key under another scheme", {"Authorization": f"Token {TEST_API_KEY}"}, ""),
    ("key in another query name", {}, f"?token={TEST_API_KEY}"),
    ("key in the path", {}, f"/{TEST_API_KEY}"),
    ("wrong query key", {}, "?apikey=wrong"),
    ("non-ascii junk", {"X-Api-Key": "clé-ünïcödé"}, ""),
]


@pytest.mark.parametrize(("case", "headers", "suffix"), ACCEPTED, ids=[c[0] for c in ACCEPTED])
async def test_each_accepted_form(
    aiohttp_client: AiohttpClient, make_settings: Settings_, case: str,
    headers: dict[str, str], suffix: str,
) -> None:
    sink = FakeSink()
    client = await aiohttp_client(build_webhook_app(make_settings(), sink))
    response = await client.post("/webhook/sonarr" + suffix, data=GRAB, headers=headers)
    assert response.status == 202, await response.text()
    assert len(sink.deliveries) == 1


@pytest.mark.parametrize(("case", "headers", "suffix"), REJECTED, ids=[c[0] for c in REJECTED])
async def test_each_rejection_is_a_json_401_and_reaches_no_sink(
    aiohttp_client: AiohttpClient, make_settings: Settings_, case: str,
    headers: dict[str, str], suffix: str,
) -> None:
    sink = FakeSink()
    client = await aiohttp_client(build_webhook_app(make_settings(), sink))
    response = await client.post("/webhook/sonarr" + suffix, data=GRAB, headers=headers)
    assert response.status == 401
    assert response.content_type == "application/json"
    body = await response.json()
    assert body["field"] is None
    assert body["error"]
    assert TEST_API_KEY not in await response.text()
    assert "WWW-Authenticate" in response.headers
    assert sink.deliveries == []


@pytest.mark.parametrize("path", [
    "/webhook/sonarr", "/webhook/radarr", "/webhook/overseerr", "/webhook/plex",
    "/webhook/jellyfin", "/webhook/show-update", "/webhook/show-update/batch",
    "/api/v1/webhook/overseerr", "/api/items", "/api/anything-not-routed", "/webhook/nope",
    "/", "/health/", "/metrics",
])
async def test_every_route_but_health_needs_the_key(
    aiohttp_client: AiohttpClient, make_settings: Settings_, path: str
) -> None:
    client = await aiohttp_client(build_webhook_app(make_settings()))
    for method in ("GET", "POST"):
        response = await client.request(method, path, data=b"{}")
        assert response.status == 401, (method, path)


async def test_health_is_open_and_metrics_follow_metrics_public(
    aiohttp_client: AiohttpClient, make_settings: Settings_
) -> None:
    client = await aiohttp_client(build_webhook_app(make_settings()))
    assert (await client.get("/health")).status == 200
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/metrics", headers={"X-Api-Key": TEST_API_KEY})).status == 200
    public = await aiohttp_client(build_webhook_app(make_settings(server={"metrics_public": True})))
    assert (await public.get("/metrics")).status == 200
    assert (await public.get("/api/items")).status == 401


async def test_a_reload_swaps_the_key_at_once(
    aiohttp_client: AiohttpClient, make_settings: Settings_
) -> None:
    client = await aiohttp_client(build_webhook_app(make_settings()))
    new_key = "rotated-key-9876543210"
    client.app[keys.SETTINGS].current = make_settings(server={"api_key": new_key})
    response = await client.post("/webhook/sonarr", data=GRAB, headers={"X-Api-Key": TEST_API_KEY})
    assert response.status == 401
    response = await client.post("/webhook/sonarr", data=GRAB, headers={"X-Api-Key": new_key})
    assert response.status == 202


async def test_an_empty_configured_key_opens_nothing(
    aiohttp_client: AiohttpClient, make_settings: Settings_
) -> None:
    client = await aiohttp_client(build_webhook_app(make_settings(server={"api_key": ""})))
    for headers in ({}, {"X-Api-Key": ""}, {"Authorization": "Bearer "},
                    {"Authorization": basic("x", "")}):
        assert (await client.post("/webhook/sonarr", data=GRAB, headers=headers)).status == 401


async def test_the_key_is_in_no_log_record_or_response(
    aiohttp_client: AiohttpClient, make_settings: Settings_, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # As in production (riven_async.logs.setup_logging): no per-request access lines.
    caplog.set_level(logging.WARNING, logger="aiohttp.access")
    client = await aiohttp_client(build_webhook_app(make_settings(server={"slow_request_s": 1e-9})))
    bodies: list[str] = []
    attempts = [
        ("/webhook/sonarr", {"X-Api-Key": TEST_API_KEY}, "", GRAB),
        ("/webhook/sonarr", {}, f"?apikey={TEST_API_KEY}", b"{broken"),
        ("/webhook/sonarr", {"X-Api-Key": TEST_API_KEY + "x"}, "", GRAB),
        ("/webhook/plex", {}, f"?api_key={TEST_API_KEY}&x=1", b"{}"),
        ("/webhook/nope", {}, f"?apikey={TEST_API_KEY}", b"{}"),
        ("/api/boom", {"Authorization": f"Bearer {TEST_API_KEY}"}, "", b""),
        ("/webhook/show-update", {"Authorization": basic("u", TEST_API_KEY)}, "",
         b'{"tmdb_id": "' + TEST_API_KEY.encode() + b'"}'),
    ]
    for path, headers, suffix, data in attempts:
        method = "GET" if path == "/api/boom" else "POST"
        response = await client.request(method, path + suffix, data=data, headers=headers)
        bodies.append(await response.text())
        bodies.append(str(dict(response.headers)))
    assert any("slow request" in r.getMessage() for r in caplog.records)
    assert any("unhandled error" in r.getMessage() for r in caplog.records)
    for text in bodies:
        assert TEST_API_KEY not in text
    for record in caplog.records:
        rendered = record.getMessage() + str(record.exc_text or "") + str(record.__dict__)
        assert TEST_API_KEY not in rendered, record.getMessage()


def test_presented_reads_every_place() -> None:
    headers = CIMultiDict({"X-Api-Key": "a", "Authorization": basic("user", "b")})
    assert list(auth.presented(headers, {"apikey": "c", "api_key": "d"})) == [
        b"a", b"b", b"c", b"d"
    ]
    assert list(auth.presented(CIMultiDict({"Authorization": "Bearer  e "}), {})) == [b"e"]
    assert list(auth.presented(CIMultiDict({"Authorization": "Basic !!"}), {})) == []


def test_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    headers = CIMultiDict({"X-Api-Key": "wrong", "Authorization": f"Bearer {TEST_API_KEY}"})
    assert auth.is_authorized(headers, {}, TEST_API_KEY)
    # Every candidate is compared, not just the first; all as bytes.
    assert calls == [(b"wrong", TEST_API_KEY.encode()), (TEST_API_KEY.encode(),) * 2]


def test_needs_key() -> None:
    assert not auth.needs_key("/health", metrics_public=False)
    assert auth.needs_key("/metrics", metrics_public=False)
    assert not auth.needs_key("/metrics", metrics_public=True)
    for path in ("/webhook/sonarr", "/api/items", "/", "/healthz", "/health/x"):
        assert auth.needs_key(path, metrics_public=True)

"""Bad input is a 4xx naming what is wrong; nothing is ever a bare 500 or a crash."""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import AsyncIterator, Callable

import orjson
import pytest

from riven_async.config import Settings
from riven_async.errors import DatabaseUnavailable
from tests.conftest import TEST_API_KEY
from tests.payloads import load, load_json, plex_multipart
from tests.payloads.harness import BOOM_PATH, AiohttpClient, FakeSink, build_webhook_app

Settings_ = Callable[..., Settings]
AUTH = {"X-Api-Key": TEST_API_KEY}
MIN_BODY = 1024  # the smallest server.max_body_bytes the config accepts


def with_fields(name: str, **fields: object) -> bytes:
    return orjson.dumps(load_json(name) | fields)


BAD_INPUT: list[tuple[str, str, bytes, int, str | None]] = [
    ("malformed json", "/webhook/sonarr", b'{"eventType": "Grab",', 400, None),
    ("not json at all", "/webhook/radarr", b"eventType=Grab", 400, None),
    ("empty body", "/webhook/overseerr", b"", 400, None),
    ("whitespace body", "/webhook/show-update", b" \n ", 400, None),
    ("json but not an object", "/webhook/sonarr", b"[1, 2, 3]", 422, None),
    ("missing event", "/webhook/radarr", with_fields("radarr_grab.json", eventType=None), 422,
     "eventType"),
    ("missing needed field", "/webhook/sonarr",
     orjson.dumps({"eventType": "SeriesAdd", "instanceName": "Sonarr"}), 422, "series"),
    ("wrong type", "/webhook/radarr",
     orjson.dumps(load_json("radarr_movie_added.json")
                  | {"movie": load_json("radarr_movie_added.json")["movie"] | {"tmdbId": "x"}}),
     422, "movie.tmdbId"),
    ("wrong type, list for object", "/webhook/sonarr",
     with_fields("sonarr_series_add.json", series=[1]), 422, "series"),
    ("overseerr without media", "/webhook/overseerr",
     with_fields("overseerr_media_approved_movie.json", media=None), 422, "media"),
    ("plex multipart without payload", "/webhook/plex",
     b"--b\r\nContent-Disposition: form-data; name=\"thumb\"\r\n\r\nx\r\n--b--\r\n", 400,
     "payload"),
    ("NUL in a string", "/webhook/jellyfin", b'{"NotificationType":"ItemAdded\\u0000"}', 400, None),
    ("invalid utf-8", "/webhook/sonarr", b'{"eventType":"\xff"}', 400, None),
    ("deep nesting", "/webhook/show-update", b"[" * 5000 + b"]" * 5000, 400, None),
]


@pytest.mark.parametrize(("case", "path", "body", "status", "field"), BAD_INPUT,
                         ids=[c[0] for c in BAD_INPUT])
async def test_bad_input_is_a_4xx_naming_the_field(
    aiohttp_client: AiohttpClient, make_settings: Settings_, case: str, path: str, body: bytes,
    status: int, field: str | None,
) -> None:
    sink = FakeSink()
    client = await aiohttp_client(build_webhook_app(make_settings(), sink))
    content_type = "multipart/form-data; boundary=b" if "multipart" in case else "application/json"
    response = await client.post(path, data=body,
                                 headers={**AUTH, "Content-Type": content_type})
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    payload = await response.json()
    assert set(payload) == {"error", "field"}
    assert payload["field"] == field
    assert payload["error"]
    assert sink.deliveries == []  # nothing half-written


async def test_unknown_events_of_known_senders_are_200_ignored(
    aiohttp_client: AiohttpClient, make_settings: Settings_
) -> None:
    sink = FakeSink()
    client = await aiohttp_client(build_webhook_app(make_settings(), sink))
    cases = [
        ("/webhook/sonarr", with_fields("sonarr_grab.json", eventType="SeriesRenamedInV5")),
        ("/webhook/radarr", with_fields("radarr_grab.json", eventType="MovieSomething")),
        ("/webhook/overseerr",
         with_fields("overseerr_media_approved_movie.json", notification_type="MEDIA_NEW")),
        ("/webhook/plex", plex_multipart(with_fields("plex_media_play.json",
                                                     event="media.teleport"))[0]),
        ("/webhook/jellyfin", with_fields("jellyfin_playback_start.json",
                                          NotificationType="UserTeleported")),
    ]
    for path, body in cases:
        headers = dict(AUTH)
        if path == "/webhook/plex":
            headers["Content-Type"] = plex_multipart(b"")[1]
        response = await client.post(path, data=body, headers=headers)
        assert response.status == 200, (path, await response.text())
        assert (await response.json())["status"] == "ignored"
    assert len(sink.deliveries) == len(cases)  # still stored, so they are counted


async def test_a_declared_body_over_the_limit_is_413(
    aiohttp_client: AiohttpClient, make_settings: Settings_
) -> None:
    small = make_settings(server={"max_body_bytes": MIN_BODY})
    client = await aiohttp_client(build_webhook_app(small))
    body = orjson.dumps(load_json("sonarr_grab.json") | {"padding": "x" * MIN_BODY})
    response = await client.post("/webhook/sonarr", data=body, headers=AUTH)
    assert response.status == 413
    payload = await response.json()
    assert payload["field"] is None
    assert str(MIN_BODY) in payload["error"]


async def test_a_streamed_body_over_the_limit_is_413(
    aiohttp_client: AiohttpClient, make_settings: Settings_
) -> None:
    small = make_settings(server={"max_body_bytes": MIN_BODY})
    client = await aiohttp_client(build_webhook_app(small))

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b" " * 256
            await asyncio.sleep(0)

    # No Content-Length: chunked transfer, so the limit is enforced while reading.
    response = await client.post("/webhook/show-update", data=chunks(), headers=AUTH)
    assert response.status == 413


async def test_plex_may_send_more_than_the_json_limit(
    aiohttp_client: AiohttpClient, make_settings: Settings_
) -> None:
    settings = make_settings(server={"max_body_bytes": 4096, "max_plex_body_bytes": 65536})
    sink = FakeSink()
    client = await aiohttp_client(build_webhook_app(settings, sink))
    thumb = b"\xff\xd8" + b"\x00" * 20_000 + b"\xff\xd9"
    body, content_type = plex_multipart(load("plex_library_new_episode.json"), thumb=thumb)
    response = await client.post("/webhook/plex", data=body,
                                 headers={**AUTH, "Content-Type": content_type})
    assert response.status == 202
    too_big, content_type = plex_multipart(load("plex_library_new_episode.json"),
                                           thumb=thumb * 4)
    response = await client.post("/webhook/plex", data=too_big,
                                 headers={**AUTH, "Content-Type": content_type})
    assert response.status == 413
    # The JSON routes keep their own, smaller limit.
    response = await client.post("/webhook/sonarr", data=body, headers=AUTH)
    assert response.status == 413


async def test_not_found_and_method_not_allowed_are_json(
    aiohttp_client: AiohttpClient, make_settings: Settings_
) -> None:
    client = await aiohttp_client(build_webhook_app(make_settings()))
    response = await client.get("/webhook/nowhere", headers=AUTH)
    assert response.status == 404
    assert await response.json() == {"error": "Not Found", "field": None}
    response = await client.get("/webhook/sonarr", headers=AUTH)
    assert response.status == 405
    assert await response.json() == {"error": "Method Not Allowed", "field": None}
    assert "POST" in response.headers["Allow"]


async def test_an_unexpected_error_is_a_generic_500_with_an_id(
    aiohttp_client: AiohttpClient, make_settings: Settings_, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="riven_async")
    client = await aiohttp_client(build_webhook_app(make_settings()))
    response = await client.get(BOOM_PATH, headers=AUTH)
    assert response.status == 500
    body = await response.json()
    assert set(body) == {"error", "field", "error_id"}
    assert "exploded" not in body["error"]
    assert "Traceback" not in await response.text()
    [record] = [r for r in caplog.records if "unhandled error" in r.getMessage()]
    message = record.getMessage()
    assert body["error_id"] in message
    assert "RuntimeError: exploded with ***" in message  # the traceback, redacted
    assert record.__dict__["action"] == "http_error"


async def test_a_failing_sink_means_no_2xx(
    aiohttp_client: AiohttpClient, make_settings: Settings_
) -> None:
    sink = FakeSink(fail_with=RuntimeError("disk full"))
    client = await aiohttp_client(build_webhook_app(make_settings(), sink))
    response = await client.post("/webhook/sonarr", data=load("sonarr_grab.json"), headers=AUTH)
    assert response.status == 500
    assert "disk full" not in await response.text()
    sink.fail_with = DatabaseUnavailable("connection refused")
    response = await client.post("/webhook/sonarr", data=load("sonarr_grab.json"), headers=AUTH)
    assert response.status == 503
    assert response.headers["Retry-After"]
    assert (await response.json())["field"] is None


async def test_the_answer_waits_for_the_sink(
    aiohttp_client: AiohttpClient, make_settings: Settings_
) -> None:
    gate = asyncio.Event()
    sink = FakeSink(gate=gate)
    client = await aiohttp_client(build_webhook_app(make_settings(), sink))
    request = asyncio.ensure_future(
        client.post("/webhook/radarr", data=load("radarr_grab.json"), headers=AUTH)
    )
    await asyncio.sleep(0.05)
    assert not request.done()  # no 2xx before the delivery is stored
    gate.set()
    response = await request
    assert response.status == 202
    assert len(sink.deliveries) == 1


async def test_compressed_bodies_are_limited_after_decompression(
    aiohttp_client: AiohttpClient, make_settings: Settings_
) -> None:
    client = await aiohttp_client(build_webhook_app(make_settings(server={"max_body_bytes": 4096})))
    headers = {**AUTH, "Content-Encoding": "gzip"}
    grab = load("sonarr_grab.json")
    response = await client.post("/webhook/sonarr", data=gzip.compress(grab), headers=headers)
    assert response.status == 202
    bomb = gzip.compress(b"{" + b" " * 5_000_000 + b"}")
    response = await client.post("/webhook/sonarr", data=bomb, headers=headers)
    assert response.status == 413
    response = await client.post("/webhook/sonarr", data=b"not gzip at all", headers=headers)
    assert response.status == 400
    assert (await response.json())["field"] is None
    # Answered before the body was consumed: the connection is not reused.
    assert response.headers["Connection"] == "close"

"""Every sender's events over HTTP, as each sender really sends them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from riven_async.config import Settings
from riven_async.domain.intents import (
    Ignored,
    RecheckMovie,
    RecheckShow,
    RemoveMedia,
    RequestMedia,
    TestEvent,
    delivery_key,
)
from riven_async.web.webhooks import ParseOptions
from tests.conftest import TEST_API_KEY
from tests.payloads import PLEX_SAMPLE_BOUNDARY, load, plex_multipart
from tests.payloads.harness import AiohttpClient, FakeSink, build_webhook_app

AUTH = {"X-Api-Key": TEST_API_KEY}
JSON = "application/json"
JELLYFIN_CT = "text/plain; charset=utf-8"
SONARR_HEADERS = {"Content-Type": JSON, "Accept": JSON,
                  "User-Agent": "Sonarr/4.0.15.2941 (alpine 3.21.3)"}
RADARR_HEADERS = {"Content-Type": JSON, "Accept": JSON,
                  "User-Agent": "Radarr/6.0.4.10291 (ubuntu 24.04)"}
OVERSEERR_HEADERS = {"Content-Type": JSON, "Accept": "application/json, text/plain, */*",
                     "User-Agent": "axios/1.3.4"}
JELLYFIN_HEADERS = {"Content-Type": JELLYFIN_CT, "User-Agent": "Jellyfin-Server/10.11.8",
                    "Accept": "application/json; q=1.0, application/xml; q=0.9, */*; q=0.8"}
Settings_ = Callable[..., Settings]

CASES: list[tuple[str, str, dict[str, str], int, type[Any]]] = [
    ("/webhook/sonarr", "sonarr_series_add.json", SONARR_HEADERS, 202, RequestMedia),
    ("/webhook/sonarr", "sonarr_grab.json", SONARR_HEADERS, 202, RecheckShow),
    ("/webhook/sonarr", "sonarr_download.json", SONARR_HEADERS, 202, RecheckShow),
    ("/webhook/sonarr", "sonarr_download_import_complete.json", SONARR_HEADERS, 202,
     RecheckShow),
    ("/webhook/sonarr", "sonarr_episode_file_delete.json", SONARR_HEADERS, 202, RecheckShow),
    ("/webhook/sonarr", "sonarr_series_delete.json", SONARR_HEADERS, 200, Ignored),
    ("/webhook/sonarr", "sonarr_test.json", SONARR_HEADERS, 200, TestEvent),
    ("/webhook/sonarr", "sonarr_health.json", SONARR_HEADERS, 200, Ignored),
    ("/webhook/sonarr", "sonarr_rename.json", SONARR_HEADERS, 200, Ignored),
    ("/webhook/radarr", "radarr_movie_added.json", RADARR_HEADERS, 202, RequestMedia),
    ("/webhook/radarr", "radarr_grab.json", RADARR_HEADERS, 202, RecheckMovie),
    ("/webhook/radarr", "radarr_download.json", RADARR_HEADERS, 202, RecheckMovie),
    ("/webhook/radarr", "radarr_movie_delete.json", RADARR_HEADERS, 200, Ignored),
    ("/webhook/radarr", "radarr_movie_file_delete.json", RADARR_HEADERS, 200, Ignored),
    ("/webhook/radarr", "radarr_test.json", RADARR_HEADERS, 200, TestEvent),
    ("/webhook/overseerr", "overseerr_media_approved_movie.json", OVERSEERR_HEADERS, 202,
     RequestMedia),
    ("/webhook/overseerr", "overseerr_media_auto_approved_tv.json", OVERSEERR_HEADERS, 202,
     RequestMedia),
    ("/webhook/overseerr", "jellyseerr_media_approved_tv.json",
     {"Content-Type": JSON, "User-Agent": "node", "Accept": "*/*"}, 202, RequestMedia),
    ("/webhook/overseerr", "overseerr_media_pending_tv.json", OVERSEERR_HEADERS, 200, Ignored),
    ("/webhook/overseerr", "overseerr_media_declined_movie.json", OVERSEERR_HEADERS, 200,
     Ignored),
    ("/webhook/overseerr", "overseerr_media_available_tv.json", OVERSEERR_HEADERS, 200, Ignored),
    ("/webhook/overseerr", "overseerr_media_failed_movie.json", OVERSEERR_HEADERS, 200, Ignored),
    ("/webhook/overseerr", "overseerr_issue_created.json", OVERSEERR_HEADERS, 200, Ignored),
    ("/webhook/overseerr", "overseerr_test_notification.json", OVERSEERR_HEADERS, 200,
     TestEvent),
    ("/webhook/plex", "plex_library_new_episode.json", {"Content-Type": JSON}, 202, RecheckShow),
    ("/webhook/plex", "plex_library_new_movie.json", {"Content-Type": JSON}, 200, Ignored),
    ("/webhook/jellyfin", "jellyfin_item_added_series.json", JELLYFIN_HEADERS, 202, RecheckShow),
    ("/webhook/jellyfin", "jellyfin_item_added_season.json", JELLYFIN_HEADERS, 202, RecheckShow),
    ("/webhook/jellyfin", "jellyfin_item_added_episode.json", JELLYFIN_HEADERS, 202,
     RecheckShow),
    ("/webhook/jellyfin", "jellyfin_item_added_episode_template.txt", JELLYFIN_HEADERS, 202,
     RecheckShow),
    ("/webhook/jellyfin", "jellyfin_template_empty_placeholders.txt", JELLYFIN_HEADERS, 202,
     RecheckShow),
    ("/webhook/jellyfin", "jellyfin_escaped_quotes.json", JELLYFIN_HEADERS, 202, RecheckShow),
    ("/webhook/jellyfin", "jellyfin_item_added_movie.json", JELLYFIN_HEADERS, 200, Ignored),
    ("/webhook/jellyfin", "jellyfin_playback_start.json", JELLYFIN_HEADERS, 200, Ignored),
]


@pytest.mark.parametrize(("path", "name", "headers", "status", "kind"), CASES,
                         ids=[case[1] for case in CASES])
async def test_sender_event(
    aiohttp_client: AiohttpClient, make_settings: Settings_, path: str, name: str,
    headers: dict[str, str], status: int, kind: type[Any],
) -> None:
    sink = FakeSink()
    client = await aiohttp_client(build_webhook_app(make_settings(), sink))
    response = await client.post(path, data=load(name), headers={**headers, **AUTH})
    body = await response.json()
    assert response.status == status, body
    delivery = sink.last
    assert [type(i) for i in delivery.intents] == [kind]
    assert body["delivery"] == delivery.delivery_key
    assert delivery.delivery_key == delivery_key(delivery.sender, delivery.payload)
    if status == 202:
        assert body["status"] == "accepted"
    else:
        assert body["status"] == "ignored"
        assert body["reason"]


async def test_plex_multipart_as_pms_sends_it(
    aiohttp_client: AiohttpClient, make_settings: Settings_
) -> None:
    sink = FakeSink()
    client = await aiohttp_client(build_webhook_app(make_settings(), sink))
    # PMS can send no header at all: the key is in the URL.
    response = await client.post(
        f"/webhook/plex?apikey={TEST_API_KEY}", data=load("plex_library_new_episode.multipart"),
        headers={"Content-Type": f"multipart/form-data; boundary={PLEX_SAMPLE_BOUNDARY}"},
    )
    assert response.status == 202, await response.text()
    intent = sink.last.intents[0]
    assert isinstance(intent, RecheckShow)
    assert intent.server_ref is not None
    assert intent.server_ref.item_key == "55319"
    assert orjson.loads(sink.last.payload)["Metadata"]["grandparentTitle"] == "Bluey (2018)"


@pytest.mark.parametrize("name", [
    "plex_library_new_episode.json", "plex_library_new_season.json",
    "plex_library_new_show.json", "plex_library_new_episode_legacy.json",
    "plex_library_new_movie.json", "plex_media_play.json",
])
@pytest.mark.parametrize("with_thumb", [True, False])
async def test_plex_events_with_and_without_thumb(
    aiohttp_client: AiohttpClient, make_settings: Settings_, name: str, with_thumb: bool
) -> None:
    sink = FakeSink()
    client = await aiohttp_client(build_webhook_app(make_settings(), sink))
    if with_thumb:
        body, content_type = plex_multipart(load(name))
    else:
        body, content_type = plex_multipart(load(name), thumb=None)
    response = await client.post(f"/webhook/plex?api_key={TEST_API_KEY}", data=body,
                                 headers={"Content-Type": content_type})
    expected = 202 if "library_new" in name and "movie" not in name else 200
    assert response.status == expected, await response.text()
    assert orjson.loads(sink.last.payload) == orjson.loads(load(name))


async def test_jellyfin_empty_body_is_answered_200_ignored(
    aiohttp_client: AiohttpClient, make_settings: Settings_
) -> None:
    sink = FakeSink()
    client = await aiohttp_client(build_webhook_app(make_settings(), sink))
    headers = {**JELLYFIN_HEADERS, **AUTH}
    response = await client.post("/webhook/jellyfin", data=b"", headers=headers)
    assert response.status == 200
    assert (await response.json())["status"] == "ignored"
    assert sink.last.event == "empty"


async def test_jellyfin_broken_template_is_a_400(
    aiohttp_client: AiohttpClient, make_settings: Settings_
) -> None:
    client = await aiohttp_client(build_webhook_app(make_settings()))
    response = await client.post("/webhook/jellyfin", data=load("jellyfin_broken_template.txt"),
                                 headers={**JELLYFIN_HEADERS, **AUTH})
    assert response.status == 400
    body = await response.json()
    assert "template" in body["error"]
    assert body["field"] is None


async def test_show_update_and_batch(
    aiohttp_client: AiohttpClient, make_settings: Settings_
) -> None:
    sink = FakeSink()
    client = await aiohttp_client(build_webhook_app(make_settings(), sink))
    response = await client.post("/webhook/show-update", json={"tvdb_id": 371980}, headers=AUTH)
    assert response.status == 202
    assert sink.last.sender == "show_update"
    response = await client.post("/webhook/show-update/batch", headers=AUTH,
                                 json=[{"tmdb_id": 95396, "title": "Severance"},
                                       {"imdb_id": "tt7678620"}])
    assert response.status == 202
    assert (await response.json())["intents"] == 2
    assert len(sink.last.intents) == 2
    response = await client.post("/webhook/show-update", json={"title": "x"}, headers=AUTH)
    assert response.status == 422
    assert await response.json() == {
        "error": "tmdb_id, tvdb_id or imdb_id is required", "field": "tmdb_id"
    }


async def test_sonarr_and_radarr_may_use_put(
    aiohttp_client: AiohttpClient, make_settings: Settings_
) -> None:
    client = await aiohttp_client(build_webhook_app(make_settings()))
    for path, name in (("/webhook/sonarr", "sonarr_grab.json"),
                       ("/webhook/radarr", "radarr_grab.json")):
        response = await client.put(path, data=load(name), headers={**SONARR_HEADERS, **AUTH})
        assert response.status == 202


async def test_riven_compatible_overseerr_path(
    aiohttp_client: AiohttpClient, make_settings: Settings_
) -> None:
    sink = FakeSink()
    client = await aiohttp_client(build_webhook_app(make_settings(), sink))
    # What a Riven user already configured in Overseerr: Bearer in "Authorization Header".
    headers = {**OVERSEERR_HEADERS, "Authorization": f"Bearer {TEST_API_KEY}"}
    response = await client.post("/api/v1/webhook/overseerr",
                                 data=load("overseerr_media_auto_approved_tv.json"),
                                 headers=headers)
    assert response.status == 202
    body = await response.json()
    assert body["success"] is True
    assert sink.last.sender == "overseerr"
    response = await client.post("/api/v1/webhook/overseerr", headers=headers,
                                 json={"subject": "Test Notification"})
    assert response.status == 200
    assert (await response.json())["success"] is True
    assert isinstance(sink.last.intents[0], TestEvent)
    # Riven also takes ?api_key=.
    response = await client.post(f"/api/v1/webhook/overseerr?api_key={TEST_API_KEY}",
                                 data=load("overseerr_test_notification.json"))
    assert response.status == 200
    # Bad input is still a 4xx naming the field, with Riven's success/message beside it.
    response = await client.post("/api/v1/webhook/overseerr", headers=headers, json={
        "notification_type": "MEDIA_APPROVED", "subject": "x",
        "media": {"media_type": "tv", "tmdbId": "", "tvdbId": ""}})
    assert response.status == 422
    assert await response.json() == {
        "error": "media.tvdbId or media.tmdbId is required", "field": "media.tvdbId",
        "success": False, "message": "media.tvdbId or media.tmdbId is required"}


async def test_options_are_read_on_every_request(
    aiohttp_client: AiohttpClient, make_settings: Settings_
) -> None:
    current = [ParseOptions()]
    sink = FakeSink()
    client = await aiohttp_client(build_webhook_app(make_settings(), sink,
                                                    options=lambda: current[0]))
    body = load("sonarr_series_delete.json")
    assert (await client.post("/webhook/sonarr", data=body, headers=AUTH)).status == 200
    current[0] = ParseOptions(follow_deletes=True, accept_pending=True)
    assert (await client.post("/webhook/sonarr", data=body, headers=AUTH)).status == 202
    removal = sink.last.intents[0]
    assert isinstance(removal, RemoveMedia)
    response = await client.post("/webhook/overseerr", headers=AUTH,
                                 data=load("overseerr_media_pending_tv.json"))
    assert response.status == 202
    request = sink.last.intents[0]
    assert isinstance(request, RequestMedia)

"""Junk over HTTP: whatever arrives, the answer is a 4xx or a 2xx, never a 5xx.

A 2xx for junk is allowed only as "ignored", except where the junk happens to be a valid
delivery (a mutated real payload can stay valid); then the sink must have it stored.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings, strategies as st

from riven_async.config import Settings
from riven_async.domain.intents import any_actionable
from tests.conftest import TEST_API_KEY
from tests.payloads import load_json, plex_multipart
from tests.payloads.harness import AiohttpClient, FakeSink, build_webhook_app

Settings_ = Callable[..., Settings]
AUTH = {"X-Api-Key": TEST_API_KEY}
PATHS = [
    "/webhook/sonarr", "/webhook/radarr", "/webhook/overseerr", "/api/v1/webhook/overseerr",
    "/webhook/plex", "/webhook/jellyfin", "/webhook/show-update", "/webhook/show-update/batch",
]
REAL: dict[str, list[str]] = {
    "/webhook/sonarr": ["sonarr_grab.json", "sonarr_download_import_complete.json",
                        "sonarr_series_add.json", "sonarr_series_delete.json"],
    "/webhook/radarr": ["radarr_movie_added.json", "radarr_download.json"],
    "/webhook/overseerr": ["overseerr_media_auto_approved_tv.json",
                           "overseerr_media_approved_movie.json", "overseerr_issue_created.json"],
    "/webhook/plex": ["plex_library_new_episode.json", "plex_library_new_show.json",
                      "plex_library_new_season.json"],
    "/webhook/jellyfin": ["jellyfin_item_added_episode.json", "jellyfin_item_added_series.json"],
}
CONTENT_TYPES = st.sampled_from([
    "application/json", "text/plain; charset=utf-8", "", "multipart/form-data",
    "multipart/form-data; boundary=", "multipart/form-data; boundary=\"a b\"",
    "application/x-www-form-urlencoded", "application/octet-stream; charset=klingon",
    "multipart/form-data; boundary*=utf-8''%E2%82%AC", "image/jpeg",
]) | st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=16),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                  max_size=4),
    max_leaves=16,
)
FUZZ = settings(
    max_examples=150, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def post_and_check(
    client: TestClient[Any, Any], sink: FakeSink, path: str, body: bytes, content_type: str
) -> None:
    before = len(sink.deliveries)
    try:
        response = await client.post(path, data=body,
                                     headers={**AUTH, "Content-Type": content_type})
        text = await response.text()
    finally:
        # One server per example; close it now rather than hundreds at teardown.
        await client.close()
    assert response.status < 500, (path, body[:200], content_type, response.status, text)
    assert response.content_type == "application/json"
    reply = orjson.loads(text)
    if response.status >= 400:
        # Riven's path adds Riven's own success/message to the error.
        riven = {"success", "message"} if path.startswith("/api/v1/") else set()
        assert set(reply) - riven == {"error", "field"}
        assert len(sink.deliveries) == before
        return
    assert len(sink.deliveries) == before + 1  # every 2xx was stored first
    if response.status == 200:
        assert reply["status"] == "ignored"
        assert not any_actionable(sink.last.intents)
    else:
        assert response.status == 202
        assert any_actionable(sink.last.intents)


@FUZZ
@given(path=st.sampled_from(PATHS), body=st.binary(max_size=400), content_type=CONTENT_TYPES)
async def test_random_bytes(
    aiohttp_client: AiohttpClient, make_settings: Settings_, path: str, body: bytes,
    content_type: str,
) -> None:
    sink = FakeSink()
    client = await aiohttp_client(build_webhook_app(make_settings(), sink))
    await post_and_check(client, sink, path, body, content_type)


@FUZZ
@given(path=st.sampled_from(PATHS), value=json_values, content_type=CONTENT_TYPES)
async def test_random_json(
    aiohttp_client: AiohttpClient, make_settings: Settings_, path: str, value: Any,
    content_type: str,
) -> None:
    sink = FakeSink()
    client = await aiohttp_client(build_webhook_app(make_settings(), sink))
    await post_and_check(client, sink, path, orjson.dumps(value), content_type)


def leaf_paths(data: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            out += leaf_paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            out += leaf_paths(value, (*prefix, index))
    return out


def replaced(data: Any, path: tuple[str | int, ...], value: Any, delete: bool) -> Any:
    data = copy.deepcopy(data)
    node = data
    for step in path[:-1]:
        node = node[step]
    if delete and isinstance(node, dict):
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


@FUZZ
@given(data=st.data())
async def test_mutated_real_payloads(
    aiohttp_client: AiohttpClient, make_settings: Settings_, data: st.DataObject
) -> None:
    sink = FakeSink()
    client = await aiohttp_client(build_webhook_app(make_settings(), sink))
    path = data.draw(st.sampled_from(sorted(REAL)))
    body = load_json(data.draw(st.sampled_from(REAL[path])))
    for _ in range(data.draw(st.integers(1, 3))):
        paths = leaf_paths(body)
        if not paths:
            break
        where = data.draw(st.sampled_from(paths))
        body = replaced(body, where, data.draw(json_values), data.draw(st.booleans()))
    raw = orjson.dumps(body)
    content_type = "application/json"
    if path == "/webhook/plex":
        raw, content_type = plex_multipart(raw)
    await post_and_check(client, sink, path, raw, content_type)

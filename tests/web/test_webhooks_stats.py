"""Webhook counters, per-route stats, slow-request logs and duplicate deliveries."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable

import orjson
import pytest

from riven_async.config import Settings
from riven_async.web.metrics import render_prometheus
from riven_async.web.route_stats import RouteStats
from riven_async.web.webhooks.stats import WebhookStats
from tests.conftest import TEST_API_KEY
from tests.payloads import load, load_json, plex_multipart
from tests.payloads.harness import (
    ROUTE_STATS,
    WEBHOOK_STATS,
    AiohttpClient,
    FakeSink,
    build_webhook_app,
)

Settings_ = Callable[..., Settings]
AUTH = {"X-Api-Key": TEST_API_KEY}
PROM_LINE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_]+="(?:[^"\\]|\\.)*",?)*\})? -?[0-9.e+-]+$'
)


async def test_counters_by_sender_event_and_outcome(
    aiohttp_client: AiohttpClient, make_settings: Settings_
) -> None:
    client = await aiohttp_client(build_webhook_app(make_settings()))
    posts = [
        ("/webhook/sonarr", load("sonarr_grab.json")),
        ("/webhook/sonarr", load("sonarr_grab.json")),
        ("/webhook/sonarr", load("sonarr_test.json")),
        ("/webhook/sonarr", load("sonarr_health.json")),
        ("/webhook/sonarr", b"{not json"),
        ("/webhook/sonarr", orjson.dumps(load_json("sonarr_grab.json") | {"eventType": "Nu" * 40})),
        ("/webhook/overseerr", load("overseerr_media_auto_approved_tv.json")),
        ("/api/v1/webhook/overseerr", load("overseerr_media_declined_movie.json")),
        ("/webhook/jellyfin", b""),
    ]
    for path, body in posts:
        await client.post(path, data=body, headers=AUTH)
    snapshot = client.app[WEBHOOK_STATS].snapshot()
    assert snapshot["sonarr"]["Grab"] == {
        "received": 2, "accepted": 2, "ignored": 0, "rejected": 0, "failed": 0
    }
    assert snapshot["sonarr"]["Test"]["ignored"] == 1
    assert snapshot["sonarr"]["Health"]["ignored"] == 1
    assert snapshot["sonarr"]["invalid"]["rejected"] == 1
    assert snapshot["sonarr"]["other"]["ignored"] == 1  # unknown names never become labels
    assert snapshot["overseerr"]["MEDIA_AUTO_APPROVED"]["accepted"] == 1
    assert snapshot["overseerr"]["MEDIA_DECLINED"]["ignored"] == 1
    assert snapshot["jellyfin"]["empty"]["ignored"] == 1
    samples = parse_prometheus(render_prometheus({"webhooks": snapshot}))
    assert samples['riven_webhooks_accepted{sender="sonarr",event="Grab"}'] == 2
    assert samples['riven_webhooks_rejected{sender="sonarr",event="invalid"}'] == 1


async def test_failed_sink_is_counted(
    aiohttp_client: AiohttpClient, make_settings: Settings_
) -> None:
    sink = FakeSink(fail_with=RuntimeError("boom"))
    client = await aiohttp_client(build_webhook_app(make_settings(), sink))
    await client.post("/webhook/radarr", data=load("radarr_grab.json"), headers=AUTH)
    counts = client.app[WEBHOOK_STATS].snapshot()["radarr"]["Grab"]
    assert (counts["received"], counts["failed"], counts["accepted"]) == (1, 1, 0)


async def test_route_stats_count_time_and_bound_their_labels(
    aiohttp_client: AiohttpClient, make_settings: Settings_
) -> None:
    client = await aiohttp_client(build_webhook_app(make_settings()))
    await client.post("/webhook/sonarr", data=load("sonarr_grab.json"), headers=AUTH)
    await client.post("/webhook/sonarr", data=b"[", headers=AUTH)
    await client.post("/webhook/sonarr", data=b"{}")  # 401
    await client.get("/api/boom", headers=AUTH)
    for n in range(20):  # junk paths and methods share one label
        await client.request("PURGE" if n % 2 else "GET", f"/junk/{n}?apikey={TEST_API_KEY}")
    snapshot = client.app[ROUTE_STATS].snapshot()
    sonarr = snapshot["POST /webhook/sonarr"]
    assert (sonarr["count"], sonarr["client_errors"], sonarr["errors"]) == (3, 2, 0)
    assert sonarr["p50_ms"] > 0
    assert sonarr["p99_ms"] >= sonarr["p95_ms"] >= sonarr["p50_ms"]
    assert snapshot["GET /api/boom"]["errors"] == 1
    assert snapshot["unmatched"]["count"] == 20
    assert set(snapshot) == {"POST /webhook/sonarr", "GET /api/boom", "unmatched"}
    assert TEST_API_KEY not in orjson.dumps(snapshot).decode()
    samples = parse_prometheus(render_prometheus({"routes": snapshot}))
    assert samples['riven_routes_count{route="POST /webhook/sonarr"}'] == 3


def test_route_stats_memory_is_bounded() -> None:
    stats = RouteStats(keep=16)
    for n in range(1000):
        stats.record("GET /x", 200, n / 1000)
    snapshot = stats.snapshot()["GET /x"]
    assert snapshot["count"] == 1000
    assert snapshot["p50_ms"] >= 984  # only the last 16 samples are kept


def test_webhook_stats_snapshot_is_sorted_and_complete() -> None:
    stats = WebhookStats()
    stats.record("sonarr", "Grab", "received")
    stats.record("plex", "library.new", "rejected")
    snapshot = stats.snapshot()
    assert list(snapshot) == ["plex", "sonarr"]
    assert snapshot.label == "sender"
    assert snapshot["sonarr"].label == "event"
    assert snapshot["sonarr"]["Grab"] == {
        "received": 1, "accepted": 0, "ignored": 0, "rejected": 0, "failed": 0
    }
    assert stats.count("plex", "library.new", "rejected") == 1


async def test_slow_requests_are_logged_with_route_and_time(
    aiohttp_client: AiohttpClient, make_settings: Settings_, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="riven_async")
    sink = FakeSink(gate=asyncio.Event())
    client = await aiohttp_client(
        build_webhook_app(make_settings(server={"slow_request_s": 0.05}), sink)
    )
    request = asyncio.ensure_future(
        client.post(f"/webhook/sonarr?apikey={TEST_API_KEY}", data=load("sonarr_grab.json"))
    )
    await asyncio.sleep(0.1)
    assert sink.gate is not None
    sink.gate.set()
    assert (await request).status == 202
    await client.get("/health")  # fast: not logged
    [record] = [r for r in caplog.records if r.__dict__.get("action") == "slow_request"]
    assert record.levelno == logging.WARNING
    assert record.__dict__["route"] == "POST /webhook/sonarr"
    assert record.__dict__["elapsed_s"] >= 0.05
    assert "POST /webhook/sonarr took" in record.getMessage()
    assert TEST_API_KEY not in record.getMessage()


async def test_a_retried_delivery_has_one_effect(
    aiohttp_client: AiohttpClient, make_settings: Settings_
) -> None:
    sink = FakeSink()
    client = await aiohttp_client(build_webhook_app(make_settings(), sink))
    # Sonarr retries the same body; Plex retries with a fresh multipart boundary.
    first = await client.post("/webhook/sonarr", data=load("sonarr_grab.json"), headers=AUTH)
    again = await client.post("/webhook/sonarr", headers=AUTH,
                              data=orjson.dumps(load_json("sonarr_grab.json")))
    assert (await first.json())["delivery"] == (await again.json())["delivery"]
    bodies = [plex_multipart(load("plex_library_new_episode.json"), boundary=b)
              for b in ("-" * 24 + "one", "-" * 24 + "two")]
    keys = []
    for body, content_type in bodies:
        response = await client.post("/webhook/plex", data=body,
                                     headers={**AUTH, "Content-Type": content_type})
        keys.append((await response.json())["delivery"])
    assert keys[0] == keys[1]
    assert len(sink.deliveries) == 4
    assert len(sink.effects) == 2


async def test_a_hundred_concurrent_identical_deliveries_share_one_key(
    aiohttp_client: AiohttpClient, make_settings: Settings_
) -> None:
    sink = FakeSink()
    client = await aiohttp_client(build_webhook_app(make_settings(), sink))
    body = load("overseerr_media_auto_approved_tv.json")
    responses = await asyncio.gather(*(
        client.post("/webhook/overseerr", data=body, headers=AUTH) for _ in range(100)
    ))
    assert {r.status for r in responses} == {202}
    assert len({d.delivery_key for d in sink.deliveries}) == 1
    assert len(sink.effects) == 1
    assert client.app[WEBHOOK_STATS].count("overseerr", "MEDIA_AUTO_APPROVED", "accepted") == 100


def parse_prometheus(text: str) -> dict[str, float]:
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        assert PROM_LINE.match(line), line
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    return samples

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from riven_async.app import build_app
from riven_async.config import Settings
from riven_async.web.metrics import Labeled, MetricsRegistry, pool_section, render_prometheus
from tests.conftest import TEST_API_KEY

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
PROM_LINE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_]+="(?:[^"\\]|\\.)*",?)*\})? -?[0-9.e+-]+$'
)


def parse_prometheus(text: str) -> dict[str, float]:
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        assert PROM_LINE.match(line), line
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    return samples


def test_labeled_maps_become_labels() -> None:
    text = render_prometheus({"upstreams": Labeled("upstream", {
        "tmdb": {"requests": 3, "breaker_open": False},
        "rd": {"requests": 5, "breaker_open": True},
    })})
    samples = parse_prometheus(text)
    assert samples['riven_upstreams_requests{upstream="tmdb"}'] == 3
    assert samples['riven_upstreams_breaker_open{upstream="rd"}'] == 1


def test_label_values_are_escaped() -> None:
    text = render_prometheus({"routes": Labeled("route", {'/a"b\\': {"count": 1}})})
    assert 'route="/a\\"b\\\\"' in text
    parse_prometheus(text)


async def test_a_failing_section_does_not_hide_the_others() -> None:
    registry = MetricsRegistry()

    async def good() -> dict[str, int]:
        return {"x": 1}

    async def bad() -> dict[str, int]:
        raise RuntimeError("nope")

    registry.register("good", good)
    registry.register("bad", bad)
    assert await registry.collect() == {"good": {"x": 1}, "bad": {"error": "RuntimeError"}}


@pytest.mark.parametrize("query", ["", "?format=prometheus"])
async def test_metrics_endpoint_serves_both_formats(
    aiohttp_client: AiohttpClient, db_settings: Settings, query: str
) -> None:
    client = await aiohttp_client(build_app(db_settings))
    assert (await client.get(f"/metrics{query}")).status == 401
    await client.get("/health")
    response = await client.get(f"/metrics{query}", headers={"X-Api-Key": TEST_API_KEY})
    assert response.status == 200
    if query:
        samples = parse_prometheus(await response.text())
        assert samples["riven_process_rss_bytes"] > 0
        assert "riven_database_size" in samples
    else:
        data = await response.json()
        assert {"process", "event_loop", "database"} <= set(data)
        assert data["process"]["open_fds"] > 0
        assert data["database"]["max"] == db_settings.database.pool_max
        assert data["routes"]["GET /health"]["count"] == 1
        assert TEST_API_KEY not in await response.text()


async def test_metrics_can_be_public(
    aiohttp_client: AiohttpClient, make_settings: Callable[..., Settings], db_dsn: str
) -> None:
    settings = make_settings(server={"metrics_public": True}, database={"url": db_dsn})
    client = await aiohttp_client(build_app(settings))
    assert (await client.get("/metrics")).status == 200


async def test_the_pool_section_counts_callers_waiting_for_a_connection(db_dsn: str) -> None:
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=2)
    provide = pool_section(lambda: pool)

    async def acquire() -> Any:
        return await pool.acquire()

    try:
        held = [await pool.acquire() for _ in range(2)]
        waiting = [asyncio.create_task(acquire()) for _ in range(3)]
        await asyncio.sleep(0.05)
        assert await provide() == {"size": 2, "idle": 0, "in_use": 2, "max": 2, "waiting": 3}
        for conn in held:
            await pool.release(conn)
        got = [await task for task in waiting[:2]]
        assert (await provide())["waiting"] == 1
        for conn in got:
            await pool.release(conn)
        await pool.release(await waiting[2])
        assert (await provide())["waiting"] == 0
    finally:
        await pool.close()
    assert await pool_section(lambda: None)() == {
        "size": 0, "idle": 0, "in_use": 0, "max": 0, "waiting": 0}

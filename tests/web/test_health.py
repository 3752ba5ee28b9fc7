from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from riven_async import keys
from riven_async.app import build_app
from riven_async.config import Settings

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


async def test_health_is_ok_with_a_reachable_database(
    aiohttp_client: AiohttpClient, db_settings: Settings
) -> None:
    client = await aiohttp_client(build_app(db_settings))
    response = await client.get("/health")
    assert response.status == 200
    assert await response.json() == {"status": "ok", "database": "ok"}


async def test_health_follows_the_embedded_server_down_and_up(
    aiohttp_client: AiohttpClient, make_settings: Callable[..., Settings]
) -> None:
    # No database URL: the app starts its own embedded server, which we then stop under it.
    client = await aiohttp_client(build_app(make_settings()))
    assert (await client.get("/health")).status == 200
    embedded = client.app[keys.EMBEDDED_PG]
    await embedded.stop()
    response = await client.get("/health")
    assert response.status == 503
    assert (await response.json())["database"] == "unreachable"
    await embedded.start()
    response = await client.get("/health")
    assert response.status == 200, await response.text()

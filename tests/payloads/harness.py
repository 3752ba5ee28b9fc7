"""A small app with the webhook routes and middlewares, and an in-memory sink, for tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from riven_async import keys
from riven_async.config import LiveSettings, Settings
from riven_async.domain.intents import Intent, any_actionable
from riven_async.web.metrics import render_json
from riven_async.web.middleware import http_middlewares, json_response
from riven_async.web.route_stats import RouteStats
from riven_async.web.webhooks import ParseOptions
from riven_async.web.webhooks.routes import add_webhook_routes
from riven_async.web.webhooks.stats import WebhookStats

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
ROUTE_STATS = web.AppKey("test_route_stats", RouteStats)
WEBHOOK_STATS = web.AppKey("test_webhook_stats", WebhookStats)
BOOM_PATH = "/api/boom"
DEFAULT_OPTIONS = ParseOptions()


@dataclass(frozen=True, slots=True)
class Delivery:
    sender: str
    event: str
    delivery_key: str
    payload: bytes
    intents: list[Intent]


@dataclass
class FakeSink:
    """Keeps deliveries in memory; one effect per delivery key, like the real inbox."""

    deliveries: list[Delivery] = field(default_factory=list)
    effects: dict[str, Delivery] = field(default_factory=dict)
    fail_with: BaseException | None = None
    gate: asyncio.Event | None = None

    async def accept(
        self, sender: str, event: str, delivery_key: str, payload: bytes, intents: list[Intent]
    ) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        delivery = Delivery(sender, event, delivery_key, payload, intents)
        self.deliveries.append(delivery)
        if any_actionable(intents):
            self.effects.setdefault(delivery_key, delivery)

    @property
    def last(self) -> Delivery:
        assert self.deliveries, "the sink received nothing"
        return self.deliveries[-1]


SINK = web.AppKey("test_sink", FakeSink)


async def _ok(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def _metrics(request: web.Request) -> web.Response:
    data = {
        "routes": request.app[ROUTE_STATS].snapshot(),
        "webhooks": request.app[WEBHOOK_STATS].snapshot(),
    }
    return web.Response(body=render_json(data), content_type="application/json")


async def _boom(request: web.Request) -> web.Response:
    settings = request.app[keys.SETTINGS].current
    # An internal error whose message carries the key: it must reach neither reply nor log.
    raise RuntimeError(f"exploded with {settings.server.api_key.get_secret_value()}")


def build_webhook_app(
    settings: Settings,
    sink: FakeSink | None = None,
    *,
    options: ParseOptions | Callable[[], ParseOptions] = DEFAULT_OPTIONS,
) -> web.Application:
    """Middlewares in production order, every webhook route, and a few stand-in routes."""
    app = web.Application(client_max_size=settings.server.max_plex_body_bytes)
    app[keys.SETTINGS] = LiveSettings(settings)
    route_stats = RouteStats()
    app[ROUTE_STATS] = route_stats
    app.middlewares.extend(http_middlewares(route_stats))
    sink = sink if sink is not None else FakeSink()
    app[SINK] = sink
    provider = options if callable(options) else (lambda: options)
    app[WEBHOOK_STATS] = add_webhook_routes(app, sink, options=provider)
    app.router.add_get("/health", _ok)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/api/items", _ok)
    app.router.add_get(BOOM_PATH, _boom)
    return app

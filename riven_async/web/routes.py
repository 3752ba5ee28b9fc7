"""Every route of the HTTP server, in one table."""

from __future__ import annotations

from aiohttp import web

from riven_async import keys
from riven_async.web import admin, api, health, inbox_sink, metrics


def setup_routes(app: web.Application) -> None:
    """Attach the handlers to ``app``."""
    app.router.add_get("/health", health.health)
    app.router.add_get("/metrics", metrics.make_handler(app[keys.METRICS]))
    api.add_api_routes(app)
    admin.add_admin_routes(app)
    # Webhooks: answered after the inbox commit (adds the writer's cleanup_ctx, last).
    inbox_sink.setup_webhooks(app)

"""Every route of the HTTP server, in one table."""

from __future__ import annotations

from aiohttp import web

from riven_async.web import health


def setup_routes(app: web.Application) -> None:
    """Attach the handlers to ``app``."""
    app.router.add_get("/health", health.health)

"""``GET /health``: the process and its database, for systemd, monitors and the CLI."""

from __future__ import annotations

from aiohttp import web

from riven_async import keys
from riven_async.db.pool import ping


async def health(request: web.Request) -> web.Response:
    """200 when the database answers, 503 while it cannot be reached."""
    pool = request.app.get(keys.POOL)
    ok = pool is not None and await ping(pool)
    body = {"status": "ok" if ok else "degraded", "database": "ok" if ok else "unreachable"}
    return web.json_response(body, status=200 if ok else 503)

"""``GET /api/status`` and ``POST /api/reload``: what ``riven-async status`` shows, and the
config reload that ``riven-async config set`` asks for (the same as SIGHUP)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web

from riven_async import __version__, keys
from riven_async.core.breaker import BreakerState
from riven_async.core.http import HttpStats
from riven_async.db.status import database_status
from riven_async.errors import ConfigError
from riven_async.web.api import database_calls
from riven_async.web.middleware import error_response, json_response

log = logging.getLogger(__name__)


def add_admin_routes(app: web.Application) -> None:
    """Register the status and reload routes."""
    app.router.add_get("/api/status", status)
    app.router.add_post("/api/reload", reload_config)


async def status(request: web.Request) -> web.Response:
    """Version, items by state, the oldest item of each active state, jobs, next checks,
    the inbox backlog and each upstream's health, in one document."""
    app = request.app
    async with database_calls(), app[keys.POOL].acquire() as conn:
        database = await database_status(app[keys.REPOS].bound_to(conn))
    live = app[keys.SETTINGS]
    upstreams = app.get(keys.UPSTREAMS)
    size = database.pop("size_bytes")
    return json_response({
        "version": __version__,
        "uptime_s": round(time.time() - app[keys.STARTED_AT], 3),
        "config": {"generation": live.generation,
                   "path": None if live.path is None else str(live.path)},
        "database": {"embedded": keys.EMBEDDED_PG in app, "size_bytes": size},
        **database,
        "upstreams": {} if upstreams is None else {
            name: upstream_health(s) for name, s in sorted(upstreams.stats().items())
        },
    })


def upstream_health(stats: HttpStats) -> dict[str, Any]:
    """One upstream in a line: usable now or not, and the counters that say why."""
    breaker = stats.breaker.state
    paused_for_s = round(stats.limiter.paused_for_s, 3)
    requests = dict(stats.requests)
    return {
        "healthy": breaker is BreakerState.CLOSED and paused_for_s == 0,
        "breaker": breaker.value,
        "breaker_opened_total": stats.breaker.opened_total,
        "paused_for_s": paused_for_s,
        "requests": sum(requests.values()),
        "server_errors": requests.get("5xx", 0) + requests.get("error", 0),
        "rate_limited": stats.rate_limited,
        "rate_limited_last_hour": stats.rate_limited_last_hour,
        "retries": stats.retries,
        "waiters": stats.limiter.waiters,
        "p95_ms": None if stats.latency.p95_s is None else round(stats.latency.p95_s * 1e3, 1),
    }


async def reload_config(request: web.Request) -> web.Response:
    """Re-read the config file like SIGHUP; a bad file is a 400 and the old config stays."""
    app = request.app
    live = app[keys.SETTINGS]
    try:
        # Reading and validating the file is blocking work: off the event loop.
        fresh = await asyncio.to_thread(live.reload)
    except ConfigError as exc:
        redact = app[keys.SECRET_FILTER].redact
        log.error("config reload failed, keeping the running config: %s", exc,
                  extra={"action": "reload"})
        return error_response(
            redact(exc.reason), exc.key, 400, file=str(exc.path), key=exc.key,
            reason=redact(exc.reason),
        )
    logging.getLogger().setLevel(fresh.logging.level)
    app[keys.SECRET_FILTER].set_secrets(fresh.secrets())
    log.info("config reloaded from %s (API)", live.path, extra={"action": "reload"})
    return json_response({"reloaded": True, "generation": live.generation,
                          "path": None if live.path is None else str(live.path)})

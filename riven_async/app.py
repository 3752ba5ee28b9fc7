"""``build_app``: the one composition root; tests use it exactly as production does."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
from aiohttp import web

from riven_async import keys
from riven_async.config import LiveSettings, Settings
from riven_async.core.clock import Clock, ScaledClock, SystemClock
from riven_async.core.locks import KeyedLock
from riven_async.core.looplag import LoopLagMonitor
from riven_async.core.tasks import BackgroundTasks
from riven_async.db import lifecycle
from riven_async.db.notify import Listener
from riven_async.db.repos import Repos
from riven_async.domain.queue import JobKind, new_boot_id
from riven_async.logs import SecretFilter
from riven_async.pipeline import stages
from riven_async.pipeline.runtime import RUNTIME, Runtime
from riven_async.pipeline.steps.base import Step
from riven_async.pipeline.worker import start_workers
from riven_async.upstreams import UpstreamClients
from riven_async.web import metrics, middleware, pipeline_metrics
from riven_async.web.route_stats import RouteStats
from riven_async.web.routes import setup_routes

log = logging.getLogger(__name__)
STEPS = web.AppKey("steps", dict[JobKind, Step])


def build_app(
    settings: Settings | LiveSettings,
    *,
    clock: Clock | None = None,
    shutdown: keys.Shutdown | None = None,
    secret_filter: SecretFilter | None = None,
) -> web.Application:
    """A fully wired application; its cleanup_ctx order is the start-up order."""
    live = settings if isinstance(settings, LiveSettings) else LiveSettings(settings)
    route_stats = RouteStats()
    # client_max_size is the largest body of any route (Plex multipart); every other
    # handler reads with read_limited_body(server.max_body_bytes).
    app = web.Application(
        client_max_size=live.current.server.max_plex_body_bytes,
        middlewares=middleware.http_middlewares(route_stats),
    )
    app[keys.SETTINGS] = live
    app[keys.CLOCK] = clock or clock_from_settings(live.current)
    app[keys.SHUTDOWN] = shutdown or keys.Shutdown()
    app[keys.SECRET_FILTER] = secret_filter or SecretFilter(live.current.secrets())
    app[keys.STARTED_AT] = time.time()
    app[keys.LOOP_LAG] = LoopLagMonitor()
    app[keys.METRICS] = _metrics_registry(app)
    app[keys.METRICS].register("routes", route_stats.section)
    app.cleanup_ctx.append(_database_ctx)
    app.cleanup_ctx.append(_tasks_ctx)
    app.cleanup_ctx.append(_pipeline_ctx)
    setup_routes(app)
    return app


def clock_from_settings(settings: Settings) -> Clock:
    """Real time, or the scaled time shared with the simulated upstreams ([clock])."""
    section = settings.clock
    if section.speed == 1.0 and not section.start:
        return SystemClock()
    start = datetime.fromisoformat(section.start) if section.start else datetime.now(UTC)
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    return ScaledClock(start, section.speed, anchor=section.anchor or None)


def _metrics_registry(app: web.Application) -> metrics.MetricsRegistry:
    registry = metrics.MetricsRegistry()
    registry.register("process", metrics.process_section(app[keys.STARTED_AT]))

    async def event_loop() -> metrics.Section:
        return app[keys.LOOP_LAG].snapshot()

    registry.register("event_loop", event_loop)
    registry.register("database", metrics.pool_section(lambda: app.get(keys.POOL)))
    return registry


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    async with lifecycle.open_database(app[keys.SETTINGS].current) as database:
        app[keys.POOL] = database.pool
        app[keys.DSN] = database.dsn
        if database.embedded is not None:
            app[keys.EMBEDDED_PG] = database.embedded
        yield


async def _tasks_ctx(app: web.Application) -> AsyncIterator[None]:
    shutdown = app[keys.SHUTDOWN]

    def on_failure(name: str, exc: BaseException) -> None:
        shutdown.request(1, f"background task {name} failed: {exc!r}")

    tasks = BackgroundTasks(on_failure)
    app[keys.TASKS] = tasks
    tasks.start("loop-lag", app[keys.LOOP_LAG].run)
    yield
    await tasks.stop(app[keys.SETTINGS].current.server.shutdown_timeout_s)


async def _pipeline_ctx(app: web.Application) -> AsyncIterator[None]:
    """Upstream clients, the shared runtime, the LISTEN connection, steps and loops."""
    live = app[keys.SETTINGS]
    clock = app[keys.CLOCK]
    tasks = app[keys.TASKS]
    async with contextlib.AsyncExitStack() as stack:
        upstreams = UpstreamClients.from_settings(live.current, clock=clock)
        stack.push_async_callback(upstreams.aclose)
        app[keys.UPSTREAMS] = upstreams
        app[keys.METRICS].register("upstreams", _upstreams_section(upstreams))
        boot_id = new_boot_id()
        pool = app[keys.POOL]
        dsn = app[keys.DSN]
        listener = Listener(lambda: asyncpg.connect(dsn))
        repos = Repos.on(pool, clock, boot_id)
        app[keys.REPOS] = repos
        pipeline_metrics.register_pipeline_metrics(app[keys.METRICS], pool, repos.stats)
        runtime = Runtime(
            live=live, clock=clock, pool=pool, repos=repos,
            upstreams=upstreams, locks=KeyedLock(), metrics=app[keys.METRICS],
            listener=listener, boot_id=boot_id,
        )
        app[RUNTIME] = runtime
        before = set(tasks.names)
        stop_listening = asyncio.Event()
        tasks.start("listen", lambda: listener.run(stop_listening))
        stack.callback(stop_listening.set)
        try:
            steps = {kind: await factory(runtime, stack)
                     for kind, factory in stages.step_factories().items()}
            for name, start in stages.loop_starters():
                await start(runtime, tasks, stack)
                log.debug("pipeline loop %s started", name)
            app[STEPS] = steps
            start_workers(runtime, steps, tasks.start)
            yield
        finally:
            # The pipeline's loops stop before what they use (clients, steps) is closed.
            loops = [name for name in tasks.names if name not in before]
            await tasks.stop(live.current.server.shutdown_timeout_s, loops)


def _upstreams_section(upstreams: UpstreamClients) -> metrics.SectionProvider:
    async def section() -> metrics.Section:
        return {"by_upstream": metrics.Labeled("upstream", upstreams.stats_dict())}

    return section

"""Every ``web.AppKey`` the application carries: runtime objects travel here, typed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import asyncpg
from aiohttp import web

from riven_async.config import LiveSettings
from riven_async.core.clock import Clock
from riven_async.core.looplag import LoopLagMonitor
from riven_async.core.tasks import BackgroundTasks
from riven_async.db.embedded import EmbeddedPostgres
from riven_async.db.repos import Repos
from riven_async.logs import SecretFilter
from riven_async.upstreams import UpstreamClients
from riven_async.web.metrics import MetricsRegistry


@dataclass(slots=True)
class Shutdown:
    """Asks the daemon to stop; the exit code says whether it was a failure."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    exit_code: int = 0
    reason: str = ""

    def request(self, exit_code: int = 0, reason: str = "") -> None:
        """Ask for a stop; the first non-zero code wins."""
        if not self.event.is_set() or (exit_code and not self.exit_code):
            self.exit_code = exit_code or self.exit_code
            self.reason = self.reason or reason
        self.event.set()


SETTINGS = web.AppKey("settings", LiveSettings)
CLOCK = web.AppKey("clock", Clock)
SHUTDOWN = web.AppKey("shutdown", Shutdown)
SECRET_FILTER = web.AppKey("secret_filter", SecretFilter)
EMBEDDED_PG = web.AppKey("embedded_pg", EmbeddedPostgres)
POOL = web.AppKey("pool", asyncpg.Pool)
TASKS = web.AppKey("tasks", BackgroundTasks)
STARTED_AT = web.AppKey("started_at", float)
METRICS = web.AppKey("metrics", MetricsRegistry)
LOOP_LAG = web.AppKey("loop_lag", LoopLagMonitor)
DSN = web.AppKey("dsn", str)
UPSTREAMS = web.AppKey("upstreams", UpstreamClients)
# Every repository, on the pool and the daemon's clock; set once the database is up.
REPOS = web.AppKey("repos", Repos)

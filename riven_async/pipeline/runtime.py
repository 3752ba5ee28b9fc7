"""What every pipeline part shares at run time: settings, clock, pool, repositories, clients.

Built once by the composition root (``app._pipeline_ctx``) after the database and the
upstream clients are up; steps, loops and the inbox worker receive it and build their own
services from it. Nothing here opens a connection or starts a task.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from aiohttp import web

from riven_async.config import LiveSettings, Settings
from riven_async.core.clock import Clock
from riven_async.core.locks import KeyedLock
from riven_async.db.notify import Listener
from riven_async.db.repos import Repos
from riven_async.domain.queue import BootId
from riven_async.upstreams import UpstreamClients
from riven_async.web.metrics import MetricsRegistry


@dataclass(slots=True)
class Runtime:
    """The shared run-time objects of one daemon process."""

    live: LiveSettings
    clock: Clock
    pool: asyncpg.Pool
    repos: Repos
    upstreams: UpstreamClients
    locks: KeyedLock
    metrics: MetricsRegistry
    listener: Listener
    boot_id: BootId

    @property
    def settings(self) -> Settings:
        """The settings in force now (SIGHUP may swap them; read them per use)."""
        return self.live.current


RUNTIME = web.AppKey("runtime", Runtime)

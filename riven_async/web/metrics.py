"""``GET /metrics``: every section as JSON, or the same figures in Prometheus text format."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import asyncpg
import orjson
import psutil
from aiohttp import web

log = logging.getLogger(__name__)

Section = Mapping[str, Any]
SectionProvider = Callable[[], Awaitable[Section]]
_PROVIDER_TIMEOUT_S = 2.0
_NAME_RE = re.compile(r"[^a-zA-Z0-9_]")


class Labeled(dict[str, Any]):
    """A mapping whose keys are values of one label (``upstream``, ``state``, ``route``).

    JSON renders it as a plain object; Prometheus renders its keys as ``{label="key"}``.
    """

    def __init__(self, label: str, values: Mapping[str, Any]) -> None:
        super().__init__(values)
        self.label = label


class MetricsRegistry:
    """The sections ``/metrics`` reports, each produced on demand by its owner."""

    def __init__(self) -> None:
        self._providers: dict[str, SectionProvider] = {}

    def register(self, name: str, provider: SectionProvider) -> None:
        """Add (or replace) the section ``name``."""
        self._providers[name] = provider

    async def collect(self) -> dict[str, Any]:
        """Every section; a failing or slow provider reports its error, not the others'."""
        names = list(self._providers)
        results = await asyncio.gather(
            *(asyncio.wait_for(self._providers[n](), _PROVIDER_TIMEOUT_S) for n in names),
            return_exceptions=True,
        )
        out: dict[str, Any] = {}
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("metrics section %s failed: %r", name, result,
                            extra={"action": "metrics"})
                out[name] = {"error": type(result).__name__}
            else:
                out[name] = result
        return out


def process_section(started_at: float) -> SectionProvider:
    """RSS, CPU, open fds, threads and uptime of this process."""
    proc = psutil.Process(os.getpid())

    async def provide() -> Section:
        with proc.oneshot():
            cpu = proc.cpu_times()
            return {
                "rss_bytes": proc.memory_info().rss,
                "cpu_user_s": round(cpu.user, 3),
                "cpu_system_s": round(cpu.system, 3),
                "open_fds": proc.num_fds(),
                "threads": proc.num_threads(),
                "uptime_s": round(time.time() - started_at, 3),
                "pid": proc.pid,
            }

    return provide


def pool_section(get_pool: Callable[[], asyncpg.Pool | None]) -> SectionProvider:
    """Pool size, idle and in-use connections, and callers waiting for one."""

    async def provide() -> Section:
        pool = get_pool()
        if pool is None:
            return {"size": 0, "idle": 0, "in_use": 0, "max": 0, "waiting": 0}
        size, idle = pool.get_size(), pool.get_idle_size()
        return {"size": size, "idle": idle, "in_use": size - idle, "max": pool.get_max_size(),
                "waiting": pool_waiters(pool)}

    return provide


def pool_waiters(pool: asyncpg.Pool) -> int:
    """Callers blocked in ``pool.acquire()`` right now.

    asyncpg has no public figure for it: acquirers wait in the pool's queue of free
    connections (``Pool._queue``, an ``asyncio.Queue``), whose ``_getters`` are their
    futures. Should either internal change, this reports 0 rather than failing /metrics.
    """
    getters = getattr(getattr(pool, "_queue", None), "_getters", None)
    if getters is None:
        return 0
    try:
        return sum(1 for waiter in getters if not waiter.done())
    except (TypeError, AttributeError):
        return 0


def render_json(data: Mapping[str, Any]) -> bytes:
    """The metrics as one JSON object."""
    return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)


def render_prometheus(data: Mapping[str, Any], prefix: str = "riven") -> str:
    """Prometheus text exposition (0.0.4): numbers and booleans become gauges.

    Strings (states, names) are skipped; producers report them as numbers or labels too.
    """
    samples: dict[str, list[str]] = {}
    for name, labels, value in _flatten(prefix, data, ()):
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
        samples.setdefault(name, []).append(
            f"{name}{{{label_text}}} {value}" if label_text else f"{name} {value}"
        )
    lines: list[str] = []
    for name in sorted(samples):
        lines.append(f"# TYPE {name} gauge")
        lines.extend(samples[name])
    return "\n".join(lines) + "\n"


def _flatten(
    name: str, value: Any, labels: tuple[tuple[str, str], ...]
) -> Iterator[tuple[str, tuple[tuple[str, str], ...], str]]:
    if isinstance(value, bool):
        yield name, labels, "1" if value else "0"
    elif isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return
        yield name, labels, repr(value) if isinstance(value, float) else str(value)
    elif isinstance(value, Labeled):
        for key, inner in value.items():
            yield from _flatten(name, inner, (*labels, (value.label, str(key))))
    elif isinstance(value, Mapping):
        for key, inner in value.items():
            yield from _flatten(f"{name}_{_NAME_RE.sub('_', str(key))}", inner, labels)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def wants_prometheus(request: web.Request) -> bool:
    """``?format=prometheus`` or an Accept header that prefers text/plain."""
    if request.query.get("format") == "prometheus":
        return True
    accept = request.headers.get("Accept", "")
    return "text/plain" in accept and "application/json" not in accept


def make_handler(registry: MetricsRegistry) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The ``GET /metrics`` handler for ``registry``."""

    async def metrics(request: web.Request) -> web.Response:
        data = await registry.collect()
        if wants_prometheus(request):
            return web.Response(
                text=render_prometheus(data), content_type="text/plain",
                headers={"X-Content-Type-Version": "0.0.4"},
            )
        return web.Response(body=render_json(data), content_type="application/json")

    return metrics

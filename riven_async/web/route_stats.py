"""Per-route request counts, errors and latency percentiles for ``/metrics``."""

from __future__ import annotations

from aiohttp import web

from riven_async.core.stats import LatencyWindow
from riven_async.web.metrics import Labeled, Section

UNMATCHED = "unmatched"
LATENCY_SAMPLES = 1024


class _Route:
    __slots__ = ("client_errors", "count", "errors", "latency")

    def __init__(self, keep: int) -> None:
        self.count = 0
        self.errors = 0
        self.client_errors = 0
        self.latency = LatencyWindow(keep)


class RouteStats:
    """Counts and the last ``keep`` latencies of each route pattern (memory stays bounded)."""

    def __init__(self, keep: int = LATENCY_SAMPLES) -> None:
        self._keep = keep
        self._routes: dict[str, _Route] = {}

    def record(self, route: str, status: int, elapsed_s: float) -> None:
        """Count one answered request; 5xx are ``errors``, 4xx ``client_errors``."""
        stats = self._routes.get(route)
        if stats is None:
            stats = self._routes[route] = _Route(self._keep)
        stats.count += 1
        if status >= 500:
            stats.errors += 1
        elif status >= 400:
            stats.client_errors += 1
        stats.latency.add(elapsed_s)

    def snapshot(self) -> Labeled:
        """``{"POST /webhook/sonarr": {count, errors, client_errors, p50_ms, p95_ms, p99_ms}}``."""
        return Labeled("route", {
            route: {
                "count": stats.count,
                "errors": stats.errors,
                "client_errors": stats.client_errors,
                **stats.latency.percentiles_ms(),
            }
            for route, stats in sorted(self._routes.items())
        })

    async def section(self) -> Section:
        """The ``routes`` section of ``/metrics``."""
        return self.snapshot()


def route_name(request: web.Request) -> str:
    """``"POST /webhook/sonarr"``: the method and pattern, never the raw path or query.

    Unmatched requests share one name, so neither junk paths nor junk methods can grow
    the table (or put a secret from the URL into it).
    """
    info = request.match_info
    if info.http_exception is not None:
        return UNMATCHED
    route = info.route
    resource = route.resource
    if resource is None:
        return UNMATCHED
    return f"{route.method} {resource.canonical}"

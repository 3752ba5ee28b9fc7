"""What every sim shares: the base class, request recording, limits, faults, control routes."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from riven_async.core.clock import Clock
from riven_async.sim.faults import FaultDecision, FaultKind, FaultSwitchboard
from riven_async.sim.limits import RateLimiter, Verdict, Window, parse_windows
from riven_async.sim.responses import json_response, query_int

if TYPE_CHECKING:
    from riven_async.sim.world import SimWorld

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/_sim/"
REQUEST_LOG_SIZE = 100_000


class Sim:
    """One simulated upstream: identity, default limits, auth and the real error shapes."""

    name = "sim"
    prefix = ""
    default_limits: tuple[str, ...] = ()
    count_refused = False

    def __init__(self, world: SimWorld, api_key: str) -> None:
        self.world = world
        self.api_key = api_key

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register the upstream's endpoints (paths include ``prefix``)."""
        raise NotImplementedError

    def authenticate(self, request: web.Request) -> web.StreamResponse | None:
        """None when the request may proceed, else the upstream's auth error."""
        return None

    def rate_limited(self, request: web.Request, verdict: Verdict) -> web.StreamResponse:
        return json_response(
            {"error": "Too Many Requests"},
            status=429,
            headers={hdrs.RETRY_AFTER: verdict.retry_after_header},
        )

    def server_error(self, request: web.Request, status: int) -> web.StreamResponse:
        return json_response({"error": "Internal Server Error"}, status=status)

    def unavailable(self, request: web.Request, retry_after: str) -> web.StreamResponse:
        """The answer during an outage window (503 + Retry-After)."""
        response = self.server_error(request, 503)
        response.headers[hdrs.RETRY_AFTER] = retry_after
        return response

    def not_found(self, request: web.Request) -> web.StreamResponse:
        return json_response({"error": "Not Found"}, status=404)

    def stats(self) -> dict[str, Any]:
        """Sim-specific counters for ``/_sim/stats`` (adds per hash, scans, ...)."""
        return {}

    def extra_violations(self) -> int:
        """Violations of limits the sim enforces itself (per-endpoint ones, like TorBox's)."""
        return 0


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as a sim saw it; ``status`` is None when no answer was sent."""

    seq: int
    method: str
    path: str
    query: str
    status: int | None
    at: datetime
    duration_s: float
    fault: str | None
    limited: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "at": self.at.isoformat(),
            "duration_ms": round(self.duration_s * 1000, 3),
            "fault": self.fault,
            "limited": self.limited,
        }


class RequestLog:
    """The last ``maxlen`` requests plus totals that never roll over."""

    def __init__(self, maxlen: int = REQUEST_LOG_SIZE) -> None:
        self._entries: deque[RecordedRequest] = deque(maxlen=maxlen)
        self.total = 0
        self.by_status: Counter[int | None] = Counter()

    def record(
        self,
        request: web.Request,
        status: int | None,
        at: datetime,
        duration_s: float,
        fault: FaultKind | None,
        limited: bool,
    ) -> RecordedRequest:
        self.total += 1
        entry = RecordedRequest(
            self.total,
            request.method,
            request.path,
            request.query_string,
            status,
            at,
            duration_s,
            None if fault is None else str(fault),
            limited,
        )
        self._entries.append(entry)
        self.by_status[status] += 1
        return entry

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(tuple(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def since(self, seq: int) -> list[RecordedRequest]:
        """Entries with a sequence number above ``seq``."""
        return [entry for entry in self._entries if entry.seq > seq]

    def matching(
        self, method: str | None = None, path: str | None = None, status: int | None = None
    ) -> list[RecordedRequest]:
        """Entries filtered by method, path prefix and status."""
        return [
            entry
            for entry in self._entries
            if (method is None or entry.method == method)
            and (path is None or entry.path.startswith(path))
            and (status is None or entry.status == status)
        ]

    def clear(self) -> None:
        self._entries.clear()
        self.total = 0
        self.by_status.clear()


class Harness:
    """The runtime around one sim: its clock, limiter, faults and request log.

    Its one middleware does, in order: record the request, add latency, answer 503 in an
    outage window, enforce the rate limit (429 + Retry-After, every violation counted),
    inject resets, hangs, 5xx and malformed bodies, check auth, then call the sim's handler.
    """

    def __init__(
        self,
        sim: Sim,
        clock: Clock,
        windows: Sequence[Window] | None = None,
        seed: int = 0,
        log_size: int = REQUEST_LOG_SIZE,
    ) -> None:
        self.sim = sim
        self.clock = clock
        chosen = parse_windows(sim.default_limits) if windows is None else tuple(windows)
        self.limiter = RateLimiter(chosen, clock, count_refused=sim.count_refused)
        self.faults = FaultSwitchboard(clock, seed=seed)
        self.log = RequestLog(log_size)

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware()])
        self._add_control_routes(app.router)
        self.sim.add_routes(app.router)
        return app

    def stats(self) -> dict[str, Any]:
        return {
            "name": self.sim.name,
            "requests": self.log.total,
            "by_status": {str(k): v for k, v in self.log.by_status.items()},
            "admitted": self.limiter.admitted,
            "violations": self.limiter.violations + self.sim.extra_violations(),
            "limits": [
                {
                    "window": str(s.window),
                    "limit": s.window.limit,
                    "span_s": s.window.span_s,
                    "in_window": s.in_window,
                }
                for s in self.limiter.state()
            ],
            "faults": self.faults.plan.to_json(),
            "faults_injected": dict(self.faults.injected),
            "sim": self.sim.stats(),
        }

    def _middleware(self) -> Middleware:
        @web.middleware
        async def harness_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path.startswith(CONTROL_PREFIX):
                return await handler(request)
            arrived, started = self.clock.now(), time.perf_counter()
            status: int | None = None
            decision = FaultDecision()
            limited = False
            try:
                decision = self.faults.decide(request.path)
                if decision.latency_s > 0:
                    await asyncio.sleep(decision.latency_s)
                response, limited = await self._answer(request, handler, decision)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                self.log.record(
                    request,
                    status,
                    arrived,
                    time.perf_counter() - started,
                    decision.kind,
                    limited,
                )
                if limited or decision.kind is not None:
                    log.debug(
                        "%s %s %s -> %s (%s)",
                        self.sim.name,
                        request.method,
                        request.path,
                        status,
                        "rate limited" if limited else decision.kind,
                        extra={"action": "sim_fault", "sim": self.sim.name},
                    )

        return harness_middleware

    async def _answer(
        self, request: web.Request, handler: Handler, decision: FaultDecision
    ) -> tuple[web.StreamResponse, bool]:
        sim = self.sim
        if decision.kind is FaultKind.OUTAGE:
            retry_after = Verdict(False, decision.retry_after_s).retry_after_header
            return sim.unavailable(request, retry_after), False
        verdict = self.limiter.admit()
        if not verdict.allowed:
            return sim.rate_limited(request, verdict), True
        if decision.kind is FaultKind.RESET:
            _reset_connection(request)
            raise asyncio.CancelledError
        if decision.kind is FaultKind.TIMEOUT:
            # Real seconds: the client's timeout is real time whatever the sims' clock does.
            await asyncio.sleep(decision.hang_s)
        if decision.kind is FaultKind.ERROR:
            return sim.server_error(request, decision.error_status), False
        denied = sim.authenticate(request)
        if denied is not None:
            return denied, False
        try:
            response = await handler(request)
        except web.HTTPNotFound:
            response = sim.not_found(request)
        if decision.kind is FaultKind.MALFORMED:
            response = _truncated(response)
        return response, False

    def _add_control_routes(self, router: web.UrlDispatcher) -> None:
        control = _ControlRoutes(self)
        router.add_get("/_sim/faults", control.get_faults)
        for method in ("POST", "PUT", "PATCH"):
            router.add_route(method, "/_sim/faults", control.set_faults)
        router.add_delete("/_sim/faults", control.clear_faults)
        router.add_get("/_sim/requests", control.get_requests)
        router.add_delete("/_sim/requests", control.clear_requests)
        router.add_get("/_sim/stats", control.get_stats)
        router.add_get("/_sim/limits", control.get_limits)
        router.add_put("/_sim/limits", control.set_limits)
        router.add_get("/_sim/clock", control.get_clock)


class _ControlRoutes:
    """``/_sim/*``: faults, recorded requests, stats, limits and the clock, as JSON."""

    def __init__(self, harness: Harness) -> None:
        self._harness = harness

    async def get_faults(self, request: web.Request) -> web.Response:
        return json_response(self._harness.faults.plan.to_json())

    async def set_faults(self, request: web.Request) -> web.Response:
        try:
            plan = self._harness.faults.apply_json(await request.json())
        except ValueError as exc:
            return json_response({"error": str(exc)}, status=400)
        return json_response(plan.to_json())

    async def clear_faults(self, request: web.Request) -> web.Response:
        self._harness.faults.clear()
        return json_response(self._harness.faults.plan.to_json())

    async def get_requests(self, request: web.Request) -> web.Response:
        since, limit = query_int(request, "since", 0), query_int(request, "limit", 1000)
        if since is None or limit is None:
            return json_response({"error": "since and limit must be integers"}, status=400)
        entries = self._harness.log.since(since)[-limit:] if limit > 0 else []
        return json_response(
            {"total": self._harness.log.total, "requests": [e.to_json() for e in entries]}
        )

    async def clear_requests(self, request: web.Request) -> web.Response:
        self._harness.log.clear()
        return json_response({"total": 0, "requests": []})

    async def get_stats(self, request: web.Request) -> web.Response:
        return json_response(self._harness.stats())

    async def get_limits(self, request: web.Request) -> web.Response:
        return json_response({"rate_limits": [str(w) for w in self._harness.limiter.windows]})

    async def set_limits(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            texts = body["rate_limits"] if isinstance(body, dict) else None
            if not isinstance(texts, list):
                raise ValueError('expected {"rate_limits": ["250/60s", ...]}')
            self._harness.limiter.set_windows(parse_windows(str(t) for t in texts))
        except (ValueError, KeyError) as exc:
            return json_response({"error": str(exc)}, status=400)
        return await self.get_limits(request)

    async def get_clock(self, request: web.Request) -> web.Response:
        return json_response({"now": self._harness.clock.now().isoformat()})


def _reset_connection(request: web.Request) -> None:
    """Close the socket with SO_LINGER 0 so the client sees a TCP reset, not a clean close."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _truncated(response: web.StreamResponse) -> web.StreamResponse:
    """The same answer cut short mid-body (a proxy dropping the tail), or a stray brace."""
    body = response.body if isinstance(response, web.Response) else None
    raw = body if isinstance(body, bytes) else b""
    cut = raw[: len(raw) // 2] if len(raw) > 1 else b"{"
    headers = {key: value for key, value in response.headers.items() if key != hdrs.CONTENT_LENGTH}
    status = response.status if response.status != 204 else 200
    return web.Response(body=cut, status=status, headers=headers)

"""HttpClient: one aiohttp session per upstream behind a limiter, retries, a breaker and a cache."""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote, quote_plus, urlencode

import aiohttp
import orjson
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from riven_async import __version__
from riven_async.core import retry
from riven_async.core.breaker import (
    BreakerState,
    BreakerStats,
    CircuitBreaker,
    CircuitOpen,
    Ticket,
)
from riven_async.core.cache import CacheState, CacheStats, TtlCache
from riven_async.core.clock import Clock, SystemClock
from riven_async.core.coalesce import Coalescer
from riven_async.core.ratelimit import Hold, LimiterStats, SlidingWindowLimiter, Slot, Window
from riven_async.core.recent import RecentCount
from riven_async.errors import (
    RateLimited,
    UpstreamError,
    UpstreamPayloadError,
    UpstreamUnavailable,
)

log = logging.getLogger(__name__)

QueryValue = str | int | float | bool
Params = Mapping[str, QueryValue | Sequence[QueryValue]]
MASK = "***"
# Query parameters that carry credentials on the upstreams we talk to (case-insensitive).
SECRET_PARAMS = frozenset(
    {
        "api_key", "apikey", "token", "auth_token", "access_token", "refresh_token", "key",
        "passkey", "password", "secret", "client_secret", "x-plex-token", "x-api-key",
    }
)  # fmt: skip
_SECRET_PARAM_RE = re.compile(
    r"(?i)\b(" + "|".join(re.escape(p) for p in sorted(SECRET_PARAMS)) + r")=([^&\s#\"']+)"
)
_USERINFO_RE = re.compile(r"(?i)\b(https?://)[^/@\s]+@")
LATENCY_SAMPLES = 1024
_TRANSIENT_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)


class Secret:
    """A credential that never renders: ``repr`` and ``str`` show a mask."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class ApiKeyAuth:
    """Where the key goes: a header (``Authorization``, ``Bearer {key}``) or a query param."""

    location: Literal["header", "query"]
    name: str
    template: str = "{key}"


@dataclass(frozen=True, slots=True)
class UpstreamPolicy:
    """Everything one upstream client needs, in plain types (core never imports config)."""

    name: str
    base_url: str
    windows: tuple[tuple[int, float], ...] = ()
    timeout_s: float = 15.0
    connect_timeout_s: float = 5.0
    max_connections: int = 10
    max_retries: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    breaker_failures: int = 5
    breaker_reset_s: float = 30.0
    cache_ttl_s: tuple[tuple[str, float], ...] = ()
    cache_stale_s: float = 3600.0
    cache_max_entries: int = 10_000
    api_key: Secret = field(default=Secret(""), repr=False)
    auth: ApiKeyAuth | None = None
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    scrub: tuple[Secret, ...] = field(default=(), repr=False)
    window_hold: Hold = "done"
    window_guard_s: float = 0.0
    retry_after_cap_s: float = 3600.0
    max_body_bytes: int = 64 * 1024 * 1024

    def secrets(self) -> tuple[str, ...]:
        """Every string that must never appear in a message."""
        values = [self.api_key.reveal(), *(s.reveal() for s in self.scrub)]
        return tuple(v for v in values if v)


class Scrubber:
    """Masks credentials in URLs and free text: known query params and listed secrets."""

    __slots__ = ("_needles",)

    def __init__(self, secrets: Iterable[str]) -> None:
        needles: set[str] = set()
        for raw in secrets:
            if raw:
                needles.update({raw, quote(raw, safe=""), quote_plus(raw), quote(raw)})
        # Longest first, so a secret containing another is masked whole.
        self._needles = tuple(sorted(needles, key=len, reverse=True))

    def text(self, text: str) -> str:
        text = _SECRET_PARAM_RE.sub(lambda m: f"{m[1]}={MASK}", text)
        text = _USERINFO_RE.sub(lambda m: f"{m[1]}{MASK}@", text)
        for needle in self._needles:
            text = text.replace(needle, MASK)
        return text

    def url(self, url: URL | str) -> str:
        return self.text(str(url))


@dataclass(frozen=True, slots=True)
class Response:
    """One upstream answer: status, headers and raw body; ``url`` carries no secrets."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes = field(repr=False)
    url: str
    service: str
    method: str = "GET"
    elapsed_s: float = 0.0
    cache: CacheState = CacheState.UNCACHED

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body parsed with orjson; ``UpstreamPayloadError`` if it is not JSON."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise UpstreamPayloadError(
                self.service, self.status, self.url, f"invalid JSON ({exc})", method=self.method
            ) from None

    def text(self, encoding: str = "utf-8") -> str:
        return self.body.decode(encoding, errors="replace")


@dataclass(frozen=True, slots=True)
class LatencyStats:
    samples: int
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None


@dataclass(frozen=True, slots=True)
class HttpStats:
    """Per-upstream figures for the metrics endpoint (``to_dict`` is JSON-ready)."""

    service: str
    requests: Mapping[str, int]
    rate_limited: int
    rate_limited_last_hour: int
    retries: int
    coalesced: int
    queued: int
    in_flight: int
    breaker: BreakerStats
    limiter: LimiterStats
    cache: CacheStats
    latency: LatencyStats

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["requests"] = dict(self.requests)
        data["breaker"]["state"] = self.breaker.state.value
        data["limiter"]["windows"] = list(data["limiter"]["windows"])
        # Numbers for what Prometheus cannot carry as a string or a list: "breaker_open" is
        # true while the breaker refuses normal traffic (open or half-open), "usage" is the
        # fullest window's share of its limit, "hit_rate" the share of lookups served.
        data["breaker_open"] = self.breaker.state is not BreakerState.CLOSED
        data["limiter"]["usage"] = max(
            (w.used / w.limit for w in self.limiter.windows), default=0.0
        )
        served = self.cache.hits + self.cache.stale_hits
        lookups = served + self.cache.misses
        data["cache"]["hit_rate"] = round(served / lookups, 4) if lookups else 0.0
        return data


class HttpClient:
    """The only way the daemon talks to one upstream.

    Every attempt takes a connection slot, then a slot in every rate window (so no
    request is admitted and then left waiting for a connection), then a breaker ticket.
    By default (``window_hold="done"``) a request holds its window place until its
    response is in, so the upstream's own clock never sees a window overfilled, whatever
    the latency; a connect failure hands the place back. Connection errors, timeouts and
    transient 5xx are retried with full-jitter backoff (non-idempotent methods only when
    the request was surely not processed: connect failures, 429, 503). A 429 pauses the
    whole upstream for its ``Retry-After``. GETs with the same URL and headers that are
    in flight at once share one call; GETs with a ``cache_namespace`` that has a TTL are
    served from the cache.
    """

    def __init__(
        self,
        policy: UpstreamPolicy,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy
        self.name = policy.name
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._base = policy.base_url.rstrip("/")
        self._scrubber = Scrubber(policy.secrets())
        self._backoff = retry.Backoff(policy.backoff_base_s, policy.backoff_max_s)
        self._limiter = SlidingWindowLimiter(
            (Window(limit, seconds) for limit, seconds in policy.windows),
            self._clock,
            hold=policy.window_hold,
            guard_s=policy.window_guard_s,
            name=policy.name,
        )
        self._breaker = CircuitBreaker(
            failures=policy.breaker_failures,
            reset_s=policy.breaker_reset_s,
            clock=self._clock,
            name=policy.name,
        )
        self._cache: TtlCache[Response] = TtlCache(
            clock=self._clock,
            ttls=dict(policy.cache_ttl_s),
            stale_s=policy.cache_stale_s,
            max_entries=policy.cache_max_entries,
            name=policy.name,
        )
        self._coalescer: Coalescer[Response] = Coalescer(policy.name)
        self._slots = asyncio.Semaphore(policy.max_connections)
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._by_class: dict[str, int] = dict.fromkeys(("1xx", "2xx", "3xx", "4xx", "5xx"), 0)
        self._by_class["error"] = 0
        self._rate_limited = 0
        self._rate_limited_recent = RecentCount(3600.0)
        self._retries = 0
        self._queued = 0
        self._in_flight = 0
        self._latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)

    def __repr__(self) -> str:
        return f"<HttpClient {self.name} {self._scrubber.url(self._base)}>"

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def limiter(self) -> SlidingWindowLimiter:
        return self._limiter

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    def scrub(self, text: str) -> str:
        """``text`` with this upstream's credentials masked (for services' own messages)."""
        return self._scrubber.text(text)

    async def get(
        self,
        path: str,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        cache_namespace: str | None = None,
        bypass_cache: bool = False,
        accept: Iterable[int] = (),
        max_retries: int | None = None,
        timeout_s: float | None = None,
    ) -> Response:
        return await self.request(
            "GET",
            path,
            params=params,
            headers=headers,
            cache_namespace=cache_namespace,
            bypass_cache=bypass_cache,
            accept=accept,
            max_retries=max_retries,
            timeout_s=timeout_s,
        )

    async def post(
        self,
        path: str,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        json: object = None,
        data: Mapping[str, str] | bytes | str | None = None,
        accept: Iterable[int] = (),
        idempotent: bool | None = None,
        max_retries: int | None = None,
        timeout_s: float | None = None,
    ) -> Response:
        return await self.request(
            "POST",
            path,
            params=params,
            headers=headers,
            json=json,
            data=data,
            accept=accept,
            idempotent=idempotent,
            max_retries=max_retries,
            timeout_s=timeout_s,
        )

    async def delete(
        self,
        path: str,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        accept: Iterable[int] = (),
    ) -> Response:
        return await self.request("DELETE", path, params=params, headers=headers, accept=accept)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        json: object = None,
        data: Mapping[str, str] | bytes | str | None = None,
        cache_namespace: str | None = None,
        bypass_cache: bool = False,
        accept: Iterable[int] = (),
        idempotent: bool | None = None,
        max_retries: int | None = None,
        timeout_s: float | None = None,
    ) -> Response:
        """Send one request; return the response or raise an ``UpstreamError``.

        2xx/3xx and the statuses in ``accept`` are returned; anything else raises
        (``RateLimited`` for 429). ``cache_namespace=None`` never caches (live data);
        ``bypass_cache`` fetches afresh and refreshes the entry.
        """
        if self._closed:
            raise RuntimeError(f"{self.name}: client is closed")
        method = method.upper()
        if cache_namespace is not None and method != "GET":
            raise ValueError("only GET responses can be cached")
        url = self._url(path, params)
        safe = self._scrubber.url(url)
        extra_headers = dict(headers or {})
        body, body_headers = _encode_body(json, data)
        extra_headers.update(body_headers)
        call = _Call(
            method=method,
            url=url,
            safe_url=safe,
            headers=tuple(sorted(extra_headers.items())),
            body=body,
            idempotent=retry.is_idempotent(method) if idempotent is None else idempotent,
            max_retries=self.policy.max_retries if max_retries is None else max_retries,
            timeout_s=self.policy.timeout_s if timeout_s is None else timeout_s,
        )
        if method == "GET":
            key = f"{url}\n{call.headers!r}"
            response, state = await self._cache.fetch(
                cache_namespace,
                key,
                lambda: self._coalescer.run(key, lambda: self._send(call)),
                bypass=bypass_cache,
                store_if=lambda r: r.status == 200,
            )
            if state is not response.cache:
                response = replace(response, cache=state)
        else:
            response = await self._send(call)
        return self._check(response, frozenset(accept))

    def stats(self) -> HttpStats:
        ordered = sorted(self._latencies)
        return HttpStats(
            service=self.name,
            requests=dict(self._by_class),
            rate_limited=self._rate_limited,
            rate_limited_last_hour=self._rate_limited_recent.total(),
            retries=self._retries,
            coalesced=self._coalescer.joined,
            queued=self._queued,
            in_flight=self._in_flight,
            breaker=self._breaker.stats(),
            limiter=self._limiter.stats(),
            cache=self._cache.stats(),
            latency=LatencyStats(
                samples=len(ordered),
                p50_s=_percentile(ordered, 0.50),
                p95_s=_percentile(ordered, 0.95),
                p99_s=_percentile(ordered, 0.99),
            ),
        )

    async def aclose(self) -> None:
        """Cancel what is in flight, drop the cache and close the session."""
        if self._closed:
            return
        self._closed = True
        await self._coalescer.aclose()
        await self._cache.aclose()
        await self._limiter.aclose()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _url(self, path: str, params: Params | None) -> URL:
        if path.startswith(("http://", "https://")):
            url = URL(path)
        else:
            url = URL(f"{self._base}/{path.lstrip('/')}" if path else self._base)
        if params:
            pairs: list[tuple[str, str]] = []
            for name, value in params.items():
                values = value if isinstance(value, list | tuple) else (value,)
                pairs.extend((name, _query_text(v)) for v in values)
            url = url.extend_query(pairs)
        return url

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None:
            headers = CIMultiDict({"User-Agent": f"riven_async/{__version__}"})
            headers.update(self.policy.headers)
            auth = self.policy.auth
            if auth is not None and auth.location == "header" and self.policy.api_key:
                headers[auth.name] = auth.template.format(key=self.policy.api_key.reveal())
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.policy.max_connections, ttl_dns_cache=300
                ),
                headers=headers,
                timeout=aiohttp.ClientTimeout(
                    total=self.policy.timeout_s, sock_connect=self.policy.connect_timeout_s
                ),
                raise_for_status=False,
            )
        return self._session

    async def _send(self, call: _Call) -> Response:
        """Attempts until an answer worth returning; raise only when no answer came back."""
        attempt = 0
        while True:
            delay = await self._attempt(call, attempt)
            if isinstance(delay, Response):
                return delay
            attempt += 1
            self._retries += 1
            if delay > 0:
                await self._clock.sleep(delay)

    async def _attempt(self, call: _Call, attempt: int) -> Response | float:
        """One try: the response to return, or how long to wait before the next try."""
        self._check_breaker(call)
        self._queued += 1
        admitted = False
        try:
            async with self._slots:
                slot = await self._limiter.acquire()
                self._queued -= 1
                admitted = True
                try:
                    ticket = self._breaker.admit()
                except CircuitOpen as exc:  # opened while this call waited for its slot
                    self._limiter.refund(slot)
                    raise self._unavailable(call, exc) from None
                return await self._exchange(call, attempt, ticket, slot)
        finally:
            if not admitted:
                self._queued -= 1

    async def _exchange(
        self, call: _Call, attempt: int, ticket: Ticket, slot: Slot
    ) -> Response | float:
        self._in_flight += 1
        try:
            response = await self._transmit(call, slot)
        except aiohttp.ClientConnectorError as exc:
            # The connection never opened, so the upstream never saw this request.
            self._limiter.refund(slot)
            return self._failed(call, attempt, ticket, exc, safe_to_repeat=True)
        except _TRANSIENT_ERRORS as exc:
            return self._failed(call, attempt, ticket, exc, safe_to_repeat=call.idempotent)
        except aiohttp.ClientError as exc:  # bad URL, too many redirects: not the upstream's health
            self._breaker.abandon(ticket)
            self._by_class["error"] += 1
            raise UpstreamError(
                self.name, None, call.safe_url, self._describe(exc), method=call.method
            ) from None
        except BaseException:
            self._breaker.abandon(ticket)
            raise
        finally:
            self._in_flight -= 1
            self._limiter.release(slot)
        return self._judge(call, attempt, ticket, response)

    def _failed(
        self,
        call: _Call,
        attempt: int,
        ticket: Ticket,
        exc: BaseException,
        *,
        safe_to_repeat: bool,
    ) -> float:
        """No answer came back: count an outage; the delay before a retry, or raise."""
        self._breaker.failure(ticket)
        self._by_class["error"] += 1
        error = self._unavailable(call, exc)
        if not (attempt < call.max_retries and safe_to_repeat):
            raise error from None
        return self._retry_in(call, attempt, error.reason, self._backoff.delay(attempt, self._rng))

    def _judge(
        self, call: _Call, attempt: int, ticket: Ticket, response: Response
    ) -> Response | float:
        status = response.status
        more = attempt < call.max_retries
        if status == 429:
            self._breaker.success(ticket)  # it answered: a limit, not an outage
            self._rate_limited += 1
            self._rate_limited_recent.add()
            retry_after = self._retry_after(response)
            pause = retry_after if retry_after is not None else self._backoff.ceiling(attempt)
            self._limiter.pause(min(pause, self.policy.retry_after_cap_s))
            if not more or pause > self.policy.backoff_max_s:
                return response
            # The paused limiter holds this retry (and everyone else) until the pause ends.
            return self._retry_in(call, attempt, "HTTP 429", 0.0)
        if retry.is_retryable_status(status):
            self._breaker.failure(ticket)
            refused = status in retry.REFUSED_STATUSES
            if not (more and (call.idempotent or refused)):
                return response
            retry_after = self._retry_after(response) if status == 503 else None
            if retry_after is not None and retry_after > self.policy.backoff_max_s:
                return response
            delay = (
                retry_after if retry_after is not None else self._backoff.delay(attempt, self._rng)
            )
            return self._retry_in(call, attempt, f"HTTP {status}", delay)
        self._breaker.success(ticket)
        return response

    async def _transmit(self, call: _Call, slot: Slot) -> Response:
        session = self._session_now()
        url = call.url
        auth = self.policy.auth
        if auth is not None and auth.location == "query" and self.policy.api_key:
            url = url.extend_query(
                {auth.name: auth.template.format(key=self.policy.api_key.reveal())}
            )
        timeout = aiohttp.ClientTimeout(
            total=call.timeout_s, sock_connect=self.policy.connect_timeout_s
        )
        began = self._clock.monotonic()
        async with session.request(
            call.method, url, headers=dict(call.headers), data=call.body, timeout=timeout
        ) as raw:
            # The upstream has the request once its answer starts: the window place need
            # not wait for the body.
            self._limiter.release(slot)
            body = await self._read(raw, call)
            status = raw.status
            headers = raw.headers
        elapsed = self._clock.monotonic() - began
        self._latencies.append(elapsed)
        self._by_class[f"{min(max(status // 100, 1), 5)}xx"] += 1
        log.debug(
            "%s: %s %s -> %d in %.3fs",
            self.name,
            call.method,
            call.safe_url,
            status,
            elapsed,
            extra={"action": "http_request", "service": self.name, "status": status},
        )
        return Response(
            status=status,
            headers=headers,
            body=body,
            url=call.safe_url,
            service=self.name,
            method=call.method,
            elapsed_s=elapsed,
        )

    async def _read(self, raw: aiohttp.ClientResponse, call: _Call) -> bytes:
        cap = self.policy.max_body_bytes
        if raw.content_length is not None and raw.content_length > cap:
            raise UpstreamPayloadError(
                self.name, raw.status, call.safe_url, f"body over {cap} bytes", method=call.method
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in raw.content.iter_chunked(65_536):
            size += len(chunk)
            if size > cap:
                raise UpstreamPayloadError(
                    self.name,
                    raw.status,
                    call.safe_url,
                    f"body over {cap} bytes",
                    method=call.method,
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _check(self, response: Response, accept: frozenset[int]) -> Response:
        status = response.status
        if status < 400 or status in accept:
            return response
        if status == 429:
            retry_after = self._retry_after(response)
            raise RateLimited(
                self.name,
                response.url,
                retry_after if retry_after is not None else self._limiter.paused_for(),
                method=response.method,
                body=response.body,
            )
        error_type = UpstreamUnavailable if status == 503 else UpstreamError
        raise error_type(
            self.name,
            status,
            response.url,
            method=response.method,
            retry_after_s=self._retry_after(response) if status == 503 else None,
            body=response.body,
        )

    def _check_breaker(self, call: _Call) -> None:
        try:
            self._breaker.check()
        except CircuitOpen as exc:
            raise self._unavailable(call, exc) from None

    def _unavailable(self, call: _Call, exc: BaseException) -> UpstreamUnavailable:
        retry_after = exc.retry_in_s if isinstance(exc, CircuitOpen) else None
        reason = "circuit open" if isinstance(exc, CircuitOpen) else self._describe(exc)
        if isinstance(exc, CircuitOpen):
            reason += f", next probe in {exc.retry_in_s:.1f}s"
        return UpstreamUnavailable(
            self.name, None, call.safe_url, reason, method=call.method, retry_after_s=retry_after
        )

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, TimeoutError):
            return "timed out"
        detail = self._scrubber.text(str(exc))
        return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__

    def _retry_after(self, response: Response) -> float | None:
        value = retry.parse_retry_after(response.headers.get("Retry-After"), self._clock.now())
        return None if value is None else min(value, self.policy.retry_after_cap_s)

    def _retry_in(self, call: _Call, attempt: int, why: str, delay: float) -> float:
        log.info(
            "%s: %s on %s %s; retry %d/%d in %.2fs",
            self.name,
            why,
            call.method,
            call.safe_url,
            attempt + 1,
            call.max_retries,
            delay,
            extra={"action": "http_retry", "service": self.name, "attempt": attempt + 1},
        )
        return delay


@dataclass(frozen=True, slots=True)
class _Call:
    method: str
    url: URL
    safe_url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | str | None
    idempotent: bool
    max_retries: int
    timeout_s: float


def _encode_body(
    json: object, data: Mapping[str, str] | bytes | str | None
) -> tuple[bytes | str | None, dict[str, str]]:
    if json is not None and data is not None:
        raise ValueError("pass json or data, not both")
    if json is not None:
        return orjson.dumps(json), {"Content-Type": "application/json"}
    if isinstance(data, Mapping):
        # Encoded once here (not aiohttp.FormData, which can be sent only once) so retries
        # resend the same bytes.
        form = urlencode(list(data.items())).encode()
        return form, {"Content-Type": "application/x-www-form-urlencoded"}
    return data, {}


def _query_text(value: QueryValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _percentile(ordered: Sequence[float], q: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))
    return ordered[index]

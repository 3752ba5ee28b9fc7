"""A local upstream for HttpClient tests: handlers per path, a hit counter, and clients."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from riven_async.core.clock import Clock
from riven_async.core.http import HttpClient, UpstreamPolicy

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class FakeUpstream:
    """A loopback server whose handlers are swapped per test; it counts every request."""

    server: TestServer
    hits: Counter[str] = field(default_factory=Counter)
    requests: list[web.Request] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


class UpstreamFactory(Protocol):
    def __call__(self, routes: dict[str, Handler]) -> Awaitable[FakeUpstream]: ...


class ClientFactory(Protocol):
    def __call__(
        self, upstream: FakeUpstream | str, *, clock: Clock | None = None, **policy: Any
    ) -> HttpClient: ...


@pytest.fixture
async def make_upstream(aiohttp_server: Any) -> UpstreamFactory:
    async def build(routes: dict[str, Handler]) -> FakeUpstream:
        holder: list[FakeUpstream] = []

        @web.middleware
        async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
            holder[0].hits[request.path] += 1
            holder[0].requests.append(request)
            return await handler(request)

        app = web.Application(middlewares=[count])
        for path, handler in routes.items():
            app.router.add_route("*", path, handler)
        upstream = FakeUpstream(await aiohttp_server(app))
        holder.append(upstream)
        return upstream

    return build


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    clients: list[HttpClient] = []

    def build(
        upstream: FakeUpstream | str, *, clock: Clock | None = None, **policy: Any
    ) -> HttpClient:
        base = upstream if isinstance(upstream, str) else upstream.base_url
        defaults: dict[str, Any] = {
            "name": "test",
            "base_url": base,
            "backoff_base_s": 0.001,
            "backoff_max_s": 0.05,
            "timeout_s": 5.0,
        }
        defaults.update(policy)
        client = HttpClient(UpstreamPolicy(**defaults), clock=clock)
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()

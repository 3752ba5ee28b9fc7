"""Scraper test helpers: sims wired through the real config path, and a .torrent server.

Imported explicitly by the scraper tests (``tests/services/conftest.py`` belongs to the
HTTP core's tests).
"""

from __future__ import annotations

import copy
import hashlib
import tomllib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web
from aiohttp.test_utils import TestServer

from riven_async.config import Settings, load_settings_from_dict
from riven_async.core.http import HttpClient
from riven_async.services.scrapers import bencode
from riven_async.sim.fragment import config_fragment
from riven_async.sim.releases import Release
from riven_async.sim.server import SimCluster, SimSettings, run_sims
from riven_async.sim.shows import Show
from riven_async.sim.stremio import encode_config
from riven_async.upstreams import UpstreamClients, policy_from_section

# Fast failure handling for tests; limits stay the sims' own (from the fragment).
FAST_POLICY: Mapping[str, Any] = MappingProxyType(
    {
        "timeout_s": 5.0,
        "connect_timeout_s": 2.0,
        "max_retries": 1,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.1,
    }
)
COMET_CONFIG = encode_config({"resultFormat": ["all"], "debridService": "torrent"})
MEDIAFUSION_CONFIG = "D-" + encode_config({"streaming_provider": None, "max_streams": 50})
STREMIO_SUFFIX: Mapping[str, str] = MappingProxyType(
    {"comet": "/" + COMET_CONFIG, "mediafusion": "/" + MEDIAFUSION_CONFIG}
)


@dataclass
class SimEnv:
    """Running sims plus clients built the way the daemon builds them (fragment → Settings)."""

    cluster: SimCluster
    config: dict[str, Any]
    clients: list[HttpClient] = field(default_factory=list)
    allowed_violations: Counter[str] = field(default_factory=Counter)

    def allow_violations(self, sim: str, count: int = 1) -> None:
        """A test that provokes a sim's limit on purpose says how often."""
        self.allowed_violations[sim] += count

    def settings(self, **changes: Mapping[str, Any]) -> Settings:
        """Settings from the sims' fragment, fast retries, stremio config segments, changes."""
        data = copy.deepcopy(self.config)
        for name, section in data["upstreams"].items():
            section.update(FAST_POLICY)
            section["base_url"] += STREMIO_SUFFIX.get(name, "")
        for name, override in changes.items():
            data["upstreams"][name].update(override)
        return load_settings_from_dict(data)

    def client(self, name: str, **changes: Any) -> HttpClient:
        """One upstream's client (closed at the end of the test)."""
        settings = self.settings(**{name: changes})
        policy = policy_from_section(
            name, getattr(settings.upstreams, name), scrub=settings.secrets()
        )
        client = HttpClient(policy)
        self.clients.append(client)
        return client

    def upstream_clients(self, **changes: Mapping[str, Any]) -> UpstreamClients:
        clients = UpstreamClients.from_settings(self.settings(**changes))
        self.clients.extend(clients[name] for name in clients)
        return clients

    def api_keys(self) -> list[str]:
        """Every key the sims hold (none may show in an exception's text)."""
        return [h.api_key for h in self.cluster.handles() if h.api_key]

    def check_violations(self) -> None:
        over = {
            h.name: h.violations
            for h in self.cluster.handles()
            if h.violations > self.allowed_violations[h.name]
        }
        assert not over, f"sim rate limits violated: {over}"

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()


@asynccontextmanager
async def sim_env(settings: SimSettings | None = None) -> AsyncIterator[SimEnv]:
    """Sims on loopback; on exit every client closes and no unexpected violation happened."""
    chosen = settings or SimSettings(shows=40, movies=30, infringing_ratio=0.0)
    async with run_sims(chosen) as cluster:
        env = SimEnv(cluster, tomllib.loads(config_fragment(cluster)))
        try:
            yield env
        finally:
            await env.aclose()
        env.check_violations()


@dataclass(frozen=True, slots=True)
class EpisodePick:
    show: Show
    season: int
    episode: int
    releases: tuple[Release, ...]


def pick_episode(
    cluster: SimCluster, want: Callable[[list[Release]], bool] | None = None
) -> EpisodePick:
    """An aired episode with releases (packs and singles) that ``want`` accepts."""
    now = cluster.world.now()
    for show in cluster.catalog.shows():
        for plan in show.visible_seasons(now):
            if plan.number == 0:
                continue
            releases = cluster.catalog.episode_releases(show, plan.number, 1, now)
            packs = [r for r in releases if r.multi_file]
            if len(releases) >= 3 and packs and (want is None or want(releases)):
                return EpisodePick(show, plan.number, 1, tuple(releases))
    raise AssertionError("no episode with releases in the sim catalog")


def make_torrent(name: str, length: int = 1_234_567, *, extra: bytes = b"") -> bytes:
    """A small, valid single-file v1 torrent."""
    pieces = hashlib.sha1(name.encode()).digest() * 2
    info: dict[bytes, bencode.BValue] = {
        b"length": length,
        b"name": name.encode(),
        b"piece length": 262_144,
        b"pieces": pieces,
    }
    if extra:
        info[b"x-extra"] = extra
    return bencode.encode({b"announce": b"udp://tracker.example:1337", b"info": info})


def torrent_infohash(torrent: bytes) -> str:
    """The infohash computed independently of the reader under test."""
    value = bencode.decode(torrent)
    assert isinstance(value, dict)
    return hashlib.sha1(bencode.encode(value[b"info"])).hexdigest()


@dataclass
class TorrentFeedServer:
    """A Torznab-shaped server whose items carry only ``.torrent`` links."""

    server: TestServer
    files: dict[str, bytes]
    hits: Counter[str]

    @property
    def base_url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CAPS = b"""<?xml version="1.0" encoding="UTF-8"?>
<caps><server title="Jackett"/><limits default="100" max="100"/>
<searching><search available="yes" supportedParams="q"/>
<tv-search available="yes" supportedParams="q,season,ep,imdbid"/>
<movie-search available="yes" supportedParams="q,imdbid"/></searching>
<categories><category id="2000" name="Movies"/><category id="5000" name="TV"/></categories>
</caps>"""


@asynccontextmanager
async def torrent_feed_server(
    items: Mapping[str, bytes],
    *,
    links: Mapping[str, str] | None = None,
    caps: bytes = CAPS,
) -> AsyncIterator[TorrentFeedServer]:
    """``/api`` answers caps and a feed of ``items`` (title → .torrent bytes) by link only.

    ``links`` overrides an item's link (absolute URLs, e.g. another origin).
    """
    hits: Counter[str] = Counter()
    files = {f"/file/{index}.torrent": body for index, body in enumerate(items.values())}
    holder: list[TorrentFeedServer] = []

    async def api(request: web.Request) -> web.StreamResponse:
        hits["/api:" + request.query.get("t", "")] += 1
        if request.query.get("t") == "caps":
            return web.Response(body=caps, content_type="application/xml")
        base = holder[0].base_url
        rows = []
        for (title, body), path in zip(items.items(), files, strict=True):
            link = (links or {}).get(title, base + path)
            rows.append(
                f"<item><title>{escape(title)}</title><link>{escape(link)}</link>"
                f"<size>{len(body) * 1000}</size>"
                f'<enclosure url={quoteattr(link)} length="1" type="application/x-bittorrent"/>'
                '<torznab:attr name="seeders" value="12"/></item>'
            )
        feed = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<rss version="2.0" xmlns:torznab="http://torznab.com/schemas/2015/feed">'
            f"<channel><title>files</title>{''.join(rows)}</channel></rss>"
        )
        return web.Response(text=feed, content_type="application/xml")

    async def torrent(request: web.Request) -> web.StreamResponse:
        hits[request.path] += 1
        body = files.get(request.path)
        if body is None:
            raise web.HTTPNotFound
        return web.Response(body=body, content_type="application/x-bittorrent")

    app = web.Application()
    app.router.add_get("/api", api)
    app.router.add_get("/file/{name}", torrent)
    server = TestServer(app)
    await server.start_server()
    holder.append(TorrentFeedServer(server, files, hits))
    try:
        yield holder[0]
    finally:
        await server.close()


@asynccontextmanager
async def json_server(path: str, body: Any) -> AsyncIterator[str]:
    """A loopback server answering ``path`` (a route pattern) with ``body``; yields its URL."""

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(body)

    app = web.Application()
    app.router.add_get(path, handler)
    server = TestServer(app)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()

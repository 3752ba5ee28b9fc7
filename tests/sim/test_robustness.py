"""Garbage in never makes a sim answer 500: bad input gets the upstream's own 4xx (or 2xx)."""

from __future__ import annotations

from typing import Any

import aiohttp

from riven_async.sim.server import SimCluster
from tests.sim.simtest import call


def _garbage(sims: SimCluster) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, url, request kwargs) for malformed requests to every sim."""
    tmdb = {"params": {"api_key": sims.tmdb.api_key}}
    rd = {"headers": {"Authorization": f"Bearer {sims.realdebrid.api_key}"}}
    ad = {"headers": {"Authorization": f"Bearer {sims.alldebrid.api_key}"}}
    tb = {"headers": {"Authorization": f"Bearer {sims.torbox.api_key}"}}
    ovs = {"headers": {"X-Api-Key": sims.overseerr.api_key}}
    jf = {"headers": {"Authorization": f'MediaBrowser Token="{sims.jellyfin.api_key}"'}}
    tz = sims.torznab.api_key
    t, m, n = sims.tmdb.base_url, sims.tvmaze.base_url, sims.torznab.url
    r, a, b = sims.realdebrid.base_url, sims.alldebrid.base_url, sims.torbox.base_url
    return [
        ("GET", f"{t}/tv/abc", tmdb),
        ("GET", f"{t}/tv/60000/season/99", tmdb),
        ("GET", f"{t}/find/xx", {"params": {**tmdb["params"], "external_source": "bogus"}}),
        ("GET", f"{t}/find/xx", {"params": {**tmdb["params"], "external_source": "tvdb_id"}}),
        ("GET", f"{t}/search/tv", {"params": {**tmdb["params"], "page": "x"}}),
        ("GET", f"{t}/tv/changes", {"params": {**tmdb["params"], "start_date": "soon"}}),
        ("GET", f"{m}/lookup/shows", {"params": {"thetvdb": "abc"}}),
        ("GET", f"{m}/shows/999999", {}),
        ("GET", f"{m}/shows/1/episodebynumber", {"params": {"season": "x"}}),
        ("GET", f"{m}/episodes/5", {}),
        ("GET", f"{m}/search/shows", {}),
        ("GET", f"{sims.torrentio.base_url}/stream/series/tt1:x:y.json", {}),
        ("GET", f"{sims.torrentio.base_url}/stream/movie/nothing.json", {}),
        ("GET", f"{sims.torrentio.base_url}/a%7Cb%7C=/stream/movie/tt1.json", {}),
        ("GET", f"{sims.comet.base_url}/stream/series/x.json", {}),
        ("POST", f"{sims.mediafusion.base_url}/encrypt-user-data", {"data": b"{nope"}),
        ("GET", f"{sims.mediafusion.base_url}/zzz/stream/movie/tt1.json", {}),
        (
            "GET",
            f"{n}/api/v2.0/indexers/all/results/torznab/api",
            {"params": {"apikey": tz, "t": "tvsearch", "season": "x", "limit": "abc"}},
        ),
        ("GET", f"{n}/api/v2.0/indexers/all/results/torznab/api", {"params": {"apikey": tz}}),
        ("GET", f"{n}/api/v1/search", {"params": {"apikey": tz, "indexerIds": "abc"}}),
        ("GET", f"{n}/dl/x/", {"params": {"jackett_apikey": tz, "path": "!!!"}}),
        ("GET", f"{n}/3/download", {"params": {"apikey": tz, "link": "zzz"}}),
        ("GET", f"{sims.zilean.base_url}/dmm/filtered", {"params": {"Season": "x"}}),
        ("POST", f"{sims.zilean.base_url}/dmm/search", {"data": b"not json"}),
        ("POST", f"{sims.zilean.base_url}/imdb/search", {}),
        ("GET", f"{r}/torrents", {**rd, "params": {"limit": "x"}}),
        ("POST", f"{r}/torrents/addMagnet", rd),
        ("POST", f"{r}/torrents/selectFiles/nope", {**rd, "data": {"files": "a,b"}}),
        ("POST", f"{r}/unrestrict/link", rd),
        ("DELETE", f"{r}/torrents/delete/nope", rd),
        ("POST", f"{a}/v4/magnet/upload", ad),
        ("POST", f"{a}/v4.1/magnet/status", {**ad, "data": {"id": "abc"}}),
        ("POST", f"{a}/v4/magnet/files", {**ad, "data": {"id[]": "x"}}),
        ("POST", f"{a}/v4/magnet/delete", {**ad, "data": {"id": "zz"}}),
        ("GET", f"{a}/v4/link/unlock", ad),
        ("GET", f"{b}/torrents/checkcached", tb),
        ("POST", f"{b}/torrents/checkcached", {**tb, "data": b"[1"}),
        ("POST", f"{b}/torrents/createtorrent", tb),
        ("POST", f"{b}/torrents/createtorrent", {**tb, "data": {"magnet": "junk"}}),
        ("GET", f"{b}/torrents/mylist", {**tb, "params": {"id": "abc"}}),
        ("GET", f"{b}/torrents/mylist", {**tb, "params": {"offset": "x"}}),
        ("GET", f"{b}/torrents/requestdl", {"params": {"token": sims.torbox.api_key}}),
        ("POST", f"{b}/torrents/controltorrent", {**tb, "data": b"not json"}),
        ("POST", f"{b}/torrents/controltorrent", {**tb, "json": {"operation": "delete"}}),
        (
            "GET",
            f"{sims.plex.base_url}/library/sections/abc/refresh",
            {"headers": {"X-Plex-Token": sims.plex.api_key}},
        ),
        ("POST", f"{sims.jellyfin.base_url}/Library/Media/Updated", {**jf, "data": b"{"}),
        ("POST", f"{sims.jellyfin.base_url}/Library/Media/Updated", {**jf, "json": [1, 2]}),
        ("GET", f"{sims.overseerr.base_url}/request", {**ovs, "params": {"take": "abc"}}),
        ("GET", f"{sims.overseerr.base_url}/request", {**ovs, "params": {"filter": "zzz"}}),
        ("GET", f"{sims.overseerr.base_url}/request/abc", ovs),
        ("GET", f"{sims.tmdb.url}/_sim/requests", {"params": {"since": "x"}}),
        ("POST", f"{sims.tmdb.url}/_sim/faults", {"data": b"]"}),
    ]


async def test_malformed_requests_get_client_errors_never_500(
    sims: SimCluster, http: aiohttp.ClientSession
) -> None:
    for handle in sims.handles():
        handle.limiter.set_windows([])
    failures = []
    for method, url, kwargs in _garbage(sims):
        reply = await call(http, method, url, **kwargs)
        if reply.status >= 500 and not reply.headers.get("Retry-After"):
            failures.append(f"{method} {url} -> {reply.status} {reply.text[:120]}")
    assert not failures, "\n".join(failures)

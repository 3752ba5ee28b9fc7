"""Media servers record exactly which scans were asked for; Overseerr and the *arrs list."""

from __future__ import annotations

import aiohttp

from riven_async.core.clock import ManualClock
from riven_async.sim.overseerr import APPROVED, PENDING
from riven_async.sim.server import SimCluster
from tests.sim.simtest import call, get, post


async def test_plex_records_each_partial_scan_and_whether_its_section_holds_the_path(
    sims: SimCluster, http: aiohttp.ClientSession
) -> None:
    plex = sims.plex
    token = {"X-Plex-Token": plex.api_key}
    show_dir = "/mnt/library/Shows/The Show (2020) {tvdb-300000}/Season 01"
    await get(
        http,
        f"{plex.base_url}/library/sections/1/refresh",
        params={"path": show_dir},
        headers=token,
    )
    await get(
        http,
        f"{plex.base_url}/library/sections/2/refresh",
        params={"path": show_dir, "X-Plex-Token": plex.api_key},
    )
    await get(
        http, f"{plex.base_url}/library/sections/2/refresh", params={"force": "1"}, headers=token
    )
    missing = await get(http, f"{plex.base_url}/library/sections/9/refresh", headers=token)
    assert missing.status == 404
    refused = await get(
        http, f"{plex.base_url}/library/sections/1/refresh", params={"path": show_dir}
    )
    assert refused.status == 401
    assert [(s.section, s.path, s.kind, s.matched) for s in plex.sim.scans] == [
        ("1", show_dir, "partial", True),
        ("2", show_dir, "partial", False),
        ("2", None, "forced", True),
    ]


async def test_jellyfin_records_media_updates_and_counts_legacy_auth(
    sims: SimCluster, http: aiohttp.ClientSession
) -> None:
    jf = sims.jellyfin
    url = f"{jf.base_url}/Library/Media/Updated"
    body = {
        "Updates": [
            {
                "Path": "/mnt/library/Shows/A (2020)/Season 01/A - s01e01.mkv",
                "UpdateType": "Created",
            },
            {"Path": "/mnt/library/Movies/B (2021)/B (2021).mkv", "UpdateType": "Modified"},
        ]
    }
    modern = await post(
        http, url, json=body, headers={"Authorization": f'MediaBrowser Token="{jf.api_key}"'}
    )
    assert modern.status == 204
    assert jf.sim.legacy_auth_uses == 0
    legacy = await post(
        http, url, json={"Updates": body["Updates"][:1]}, params={"api_key": jf.api_key}
    )
    assert legacy.status == 204
    assert jf.sim.legacy_auth_uses == 1
    jf.sim.accept_legacy_auth = False
    refused = await post(http, url, json=body, headers={"X-Emby-Token": jf.api_key})
    assert refused.status == 401
    also_modern = await post(http, url, json={"Updates": []}, params={"ApiKey": jf.api_key})
    assert also_modern.status == 204
    bad = await post(
        http,
        url,
        json={"Updates": [{"UpdateType": "Created"}]},
        headers={"Authorization": f'MediaBrowser Token="{jf.api_key}"'},
    )
    assert bad.status == 400
    full = await post(
        http,
        f"{jf.base_url}/Library/Refresh",
        headers={"Authorization": f'MediaBrowser Client="x", Token="{jf.api_key}"'},
    )
    assert full.status == 204
    assert [(s.path, s.kind) for s in jf.sim.scans] == [
        (body["Updates"][0]["Path"], "Created"),
        (body["Updates"][1]["Path"], "Modified"),
        (body["Updates"][0]["Path"], "Created"),
        (None, "full"),
    ]
    assert all(s.matched for s in jf.sim.scans)


async def test_emby_takes_its_own_headers_and_records_updates(
    sims: SimCluster, http: aiohttp.ClientSession
) -> None:
    emby = sims.emby
    url = f"{emby.base_url}/Library/Media/Updated"
    update = {"Updates": [{"Path": "/mnt/library/Movies/C/C.mkv", "UpdateType": "Created"}]}
    assert (
        await post(http, url, json=update, headers={"X-Emby-Token": emby.api_key})
    ).status == 204
    assert (await post(http, url, json=update, params={"api_key": emby.api_key})).status == 204
    assert (await post(http, url, json=update, params={"api_key": "nope"})).status == 401
    assert len(emby.sim.scans) == 2
    assert sims.jellyfin.sim.scans == []


async def test_overseerr_filters_page_and_lets_requests_arrive_over_time(
    sims: SimCluster, clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    ovs = sims.overseerr
    key = {"X-Api-Key": ovs.api_key}
    url = f"{ovs.base_url}/request"
    now = clock.now()
    listed = [r for r in ovs.sim.requests.values() if r.created_at <= now]
    later = [r for r in ovs.sim.requests.values() if r.created_at > now]
    assert listed
    assert later
    everything = (await get(http, url, params={"take": "100"}, headers=key)).body
    assert everything["pageInfo"]["results"] == len(listed)
    page = (await get(http, url, params={"take": "2", "skip": "2"}, headers=key)).body
    assert page["pageInfo"]["page"] == 2
    assert len(page["results"]) == min(2, len(listed) - 2)
    approved = (
        await get(http, url, params={"filter": "approved", "take": "100"}, headers=key)
    ).body
    assert {r["id"] for r in approved["results"]} == {r.id for r in listed if r.status == APPROVED}
    processing = (
        await get(http, url, params={"filter": "processing", "take": "100"}, headers=key)
    ).body
    assert all(r["media"]["status"] < 5 for r in processing["results"])
    clock.set_elapsed(max(r.created_at for r in later).timestamp() - now.timestamp())
    grown = (await get(http, url, params={"take": "100"}, headers=key)).body
    assert grown["pageInfo"]["results"] == len(ovs.sim.requests)
    show = sims.catalog.show(5)
    added = ovs.sim.add_request("tv", show.tmdb_id, seasons=(1, 2), status=PENDING, media_status=2)
    pending = (await get(http, url, params={"filter": "pending", "take": "100"}, headers=key)).body
    found = next(r for r in pending["results"] if r["id"] == added.id)
    assert found["media"]["tvdbId"] == show.tvdb_id
    assert found["seasonCount"] == 2
    deleted = await call(http, "DELETE", f"{url}/{added.id}", headers=key)
    assert deleted.status == 204
    assert (await get(http, f"{url}/{added.id}", headers=key)).status == 404


async def test_sonarr_and_radarr_list_part_of_the_catalog(
    sims: SimCluster, http: aiohttp.ClientSession
) -> None:
    series = await get(
        http, f"{sims.sonarr.base_url}/series", headers={"X-Api-Key": sims.sonarr.api_key}
    )
    assert series.status == 200
    assert series.body
    first = series.body[0]
    show = sims.catalog.show_by_tvdb(first["tvdbId"])
    assert show is not None
    assert first["imdbId"] == show.imdb_id
    assert first["status"] in ("continuing", "ended", "upcoming")
    movies = await get(
        http, f"{sims.radarr.base_url}/movie", params={"apikey": sims.radarr.api_key}
    )
    movie = sims.catalog.movie_by_tmdb(movies.body[0]["tmdbId"])
    assert movie is not None
    assert movies.body[0]["imdbId"] == movie.imdb_id
    assert (await get(http, f"{sims.radarr.base_url}/movie")).status == 401

"""Debrid sims over simulated time: caching, downloads, the mount, refusals, duplicate adds."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from riven_async.core.clock import ManualClock
from riven_async.sim.server import SimCluster
from tests.sim.simtest import Reply, call, get, pick_release, post


async def _rd_add_and_select(
    sims: SimCluster, http: aiohttp.ClientSession, magnet: str, clock: ManualClock
) -> str:
    rd = sims.realdebrid
    auth = {"Authorization": f"Bearer {rd.api_key}"}
    added = await post(
        http, f"{rd.base_url}/torrents/addMagnet", data={"magnet": magnet}, headers=auth
    )
    assert added.status == 201, added.body
    clock.advance(rd.sim.conversion_s)
    selected = await post(
        http,
        f"{rd.base_url}/torrents/selectFiles/{added.body['id']}",
        data={"files": "all"},
        headers=auth,
    )
    assert selected.status == 204
    return str(added.body["id"])


async def _rd_info(sims: SimCluster, http: aiohttp.ClientSession, ident: str) -> Reply:
    rd = sims.realdebrid
    return await get(
        http,
        f"{rd.base_url}/torrents/info/{ident}",
        headers={"Authorization": f"Bearer {rd.api_key}"},
    )


async def test_rd_cached_torrent_is_downloaded_at_once_and_mounted_after_the_lag(
    sims: SimCluster, clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    release = pick_release(sims, "realdebrid", cached=True, multi_file=True)
    ident = await _rd_add_and_select(sims, http, release.magnet, clock)
    info = await _rd_info(sims, http, ident)
    assert info.body["status"] == "downloaded"
    root = sims.mount.root
    assert root is not None
    folder = root / release.name
    assert not folder.exists()
    clock.advance(sims.mount.lag_s - 1)
    await sims.mount.flush()
    assert not folder.exists()
    clock.advance(1)
    await sims.mount.flush()
    on_disk = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    expected = sorted(f.path.split("/", 1)[1] for f in release.files)
    assert on_disk == expected
    biggest = max(release.files, key=lambda f: f.size)
    assert (root / biggest.path).stat().st_size == biggest.size
    deleted = await call(
        http,
        "DELETE",
        f"{sims.realdebrid.base_url}/torrents/delete/{ident}",
        headers={"Authorization": f"Bearer {sims.realdebrid.api_key}"},
    )
    assert deleted.status == 204
    assert not folder.exists()


async def test_rd_uncached_torrent_queues_downloads_then_becomes_cached_everywhere(
    sims: SimCluster, clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    release = pick_release(sims, "realdebrid", cached=False, multi_file=False)
    ident = await _rd_add_and_select(sims, http, release.magnet, clock)
    assert (await _rd_info(sims, http, ident)).body["status"] == "queued"
    clock.advance(sims.realdebrid.sim.queue_s + 1)
    downloading = (await _rd_info(sims, http, ident)).body
    assert downloading["status"] == "downloading"
    assert downloading["speed"] > 0
    progress = []
    for _ in range(3):
        clock.advance(release.size / downloading["speed"] / 4)
        progress.append((await _rd_info(sims, http, ident)).body["progress"])
    assert progress == sorted(progress)
    assert 0 < progress[0] < 100
    assert not sims.world.is_cached("realdebrid", release.infohash)
    clock.advance(release.size / downloading["speed"])
    assert (await _rd_info(sims, http, ident)).body["status"] == "downloaded"
    assert sims.world.is_cached("realdebrid", release.infohash)
    assert not sims.world.is_cached("alldebrid", release.infohash) or sims.catalog.cached_on(
        "alldebrid", release.infohash, clock.now()
    )
    await clock.run_until_idle()
    await sims.mount.flush()
    root = sims.mount.root
    assert root is not None
    assert (root / release.name / release.name).is_file()


async def test_rd_counts_adds_per_hash_so_duplicates_show(
    sims: SimCluster, clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    rd = sims.realdebrid
    release = pick_release(sims, "realdebrid", cached=True)
    auth = {"Authorization": f"Bearer {rd.api_key}"}
    for _ in range(2):
        await post(
            http,
            f"{rd.base_url}/torrents/addMagnet",
            headers=auth,
            data={"magnet": f"magnet:?xt=urn:btih:{release.infohash.upper()}"},
        )
    assert rd.sim.adds_per_hash[release.infohash] == 2
    stats = (await get(http, f"{rd.url}/_sim/stats")).body["sim"]
    assert stats["duplicate_adds"] == {release.infohash: 2}


async def test_rd_refuses_infringing_hashes_and_honours_the_traffic_cap(
    sims: SimCluster, clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    rd = sims.realdebrid
    auth = {"Authorization": f"Bearer {rd.api_key}"}
    blocked = pick_release(sims, "realdebrid", cached=True)
    rd.sim.infringing.add(blocked.infohash)
    refused = await post(
        http, f"{rd.base_url}/torrents/addMagnet", headers=auth, data={"magnet": blocked.magnet}
    )
    assert refused.status == 451
    assert rd.sim.adds_per_hash[blocked.infohash] == 0
    assert rd.sim.refused_adds[blocked.infohash] == 1
    rd.sim.traffic_exhausted = True
    capped = await post(
        http,
        f"{rd.base_url}/torrents/addMagnet",
        headers=auth,
        data={"magnet": pick_release(sims, "realdebrid", cached=False).magnet},
    )
    assert (capped.status, capped.body["error_code"]) == (503, 23)
    rd.sim.traffic_exhausted = False
    assert (await get(http, f"{rd.base_url}/user", headers=auth)).status == 200


async def test_rd_unknown_hash_never_leaves_magnet_conversion(
    sims: SimCluster, clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    rd = sims.realdebrid
    auth = {"Authorization": f"Bearer {rd.api_key}"}
    added = await post(
        http,
        f"{rd.base_url}/torrents/addMagnet",
        headers=auth,
        data={"magnet": "magnet:?xt=urn:btih:" + "c0ffee" * 6 + "c0ff"},
    )
    clock.advance(86400)
    info = await _rd_info(sims, http, str(added.body["id"]))
    assert info.body["status"] == "magnet_conversion"
    assert info.body["files"] == []


async def test_rd_stalled_torrent_goes_dead_and_failures_can_be_forced(
    sims: SimCluster, clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    now = clock.now()
    dead = next(
        r
        for s in sims.catalog.shows()
        for r in sims.catalog.show_releases(s, now)
        if r.seeders == 0 and not sims.world.is_cached("realdebrid", r.infohash)
    )
    ident = await _rd_add_and_select(sims, http, dead.magnet, clock)
    clock.advance(sims.realdebrid.sim.queue_s + 3600)
    stalled = (await _rd_info(sims, http, ident)).body
    assert (stalled["status"], stalled["progress"], stalled["speed"]) == ("downloading", 0, 0)
    clock.advance(86400)
    assert (await _rd_info(sims, http, ident)).body["status"] == "dead"
    virus = pick_release(sims, "realdebrid", cached=True)
    sims.realdebrid.sim.failing[virus.infohash] = "virus"
    other = await _rd_add_and_select(sims, http, virus.magnet, clock)
    info = (await _rd_info(sims, http, other)).body
    assert (info["status"], info["links"]) == ("virus", [])


async def test_alldebrid_stalled_magnet_fails_after_twenty_minutes(
    sims: SimCluster, clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    ad = sims.alldebrid
    auth = {"Authorization": f"Bearer {ad.api_key}"}
    now = clock.now()
    dead = next(
        r
        for s in sims.catalog.shows()
        for r in sims.catalog.show_releases(s, now)
        if r.seeders == 0 and not sims.world.is_cached("alldebrid", r.infohash)
    )
    uploaded = await post(
        http, f"{ad.base_url}/v4/magnet/upload", headers=auth, data={"magnets[]": dead.magnet}
    )
    ident = str(uploaded.body["data"]["magnets"][0]["id"])
    clock.advance(19 * 60)
    status = await post(http, f"{ad.base_url}/v4.1/magnet/status", data={"id": ident}, headers=auth)
    assert status.body["data"]["magnets"]["statusCode"] == 1
    clock.advance(60)
    status = await post(http, f"{ad.base_url}/v4.1/magnet/status", data={"id": ident}, headers=auth)
    assert status.body["data"]["magnets"]["statusCode"] == 7
    errors = await post(
        http, f"{ad.base_url}/v4.1/magnet/status", data={"status": "error"}, headers=auth
    )
    assert [m["id"] for m in errors.body["data"]["magnets"]] == [int(ident)]
    assert ad.sim.uploads_per_hash[dead.infohash] == 1


async def test_alldebrid_legacy_apikey_query_is_counted(
    sims: SimCluster, http: aiohttp.ClientSession
) -> None:
    ad = sims.alldebrid
    reply = await get(http, f"{ad.base_url}/v4/user", params={"agent": "t", "apikey": ad.api_key})
    assert reply.status == 200
    assert ad.sim.legacy_auth_uses == 1
    discontinued = await post(
        http, f"{ad.base_url}/v4/magnet/status", headers={"Authorization": f"Bearer {ad.api_key}"}
    )
    assert discontinued.body["error"]["code"] == "DISCONTINUED"


async def test_torbox_uncached_download_progresses_and_mylist_lags_without_bypass(
    sims: SimCluster, clock: ManualClock, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    tb = sims.torbox
    auth = {"Authorization": f"Bearer {tb.api_key}"}
    release = pick_release(sims, "torbox", cached=False)
    clock.advance(601)  # past a list refresh, so the cached list is visibly stale
    created = await post(
        http,
        f"{tb.base_url}/torrents/createtorrent",
        headers=auth,
        data={"magnet": release.magnet, "seed": "1", "allow_zip": "false"},
    )
    assert created.body["detail"] == "Torrent added successfully."
    ident = str(created.body["data"]["torrent_id"])
    fresh = await get(
        http,
        f"{tb.base_url}/torrents/mylist",
        headers=auth,
        params={"id": ident, "bypass_cache": "true"},
    )
    assert fresh.body["data"]["download_state"] == "metaDL"
    clock.advance(tb.sim.queue_s + 5)
    fresh = await get(
        http,
        f"{tb.base_url}/torrents/mylist",
        headers=auth,
        params={"id": ident, "bypass_cache": "true"},
    )
    stale = await get(http, f"{tb.base_url}/torrents/mylist", headers=auth, params={"id": ident})
    assert fresh.body["data"]["download_state"] == "downloading"
    assert stale.body["data"]["download_state"] == "metaDL"
    not_ready = await get(
        http,
        f"{tb.base_url}/torrents/requestdl",
        params={"token": tb.api_key, "torrent_id": ident, "file_id": "0"},
    )
    assert not_ready.status == 400
    clock.advance(release.size / fresh.body["data"]["download_speed"] + 1)
    done = await get(
        http,
        f"{tb.base_url}/torrents/mylist",
        headers=auth,
        params={"id": ident, "bypass_cache": "true"},
    )
    data = done.body["data"]
    assert data["download_finished"]
    assert data["download_present"]
    assert data["progress"] == 1
    redirect = await get(
        http,
        f"{tb.base_url}/torrents/requestdl",
        params={"token": tb.api_key, "torrent_id": ident, "file_id": "0", "redirect": "true"},
    )
    assert redirect.status == 307
    listed = await get(
        http, f"{tb.base_url}/torrents/mylist", headers=auth, params={"bypass_cache": "true"}
    )
    assert [t["id"] for t in listed.body["data"]] == [int(ident)]


async def test_torbox_refuses_form_bodies_on_controltorrent_and_caps_active_downloads(
    sims: SimCluster, http: aiohttp.ClientSession
) -> None:
    tb = sims.torbox
    auth = {"Authorization": f"Bearer {tb.api_key}"}
    form = await post(
        http,
        f"{tb.base_url}/torrents/controltorrent",
        headers=auth,
        data={"torrent_id": "1", "operation": "delete"},
    )
    assert form.status == 400
    tb.sim.max_active = 1
    uncached = [
        r
        for s in sims.catalog.shows()
        for r in sims.catalog.show_releases(s, sims.clock.now())
        if r.seeders and not sims.world.is_cached("torbox", r.infohash)
    ]
    first = await post(
        http,
        f"{tb.base_url}/torrents/createtorrent",
        headers=auth,
        data={"magnet": uncached[0].magnet},
    )
    assert first.status == 200
    second = await post(
        http,
        f"{tb.base_url}/torrents/createtorrent",
        headers=auth,
        data={"magnet": uncached[1].magnet},
    )
    assert (second.status, second.body["error"]) == (500, "ACTIVE_LIMIT")
    again = await post(
        http,
        f"{tb.base_url}/torrents/createtorrent",
        headers=auth,
        data={"magnet": uncached[0].magnet},
    )
    assert again.body["data"]["torrent_id"] == first.body["data"]["torrent_id"]
    assert tb.sim.creates_per_hash[uncached[0].infohash] == 1

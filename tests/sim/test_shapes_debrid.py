"""Real-Debrid, AllDebrid and TorBox answer in the shapes of the real services, state by state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp

from riven_async.core.clock import ManualClock
from riven_async.sim.server import SimCluster
from tests.sim.simtest import assert_same_shape, call, get, pick_release, post

Sample = Callable[[str], Any]


def _rd_errors(sample: Sample) -> dict[int, tuple[int | None, Any]]:
    return {
        e["body"]["error_code"]: (e["http_status"], e["body"]) for e in sample("rd_errors.json")
    }


async def test_real_debrid_torrent_statuses_match_their_samples(
    sims: SimCluster, clock: ManualClock, http: aiohttp.ClientSession, sample: Sample
) -> None:
    rd = sims.realdebrid
    auth = {"Authorization": f"Bearer {rd.api_key}"}
    release = pick_release(sims, "realdebrid", cached=False, multi_file=True)
    added = await post(
        http, f"{rd.base_url}/torrents/addMagnet", data={"magnet": release.magnet}, headers=auth
    )
    assert added.status == 201
    assert_same_shape(added.body, sample("rd_add_magnet.json"))
    info_url = f"{rd.base_url}/torrents/info/{added.body['id']}"
    assert added.body["uri"] == info_url
    converting = await get(http, info_url, headers=auth)
    assert converting.body["status"] == "magnet_conversion"
    assert_same_shape(converting.body, sample("rd_torrent_info_magnet_conversion.json"))
    clock.advance(rd.sim.conversion_s)
    waiting = await get(http, info_url, headers=auth)
    assert waiting.body["status"] == "waiting_files_selection"
    assert_same_shape(waiting.body, sample("rd_torrent_info_waiting_files_selection.json"))
    videos = [str(i) for i, f in enumerate(release.files, start=1) if f.is_video]
    selected = await post(
        http,
        f"{rd.base_url}/torrents/selectFiles/{added.body['id']}",
        data={"files": ",".join(videos)},
        headers=auth,
    )
    assert selected.status == 204
    assert (await get(http, info_url, headers=auth)).body["status"] == "queued"
    clock.advance(rd.sim.queue_s + 1)
    downloading = await get(http, info_url, headers=auth)
    assert downloading.body["status"] == "downloading"
    assert_same_shape(downloading.body, sample("rd_torrent_info_downloading.json"))
    clock.advance(7 * 86400)
    done = await get(http, info_url, headers=auth)
    assert done.body["status"] == "downloaded"
    assert done.body["progress"] == 100
    assert_same_shape(done.body, sample("rd_torrent_info.json"))
    assert len(done.body["links"]) == len(videos)
    listed = await get(http, f"{rd.base_url}/torrents", headers=auth)
    assert listed.headers["X-Total-Count"] == "1"
    assert_same_shape(listed.body, sample("rd_torrents_list.json"))
    unrestricted = await post(
        http, f"{rd.base_url}/unrestrict/link", data={"link": done.body["links"][0]}, headers=auth
    )
    assert_same_shape(unrestricted.body, sample("rd_unrestrict_link.json"))
    user = await get(http, f"{rd.base_url}/user", headers=auth)
    assert_same_shape(user.body, sample("rd_user.json"))


async def test_real_debrid_errors_match_rd_errors_json(
    sims: SimCluster, http: aiohttp.ClientSession, sample: Sample
) -> None:
    rd, errors = sims.realdebrid, _rd_errors(sample)
    auth = {"Authorization": f"Bearer {rd.api_key}"}
    base = rd.base_url
    disabled = await get(http, f"{base}/torrents/instantAvailability/{'a' * 40}", headers=auth)
    assert (disabled.status, disabled.body) == (
        403,
        sample("rd_instant_availability_disabled.json"),
    )
    bad_token = await get(http, f"{base}/user", headers={"Authorization": "Bearer nope"})
    assert (bad_token.status, bad_token.body) == errors[8]
    unknown = await get(http, f"{base}/torrents/info/NOSUCHTORRENT", headers=auth)
    assert (unknown.status, unknown.body) == errors[7]
    bad_magnet = await post(
        http, f"{base}/torrents/addMagnet", data={"magnet": "magnet:?x"}, headers=auth
    )
    assert (bad_magnet.status, bad_magnet.body) == errors[2]
    release = pick_release(sims, "realdebrid", cached=True)
    added = await post(
        http, f"{base}/torrents/addMagnet", data={"magnet": release.magnet}, headers=auth
    )
    select_url = f"{base}/torrents/selectFiles/{added.body['id']}"
    no_files = await post(http, select_url, data={}, headers=auth)
    assert (no_files.status, no_files.body) == errors[1]
    assert (await post(http, select_url, data={"files": "all"}, headers=auth)).status == 204
    again = await post(http, select_url, data={"files": "all"}, headers=auth)
    assert (again.status, again.body) == errors[31]
    rd.sim.infringing.add(release.infohash)
    blocked = await post(
        http, f"{base}/torrents/addMagnet", data={"magnet": release.magnet}, headers=auth
    )
    assert (blocked.status, blocked.body) == errors[35]
    gone = await post(
        http, f"{base}/unrestrict/link", data={"link": "http://127.0.0.1:9/d/X"}, headers=auth
    )
    assert (gone.status, gone.body) == errors[19]
    deleted = await call(http, "DELETE", f"{base}/torrents/delete/{added.body['id']}", headers=auth)
    assert deleted.status == 204
    assert deleted.text == ""


async def test_alldebrid_envelopes_match_their_samples(
    sims: SimCluster, clock: ManualClock, http: aiohttp.ClientSession, sample: Sample
) -> None:
    ad = sims.alldebrid
    auth = {"Authorization": f"Bearer {ad.api_key}"}
    base = ad.base_url
    assert_same_shape(
        (await get(http, f"{base}/v4/user", headers=auth)).body, sample("ad_user.json")
    )
    ready = pick_release(sims, "alldebrid", cached=True, multi_file=True)
    uploaded = await post(
        http, f"{base}/v4/magnet/upload", data={"magnets[]": ready.magnet}, headers=auth
    )
    assert_same_shape(uploaded.body, sample("ad_magnet_upload.json"))
    magnet = uploaded.body["data"]["magnets"][0]
    assert magnet["ready"] is True
    assert magnet["hash"] == ready.infohash
    status = await post(
        http, f"{base}/v4.1/magnet/status", data={"id": str(magnet["id"])}, headers=auth
    )
    assert_same_shape(status.body, sample("ad_magnet_status.json"))
    files = await post(
        http, f"{base}/v4/magnet/files", data={"id[]": str(magnet["id"])}, headers=auth
    )
    assert_same_shape(files.body, sample("ad_magnet_files.json"))
    link = files.body["data"]["magnets"][0]["files"][0]["e"][0]
    link = link if "l" in link else link["e"][0]
    unlocked = await post(http, f"{base}/v4/link/unlock", data={"link": link["l"]}, headers=auth)
    assert_same_shape(unlocked.body, sample("ad_link_unlock.json"))
    invalid = await post(
        http, f"{base}/v4/magnet/upload", data={"magnets[]": "nonsense"}, headers=auth
    )
    assert_same_shape(invalid.body, sample("ad_magnet_upload_error.json"))
    slow = pick_release(sims, "alldebrid", cached=False)
    queued = await post(
        http, f"{base}/v4/magnet/upload", data={"magnets[]": slow.magnet}, headers=auth
    )
    clock.advance(ad.sim.queue_s + 1)
    busy = await post(
        http,
        f"{base}/v4.1/magnet/status",
        data={"id": str(queued.body["data"]["magnets"][0]["id"])},
        headers=auth,
    )
    assert busy.body["data"]["magnets"]["statusCode"] == 1
    assert_same_shape(busy.body, sample("ad_magnet_status_downloading.json"))
    deleted = await post(
        http, f"{base}/v4/magnet/delete", data={"id": str(magnet["id"])}, headers=auth
    )
    assert_same_shape(deleted.body, sample("ad_magnet_delete.json"))
    errors = {
        e["body"]["error"]["code"]: (e["http_status"], e["body"]) for e in sample("ad_errors.json")
    }
    missing = await get(http, f"{base}/v4/user")
    assert (missing.status, missing.body) == errors["AUTH_MISSING_APIKEY"]
    wrong = await get(http, f"{base}/v4/user", headers={"Authorization": "Bearer nope"})
    assert (wrong.status, wrong.body) == errors["AUTH_BAD_APIKEY"]
    unknown = await post(http, f"{base}/v4/magnet/delete", data={"id": "1"}, headers=auth)
    assert (unknown.status, unknown.body) == errors["MAGNET_INVALID_ID"]


async def test_alldebrid_can_send_every_error_as_http_200(
    sims: SimCluster, http: aiohttp.ClientSession
) -> None:
    sims.alldebrid.sim.errors_as_200 = True
    reply = await get(
        http, f"{sims.alldebrid.base_url}/v4/user", headers={"Authorization": "Bearer nope"}
    )
    assert reply.status == 200
    assert reply.body["status"] == "error"


async def test_torbox_envelopes_match_their_samples(
    sims: SimCluster, http: aiohttp.ClientSession, sample: Sample
) -> None:
    tb = sims.torbox
    auth = {"Authorization": f"Bearer {tb.api_key}"}
    base = tb.base_url
    cached = pick_release(sims, "torbox", cached=True, multi_file=True)
    uncached = pick_release(sims, "torbox", cached=False)
    hit = await get(
        http,
        f"{base}/torrents/checkcached",
        headers=auth,
        params={"hash": f"{cached.infohash},{uncached.infohash}"},
    )
    assert list(hit.body["data"]) == [cached.infohash]
    assert_same_shape(
        hit.body["data"][cached.infohash],
        sample("torbox_checkcached.json")["data"]["2b3f1c6a9d8e7f6054433221100ffeeddccbbaa9"],
    )
    miss = await get(
        http, f"{base}/torrents/checkcached", headers=auth, params={"hash": uncached.infohash}
    )
    assert miss.body == sample("torbox_checkcached_none.json")
    created = await post(
        http, f"{base}/torrents/createtorrent", data={"magnet": cached.magnet}, headers=auth
    )
    assert_same_shape(created.body, sample("torbox_createtorrent.json"))
    ident = created.body["data"]["torrent_id"]
    listed = await get(
        http,
        f"{base}/torrents/mylist",
        headers=auth,
        params={"id": str(ident), "bypass_cache": "true"},
    )
    assert listed.body["data"]["download_finished"]
    assert listed.body["data"]["download_present"]
    assert_same_shape(listed.body, sample("torbox_mylist_single.json"))
    link = await get(
        http,
        f"{base}/torrents/requestdl",
        params={"token": tb.api_key, "torrent_id": str(ident), "file_id": "0"},
    )
    assert_same_shape(link.body, sample("torbox_requestdl.json"))
    me = await get(http, f"{base}/user/me", headers=auth)
    assert_same_shape(me.body, sample("torbox_user_me.json"))
    deleted = await post(
        http,
        f"{base}/torrents/controltorrent",
        headers=auth,
        json={"torrent_id": ident, "operation": "delete", "all": False},
    )
    assert_same_shape(deleted.body, sample("torbox_controltorrent.json"))
    errors = {
        e["body"]["error"]: (e["http_status"], e["body"]) for e in sample("torbox_errors.json")
    }
    assert_same_shape((await get(http, f"{base}/user/me")).body, errors["NO_AUTH"][1])
    bad = await get(http, f"{base}/user/me", headers={"Authorization": "Bearer nope"})
    assert (bad.status, bad.body) == errors["BAD_TOKEN"]
    unknown = await get(http, f"{base}/torrents/mylist", headers=auth, params={"id": "1"})
    assert (unknown.status, unknown.body) == errors["ITEM_NOT_FOUND"]

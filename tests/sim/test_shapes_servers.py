"""Plex, Jellyfin, Emby and Overseerr answer in the shapes of the real servers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp

from riven_async.sim.server import SimCluster
from tests.sim.simtest import assert_same_shape, get, shape_errors, xml_tree

Sample = Callable[[str], Any]


def test_shape_checker_reports_missing_and_extra_keys_and_wrong_types() -> None:
    sample = {"a": 1, "b": [{"c": "x", "d": None}], "e": {"f": True}}
    assert shape_errors({"a": 2.5, "b": [{"c": "y", "d": 3}], "e": {"f": False}}, [sample]) == []
    assert shape_errors({"a": 1, "b": [], "e": {"f": True}, "z": 0}, [sample]) == [
        "$: unexpected keys ['z']"
    ]
    assert shape_errors({"b": [{"c": 1}], "e": {"f": "no"}}, [sample]) == [
        "$: missing keys ['a']",
        "$.b[0]: missing keys ['d']",
        "$.b[0].c: number where the sample has ['string']",
        "$.e.f: string where the sample has ['boolean']",
    ]


async def test_plex_identity_sections_and_auth_match_the_samples(
    sims: SimCluster, http: aiohttp.ClientSession, sample: Sample
) -> None:
    plex = sims.plex
    token = {"X-Plex-Token": plex.api_key}
    identity = await get(http, f"{plex.base_url}/identity")
    assert_same_shape(xml_tree(identity.text), sample("plex_identity.xml"))
    as_xml = await get(http, f"{plex.base_url}/library/sections", headers=token)
    assert_same_shape(xml_tree(as_xml.text), sample("plex_library_sections.xml"))
    as_json = await get(
        http, f"{plex.base_url}/library/sections", headers={**token, "Accept": "application/json"}
    )
    assert_same_shape(as_json.body, sample("plex_library_sections.json"))
    paths = {
        d["type"]: d["Location"][0]["path"] for d in as_json.body["MediaContainer"]["Directory"]
    }
    assert paths == {"show": "/mnt/library/Shows", "movie": "/mnt/library/Movies"}
    refused = await get(http, f"{plex.base_url}/library/sections", params={"X-Plex-Token": "wrong"})
    assert refused.status == 401
    assert refused.text == sample("plex_unauthorized.html").strip()
    refreshed = await get(
        http,
        f"{plex.base_url}/library/sections/1/refresh",
        headers=token,
        params={"path": "/mnt/library/Shows/Some Show (2020)"},
    )
    assert (refreshed.status, refreshed.text) == (200, "")


async def test_jellyfin_and_emby_public_info_and_folders_match_the_samples(
    sims: SimCluster, http: aiohttp.ClientSession, sample: Sample
) -> None:
    jellyfin, emby = sims.jellyfin, sims.emby
    info = await get(http, f"{jellyfin.base_url}/System/Info/Public")
    assert_same_shape(info.body, sample("jellyfin_system_info_public.json"))
    assert info.body["ProductName"] == "Jellyfin Server"
    folders = await get(
        http,
        f"{jellyfin.base_url}/Library/VirtualFolders",
        headers={"Authorization": f'MediaBrowser Token="{jellyfin.api_key}"'},
    )
    assert_same_shape(folders.body, sample("jellyfin_virtual_folders.json"))
    emby_info = await get(http, f"{emby.base_url}/System/Info/Public")
    assert_same_shape(emby_info.body, sample("emby_system_info_public.json"))
    assert "ProductName" not in emby_info.body


async def test_overseerr_requests_and_errors_match_the_samples(
    sims: SimCluster, http: aiohttp.ClientSession, sample: Sample
) -> None:
    ovs = sims.overseerr
    key = {"X-Api-Key": ovs.api_key}
    me = await get(http, f"{ovs.base_url}/auth/me", headers=key)
    assert_same_shape(me.body, sample("overseerr_auth_me.json"))
    approved = await get(
        http,
        f"{ovs.base_url}/request",
        params={"filter": "approved", "take": "10000", "skip": "0"},
        headers=key,
    )
    assert approved.body["results"]
    assert_same_shape(approved.body, sample("overseerr_requests_approved.json"))
    assert all(r["status"] == 2 for r in approved.body["results"])
    errors = {e["http_status"]: e["body"] for e in sample("overseerr_errors.json")}
    forbidden = await get(http, f"{ovs.base_url}/request", headers={"X-Api-Key": "wrong"})
    assert (forbidden.status, forbidden.body) == (403, errors[403])
    missing = await get(http, f"{ovs.base_url}/request/99999", headers=key)
    assert (missing.status, missing.body) == (404, errors[404])
    bad_filter = await get(
        http, f"{ovs.base_url}/request", params={"filter": "deleted"}, headers=key
    )
    assert (bad_filter.status, bad_filter.body) == (400, errors[400])

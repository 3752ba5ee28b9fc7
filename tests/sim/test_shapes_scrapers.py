"""Stremio addons, Torznab indexers and Zilean answer in the shapes of the real ones."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import aiohttp

from riven_async.sim.releases import Release
from riven_async.sim.server import SimCluster
from riven_async.sim.shows import Show, ShowKind
from riven_async.sim.stremio import encode_config
from tests.sim.simtest import assert_same_shape, get, post, xml_tree

Sample = Callable[[str], Any]


def _finished_show(sims: SimCluster) -> Show:
    """An ended show with at least two seasons: packs and singles for S01E01 exist."""
    show = sims.catalog.find_show(
        lambda s: s.kind is ShowKind.ENDED and sum(1 for p in s.seasons if p.number) >= 2
    )
    assert show is not None
    return show


def _releases(sims: SimCluster, show: Show) -> list[Release]:
    return sims.catalog.episode_releases(show, 1, 1, sims.clock.now())


async def test_torrentio_streams_manifest_and_errors_match_the_samples(
    sims: SimCluster, http: aiohttp.ClientSession, sample: Sample
) -> None:
    show = _finished_show(sims)
    base = sims.torrentio.base_url
    plain = await get(http, f"{base}/stream/series/{show.imdb_id}:1:1.json")
    assert plain.status == 200
    assert plain.body["streams"]
    assert_same_shape(plain.body, sample("torrentio_stream_series.json"))
    stream = plain.body["streams"][0]
    assert re.search(r"👤 (\d+)", stream["title"])
    assert re.search(r"💾 ([\d.]+ \w+)", stream["title"])
    assert stream["name"].startswith("Torrentio\n")
    debrid = await get(
        http,
        f"{base}/realdebrid=RDKEY|qualityfilter=480p,cam/stream/series/{show.imdb_id}:1:1.json",
    )
    assert_same_shape(debrid.body, sample("torrentio_stream_series_debrid.json"))
    assert all(s["name"].startswith(("[RD+] ", "[RD download] ")) for s in debrid.body["streams"])
    assert not any(s["name"].endswith("480p") for s in debrid.body["streams"])
    manifest = await get(http, f"{base}/manifest.json")
    assert_same_shape(manifest.body, sample("torrentio_manifest.json"))
    errors = {
        e["http_status"]: e for e in sample("stremio_errors.json") if e["upstream"] == "torrentio"
    }
    missing = await get(http, f"{base}/nothing/here")
    assert (missing.status, missing.body) == (404, errors[404]["body"])
    odd_id = await get(http, f"{base}/stream/series/{show.imdb_id}.json")
    assert odd_id.body == {"streams": []}


async def test_torrentio_marks_rd_cached_hashes_with_rd_plus(
    sims: SimCluster, http: aiohttp.ClientSession
) -> None:
    show = _finished_show(sims)
    reply = await get(
        http, f"{sims.torrentio.base_url}/realdebrid=K/stream/series/{show.imdb_id}:1:1.json"
    )
    cached = {
        r.title for r in _releases(sims, show) if sims.world.is_cached("realdebrid", r.infohash)
    }
    plus = {s["title"].split("\n")[0] for s in reply.body["streams"] if "[RD+]" in s["name"]}
    assert plus == cached


async def test_comet_streams_and_notices_match_the_samples(
    sims: SimCluster, http: aiohttp.ClientSession, sample: Sample
) -> None:
    show = _finished_show(sims)
    config = encode_config({"debridService": "torrent", "maxResultsPerResolution": 0})
    base = sims.comet.base_url
    reply = await get(http, f"{base}/{config}/stream/series/{show.imdb_id}:1:1.json")
    assert_same_shape(reply.body, sample("comet_stream_series.json"))
    assert reply.body["streams"][0]["description"].startswith("📄 ")
    notices = [e["body"] for e in sample("stremio_errors.json") if e["upstream"] == "comet"]
    obsolete = await get(http, f"{base}/not-base64!/stream/series/{show.imdb_id}:1:1.json")
    assert obsolete.status == 200
    assert_same_shape(obsolete.body, *notices)
    assert obsolete.body["streams"][0]["name"] == "[❌] Comet"
    unknown = await get(http, f"{base}/{config}/stream/series/tt0000002:1:1.json")
    assert unknown.body["streams"][0]["name"] == "[⚠️] Comet"
    now = sims.clock.now()
    unreleased = sims.catalog.find_movie(lambda m: not m.digitally_released(now))
    assert unreleased is not None
    soon = await get(http, f"{base}/{config}/stream/movie/{unreleased.imdb_id}.json")
    assert soon.body["streams"][0]["name"] == "[🚫] Comet"


async def test_mediafusion_encrypts_user_data_and_streams_like_the_sample(
    sims: SimCluster, http: aiohttp.ClientSession, sample: Sample
) -> None:
    show = _finished_show(sims)
    base = sims.mediafusion.base_url
    encrypted = await post(http, f"{base}/encrypt-user-data", json={"streaming_provider": None})
    assert_same_shape(encrypted.body, sample("mediafusion_encrypt_user_data.json"))
    token = encrypted.body["encrypted_str"]
    reply = await get(http, f"{base}/{token}/stream/series/{show.imdb_id}:1:1.json")
    assert_same_shape(reply.body, sample("mediafusion_stream_series.json"))
    assert "┈➤" in reply.body["streams"][0]["description"].split("\n")[0]


async def test_torznab_caps_search_and_errors_match_the_samples(
    sims: SimCluster, http: aiohttp.ClientSession, sample: Sample
) -> None:
    show = _finished_show(sims)
    base, key = sims.torznab.base_url, sims.torznab.api_key
    caps = await get(http, f"{base}/api", params={"apikey": key, "t": "caps"})
    assert_same_shape(xml_tree(caps.text), sample("torznab_caps.xml"))
    search = await get(
        http,
        f"{base}/api",
        params={"apikey": key, "t": "tvsearch", "imdbid": show.imdb_id, "season": "1", "ep": "1"},
    )
    assert search.status == 200
    tree = xml_tree(search.text)
    assert_same_shape(tree, sample("torznab_search.xml"))
    items = tree["rss"][0]["channel"][0]["item"]
    assert len(items) == len(_releases(sims, show))
    empty = await get(
        http, f"{base}/api", params={"apikey": key, "t": "search", "q": "no such title anywhere"}
    )
    assert_same_shape(xml_tree(empty.text), sample("torznab_search_empty.xml"))
    assert "item" not in xml_tree(empty.text)["rss"][0]["channel"][0]
    bad_key = await get(http, f"{base}/api", params={"apikey": "nope", "t": "caps"})
    assert bad_key.status == 200
    assert xml_tree(bad_key.text) == sample("torznab_error.xml")


async def test_torznab_items_without_infohash_link_to_a_magnet_redirect(
    sims: SimCluster, http: aiohttp.ClientSession
) -> None:
    show = _finished_show(sims)
    missing = [r for r in sims.catalog.show_releases(show, sims.clock.now()) if not r.indexed_hash]
    assert missing, "the catalog leaves some infohashes out of Torznab results"
    reply = await get(
        http,
        f"{sims.torznab.base_url}/api",
        params={"apikey": sims.torznab.api_key, "t": "tvsearch", "imdbid": show.imdb_id},
    )
    items = xml_tree(reply.text)["rss"][0]["channel"][0]["item"]
    attr = "{http://torznab.com/schemas/2015/feed}attr"
    names = [{a["@name"] for a in item[attr]} for item in items]
    hashless = [n for n in names if "infohash" not in n]
    assert hashless
    assert all("magneturl" not in n for n in hashless)
    assert len(hashless) < len(items)
    link = re.search(r"<link>([^<]+/dl/[^<]+)</link>", reply.text)
    assert link is not None
    redirect = await get(http, link.group(1).replace("&amp;", "&"))
    assert redirect.status == 302
    assert redirect.headers["Location"].startswith("magnet:?xt=")


async def test_prowlarr_and_jackett_json_match_the_samples(
    sims: SimCluster, http: aiohttp.ClientSession, sample: Sample
) -> None:
    show = _finished_show(sims)
    root, key = sims.torznab.url, sims.torznab.api_key
    indexers = await get(http, f"{root}/api/v1/indexer", headers={"X-Api-Key": key})
    assert_same_shape(indexers.body, sample("prowlarr_indexers.json"))
    found = await get(
        http,
        f"{root}/api/v1/search",
        headers={"X-Api-Key": key},
        params={"query": show.title, "type": "tvsearch", "season": "1", "ep": "1"},
    )
    assert found.body
    assert_same_shape(found.body, sample("prowlarr_search.json"))
    status = await get(http, f"{root}/api/v1/indexerstatus", headers={"X-Api-Key": key})
    assert_same_shape(status.body, sample("prowlarr_indexerstatus.json"))
    jackett = await get(
        http,
        f"{root}/api/v2.0/indexers/test:passed/results",
        params={"apikey": key, "Query": f"{show.title} S01E01"},
    )
    assert jackett.body["Results"]
    assert_same_shape(jackett.body, sample("jackett_results.json"))
    refused = await get(http, f"{root}/api/v1/indexer", headers={"X-Api-Key": "wrong"})
    assert refused.status == 401
    prowlarr_feed = await get(http, f"{root}/3/api", params={"apikey": key, "t": "caps"})
    assert "<caps>" in prowlarr_feed.text


async def test_zilean_filtered_and_ping_match_the_samples(
    sims: SimCluster, http: aiohttp.ClientSession, sample: Sample
) -> None:
    show = _finished_show(sims)
    base = sims.zilean.base_url
    reply = await get(
        http, f"{base}/dmm/filtered", params={"ImdbId": show.imdb_id, "Season": "1", "Episode": "1"}
    )
    assert reply.body
    assert_same_shape(reply.body, sample("zilean_dmm_filtered.json"))
    assert {r["info_hash"] for r in reply.body} == {r.infohash for r in _releases(sims, show)}
    searched = await post(http, f"{base}/dmm/search", json={"queryText": show.title})
    assert searched.body
    assert all(isinstance(r["size"], str) for r in searched.body)
    ping = await get(http, f"{base}/healthchecks/ping")
    pattern = r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\]: Pong!"
    assert re.fullmatch(pattern, ping.text.strip())
    assert re.fullmatch(pattern, sample("zilean_healthchecks_ping.txt").strip())

"""Releases per item with a blacklist, debrid downloads reserved once, library links."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from riven_async.db.downloads import DebridCheck, DownloadsRepo
from riven_async.db.library import LibraryRepo, LinkPathTaken
from riven_async.domain.releases import (
    DownloadStatus,
    LinkRecord,
    ScrapedRelease,
    SelectedFile,
    normalize_infohash,
)
from tests.db.factories import Repos, count, movie

H1 = "A" * 40
H2 = "b" * 40


async def _movies(repos: Repos, n: int) -> list[int]:
    return [r.item_id for r in await repos.trees.upsert_movies([movie(m) for m in range(1, n + 1)])]


def test_infohashes_are_normalised_from_hex_or_base32() -> None:
    assert normalize_infohash(H1) == "a" * 40
    assert normalize_infohash("MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U") == (
        "616263646566676869 6a6b6c6d6e6f7071727374".replace(" ", ""))
    with pytest.raises(ValueError, match="infohash"):
        normalize_infohash("not-a-hash")


async def test_releases_are_stored_once_per_item_and_ranked(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    a, b = await _movies(repos, 2)
    stored = await repos.releases.insert_many([
        ScrapedRelease(a, normalize_infohash(H1), "Movie.2160p", 90, "torrentio", seeders=5),
        ScrapedRelease(a, normalize_infohash(H1), "Movie.2160p", 95, "comet"),
        ScrapedRelease(a, normalize_infohash(H2), "Movie.1080p", 50, "zilean",
                       cached_on=("realdebrid",)),
        ScrapedRelease(b, normalize_infohash(H2), "Movie.1080p", 40, "zilean"),
    ])
    assert (stored.inserted, stored.refreshed) == (3, 0)
    again = await repos.releases.insert_many([
        ScrapedRelease(a, normalize_infohash(H2), "Movie.1080p", 55, "torrentio",
                       cached_on=("alldebrid",)),
    ])
    assert (again.inserted, again.refreshed) == (0, 1)
    best = await repos.releases.best_for_items([a, b], per_item=5)
    assert [(r.rank, r.scraper) for r in best[a]] == [(95, "comet"), (55, "zilean")]
    assert best[a][1].cached_on == ("alldebrid", "realdebrid")
    assert len(await repos.releases.by_infohashes([H2])) == 2


async def test_blacklisted_releases_are_dropped_and_never_stored_again(
    db_pool: asyncpg.Pool,
) -> None:
    repos = Repos(db_pool)
    [a] = await _movies(repos, 1)
    release = ScrapedRelease(a, normalize_infohash(H1), "Movie.2160p", 90, "torrentio")
    await repos.releases.insert_many([release])
    assert await repos.releases.blacklist_many([(a, H1, "not cached")]) == 1
    assert await repos.releases.blacklist_many([(a, H1, "again")]) == 0
    assert await repos.releases.best_for_items([a]) == {}
    assert (await repos.releases.insert_many([release])).inserted == 0
    [entry] = await repos.releases.blacklist_for([a])
    assert (entry.infohash, entry.reason) == ("a" * 40, "not cached")


async def test_prune_keeps_the_best_releases(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    [a] = await _movies(repos, 1)
    await repos.releases.insert_many([
        ScrapedRelease(a, normalize_infohash(f"{n:040x}"), f"r{n}", n, "zilean")
        for n in range(10)])
    assert await repos.releases.prune_keep_best([a], keep=3) == 7
    assert [r.rank for r in (await repos.releases.best_for_items([a]))[a]] == [9, 8, 7]


async def test_twenty_concurrent_reservations_create_one_download(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    items = await _movies(repos, 20)
    downloads = DownloadsRepo(db_pool)
    reservations = await asyncio.gather(*(
        downloads.reserve(item, "realdebrid", H1) for item in items))
    assert sum(r.created for r in reservations) == 1
    assert len({r.download.id for r in reservations}) == 1
    winner = next(r.download for r in reservations if r.created)
    files = [SelectedFile("1", "/Movie/movie.mkv", 4_000_000_000, winner.item_id)]
    added = await downloads.mark_added(winner.id, "RD123", files)
    assert added is not None
    assert added.status is DownloadStatus.DOWNLOADING
    assert added.selected_files == tuple(files)
    ready = await downloads.mark_ready(winner.id)
    assert ready is not None
    assert ready.ready_at is not None
    assert [d.id for d in await downloads.live_for_infohashes("realdebrid", [H1, H2])] == [
        winner.id]
    # Another service may hold the same torrent; a failed one frees its slot.
    other = await downloads.reserve(items[1], "torbox", H1)
    assert other.created
    await downloads.mark_failed(other.download.id, "not cached")
    assert (await downloads.reserve(items[1], "torbox", H1)).created
    assert await downloads.mark_removed([winner.id]) == [winner.id]
    assert len(await downloads.for_items(items[:2])) >= 2


async def test_debrid_checks_keep_the_latest_answer_per_service_hash_and_item(
    db_pool: asyncpg.Pool,
) -> None:
    repos = Repos(db_pool)
    a, b = await _movies(repos, 2)
    downloads = DownloadsRepo(db_pool)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    await downloads.record_checks([
        DebridCheck("realdebrid", H1, "not_cached", "status queued", t0),
        DebridCheck("alldebrid", H1, "failed", "stuck", t0),
        DebridCheck("realdebrid", H2, "no_matching_files", "no file", t0, a),
    ])
    later = t0 + timedelta(minutes=30)
    await downloads.record_checks([DebridCheck("realdebrid", H1, "infringing", "451", later)])
    since = t0 - timedelta(seconds=1)
    found = await downloads.recent_checks(["realdebrid", "alldebrid"], [H1, H2], a, since)
    assert {(c.service, c.infohash, c.outcome, c.item_id) for c in found} == {
        ("realdebrid", "a" * 40, "infringing", None),
        ("alldebrid", "a" * 40, "failed", None),
        ("realdebrid", H2, "no_matching_files", a),
    }
    # Another item does not see a's "no file"; answers up to ``since`` are left out.
    other = await downloads.recent_checks(["realdebrid", "alldebrid"], [H1, H2], b, t0)
    assert [(c.service, c.outcome, c.checked_at) for c in other] == [
        ("realdebrid", "infringing", later)]
    assert await downloads.recent_checks(["torbox"], [H1, H2], a, since) == []


async def test_links_are_recorded_once_and_paths_are_unique(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    a, b = await _movies(repos, 2)
    library = LibraryRepo(db_pool, now=repos.clock.now)
    link = LinkRecord(a, "/lib/Movies/A (2024)/A (2024).mkv", "/mnt/rd/A/a.mkv")
    assert (await library.record_many([link])).created == 1
    assert await library.record_many([link]) == type(await library.record_many([]))(0, 0)
    moved = LinkRecord(a, link.link_path, "/mnt/rd/A2/a.mkv")
    assert (await library.record_many([moved])).changed == 1
    with pytest.raises(LinkPathTaken):
        await library.record_many([LinkRecord(b, link.link_path, "/mnt/rd/B/b.mkv")])
    [entry] = await library.by_link_paths([link.link_path])
    assert entry.target_path == "/mnt/rd/A2/a.mkv"
    assert entry.verified_at is None
    await library.mark_verified([entry.id])
    [checked] = await library.page(after_id=0, limit=10)
    assert checked.verified_at is not None
    assert [e.item_id for e in await library.delete_for_items([a])] == [a]
    assert await count(db_pool, "SELECT count(*) FROM library_entries") == 0

"""The catalog is a pure function of (seed, sizes, origin), cross-linked and cheap to build."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

from riven_async.sim.catalog import Catalog
from riven_async.sim.infohash import HashCodec, ReleaseKey, Scope
from riven_async.sim.shows import DAY_S, HOUR_S, ShowKind
from tests.sim.simtest import START


def _fingerprint(catalog: Catalog) -> list[object]:
    now = catalog.origin
    out: list[object] = []
    for show in catalog.shows():
        out.append(
            (
                show.title,
                show.kind,
                show.network.name,
                show.airtime,
                [(p.number, p.air_epochs, p.announced_at) for p in show.seasons],
            )
        )
        for plan in show.seasons:
            if plan.number:
                out.append(
                    [
                        (r.infohash, r.title, r.size, r.published_s)
                        for r in catalog.season_releases(
                            show, plan.number, now + timedelta(days=3650)
                        )
                    ]
                )
    for movie in catalog.movies():
        out.append(
            (
                movie.title,
                movie.release_dates(),
                [r.infohash for r in catalog.movie_releases(movie, now + timedelta(days=999))],
            )
        )
    return out


def test_same_seed_same_catalog_and_another_seed_another() -> None:
    first = _fingerprint(Catalog(seed=7, shows=25, movies=15, origin=START))
    again = _fingerprint(Catalog(seed=7, shows=25, movies=15, origin=START))
    other = _fingerprint(Catalog(seed=8, shows=25, movies=15, origin=START))
    assert first == again
    assert first != other


def test_catalog_is_lazy_and_a_show_does_not_depend_on_the_catalog_size() -> None:
    small = Catalog(seed=3, shows=10, movies=0, origin=START)
    large = Catalog(seed=3, shows=10_000, movies=10_000, origin=START)
    assert small.show(4) == large.show(4)
    assert large.movie(9_999).title


def test_ten_thousand_shows_build_in_seconds_with_a_quarter_million_episodes() -> None:
    catalog = Catalog(seed=1, shows=10_000, movies=0, origin=START)
    started = time.perf_counter()
    episodes = sum(len(p.air_epochs) for s in catalog.shows() for p in s.seasons if p.number)
    elapsed = time.perf_counter() - started
    assert 200_000 <= episodes <= 320_000
    assert elapsed < 15, f"building 10k shows took {elapsed:.1f}s"
    assert len(catalog.changed_shows(START - timedelta(days=1), START)) > 100


def test_statuses_and_schedules_cover_what_the_daemon_must_handle() -> None:
    catalog = Catalog(seed=1, shows=400, movies=100, origin=START)
    statuses = Counter(show.status(START) for show in catalog.shows())
    assert set(statuses) == {"Returning Series", "Ended", "Canceled", "In Production"}
    ahead = [
        e.air_epoch - START.timestamp()
        for s in catalog.shows()
        if (e := s.next_to_air(START)) is not None
    ]
    assert any(a < HOUR_S for a in ahead), "some episodes air within the hour"
    assert any(HOUR_S <= a < DAY_S for a in ahead), "some air later today"
    assert any(a > 3 * DAY_S for a in ahead)
    kinds = Counter(s.kind for s in catalog.shows())
    assert kinds[ShowKind.REVIVED]
    assert kinds[ShowKind.IN_PRODUCTION]
    unknown_dates = [e for s in catalog.shows() for e in s.all_episodes(START) if not e.date_known]
    assert unknown_dates, "far-future episodes are listed without an air date"
    movie_statuses = Counter(m.status(START) for m in catalog.movies())
    assert movie_statuses["Released"]
    assert movie_statuses["Post Production"] + movie_statuses["In Production"]


def test_ids_cross_link_both_ways() -> None:
    catalog = Catalog(seed=1, shows=50, movies=50, origin=START)
    for index in (0, 17, 49):
        show, movie = catalog.show(index), catalog.movie(index)
        assert catalog.show_by_tmdb(show.tmdb_id) is show
        assert catalog.show_by_tvdb(show.tvdb_id) is show
        assert catalog.show_by_imdb(show.imdb_id) is show
        assert catalog.show_by_tvmaze(show.tvmaze_id) is show
        assert catalog.movie_by_tmdb(movie.tmdb_id) is movie
        assert catalog.movie_by_imdb(movie.imdb_id) is movie
        assert catalog.show_by_imdb(movie.imdb_id) is None
        assert catalog.movie_by_imdb(show.imdb_id) is None
    assert catalog.show_by_tmdb(1) is None
    assert catalog.show_by_tvdb(300_001) is None
    titles = [catalog.show_title(i) for i in range(50)] + [
        catalog.movie_title(i) for i in range(50)
    ]
    assert len(set(titles)) == len(titles)


def test_infohashes_decode_to_their_release_and_reject_foreign_ones() -> None:
    codec = HashCodec(5)
    key = ReleaseKey(Scope.SEASON, 1234, 3, 0, 2)
    infohash = codec.encode(key)
    assert len(infohash) == 40
    assert codec.decode(infohash) == key
    assert HashCodec(6).decode(infohash) is None
    assert codec.decode("0" * 40) is None
    assert codec.decode("xyz") is None
    catalog = Catalog(seed=5, shows=20, movies=20, origin=START)
    later = START + timedelta(days=3650)
    releases = catalog.show_releases(catalog.show(1), later) + catalog.movie_releases(
        catalog.movie(1), later
    )
    assert releases
    for release in releases:
        assert catalog.release(release.infohash) == release
        assert catalog.release(release.infohash.upper()) == release


def test_releases_look_like_the_real_thing() -> None:
    catalog = Catalog(seed=2, shows=60, movies=60, origin=START)
    later = START + timedelta(days=3650)
    everything = [
        r
        for s in catalog.shows()
        for p in s.seasons
        if p.number
        for r in catalog.season_releases(s, p.number, later)
    ]
    everything += [r for m in catalog.movies() for r in catalog.movie_releases(m, later)]
    sources = Counter(r.source for r in everything)
    assert {"WEB-DL", "HDTV", "BluRay", "CAM", "TS"} <= set(sources)
    assert {"2160p", "1080p", "720p", "480p"} <= {r.resolution for r in everything}
    packs = [r for r in everything if r.key.scope in (Scope.SEASON, Scope.SERIES)]
    assert packs
    assert all(r.multi_file and len(r.episodes) > 1 for r in packs)
    assert any(not r.indexed_hash for r in everything)
    assert any(r.seeders == 0 for r in everything)
    assert all(r.published_s <= later.timestamp() for r in everything)
    for pack in packs[:20]:
        season, episode = pack.episodes[0]
        index = pack.file_index(season, episode)
        assert index is not None
        assert f"S{season:02d}E{episode:02d}" in pack.files[index].name


def test_caching_differs_per_service_and_is_stable() -> None:
    catalog = Catalog(seed=4, shows=40, movies=0, origin=START)
    later = START + timedelta(days=3650)
    releases = [r for s in catalog.shows() for r in catalog.show_releases(s, later)]
    cached = {
        svc: {r.infohash for r in releases if catalog.cached_on(svc, r.infohash, later)}
        for svc in ("realdebrid", "alldebrid", "torbox")
    }
    assert all(0.3 < len(v) / len(releases) < 0.8 for v in cached.values())
    assert cached["realdebrid"] != cached["torbox"]
    again = Catalog(seed=4, shows=40, movies=0, origin=START)
    assert {
        r.infohash for r in releases if again.cached_on("realdebrid", r.infohash, later)
    } == cached["realdebrid"]

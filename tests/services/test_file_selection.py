"""File selection: a movie's main video, a pack's files mapped to episodes by parsed S/E."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from riven_async.services.debrid import (
    Candidate,
    DebridTorrent,
    FileWant,
    Selection,
    TorrentFile,
    normalize_infohash,
)
from riven_async.services.debrid.file_selection import (
    FileClassifier,
    classify,
    select_files,
    select_files_async,
)
from riven_async.sim.catalog import Catalog

GB = 1_000_000_000
MB = 1_000_000


def files(*entries: tuple[str, int]) -> tuple[TorrentFile, ...]:
    return tuple(TorrentFile(i + 1, path, size) for i, (path, size) in enumerate(entries))


def keys(selection: Selection) -> list[tuple[int, int, str]]:
    return [(m.season, m.episode, m.file.name) for m in selection.episodes]


MOVIE = files(
    ("Dune.Part.Two.2024.2160p/Dune.Part.Two.2024.2160p.WEB-DL.DV.H.265-FLUX.mkv", 30 * GB),
    ("Dune.Part.Two.2024.2160p/Sample/dune-sample.mkv", 80 * MB),
    ("Dune.Part.Two.2024.2160p/Featurettes/Making of Dune.mkv", 2 * GB),
    ("Dune.Part.Two.2024.2160p/Dune.Part.Two.2024.Trailer.mkv", 300 * MB),
    ("Dune.Part.Two.2024.2160p/RARBG.txt", 30),
    ("Dune.Part.Two.2024.2160p/Subs/English.srt", 90_000),
)

PACK = files(
    ("Breaking Bad S01/Breaking.Bad.S01E01.Pilot.1080p.BluRay.x265-RARBG.mp4", 1_256_277_934),
    ("Breaking Bad S01/Breaking.Bad.S01E02.1080p.BluRay.x265-RARBG.mp4", 1_012_345_678),
    ("Breaking Bad S01/Breaking.Bad.S01E03.1080p.BluRay.x265-RARBG.sample.mkv", 40 * MB),
    ("Breaking Bad S01/RARBG.txt", 30),
    ("Breaking Bad S01/Subs/Breaking.Bad.S01E01.eng.srt", 48_213),
)


def test_movie_takes_the_largest_video_and_ignores_extras_samples_and_other_files() -> None:
    selection = select_files(MOVIE, FileWant.movie())
    assert selection.movie == MOVIE[0]
    assert selection.to_select == (MOVIE[0],)
    assert selection.satisfies(FileWant.movie())


def test_movie_size_bounds_leave_no_file_when_nothing_fits() -> None:
    want = FileWant.movie(min_size_bytes=1 * GB, max_size_bytes=10 * GB)
    selection = select_files(MOVIE, want)
    assert selection.movie is None  # the feature is too big; extras never count
    assert not selection.satisfies(want)


def test_extras_are_never_a_movie_even_when_they_are_the_only_videos() -> None:
    only_extras = files(
        ("Movie.2020/Sample/movie-sample.mkv", 50 * MB),
        ("Movie.2020/Extras/Behind.mkv", 900 * MB),
        ("Movie.2020/Movie.2020.NCOP.mkv", 90 * MB),
    )
    assert select_files(only_extras, FileWant.movie()).movie is None


def test_season_pack_maps_files_to_episodes_and_ignores_samples_and_subtitles() -> None:
    want = FileWant.season(1, [1, 2, 3])
    selection = select_files(PACK, want)
    assert keys(selection) == [
        (1, 1, PACK[0].name),
        (1, 2, PACK[1].name),
    ]
    assert selection.missing == ((1, 3),)  # only a sample of E03 is in there
    assert not selection.satisfies(want)
    assert selection.satisfies(FileWant.season(1, [1, 2, 3], partial_ok=True))
    assert selection.to_select == (PACK[0], PACK[1])


def test_one_episode_of_a_pack_still_selects_every_episode_file() -> None:
    selection = select_files(PACK, FileWant.episode(1, 2))
    assert keys(selection) == [(1, 2, PACK[1].name)]
    assert selection.to_select == (PACK[0], PACK[1])  # siblings can reuse the same add


def test_numbered_files_take_their_season_from_the_folder() -> None:
    series = files(
        ("Show S01-S03 Complete/Season 01/01 - Pilot.mkv", 1 * GB),
        ("Show S01-S03 Complete/Season 02/01 - Return.mkv", 1 * GB),
        ("Show S01-S03 Complete/Season 02/05 - Middle.mkv", 1 * GB),
        ("Show S01-S03 Complete/Season 03/Show.S03E01.mkv", 1 * GB),
    )
    selection = select_files(series, FileWant.season(2, [1, 5]))
    assert keys(selection) == [(2, 1, "01 - Return.mkv"), (2, 5, "05 - Middle.mkv")]
    assert [f.id for f in selection.to_select] == [1, 2, 3, 4]


def test_bare_numbers_in_a_one_season_pack_take_the_wanted_season() -> None:
    pack = files(("Show.S04.1080p/03.mkv", 1 * GB), ("Show.S04.1080p/04.mkv", 1 * GB))
    assert keys(select_files(pack, FileWant.episode(4, 3))) == [(4, 3, "03.mkv")]


def test_multi_episode_file_serves_each_of_its_episodes() -> None:
    pack = files(("Show.S01E01E02.720p.mkv", 2 * GB), ("Show.S01E03.720p.mkv", 1 * GB))
    selection = select_files(pack, FileWant.season(1, [1, 2, 3]))
    assert [(s, e) for s, e, _ in keys(selection)] == [(1, 1), (1, 2), (1, 3)]
    assert selection.file_for(1, 2) == pack[0]
    assert selection.files == (pack[0], pack[1])


def test_the_largest_copy_of_an_episode_within_bounds_wins() -> None:
    pack = files(
        ("Show.S02E07.720p.mkv", 700 * MB),
        ("Show.S02E07.1080p.mkv", 2 * GB),
        ("Show.S02E07.2160p.mkv", 9 * GB),
    )
    want = FileWant.episode(2, 7, max_size_bytes=3 * GB)
    assert select_files(pack, want).file_for(2, 7) == pack[1]


def test_a_show_named_ed_keeps_its_episodes_and_trailers_are_dropped() -> None:
    # parsett tags "Ed." as an ED (ending) extra: that tag must not cost the episode.
    pack = files(("Ed.S01E01.mkv", 1 * GB), ("Ed.S01E02.mkv", 1 * GB))
    assert keys(select_files(pack, FileWant.episode(1, 1))) == [(1, 1, "Ed.S01E01.mkv")]
    trailer = files(("Show.S01E01.Trailer.mkv", 1 * GB))
    assert not classify(trailer[0]).playable


def test_non_video_and_unparseable_names_are_skipped_quietly() -> None:
    junk = files(("readme.nfo", 1000), ("", 10), ("/", 10), ("x" * 2000 + ".mkv", 1 * GB))
    assert select_files(junk, FileWant.episode(1, 1)) == Selection(missing=((1, 1),))
    assert select_files(junk, FileWant.movie()).movie == junk[3]  # a video, whatever its name


def test_every_generated_season_pack_maps_exactly_to_its_episodes() -> None:
    catalog = Catalog(seed=7, shows=30, movies=0, origin=datetime(2026, 1, 1, tzinfo=UTC))
    now = datetime(2030, 1, 1, tzinfo=UTC)
    checked = 0
    for show in catalog.shows():
        for release in catalog.show_releases(show, now)[:2]:
            tf = tuple(TorrentFile(i, f.path, f.size) for i, f in enumerate(release.files))
            selection = select_files(tf, FileWant(episodes=release.episodes))
            assert [(m.season, m.episode) for m in selection.episodes] == list(release.episodes)
            for match in selection.episodes:
                index = release.file_index(match.season, match.episode)
                assert index is not None
                assert match.file.path == release.files[index].path
            checked += 1
    assert checked > 20


async def test_async_selection_matches_the_sync_one() -> None:
    want = FileWant.season(1, [1, 2])
    assert await select_files_async(PACK, want, slice_s=0.0) == select_files(PACK, want)


def test_want_validates_and_describes_itself() -> None:
    assert FileWant.movie().describe() == "movie"
    assert FileWant.episode(1, 5).describe() == "S01E05"
    assert FileWant.season(2, [3, 1, 2]).episodes == ((2, 1), (2, 2), (2, 3))
    assert FileWant.season(2, [1, 2]).describe() == "S02E01..S02E02 (2 episodes)"
    with pytest.raises(ValueError, match="at least one"):
        FileWant.season(1, [])
    with pytest.raises(ValueError, match="max_size_bytes"):
        FileWant.movie(min_size_bytes=10, max_size_bytes=5)


def test_candidates_normalise_their_infohash() -> None:
    hex_hash = "2b3f1c6a9d8e7f6054433221100ffeeddccbbaa9"
    assert Candidate(hex_hash.upper()).infohash == hex_hash
    b32 = base64.b32encode(bytes.fromhex(hex_hash)).decode()
    assert normalize_infohash(b32) == hex_hash
    assert Candidate(hex_hash, "A Title").magnet.endswith("&dn=A%20Title")
    with pytest.raises(ValueError, match="not an infohash"):
        Candidate("not-a-hash")


def test_inner_path_strips_the_torrent_folder_only_when_every_file_shares_it() -> None:
    def torrent(*paths: str) -> DebridTorrent:
        fs = files(*((p, 1) for p in paths))
        return DebridTorrent("x", "1", "0" * 40, "n", "ok", fs, (), True)

    packed = torrent("Pack/E01.mkv", "Pack/Subs/E01.srt")
    assert [packed.inner_path(f) for f in packed.files] == ["E01.mkv", "Subs/E01.srt"]
    single = torrent("Movie.2020.mkv")
    assert single.inner_path(single.files[0]) == "Movie.2020.mkv"
    loose = torrent("E01.mkv", "Subs/E01.srt")
    assert [loose.inner_path(f) for f in loose.files] == ["E01.mkv", "Subs/E01.srt"]


async def test_classifier_remembers_parses_and_selects_like_the_functions() -> None:
    classifier = FileClassifier(cache_size=64)
    want = FileWant.season(1, [1, 2])
    assert classifier.select(PACK, want) == select_files(PACK, want)
    assert await classifier.select_async(PACK, want, slice_s=0.0) == select_files(PACK, want)
    with pytest.raises(ValueError, match="cache_size"):
        FileClassifier(cache_size=0)

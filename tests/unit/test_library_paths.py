"""Plex-style names, sanitising, and that no title can move a path out of the library root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from pydantic import ValidationError

from riven_async.config import LibrarySection, load_settings
from riven_async.errors import ConfigError
from riven_async.pipeline.library import (
    MAX_COMPONENT_BYTES,
    LibraryLayout,
    UnsafePathError,
    fit_component,
    sanitize,
)

ROOT = Path("/srv/library")
LAYOUT = LibraryLayout(ROOT)


def test_movie_path_is_plex_style() -> None:
    path = LAYOUT.movie_path("Dune: Part Two", 2024, 693134, "mkv")
    folder = "Dune - Part Two (2024) {tmdb-693134}"
    assert path == ROOT / "Movies" / folder / f"{folder}.mkv"
    assert LAYOUT.movie_dir("Dune: Part Two", 2024, 693134) == path.parent


def test_movie_without_a_year() -> None:
    path = LAYOUT.movie_path("Primer", None, 14337, ".MP4")
    assert path == ROOT / "Movies" / "Primer {tmdb-14337}" / "Primer {tmdb-14337}.mp4"


def test_episode_path_is_plex_style() -> None:
    path = LAYOUT.episode_path("Severance", 2022, 371980, 2, [5], "mkv")
    assert path == (
        ROOT / "Shows" / "Severance (2022) {tvdb-371980}" / "Season 02"
        / "Severance (2022) - s02e05.mkv"
    )  # fmt: skip
    assert LAYOUT.season_dir("Severance", 2022, 371980, 2) == path.parent
    assert LAYOUT.show_dir("Severance", 2022, 371980) == path.parent.parent


def test_multi_episode_file_names_the_range() -> None:
    path = LAYOUT.episode_path("The Office", 2005, 73244, 1, [3, 2], "mkv")
    assert path.name == "The Office (2005) - s01e02-e03.mkv"
    path = LAYOUT.episode_path("The Office", 2005, 73244, 1, [2, 3, 4, 3], "mkv")
    assert path.name == "The Office (2005) - s01e02-e04.mkv"


def test_specials_and_large_numbers() -> None:
    special = LAYOUT.episode_path("Doctor Who", 2005, 78804, 0, [1], "mkv")
    assert special.parent.name == "Season 00"
    assert special.name == "Doctor Who (2005) - s00e01.mkv"
    anime = LAYOUT.episode_path("One Piece", 1999, 81797, 1, [1015], "mkv")
    assert anime.name == "One Piece (1999) - s01e1015.mkv"


def test_folder_names_are_configurable() -> None:
    layout = LibraryLayout(ROOT, movies_dir="Films", shows_dir="TV")
    assert layout.movie_path("Up", 2009, 14160, "mkv").parts[3] == "Films"
    assert layout.episode_path("Lost", 2004, 73739, 1, [1], "mkv").parts[3] == "TV"
    section = LibrarySection(root=Path("/data/lib"), movies_dir="Films", shows_dir="TV")
    assert LibraryLayout.from_section(section) == LibraryLayout(Path("/data/lib"), "Films", "TV")


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Dune: Part Two", "Dune - Part Two"),
        ("Face/Off", "Face-Off"),
        ("What If...?", "What If"),
        ('Say "Hi" <now> | *yes*', "Say 'Hi' now - -yes-"),
        ("  lots   of\t\nspace  ", "lots of space"),
        ("...hidden", "hidden"),
        ("trailing. . .", "trailing"),
        ("a..b", "a.b"),
        ("nul\0byte", "nul byte"),
        ("bidi\u202eevil", "bidievil"),
        ("zero\u200bwidth", "zerowidth"),
        ("lone\ud800surrogate", "lonesurrogate"),
        ("Ame\u0301lie", "Amélie"),
        ("千と千尋の神隠し", "千と千尋の神隠し"),
    ],
)
def test_sanitize(title: str, expected: str) -> None:
    assert sanitize(title) == expected


@pytest.mark.parametrize(
    "title",
    ["../../etc", "/abs", "/etc/passwd", "a/../../b", "..", ".", "", "   ", "...", "\0", "/"],
)
def test_traversal_titles_stay_inside_the_root(title: str) -> None:
    for path in (
        LAYOUT.movie_path(title, 2020, 1, "mkv"),
        LAYOUT.episode_path(title, 2020, 1, 1, [1], "mkv"),
    ):
        assert LAYOUT.contains(path)
        assert ".." not in path.parts
        assert len(path.parts) == len(ROOT.parts) + (3 if "Movies" in path.parts else 4)
        assert all(part and not part.startswith(".") for part in path.parts[1:])


def test_empty_titles_become_untitled_and_keep_their_id() -> None:
    assert LAYOUT.movie_dir("../..", 2020, 7).name == "Untitled (2020) {tmdb-7}"


def test_huge_title_is_cut_but_keeps_year_id_and_extension() -> None:
    title = "Long " * 2000
    movie = LAYOUT.movie_path(title, 2001, 194, "mkv")
    for part in movie.parts[1:]:
        assert len(part.encode()) <= MAX_COMPONENT_BYTES
    assert movie.name.endswith(" (2001) {tmdb-194}.mkv")
    assert movie.parent.name.endswith(" (2001) {tmdb-194}")
    episode = LAYOUT.episode_path("é" * 10_000, 2001, 194, 3, [4, 5], "mkv")
    assert episode.name.endswith(" (2001) - s03e04-e05.mkv")
    assert len(episode.name.encode()) <= MAX_COMPONENT_BYTES
    assert len(episode.parent.parent.name.encode()) <= MAX_COMPONENT_BYTES


def test_cut_never_splits_a_multibyte_character() -> None:
    name = fit_component("😀" * 100, " {tmdb-1}")
    assert len(name.encode()) <= MAX_COMPONENT_BYTES
    assert name.encode().decode() == name
    assert set(name.removesuffix(" {tmdb-1}")) == {"😀"}


@pytest.mark.parametrize("ext", ["", ".", "../mkv", "mkv/x", "m kv", "a" * 17, "mkv\0"])
def test_bad_extensions_are_refused(ext: str) -> None:
    with pytest.raises(ValueError, match="extension"):
        LAYOUT.movie_path("Up", 2009, 1, ext)


def test_bad_numbers_are_refused() -> None:
    with pytest.raises(ValueError, match="id"):
        LAYOUT.movie_path("Up", 2009, 0, "mkv")
    with pytest.raises(ValueError, match="year"):
        LAYOUT.movie_path("Up", 20090, 1, "mkv")
    with pytest.raises(ValueError, match="season"):
        LAYOUT.season_dir("Up", 2009, 1, -1)
    with pytest.raises(ValueError, match="episode"):
        LAYOUT.episode_path("Up", 2009, 1, 1, [], "mkv")


@pytest.mark.parametrize(
    ("root", "movies", "shows"),
    [
        (Path("relative/lib"), "Movies", "Shows"),
        (Path("/lib/../etc"), "Movies", "Shows"),
        (ROOT, "../Movies", "Shows"),
        (ROOT, "Movies", "a/b"),
        (ROOT, ".", "Shows"),
        (ROOT, "Movies", ""),
        (ROOT, ".hidden", "Shows"),
    ],
)
def test_layout_refuses_unsafe_roots_and_folders(root: Path, movies: str, shows: str) -> None:
    with pytest.raises(UnsafePathError):
        LibraryLayout(root, movies, shows)


def test_contains_is_lexical_and_strict() -> None:
    assert LAYOUT.contains(ROOT / "Movies" / "x")
    assert not LAYOUT.contains(ROOT)
    assert not LAYOUT.contains(ROOT / ".." / "etc")
    assert not LAYOUT.contains(Path("/srv/library-other/x"))
    assert not LAYOUT.contains(Path("Movies/x"))


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../Movies"])
def test_library_section_refuses_folder_names_with_paths(name: str) -> None:
    with pytest.raises(ValidationError):
        LibrarySection(movies_dir=name)


def test_config_refuses_a_library_root_inside_the_mount(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[server]\napi_key = "k-123456"\n'
        '[library]\nmount_dir = "/mnt/debrid"\nroot = "/mnt/debrid/library"\n'
    )
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.key == "library.root"


@settings(max_examples=300, deadline=None)
@given(
    title=st.text(max_size=400) | st.text(alphabet="./\\\0 :", max_size=40),
    year=st.none() | st.integers(1000, 9999),
    ident=st.integers(1, 10**12),
    season=st.integers(0, 3000),
    episodes=st.lists(st.integers(0, 5000), min_size=1, max_size=4),
)
def test_any_title_gives_a_path_inside_the_root_with_short_components(
    title: str, year: int | None, ident: int, season: int, episodes: list[int]
) -> None:
    root = Path(os.path.realpath("/tmp")) / "riven-library-root"
    layout = LibraryLayout(root)
    movie = layout.movie_path(title, year, ident, "mkv")
    episode = layout.episode_path(title, year, ident, season, episodes, "mkv")
    for path, depth in ((movie, 3), (episode, 4)):
        resolved = Path(os.path.realpath(path))
        assert resolved.is_relative_to(root)
        assert resolved == path
        relative = path.relative_to(root).parts
        assert len(relative) == depth
        for part in relative:
            assert 0 < len(part.encode()) <= MAX_COMPONENT_BYTES
            assert part not in (".", "..")
            assert "\0" not in part
            assert not part.startswith(".")
            assert not part.endswith((" ", "."))


def test_a_show_tvdb_does_not_list_is_named_by_its_tmdb_id() -> None:
    path = LAYOUT.episode_path("Local Show", 2021, 98765, 1, [4], "mkv", "tmdb")
    assert path.parent.parent.name == "Local Show (2021) {tmdb-98765}"
    assert path.name == "Local Show (2021) - s01e04.mkv"

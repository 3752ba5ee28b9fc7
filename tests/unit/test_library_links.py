"""Symlinks into the mount (atomic, idempotent, contained) and finding files on a lagging mount."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from riven_async.config import LibrarySection
from riven_async.core.clock import ManualClock, SystemClock
from riven_async.pipeline.library import (
    MAX_COMPONENT_BYTES,
    LibraryError,
    LibraryLayout,
    Linker,
    LinkResult,
    LinkState,
    MountIndex,
    MountTimeoutError,
    UnsafePathError,
)


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "library"
    mount = tmp_path / "mount"
    mount.mkdir()
    return root, mount


@pytest.fixture
def linker(dirs: tuple[Path, Path]) -> Linker:
    return Linker(*dirs)


def put(path: Path, data: bytes = b"video") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def resolves_inside(path: Path, root: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))


# --- links ---------------------------------------------------------------------------


async def test_link_creates_folders_and_points_at_the_file(
    dirs: tuple[Path, Path], linker: Linker
) -> None:
    root, mount = dirs
    target = put(mount / "Dune.Part.Two.2024.1080p" / "dune.mkv")
    link = LibraryLayout(root).movie_path("Dune: Part Two", 2024, 693134, "mkv")
    assert await linker.link(target, link) is LinkResult.CREATED
    assert os.readlink(link) == str(target)
    assert link.read_bytes() == b"video"
    assert await linker.check_link(link) is LinkState.OK
    assert await linker.check_link(link, expected=target) is LinkState.OK


async def test_relinking_the_same_target_is_a_no_op(
    dirs: tuple[Path, Path], linker: Linker
) -> None:
    root, mount = dirs
    target = put(mount / "t" / "a.mkv")
    link = root / "Movies" / "A" / "A.mkv"
    assert await linker.link(target, link) is LinkResult.CREATED
    before = os.lstat(link)
    assert await linker.link(target, link) is LinkResult.UNCHANGED
    after = os.lstat(link)
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


async def test_a_wrong_link_is_replaced(dirs: tuple[Path, Path], linker: Linker) -> None:
    root, mount = dirs
    old, new = put(mount / "t1" / "a.mkv"), put(mount / "t2" / "a.mkv")
    link = root / "Movies" / "A" / "A.mkv"
    await linker.link(old, link)
    assert await linker.check_link(link, expected=new) is LinkState.WRONG_TARGET
    assert await linker.link(new, link) is LinkResult.REPLACED
    assert os.readlink(link) == str(new)
    assert [p.name for p in link.parent.iterdir()] == ["A.mkv"]  # no temp names left


async def test_replacing_a_link_never_leaves_it_missing(
    dirs: tuple[Path, Path], linker: Linker
) -> None:
    root, mount = dirs
    targets = [put(mount / f"t{i}" / "a.mkv") for i in range(2)]
    link = root / "Shows" / "S" / "Season 01" / "S - s01e01.mkv"
    await linker.link(targets[0], link)
    stop = threading.Event()
    seen: set[str] = set()
    missing = 0

    def reader() -> None:
        nonlocal missing
        while not stop.is_set():
            try:
                seen.add(os.readlink(link))
            except FileNotFoundError:
                missing += 1

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(300):
            assert await linker.link(targets[(i + 1) % 2], link) is LinkResult.REPLACED
    finally:
        stop.set()
        thread.join()
    assert missing == 0
    assert seen == {str(t) for t in targets}
    assert sorted(p.name for p in link.parent.iterdir()) == [link.name]


async def test_broken_and_missing_links_are_detected(
    dirs: tuple[Path, Path], linker: Linker
) -> None:
    root, mount = dirs
    target = put(mount / "t" / "a.mkv")
    link = root / "Movies" / "A" / "A.mkv"
    assert await linker.check_link(link) is LinkState.MISSING
    await linker.link(target, link)
    target.unlink()
    assert await linker.check_link(link) is LinkState.BROKEN
    assert await linker.check_link(link, expected=target) is LinkState.BROKEN
    assert await linker.broken_links() == [link]
    assert await linker.broken_links(root / "Shows") == []
    put(target)
    assert await linker.check_link(link) is LinkState.OK
    assert await linker.broken_links() == []


async def test_something_else_at_the_link_path_is_never_clobbered(
    dirs: tuple[Path, Path], linker: Linker
) -> None:
    root, mount = dirs
    target = put(mount / "t" / "a.mkv")
    real_file = put(root / "Movies" / "A" / "A.mkv", b"precious")
    assert await linker.check_link(real_file) is LinkState.WRONG_TARGET
    with pytest.raises(LibraryError, match="not a symlink"):
        await linker.link(target, real_file)
    assert real_file.read_bytes() == b"precious"


async def test_a_link_pointing_outside_the_mount_is_a_wrong_target(
    dirs: tuple[Path, Path], linker: Linker, tmp_path: Path
) -> None:
    root, _ = dirs
    outside = put(tmp_path / "elsewhere.mkv")
    link = root / "Movies" / "A" / "A.mkv"
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)
    assert await linker.check_link(link) is LinkState.WRONG_TARGET


@pytest.mark.parametrize(
    "target",
    ["/etc/passwd", "{mount}/../escape.mkv", "{mount}/t/../../escape.mkv", "relative.mkv"],
)
async def test_targets_must_be_inside_the_mount(
    dirs: tuple[Path, Path], linker: Linker, tmp_path: Path, target: str
) -> None:
    root, mount = dirs
    put(tmp_path / "escape.mkv")
    with pytest.raises(UnsafePathError):
        await linker.link(Path(target.format(mount=mount)), root / "Movies" / "A" / "A.mkv")
    assert not root.exists()


async def test_a_symlink_inside_the_mount_cannot_lead_out_of_it(
    dirs: tuple[Path, Path], linker: Linker, tmp_path: Path
) -> None:
    root, mount = dirs
    secret = put(tmp_path / "secret" / "a.mkv")
    (mount / "sneaky").symlink_to(secret.parent)
    with pytest.raises(UnsafePathError, match="outside the mount"):
        await linker.link(mount / "sneaky" / "a.mkv", root / "Movies" / "A" / "A.mkv")


async def test_a_missing_target_is_refused(dirs: tuple[Path, Path], linker: Linker) -> None:
    root, mount = dirs
    with pytest.raises(LibraryError, match="does not exist"):
        await linker.link(mount / "nope.mkv", root / "Movies" / "A" / "A.mkv")


@pytest.mark.parametrize(
    "link",
    ["{root}/../outside.mkv", "/tmp/outside.mkv", "{root}", "relative/a.mkv", "{root}/a\0b"],
)
async def test_links_must_land_inside_the_root(
    dirs: tuple[Path, Path], linker: Linker, link: str
) -> None:
    root, mount = dirs
    target = put(mount / "t" / "a.mkv")
    with pytest.raises(UnsafePathError):
        await linker.link(target, Path(link.format(root=root)))


async def test_a_symlinked_folder_in_the_root_cannot_lead_out_of_it(
    dirs: tuple[Path, Path], linker: Linker, tmp_path: Path
) -> None:
    root, mount = dirs
    target = put(mount / "t" / "a.mkv")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root.mkdir()
    (root / "Movies").symlink_to(elsewhere)
    with pytest.raises(UnsafePathError, match="outside the library root"):
        await linker.link(target, root / "Movies" / "A" / "A.mkv")
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize(
    "title",
    ["../../etc", "/abs", "nul\0byte", "x" * 10_000, "千と千尋の神隠し " * 200, "..", "😀" * 300],
)
async def test_hostile_titles_link_inside_the_root_on_a_real_file_system(
    dirs: tuple[Path, Path], linker: Linker, title: str
) -> None:
    root, mount = dirs
    target = put(mount / "t" / "a.mkv")
    layout = LibraryLayout(root)
    links = [
        layout.movie_path(title, 2020, 42, "mkv"),
        layout.episode_path(title, 2020, 42, 1, [1, 2], "mkv"),
    ]
    for link in links:
        assert await linker.link(target, link) is LinkResult.CREATED
        assert resolves_inside(link.parent, root)
        assert all(len(p.encode()) <= MAX_COMPONENT_BYTES for p in link.parts)
    created = [Path(d, f) for d, _, files in os.walk(root) for f in files]
    assert sorted(created) == sorted(links)


def test_linker_needs_absolute_dirs(tmp_path: Path) -> None:
    with pytest.raises(UnsafePathError):
        Linker(Path("library"), tmp_path)
    section = LibrarySection(root=tmp_path / "lib", mount_dir=tmp_path / "mnt")
    made = Linker.from_section(section)
    assert (made.root, made.mount_dir) == (tmp_path / "lib", tmp_path / "mnt")


# --- the mount -----------------------------------------------------------------------


async def test_find_lists_a_torrent_folder_and_its_files(dirs: tuple[Path, Path]) -> None:
    _, mount = dirs
    put(mount / "Show.S01.1080p" / "Show.S01E01.mkv", b"1" * 10)
    put(mount / "Show.S01.1080p" / "Extras" / "sample.mkv", b"1" * 3)
    put(mount / "Movie.2020.mkv", b"1" * 7)
    index = MountIndex(mount, SystemClock())
    entry = await index.find(["Show.S01.1080p"])
    assert entry is not None
    assert entry.is_dir
    assert entry.path == mount / "Show.S01.1080p"
    assert [(f.relative, f.size_bytes) for f in entry.files] == [
        ("Show.S01E01.mkv", 10),
        ("Extras/sample.mkv", 3),
    ]
    single = await index.find(["not-there", "Movie.2020.mkv"])
    assert single is not None
    assert not single.is_dir
    assert [(f.relative, f.size_bytes) for f in single.files] == [("Movie.2020.mkv", 7)]


async def test_find_tolerates_case_and_rclone_full_width_characters(
    dirs: tuple[Path, Path],
) -> None:
    _, mount = dirs
    put(mount / "What If？ 2021" / "a.mkv")  # rclone's full-width question mark
    index = MountIndex(mount, SystemClock())
    entry = await index.find(["what if? 2021"])
    assert entry is not None
    assert entry.name == "What If？ 2021"


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "../mount", "x\0"])
async def test_find_ignores_names_that_are_not_plain(dirs: tuple[Path, Path], name: str) -> None:
    _, mount = dirs
    put(mount / "a" / "b" / "c.mkv")
    index = MountIndex(mount, SystemClock())
    assert await index.find([name]) is None
    assert index.scans == 0


async def test_listing_is_cached_for_the_ttl_and_a_miss_lists_again(
    dirs: tuple[Path, Path],
) -> None:
    _, mount = dirs
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    put(mount / "one" / "a.mkv")
    index = MountIndex(mount, clock, ttl_s=10.0, min_rescan_s=1.0)
    assert await index.find(["one"]) is not None
    assert await index.find(["one"]) is not None
    assert index.scans == 1
    put(mount / "two" / "a.mkv")
    assert await index.find(["two"]) is None  # listing too fresh to list again
    assert index.scans == 1
    clock.advance(1.0)
    assert await index.find(["two"]) is not None  # the miss lists again
    assert index.scans == 2
    # A torrent deleted from the account disappears once the TTL has passed.
    for path in sorted((mount / "one").rglob("*"), reverse=True):
        path.unlink()
    (mount / "one").rmdir()
    assert await index.find(["one"]) is None  # the entry itself is re-read, not cached
    clock.advance(10.0)
    assert await index.find(["one"]) is None
    assert index.scans >= 3


async def test_concurrent_finds_share_one_listing(dirs: tuple[Path, Path]) -> None:
    _, mount = dirs
    for i in range(20):
        put(mount / f"t{i}" / "a.mkv")
    index = MountIndex(mount, SystemClock(), ttl_s=60.0)
    found = await asyncio.gather(*(index.find([f"t{i}"]) for i in range(20)))
    assert all(entry is not None for entry in found)
    assert index.scans == 1


async def test_a_missing_mount_is_an_empty_mount(tmp_path: Path) -> None:
    index = MountIndex(tmp_path / "not-mounted", SystemClock())
    assert await index.find(["anything"]) is None


async def test_wait_for_file_sees_a_file_that_appears_late(dirs: tuple[Path, Path]) -> None:
    _, mount = dirs
    index = MountIndex(mount, SystemClock(), ttl_s=60.0, min_rescan_s=0.0)

    async def lagging_mount() -> None:
        await asyncio.sleep(0.3)
        put(mount / "Movie.2020.1080p" / "movie.mkv")

    writer = asyncio.create_task(lagging_mount())
    entry = await index.wait_for_file(["Movie.2020.1080p"], timeout_s=5.0, initial_s=0.05)
    await writer
    assert [f.relative for f in entry.files] == ["movie.mkv"]


async def test_wait_for_file_can_wait_for_one_file_inside_the_folder(
    dirs: tuple[Path, Path],
) -> None:
    _, mount = dirs
    put(mount / "Show.S01" / "e01.mkv")
    index = MountIndex(mount, SystemClock(), min_rescan_s=0.0)

    async def lagging_mount() -> None:
        await asyncio.sleep(0.2)
        put(mount / "Show.S01" / "e02.mkv")

    writer = asyncio.create_task(lagging_mount())
    entry = await index.wait_for_file(
        ["Show.S01"], relative="e02.mkv", timeout_s=5.0, initial_s=0.05
    )
    await writer
    assert {f.relative for f in entry.files} == {"e01.mkv", "e02.mkv"}


class RecordingClock:
    """Time that jumps by exactly what is slept, so backoff can be read off directly."""

    def __init__(self) -> None:
        self.elapsed = 0.0
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.elapsed

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.elapsed += seconds
        await asyncio.sleep(0)


async def test_wait_for_file_backs_off_and_gives_up_at_the_timeout(
    dirs: tuple[Path, Path],
) -> None:
    _, mount = dirs
    clock = RecordingClock()
    index = MountIndex(mount, clock, wait_timeout_s=10.0, min_rescan_s=0.0)
    with pytest.raises(MountTimeoutError, match="never"):
        await index.wait_for_file(["never"], initial_s=0.5, max_s=2.0)
    assert clock.sleeps == [0.5, 1.0, 2.0, 2.0, 2.0, 2.0, 0.5]
    assert clock.elapsed == pytest.approx(10.0)


def test_mount_index_from_section(tmp_path: Path) -> None:
    section = LibrarySection(
        mount_dir=tmp_path, root=tmp_path / "lib", mount_scan_ttl_s=2.0, mount_wait_timeout_s=9.0
    )
    index = MountIndex.from_section(section, SystemClock())
    assert (index.mount_dir, index.ttl_s, index.wait_timeout_s) == (tmp_path, 2.0, 9.0)


async def test_a_folder_is_not_a_link_target(dirs: tuple[Path, Path], linker: Linker) -> None:
    root, mount = dirs
    put(mount / "t" / "a.mkv")
    with pytest.raises(LibraryError, match="not a file"):
        await linker.link(mount / "t", root / "Movies" / "A" / "A.mkv")


async def test_a_huge_torrent_folder_is_listed_up_to_a_bound(
    dirs: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    _, mount = dirs
    for i in range(12):
        put(mount / "Big" / f"{i:02d}.mkv")
    entry = await MountIndex(mount, SystemClock(), max_files=5).find(["Big"])
    assert entry is not None
    assert [f.relative for f in entry.files] == [f"{i:02d}.mkv" for i in range(5)]
    assert "more than 5 files" in caplog.text


def make_stale_temp(folder: Path, name: str, age_s: float) -> Path:
    temp = folder / name
    temp.symlink_to("/nowhere")
    then = time.time() - age_s
    os.utime(temp, (then, then), follow_symlinks=False)
    return temp


async def test_temp_links_left_by_a_crash_are_cleaned_up(
    dirs: tuple[Path, Path], linker: Linker
) -> None:
    root, mount = dirs
    target = put(mount / "t" / "a.mkv")
    folder = root / "Movies" / "A"
    folder.mkdir(parents=True)
    stale = make_stale_temp(folder, ".riven-link-0123456789abcdef", 3600)
    fresh = make_stale_temp(folder, ".riven-link-fedcba9876543210", 1)
    await linker.link(target, folder / "A.mkv")
    assert not stale.is_symlink()
    assert fresh.is_symlink()  # may belong to a link() still in flight

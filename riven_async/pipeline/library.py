"""Plex-style library paths, atomic symlinks into the debrid mount, and the mount's index."""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import re
import secrets
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anyio.to_thread

from riven_async import config, errors
from riven_async.core.clock import Clock

log = logging.getLogger(__name__)

MAX_COMPONENT_BYTES = 255
# The id a show folder carries: TVDB's, or TMDB's for a show TVDB does not list.
ShowIdKind = Literal["tvdb", "tmdb"]
UNTITLED = "Untitled"
MOUNT_MAX_FILES = 10_000
MOUNT_MIN_RESCAN_S = 0.25
WAIT_INITIAL_S = 0.5
WAIT_MAX_S = 15.0
_TEMP_PREFIX = ".riven-link-"  # sanitised names never start with a dot, so never collide
TEMP_STALE_S = 60.0
_EXT_RE = re.compile(r"^[a-z0-9]{1,16}$")
_SPACES_RE = re.compile(r"\s+")
_DOTS_RE = re.compile(r"\.{2,}")
_REPLACE = str.maketrans(
    {"/": "-", "\\": "-", ":": "-", "*": "-", "|": "-", '"': "'", "?": "", "<": "", ">": ""}
)
# Control, format (zero-width, bidi overrides) and surrogate code points never reach a name.
_DROP_CATEGORIES = frozenset({"Cf", "Cs"})
_SPACE_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


class LibraryError(errors.RivenError):
    """A library operation cannot be done as asked."""


class UnsafePathError(LibraryError):
    """A path would land outside the library root, or a target outside the mount."""


class MountTimeoutError(LibraryError):
    """A download did not show up on the mount in time."""


class LinkResult(enum.StrEnum):
    CREATED = "created"
    UNCHANGED = "unchanged"
    REPLACED = "replaced"


class LinkState(enum.StrEnum):
    OK = "ok"
    MISSING = "missing"
    BROKEN = "broken"
    WRONG_TARGET = "wrong_target"


def sanitize(text: str) -> str:
    """One safe file-name component from any text (may be empty; no byte cap here)."""
    text = unicodedata.normalize("NFC", text)
    kept: list[str] = []
    for char in text:
        category = unicodedata.category(char)
        if category in _DROP_CATEGORIES:
            continue
        kept.append(" " if category in _SPACE_CATEGORIES else char)
    text = "".join(kept).replace(": ", " - ").translate(_REPLACE)
    text = _DOTS_RE.sub(".", _SPACES_RE.sub(" ", text))
    # Leading dots hide a file (and "." / ".." are not names), a leading dash reads as an
    # option to shell tools; trailing dots and spaces are dropped by SMB and Windows
    # clients, which would then not find the file.
    return text.lstrip(" .-").rstrip(" .")


def fit_component(title: str, suffix: str = "", limit: int = MAX_COMPONENT_BYTES) -> str:
    """``sanitize(title) + suffix``, cutting the title (never the suffix) to ``limit`` bytes."""
    budget = limit - len(suffix.encode())
    if budget < 1:
        raise ValueError(f"suffix {suffix!r} leaves no room for a title")
    raw = sanitize(title).encode()[:budget].decode("utf-8", "ignore")
    clean = raw.rstrip(" .") or UNTITLED[:budget]
    return clean + suffix


def _extension(ext: str) -> str:
    clean = ext.removeprefix(".").lower()
    if not _EXT_RE.match(clean):
        raise ValueError(f"{ext!r} is not a file extension")
    return "." + clean


def _year(year: int | None) -> str:
    if year is None:
        return ""
    if not 1000 <= year <= 9999:
        raise ValueError(f"year {year} is out of range")
    return f" ({year})"


def _id(kind: str, value: int) -> str:
    if value < 1:
        raise ValueError(f"{kind} id must be positive, got {value}")
    return f" {{{kind}-{value}}}"


def _number(value: int, what: str, prefix: str = "") -> str:
    if value < 0:
        raise ValueError(f"{what} number must be >= 0, got {value}")
    return f"{prefix}{value:02d}"


def _plain_name(name: str) -> bool:
    return name not in ("", ".", "..") and "/" not in name and "\0" not in name


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


@dataclass(frozen=True, slots=True)
class LibraryLayout:
    """Where each item's link goes: ``root/<movies_dir|shows_dir>/<folder>/...`` (pure)."""

    root: Path
    movies_dir: str = "Movies"
    shows_dir: str = "Shows"

    def __post_init__(self) -> None:
        if not self.root.is_absolute() or ".." in self.root.parts or "\0" in str(self.root):
            raise UnsafePathError(f"library root {self.root} must be absolute, without ..")
        for name in (self.movies_dir, self.shows_dir):
            if not _plain_name(name) or sanitize(name) != name:
                raise UnsafePathError(f"library folder {name!r} must be one plain name")

    @classmethod
    def from_section(cls, section: config.LibrarySection) -> LibraryLayout:
        return cls(section.root, section.movies_dir, section.shows_dir)

    def movie_dir(self, title: str, year: int | None, tmdb_id: int) -> Path:
        folder = fit_component(title, _year(year) + _id("tmdb", tmdb_id))
        return self._inside(self.movies_dir, folder)

    def movie_path(self, title: str, year: int | None, tmdb_id: int, ext: str) -> Path:
        suffix = _year(year) + _id("tmdb", tmdb_id) + _extension(ext)
        folder = self.movie_dir(title, year, tmdb_id)
        return self._inside(*folder.relative_to(self.root).parts, fit_component(title, suffix))

    def show_dir(
        self, title: str, year: int | None, tvdb_id: int, id_kind: ShowIdKind = "tvdb"
    ) -> Path:
        """``Title (Year) {tvdb-ID}``; ``id_kind="tmdb"`` for a show TVDB does not list (Plex
        matches both)."""
        folder = fit_component(title, _year(year) + _id(id_kind, tvdb_id))
        return self._inside(self.shows_dir, folder)

    def season_dir(self, title: str, year: int | None, tvdb_id: int, season: int,
                   id_kind: ShowIdKind = "tvdb") -> Path:
        show = self.show_dir(title, year, tvdb_id, id_kind)
        season_name = "Season " + _number(season, "season")
        return self._inside(*show.relative_to(self.root).parts, season_name)

    def episode_path(
        self,
        show_title: str,
        year: int | None,
        tvdb_id: int,
        season: int,
        episodes: Sequence[int],
        ext: str,
        id_kind: ShowIdKind = "tvdb",
    ) -> Path:
        """``.../Season 01/Title (Year) - s01e02.ext``; several episodes give ``s01e02-e03``."""
        if not episodes:
            raise ValueError("an episode file needs at least one episode number")
        numbers = sorted(set(episodes))
        code = _number(season, "season", "s") + _number(numbers[0], "episode", "e")
        if len(numbers) > 1:
            code += "-" + _number(numbers[-1], "episode", "e")
        suffix = _year(year) + " - " + code + _extension(ext)
        folder = self.season_dir(show_title, year, tvdb_id, season, id_kind)
        name = fit_component(show_title, suffix)
        return self._inside(*folder.relative_to(self.root).parts, name)

    def contains(self, path: Path) -> bool:
        """Lexically under the root (no ``..``, no NUL); symlinks are checked by ``Linker``."""
        return (
            path.is_absolute()
            and ".." not in path.parts
            and "\0" not in str(path)
            and path != self.root
            and path.is_relative_to(self.root)
        )

    def _inside(self, *parts: str) -> Path:
        for part in parts:
            if not _plain_name(part) or len(part.encode()) > MAX_COMPONENT_BYTES:
                raise UnsafePathError(f"unsafe path component {part!r}")
        path = self.root.joinpath(*parts)
        if not self.contains(path):
            raise UnsafePathError(f"{path} is outside the library root")
        return path


class Linker:
    """Creates and checks symlinks under ``root`` that point into ``mount_dir``.

    Every call runs its file-system work in a worker thread. A link is first made under a
    temporary name in the same directory and renamed over the final name, so a reader
    sees the old link or the new one, never neither.
    """

    def __init__(self, root: Path, mount_dir: Path) -> None:
        for path in (root, mount_dir):
            if not path.is_absolute() or ".." in path.parts:
                raise UnsafePathError(f"{path} must be absolute, without ..")
        self.root = root
        self.mount_dir = mount_dir

    @classmethod
    def from_section(cls, section: config.LibrarySection) -> Linker:
        return cls(section.root, section.mount_dir)

    async def link(self, target: Path, link: Path) -> LinkResult:
        """Point ``link`` at ``target``: created, already right, or atomically replaced."""
        result: LinkResult = await anyio.to_thread.run_sync(self._link_sync, target, link)
        log.info(
            "link %s -> %s: %s",
            link,
            target,
            result,
            extra={"action": "link", "result": str(result), "path": str(link)},
        )
        return result

    async def check_link(self, link: Path, expected: Path | None = None) -> LinkState:
        """Is ``link`` there, pointing (at ``expected``, if given) to a file on the mount?"""
        state: LinkState = await anyio.to_thread.run_sync(self._check_sync, link, expected)
        return state

    async def broken_links(self, under: Path | None = None) -> list[Path]:
        """Every link below ``under`` (default: the root) whose target is gone."""
        start = self.root if under is None else under
        self._check_link_path(start, allow_root=True)
        found: list[Path] = await anyio.to_thread.run_sync(self._broken_sync, start)
        return found

    def _check_link_path(self, link: Path, *, allow_root: bool = False) -> None:
        if (
            not link.is_absolute()
            or ".." in link.parts
            or "\0" in str(link)
            or not link.is_relative_to(self.root)
            or (link == self.root and not allow_root)
        ):
            raise UnsafePathError(f"{link} is not a path inside the library root {self.root}")

    def _check_target(self, target: Path) -> None:
        if (
            not target.is_absolute()
            or ".." in target.parts
            or "\0" in str(target)
            or not target.is_relative_to(self.mount_dir)
        ):
            raise UnsafePathError(f"link target {target} is not inside the mount {self.mount_dir}")
        real = os.path.realpath(target)
        if not _within(real, os.path.realpath(self.mount_dir)):
            raise UnsafePathError(f"link target {target} resolves outside the mount")
        if not os.path.isfile(real):
            what = "is not a file" if os.path.exists(real) else "does not exist"
            raise LibraryError(f"link target {target} {what}")

    def _check_parent(self, parent: Path) -> None:
        if not _within(os.path.realpath(parent), os.path.realpath(self.root)):
            raise UnsafePathError(f"{parent} resolves outside the library root")

    def _link_sync(self, target: Path, link: Path) -> LinkResult:
        self._check_link_path(link)
        self._check_target(target)
        # Checked before and after creating it: an existing symlinked folder under the root
        # must not make us create directories elsewhere.
        self._check_parent(link.parent)
        link.parent.mkdir(parents=True, exist_ok=True)
        self._check_parent(link.parent)
        _remove_stale_temps(link.parent)
        wanted = str(target)
        try:
            current: str | None = os.readlink(link)
        except FileNotFoundError:
            current = None
        except OSError as exc:
            raise LibraryError(f"{link} exists and is not a symlink") from exc
        if current == wanted:
            return LinkResult.UNCHANGED
        temp = link.parent / f"{_TEMP_PREFIX}{secrets.token_hex(8)}"
        os.symlink(wanted, temp)
        try:
            os.replace(temp, link)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return LinkResult.CREATED if current is None else LinkResult.REPLACED

    def _check_sync(self, link: Path, expected: Path | None) -> LinkState:
        self._check_link_path(link)
        try:
            current = os.readlink(link)
        except FileNotFoundError:
            return LinkState.MISSING
        except OSError:  # something that is not a symlink sits where the link belongs
            return LinkState.WRONG_TARGET
        if expected is not None and current != str(expected):
            return LinkState.WRONG_TARGET
        real = os.path.realpath(link)
        if not _within(real, os.path.realpath(self.mount_dir)):
            return LinkState.WRONG_TARGET
        return LinkState.OK if os.path.exists(real) else LinkState.BROKEN

    def _broken_sync(self, start: Path) -> list[Path]:
        broken: list[Path] = []
        for folder, dirs, files in os.walk(start):  # does not follow symlinked folders
            for name in (*dirs, *files):
                path = Path(folder, name)
                if path.is_symlink() and not path.exists():
                    broken.append(path)
        return sorted(broken)


def _remove_stale_temps(folder: Path) -> None:
    """Drop temp links left by a process killed between symlink and rename."""
    cutoff = time.time() - TEMP_STALE_S  # older than any link() still in flight
    with os.scandir(folder) as entries:
        for entry in entries:
            if not entry.name.startswith(_TEMP_PREFIX):
                continue
            try:
                if entry.is_symlink() and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
            except FileNotFoundError:
                continue


@dataclass(frozen=True, slots=True)
class MountFile:
    """One file of a torrent on the mount; ``relative`` is its path inside the entry."""

    path: Path
    relative: str
    size_bytes: int


@dataclass(frozen=True, slots=True)
class MountEntry:
    """A torrent's top-level folder (or single file) on the mount, with its files."""

    name: str
    path: Path
    is_dir: bool
    files: tuple[MountFile, ...]


@dataclass(frozen=True, slots=True)
class _Listing:
    names: frozenset[str]
    folded: dict[str, str]
    scanned_at: float
    generation: int


def _fold(name: str) -> str:
    # NFKC maps the full-width look-alikes rclone substitutes for reserved characters.
    return unicodedata.normalize("NFKC", name).casefold().strip()


class MountIndex:
    """Finds downloaded torrents on the mount from a cached top-level listing.

    The listing is trusted for ``ttl_s`` of the clock; a miss lists again at once (at
    most every ``min_rescan_s``), since a miss usually means the mount has just caught
    up. Concurrent callers share one listing in flight.
    """

    def __init__(
        self,
        mount_dir: Path,
        clock: Clock,
        *,
        ttl_s: float = 5.0,
        min_rescan_s: float = MOUNT_MIN_RESCAN_S,
        wait_timeout_s: float = 300.0,
        max_files: int = MOUNT_MAX_FILES,
    ) -> None:
        if ttl_s <= 0 or min_rescan_s < 0 or wait_timeout_s <= 0 or max_files < 1:
            raise ValueError("ttl_s, wait_timeout_s, max_files > 0 and min_rescan_s >= 0")
        self.mount_dir = mount_dir
        self.clock = clock
        self.ttl_s = ttl_s
        self.min_rescan_s = min_rescan_s
        self.wait_timeout_s = wait_timeout_s
        self.max_files = max_files
        self.scans = 0
        self._generation = 0
        self._listing: _Listing | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_section(cls, section: config.LibrarySection, clock: Clock) -> MountIndex:
        return cls(
            section.mount_dir,
            clock,
            ttl_s=section.mount_scan_ttl_s,
            wait_timeout_s=section.mount_wait_timeout_s,
        )

    def invalidate(self) -> None:
        self._listing = None

    async def find(self, names: Sequence[str]) -> MountEntry | None:
        """The first of ``names`` (torrent folder or file names) present on the mount."""
        wanted = [n for n in names if _plain_name(n)]
        if not wanted:
            return None
        listing = self._listing
        if listing is None or self.clock.monotonic() - listing.scanned_at >= self.ttl_s:
            listing = await self._scan(listing)
        name = _match(listing, wanted)
        if name is None and self.clock.monotonic() - listing.scanned_at >= self.min_rescan_s:
            listing = await self._scan(listing)
            name = _match(listing, wanted)
        if name is None:
            return None
        entry: MountEntry | None = await anyio.to_thread.run_sync(self._describe, name)
        if entry is None:  # gone since the listing was taken
            self.invalidate()
        return entry

    async def wait_for_file(
        self,
        names: Sequence[str],
        *,
        relative: str | None = None,
        timeout_s: float | None = None,
        initial_s: float = WAIT_INITIAL_S,
        max_s: float = WAIT_MAX_S,
    ) -> MountEntry:
        """Wait, with doubling pauses, until the entry (and ``relative`` in it) is there."""
        timeout = self.wait_timeout_s if timeout_s is None else timeout_s
        deadline = self.clock.monotonic() + timeout
        delay = initial_s
        while True:
            entry = await self.find(names)
            if entry is not None and (
                relative is None or any(f.relative == relative for f in entry.files)
            ):
                return entry
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                raise MountTimeoutError(
                    f"{names[0] if names else '?'} not on the mount after {timeout:.0f}s"
                )
            log.debug(
                "waiting %.1fs for %s on the mount",
                min(delay, remaining),
                list(names),
                extra={"action": "mount_wait", "names": list(names)},
            )
            await self.clock.sleep(min(delay, remaining))
            delay = min(delay * 2, max_s)

    async def _scan(self, seen: _Listing | None) -> _Listing:
        async with self._lock:
            current = self._listing
            if current is not None and (seen is None or current.generation > seen.generation):
                return current  # another caller listed while we waited for the lock
            names: list[str] = await anyio.to_thread.run_sync(self._list_names)
            self.scans += 1
            self._generation += 1
            listing = _Listing(
                names=frozenset(names),
                folded={_fold(n): n for n in sorted(names)},
                scanned_at=self.clock.monotonic(),
                generation=self._generation,
            )
            self._listing = listing
            return listing

    def _list_names(self) -> list[str]:
        try:
            with os.scandir(self.mount_dir) as entries:
                return [e.name for e in entries]
        except FileNotFoundError:
            log.warning("mount %s is not there", self.mount_dir, extra={"action": "mount_scan"})
            return []

    def _describe(self, name: str) -> MountEntry | None:
        path = self.mount_dir / name
        real_mount = os.path.realpath(self.mount_dir)
        if not _within(os.path.realpath(path), real_mount):
            return None
        try:
            if not path.is_dir():
                size = path.stat().st_size
                return MountEntry(name, path, False, (MountFile(path, name, size),))
        except OSError:  # vanished, or a dangling entry on the mount
            return None
        files: list[MountFile] = []
        for folder, dirs, names in os.walk(path):
            dirs.sort()
            for file_name in sorted(names):
                file_path = Path(folder, file_name)
                try:
                    size = file_path.stat().st_size
                except OSError:
                    continue
                files.append(MountFile(file_path, str(file_path.relative_to(path)), size))
                if len(files) >= self.max_files:
                    log.warning(
                        "%s has more than %d files; listing only those",
                        path,
                        self.max_files,
                        extra={"action": "mount_describe", "path": str(path)},
                    )
                    return MountEntry(name, path, True, tuple(files))
        return MountEntry(name, path, True, tuple(files))


def _match(listing: _Listing, names: Sequence[str]) -> str | None:
    for name in names:
        if name in listing.names:
            return name
    for name in names:
        found = listing.folded.get(_fold(name))
        if found is not None:
            return found
    return None

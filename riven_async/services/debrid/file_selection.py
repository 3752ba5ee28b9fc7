"""Match a torrent's files to a ``FileWant``: a movie's main video, or episodes by parsed S/E."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from PTT import parse_title

from riven_async.services.debrid import (
    EpisodeFile,
    EpisodeKey,
    FileWant,
    Selection,
    TorrentFile,
)

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset(
    {"mkv", "mp4", "m4v", "avi", "mov", "wmv", "ts", "m2ts", "mts", "webm", "mpg", "mpeg", "flv"}
)
# parsett's ``extras`` that mark a file as not the feature itself. OP/ED/NC are left out:
# parsett matches them case-insensitively, so a show called "Ed" would lose every episode.
SKIPPED_EXTRAS = frozenset({"Sample", "Trailer", "Featurette", "Deleted Scene", "NCED", "NCOP"})
# Folder names (case-insensitive) that hold bonus material rather than the feature.
EXTRA_FOLDERS = frozenset(
    {
        "sample", "samples", "extra", "extras", "featurette", "featurettes", "trailer",
        "trailers", "behind the scenes", "deleted scenes", "interviews", "bonus",
        "bonus features", "shorts",
    }
)  # fmt: skip
MAX_PARSE_CHARS = 255
YIELD_SLICE_S = 0.005
PARSE_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class FileInfo:
    """One file after parsing: playable (a video, not a sample or extra) and its S/E numbers.

    ``seasons`` may be empty while ``episodes`` is not (``03 - Title.mkv`` in a one-season
    pack); ``match`` then takes the want's season when it names exactly one.
    """

    file: TorrentFile
    playable: bool
    seasons: tuple[int, ...] = ()
    episodes: tuple[int, ...] = ()

    def keys(self, want: FileWant) -> tuple[EpisodeKey, ...]:
        if not self.episodes:
            return ()
        seasons = self.seasons
        if not seasons and len(want.seasons) == 1:
            seasons = tuple(want.seasons)
        if len(seasons) != 1:  # no season, or "S01-S03" on one file: ambiguous
            return ()
        return tuple((seasons[0], episode) for episode in self.episodes)


def _parse(text: str) -> dict[str, Any]:
    try:
        parsed = parse_title(text[:MAX_PARSE_CHARS])
    except Exception:  # parsett is a heap of regexes; a crash on one name is not ours
        log.debug("parsett failed on %r", text, extra={"action": "file_parse"})
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _ints(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, int) and not isinstance(v, bool))


_Parsed = tuple[bool, tuple[int, ...], tuple[int, ...]]
_NOT_PLAYABLE: _Parsed = (False, (), ())


def parse_path(path: str) -> _Parsed:
    """(playable, seasons, episodes) for a path inside a torrent; depends on the path only."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return _NOT_PLAYABLE
    name = parts[-1]
    stem, dot, extension = name.rpartition(".")
    if not dot or extension.lower() not in VIDEO_EXTENSIONS:
        return _NOT_PLAYABLE
    if any(folder.strip().casefold() in EXTRA_FOLDERS for folder in parts[:-1]):
        return _NOT_PLAYABLE
    if stem.strip().casefold() in EXTRA_FOLDERS:
        return _NOT_PLAYABLE
    parsed = _parse(name)
    extras = parsed.get("extras") or ()
    if isinstance(extras, list) and SKIPPED_EXTRAS.intersection(map(str, extras)):
        return _NOT_PLAYABLE
    seasons = _ints(parsed.get("seasons"))
    episodes = _ints(parsed.get("episodes"))
    if episodes and not seasons:
        for folder in reversed(parts[:-1]):  # "Show S01-S03/Season 02/05.mkv": deepest first
            seasons = _ints(_parse(folder).get("seasons"))
            if seasons:
                break
    return True, seasons, episodes


def classify(file: TorrentFile) -> FileInfo:
    """Parse one file's name (and its folders when the name lacks a season)."""
    return FileInfo(file, *parse_path(file.path))


def match(infos: Iterable[FileInfo], want: FileWant) -> Selection:
    """The selection for ``want`` from already classified files."""
    playable = [i for i in infos if i.playable and want.fits_size(i.file.size)]
    if want.is_movie:
        if not playable:
            return Selection()
        main = max(playable, key=lambda i: (i.file.size, -i.file.id)).file
        return Selection(movie=main, to_select=(main,))
    best: dict[EpisodeKey, TorrentFile] = {}
    episode_files: dict[int, TorrentFile] = {}
    for info in playable:
        keys = info.keys(want)
        if not keys:
            continue
        episode_files[info.file.id] = info.file
        for key in keys:
            held = best.get(key)
            if held is None or (info.file.size, -info.file.id) > (held.size, -held.id):
                best[key] = info.file
    wanted = set(want.episodes)
    found = tuple(EpisodeFile(s, e, best[(s, e)]) for s, e in want.episodes if (s, e) in best)
    missing = tuple(key for key in want.episodes if key not in best)
    if not found:
        return Selection(missing=missing)
    for key, file in best.items():  # matched files are always selected, whatever else is
        if key in wanted:
            episode_files[file.id] = file
    to_select = tuple(sorted(episode_files.values(), key=lambda f: f.id))
    return Selection(episodes=found, missing=missing, to_select=to_select)


def select_files(files: Sequence[TorrentFile], want: FileWant) -> Selection:
    """Match ``files`` to ``want`` (CPU-bound: about 2 ms per video file)."""
    return match((classify(f) for f in files), want)


async def select_files_async(
    files: Sequence[TorrentFile], want: FileWant, *, slice_s: float = YIELD_SLICE_S
) -> Selection:
    """Like ``select_files``, yielding to the loop every ``slice_s`` of parsing (big packs)."""
    infos: list[FileInfo] = []
    started = time.perf_counter()
    for file in files:
        infos.append(classify(file))
        if time.perf_counter() - started >= slice_s:
            await asyncio.sleep(0)
            started = time.perf_counter()
    return match(infos, want)


class FileClassifier:
    """``select_files`` with each path's parse remembered in a bounded LRU.

    Every episode of a season pack selects from the same file list; parsing it once
    instead of once per episode keeps the event loop free (about 2 ms per file).
    """

    def __init__(self, cache_size: int = PARSE_CACHE_SIZE) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be >= 1")
        self._parse_path = functools.lru_cache(maxsize=cache_size)(parse_path)

    def classify(self, file: TorrentFile) -> FileInfo:
        return FileInfo(file, *self._parse_path(file.path))

    def select(self, files: Sequence[TorrentFile], want: FileWant) -> Selection:
        return match((self.classify(f) for f in files), want)

    async def select_async(
        self, files: Sequence[TorrentFile], want: FileWant, *, slice_s: float = YIELD_SLICE_S
    ) -> Selection:
        """Like ``select``, yielding to the loop every ``slice_s`` of parsing."""
        infos: list[FileInfo] = []
        started = time.perf_counter()
        for file in files:
            infos.append(self.classify(file))
            if time.perf_counter() - started >= slice_s:
                await asyncio.sleep(0)
                started = time.perf_counter()
        return match(infos, want)

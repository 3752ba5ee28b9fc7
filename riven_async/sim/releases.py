"""Releases per title: realistic names, sizes, files, trackers, publish times and caching."""

from __future__ import annotations

import random
from dataclasses import dataclass
from urllib.parse import quote_plus

from riven_async.sim import names
from riven_async.sim.infohash import HashCodec, ReleaseKey, Scope
from riven_async.sim.movies import Movie
from riven_async.sim.shows import DAY_S, HOUR_S, SeasonPlan, Show, ShowKind

GIB = 1024**3
CACHE_RATES = {"realdebrid": 0.6, "alldebrid": 0.5, "torbox": 0.65}
VIDEO_EXTENSIONS = (".mkv", ".mp4", ".avi")


@dataclass(frozen=True, slots=True)
class _Profile:
    resolution: str
    source: str
    codec: str
    audio: str
    hdr: tuple[str, ...]
    groups: tuple[str, ...]
    gib_per_hour: float
    junk: bool = False
    platform: str = ""


_WEB_4K = _Profile(
    "2160p", "WEB-DL", "H.265", "DDP5.1", ("DV", "HDR"), names.WEB_GROUPS, 7.0, platform="NF"
)
_WEB_1080 = _Profile(
    "1080p", "WEB-DL", "H.264", "DDP5.1", (), names.WEB_GROUPS, 2.8, platform="AMZN"
)
_WEBRIP_1080 = _Profile("1080p", "WEBRip", "x265", "AAC5.1", (), names.WEB_GROUPS, 1.2)
_WEB_720 = _Profile("720p", "WEB", "x264", "AAC2.0", (), names.WEB_GROUPS, 1.0)
_HDTV_720 = _Profile("720p", "HDTV", "x264", "AAC2.0", (), names.HDTV_GROUPS, 1.2)
_BLURAY_1080 = _Profile("1080p", "BluRay", "x265", "AAC5.1", (), names.BLURAY_GROUPS, 1.6)
_BLURAY_1080_264 = _Profile("1080p", "BluRay", "x264", "DTS5.1", (), names.BLURAY_GROUPS, 6.0)
_REMUX_4K = _Profile(
    "2160p", "REMUX", "HEVC", "TrueHD.Atmos.7.1", ("DV", "HDR"), names.BLURAY_GROUPS, 30.0
)
_JUNK_480 = _Profile("480p", "HDTV", "x264", "AAC2.0", (), names.JUNK_GROUPS, 0.35, junk=True)
_CAM = _Profile("", "CAM", "x264", "AAC2.0", (), names.JUNK_GROUPS, 1.4, junk=True)
_TS = _Profile("720p", "TS", "x264", "AAC2.0", (), names.JUNK_GROUPS, 1.8, junk=True)

_TV_PROFILES = (
    (_WEB_1080, 30),
    (_WEB_720, 15),
    (_HDTV_720, 15),
    (_WEBRIP_1080, 15),
    (_WEB_4K, 10),
    (_BLURAY_1080, 8),
    (_JUNK_480, 7),
)
_MOVIE_PROFILES = (
    (_WEB_1080, 20),
    (_WEBRIP_1080, 15),
    (_WEB_4K, 12),
    (_BLURAY_1080, 15),
    (_BLURAY_1080_264, 10),
    (_REMUX_4K, 6),
    (_CAM, 8),
    (_TS, 6),
    (_JUNK_480, 4),
)


@dataclass(frozen=True, slots=True)
class TorrentFile:
    """One file of a torrent; ``path`` starts with the torrent's folder for multi-file ones."""

    path: str
    size: int

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def is_video(self) -> bool:
        return self.path.endswith(VIDEO_EXTENSIONS) and "sample" not in self.path.lower()


@dataclass(frozen=True, slots=True)
class Release:
    """One torrent as indexers and debrid services see it."""

    key: ReleaseKey
    infohash: str
    title: str
    name: str
    files: tuple[TorrentFile, ...]
    resolution: str
    source: str
    codec: str
    hdr: tuple[str, ...]
    audio: str
    group: str
    languages: tuple[str, ...]
    tracker: str
    seeders: int
    peers: int
    published_s: int
    junk: bool
    indexed_hash: bool
    episodes: tuple[tuple[int, int], ...]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def multi_file(self) -> bool:
        return len(self.files) > 1 or "/" in self.files[0].path

    @property
    def magnet(self) -> str:
        trackers = "".join(f"&tr={quote_plus(url)}" for url in names.ANNOUNCE_URLS[:2])
        return f"magnet:?xt=urn:btih:{self.infohash}&dn={quote_plus(self.title)}{trackers}"

    def file_index(self, season: int, episode: int) -> int | None:
        """The index in ``files`` of the video for ``SxxEyy`` (packs), or None."""
        tag = f"S{season:02d}E{episode:02d}"
        for i, item in enumerate(self.files):
            if item.is_video and tag in item.name:
                return i
        return None

    def main_video_index(self) -> int:
        videos = [i for i, f in enumerate(self.files) if f.is_video]
        return max(videos, key=lambda i: self.files[i].size) if videos else 0


class ReleaseFactory:
    """Generates every release of a title from the seed; nothing is stored."""

    def __init__(self, seed: int, codec: HashCodec) -> None:
        self.seed = seed
        self.codec = codec

    def cached_from(self, release: Release, service: str) -> int | None:
        """When ``service`` has ``release`` cached (epoch), or None if it never has it."""
        rate = CACHE_RATES.get(service, 0.0) * (0.25 if release.junk else 1.0)
        if self.codec.uniform("cached", service, release.infohash) >= rate:
            return None
        lag = self.codec.uniform("cache-lag", service, release.infohash) * 12 * HOUR_S
        return release.published_s + int(lag)

    def episodes(self, show: Show, season: SeasonPlan, number: int) -> list[Release]:
        """Every release of one episode that will ever exist (filter by ``published_s``)."""
        rng = random.Random(f"{self.seed}:rel:e:{show.index}:{season.number}:{number}")
        air = season.air_epochs[number - 1]
        base = names.dotted(show.title)
        tag = f"S{season.number:02d}E{number:02d}"
        out = []
        for variant in range(rng.randint(2, 6)):
            profile = _pick(rng, _TV_PROFILES)
            key = ReleaseKey(Scope.EPISODE, show.index, season.number, number, variant)
            title = _scene_name(rng, f"{base}.{tag}", profile)
            size = _video_size(rng, profile, show.runtime)
            files = _single_video_files(rng, title, size)
            out.append(
                self._release(
                    rng,
                    key,
                    title,
                    files,
                    profile,
                    air + _lag(rng, profile),
                    ((season.number, number),),
                )
            )
        return out

    def season(self, show: Show, season: SeasonPlan) -> list[Release]:
        """Season packs of one season; they appear after its last episode has aired."""
        rng = random.Random(f"{self.seed}:rel:s:{show.index}:{season.number}")
        base = names.dotted(show.title)
        out = []
        for variant in range(rng.randint(1, 4)):
            profile = _pick(rng, _TV_PROFILES)
            key = ReleaseKey(Scope.SEASON, show.index, season.number, 0, variant)
            spaced = rng.random() < 0.5
            head = (
                f"{show.title} S{season.number:02d}" if spaced else f"{base}.S{season.number:02d}"
            )
            title = _scene_name(rng, head, profile, spaced=spaced)
            episodes = tuple((season.number, n) for n in range(1, len(season.air_epochs) + 1))
            files = _pack_files(rng, title, base, episodes, profile, show.runtime, folders=False)
            published = season.air_epochs[-1] + _lag(rng, profile, pack=True)
            out.append(self._release(rng, key, title, files, profile, published, episodes))
        return out

    def series(self, show: Show) -> list[Release]:
        """Complete-series packs of a finished show, published after its finale."""
        seasons = [s for s in show.seasons if s.number > 0]
        if show.kind not in (ShowKind.ENDED, ShowKind.CANCELED) or len(seasons) < 2:
            return []
        rng = random.Random(f"{self.seed}:rel:x:{show.index}")
        last = seasons[-1].number
        episodes = tuple((s.number, n) for s in seasons for n in range(1, len(s.air_epochs) + 1))
        out = []
        for variant in range(rng.randint(1, 2)):
            profile = _pick(rng, ((_BLURAY_1080, 3), (_WEB_1080, 2), (_HDTV_720, 1)))
            key = ReleaseKey(Scope.SERIES, show.index, 1, last, variant)
            title = _scene_name(rng, f"{show.title} S01-S{last:02d} Complete", profile, spaced=True)
            files = _pack_files(
                rng, title, names.dotted(show.title), episodes, profile, show.runtime, folders=True
            )
            published = seasons[-1].air_epochs[-1] + rng.randint(30, 400) * DAY_S
            out.append(self._release(rng, key, title, files, profile, published, episodes))
        return out

    def movie(self, movie: Movie) -> list[Release]:
        """Every release of a movie: CAM/TS, then WEB after digital, BluRay after physical."""
        rng = random.Random(f"{self.seed}:rel:m:{movie.index}")
        base = f"{names.dotted(movie.title)}.{movie.year}"
        out = []
        for variant in range(rng.randint(3, 9)):
            profile = _pick(rng, _MOVIE_PROFILES)
            key = ReleaseKey(Scope.MOVIE, movie.index, 0, 0, variant)
            spaced = profile.source == "BluRay" and rng.random() < 0.4
            head = f"{movie.title} {movie.year}" if spaced else base
            title = _scene_name(rng, head, profile, spaced=spaced)
            files = _single_video_files(rng, title, _video_size(rng, profile, movie.runtime))
            if profile.source in ("CAM", "TS"):
                published = movie.theatrical_s + rng.randint(2, 14) * DAY_S
            elif profile.source in ("BluRay", "REMUX"):
                published = movie.physical_s + rng.randint(0, 10) * DAY_S
            else:
                published = movie.digital_s + rng.randint(1, 48) * HOUR_S
            out.append(self._release(rng, key, title, files, profile, published, ()))
        return out

    def _release(
        self,
        rng: random.Random,
        key: ReleaseKey,
        title: str,
        files: tuple[TorrentFile, ...],
        profile: _Profile,
        published_s: int,
        episodes: tuple[tuple[int, int], ...],
    ) -> Release:
        movie = key.scope is Scope.MOVIE
        trackers = [t for t in names.TRACKERS if t != ("EZTV" if movie else "YTS")]
        roll = rng.random()
        languages: tuple[str, ...] = ("en",)
        if roll < 0.06:
            languages = ("en", "es")
        elif roll < 0.1:
            languages = ("multi",)
        elif roll < 0.13:
            languages = (rng.choice(("fr", "it", "de")),)
        seeders = (
            0 if rng.random() < 0.05 else int(rng.paretovariate(1.1) * (3 if profile.junk else 12))
        )
        single = files[0] if len(files) == 1 and "/" not in files[0].path else None
        return Release(
            key=key,
            infohash=self.codec.encode(key),
            title=title,
            name=single.path if single else title,
            files=files,
            resolution=profile.resolution,
            source=profile.source,
            codec=profile.codec,
            hdr=profile.hdr,
            audio=profile.audio,
            group=title.rsplit("-", 1)[-1],
            languages=languages,
            tracker=rng.choice(trackers),
            seeders=seeders,
            peers=seeders + rng.randint(0, 40),
            published_s=published_s,
            junk=profile.junk,
            indexed_hash=rng.random() > 0.25,
            episodes=episodes,
        )


def _pick(rng: random.Random, weighted: tuple[tuple[_Profile, int], ...]) -> _Profile:
    return rng.choices([p for p, _ in weighted], [w for _, w in weighted])[0]


def _scene_name(rng: random.Random, head: str, profile: _Profile, spaced: bool = False) -> str:
    group = rng.choice(profile.groups)
    if profile.source in ("CAM", "TS"):
        parts = [
            head,
            profile.resolution,
            "HD" + profile.source if rng.random() < 0.5 else profile.source,
            profile.codec,
        ]
    else:
        platform = profile.platform if profile.platform and rng.random() < 0.7 else ""
        parts = [
            head,
            profile.resolution,
            platform,
            profile.source,
            profile.audio,
            *profile.hdr,
            profile.codec,
        ]
    words = [p for p in parts if p]
    if spaced:
        return " ".join(words) + f"-{group}"
    return ".".join(words) + f"-{group}"


def _video_size(rng: random.Random, profile: _Profile, runtime_min: int) -> int:
    return int(profile.gib_per_hour * runtime_min / 60 * rng.uniform(0.8, 1.2) * GIB)


def _lag(rng: random.Random, profile: _Profile, pack: bool = False) -> int:
    if profile.source in ("BluRay", "REMUX"):
        return rng.randint(120, 400) * DAY_S
    if profile.junk:
        return rng.randint(2 * HOUR_S, 12 * HOUR_S)
    if pack:
        return rng.randint(HOUR_S, 3 * DAY_S)
    if profile.source == "HDTV":
        return rng.randint(HOUR_S, 4 * HOUR_S)
    return rng.randint(20 * 60, 3 * HOUR_S)


def _extension(rng: random.Random) -> str:
    return ".mp4" if rng.random() < 0.15 else ".mkv"


def _single_video_files(rng: random.Random, title: str, size: int) -> tuple[TorrentFile, ...]:
    video_name = title.replace(" ", ".") + _extension(rng)
    if rng.random() < 0.65:
        return (TorrentFile(video_name, size),)
    extras = [
        TorrentFile(
            f"{title}/{rng.choice(('RARBG.txt', 'Torrent-Downloaded-From.txt'))}",
            rng.randint(25, 60),
        )
    ]
    if rng.random() < 0.5:
        sample = video_name.rsplit(".", 1)[0] + "-sample.mkv"
        extras.append(TorrentFile(f"{title}/Sample/{sample}", rng.randint(20, 80) * 1024**2))
    video = TorrentFile(f"{title}/{video_name}", size)
    return (*extras, video) if rng.random() < 0.5 else (video, *extras)


def _pack_files(
    rng: random.Random,
    title: str,
    base: str,
    episodes: tuple[tuple[int, int], ...],
    profile: _Profile,
    runtime_min: int,
    folders: bool,
) -> tuple[TorrentFile, ...]:
    extension = _extension(rng)
    tail = title.split(" ", 1)[-1] if " " in title else title
    tags = ".".join(w for w in (profile.resolution, profile.source, profile.codec) if w)
    group = tail.rsplit("-", 1)[-1]
    files = []
    for season, number in episodes:
        name = f"{base}.S{season:02d}E{number:02d}.{tags}-{group}{extension}"
        folder = f"{title}/Season {season:02d}" if folders else title
        files.append(TorrentFile(f"{folder}/{name}", _video_size(rng, profile, runtime_min)))
    if rng.random() < 0.5:
        files.append(TorrentFile(f"{title}/RARBG.txt", 30))
    if rng.random() < 0.4:
        season, number = episodes[0]
        files.append(
            TorrentFile(
                f"{title}/Subs/{base}.S{season:02d}E{number:02d}.eng.srt",
                rng.randint(30_000, 90_000),
            )
        )
    return tuple(files)

"""The Debrid protocol, the records the debrid clients share, and their errors."""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ValidationError

from riven_async.core.breaker import BreakerState
from riven_async.core.clock import Clock
from riven_async.core.http import HttpClient, Response
from riven_async.errors import RivenError, UpstreamPayloadError

log = logging.getLogger(__name__)

_HEX_HASH = re.compile(r"[0-9a-f]{40}")
_B32_HASH = re.compile(r"[A-Z2-7]{32}")

EpisodeKey = tuple[int, int]
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def normalize_infohash(value: str) -> str:
    """A BitTorrent v1 infohash as 40 lowercase hex digits (hex or base32 accepted)."""
    text = value.strip()
    if _HEX_HASH.fullmatch(text.lower()):
        return text.lower()
    if _B32_HASH.fullmatch(text.upper()):
        try:
            return base64.b32decode(text.upper()).hex()
        except binascii.Error:
            pass
    raise ValueError(f"not an infohash: {value[:64]!r}")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One release the pipeline would like: its infohash, title and scraper cache hint."""

    infohash: str
    title: str = ""
    cached_hint: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "infohash", normalize_infohash(self.infohash))

    @property
    def magnet(self) -> str:
        magnet = f"magnet:?xt=urn:btih:{self.infohash}"
        return f"{magnet}&dn={quote(self.title, safe='')}" if self.title else magnet


@dataclass(frozen=True, slots=True)
class FileWant:
    """Which files of a torrent the item needs: a movie's main file, or some episodes.

    ``episodes`` holds ``(season, episode)`` pairs; empty means a movie. Size bounds apply
    to each file. With ``partial_ok`` a pack holding only some of the episodes is enough.
    """

    episodes: tuple[EpisodeKey, ...] = ()
    min_size_bytes: int = 0
    max_size_bytes: int | None = None
    partial_ok: bool = False

    def __post_init__(self) -> None:
        pairs = tuple(sorted(set(self.episodes)))
        if any(season < 0 or episode < 0 for season, episode in pairs):
            raise ValueError("season and episode numbers must be >= 0")
        if self.min_size_bytes < 0:
            raise ValueError("min_size_bytes must be >= 0")
        if self.max_size_bytes is not None and self.max_size_bytes < self.min_size_bytes:
            raise ValueError("max_size_bytes must be >= min_size_bytes")
        object.__setattr__(self, "episodes", pairs)

    @classmethod
    def movie(cls, *, min_size_bytes: int = 0, max_size_bytes: int | None = None) -> FileWant:
        return cls((), min_size_bytes, max_size_bytes)

    @classmethod
    def episode(
        cls,
        season: int,
        episode: int,
        *,
        min_size_bytes: int = 0,
        max_size_bytes: int | None = None,
    ) -> FileWant:
        return cls(((season, episode),), min_size_bytes, max_size_bytes)

    @classmethod
    def season(
        cls,
        season: int,
        episodes: Iterable[int],
        *,
        min_size_bytes: int = 0,
        max_size_bytes: int | None = None,
        partial_ok: bool = False,
    ) -> FileWant:
        pairs = tuple((season, number) for number in episodes)
        if not pairs:
            raise ValueError("a season want needs at least one episode")
        return cls(pairs, min_size_bytes, max_size_bytes, partial_ok)

    @property
    def is_movie(self) -> bool:
        return not self.episodes

    @property
    def seasons(self) -> frozenset[int]:
        return frozenset(season for season, _ in self.episodes)

    def describe(self) -> str:
        """``movie``, ``S01E05`` or ``S01E01..S01E10 (10 episodes)`` for messages."""
        if self.is_movie:
            return "movie"
        first, last = self.episodes[0], self.episodes[-1]
        if first == last:
            return f"S{first[0]:02d}E{first[1]:02d}"
        return (
            f"S{first[0]:02d}E{first[1]:02d}..S{last[0]:02d}E{last[1]:02d} "
            f"({len(self.episodes)} episodes)"
        )

    def fits_size(self, size: int) -> bool:
        if size < self.min_size_bytes:
            return False
        return self.max_size_bytes is None or size <= self.max_size_bytes


@dataclass(frozen=True, slots=True)
class TorrentFile:
    """One file of a torrent as the service lists it; ``path`` has no leading slash."""

    id: int
    path: str
    size: int

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class EpisodeFile:
    season: int
    episode: int
    file: TorrentFile


@dataclass(frozen=True, slots=True)
class Selection:
    """The files of one torrent that serve a ``FileWant``.

    ``to_select`` is what to ask the service for: the movie's main file, or every playable
    episode file of the torrent (so one add of a season pack serves all its episodes).
    """

    movie: TorrentFile | None = None
    episodes: tuple[EpisodeFile, ...] = ()
    missing: tuple[EpisodeKey, ...] = ()
    to_select: tuple[TorrentFile, ...] = ()

    def satisfies(self, want: FileWant) -> bool:
        if want.is_movie:
            return self.movie is not None
        if want.partial_ok:
            return bool(self.episodes)
        return bool(self.episodes) and not self.missing

    @property
    def files(self) -> tuple[TorrentFile, ...]:
        """The matched files, each once."""
        found: dict[int, TorrentFile] = {}
        if self.movie is not None:
            found[self.movie.id] = self.movie
        for match in self.episodes:
            found.setdefault(match.file.id, match.file)
        return tuple(found.values())

    def file_for(self, season: int, episode: int) -> TorrentFile | None:
        for match in self.episodes:
            if (match.season, match.episode) == (season, episode):
                return match.file
        return None


class Availability(enum.StrEnum):
    CACHED = "cached"
    NOT_CACHED = "not_cached"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What a bulk availability check said about one hash (files when the service lists them)."""

    infohash: str
    availability: Availability
    name: str = ""
    files: tuple[TorrentFile, ...] = ()


@dataclass(frozen=True, slots=True)
class DebridTorrent:
    """A torrent in a debrid account, as fetched just now (never from a cache)."""

    service: str
    torrent_id: str
    infohash: str
    name: str
    status: str
    files: tuple[TorrentFile, ...]
    selected_file_ids: tuple[int, ...]
    ready: bool
    progress: float = 0.0

    @property
    def selected_files(self) -> tuple[TorrentFile, ...]:
        chosen = set(self.selected_file_ids)
        return tuple(f for f in self.files if f.id in chosen)

    def inner_path(self, file: TorrentFile) -> str:
        """``file``'s path inside the torrent's own folder (its top folder stripped, if shared).

        Debrid mounts (zurg, rclone) show each torrent as a folder named after it; this is
        the path of the file inside that folder.
        """
        tops = {f.path.split("/", 1)[0] for f in self.files if "/" in f.path}
        shared = len(tops) == 1 and all("/" in f.path for f in self.files)
        return file.path.split("/", 1)[1] if shared and "/" in file.path else file.path


@dataclass(frozen=True, slots=True)
class Acquired:
    """A ready torrent in a debrid account and the files in it that serve the want."""

    torrent: DebridTorrent
    selection: Selection
    candidate: Candidate
    reused: bool = False


# -- errors ----------------------------------------------------------------------------


class DebridError(RivenError):
    """A debrid service could not provide a release; never carries credentials."""

    reason_code = "failed"

    def __init__(self, service: str, infohash: str | None, reason: str) -> None:
        self.service = service
        self.infohash = infohash
        self.reason = reason
        where = f"{service}: {infohash}: " if infohash else f"{service}: "
        super().__init__(where + reason)


class NotCached(DebridError):
    """The service does not hold this release ready; whatever was added is deleted again."""

    reason_code = "not_cached"


class Infringing(DebridError):
    """The service refuses this release for legal reasons (Real-Debrid 451): skip it there."""

    reason_code = "infringing"


class TorrentFailed(DebridError):
    """The torrent errored, vanished or never left a waiting state within the bound."""

    reason_code = "failed"


class TorrentGone(TorrentFailed):
    """The torrent is no longer in the account (deleted there, or never was)."""

    reason_code = "gone"


class NoMatchingFiles(DebridError):
    """The torrent holds no file that serves the want (a property of the release)."""

    reason_code = "no_matching_files"


class ServiceError(DebridError):
    """The service itself cannot be used right now; try the others."""

    reason_code = "service_error"


class ServiceCapped(ServiceError):
    """The account hit a cap (traffic, slots): the service pauses until ``until``."""

    reason_code = "capped"

    def __init__(self, service: str, infohash: str | None, reason: str, until: datetime) -> None:
        super().__init__(service, infohash, f"{reason}; paused until {until.isoformat()}")
        self.until = until


class AccountError(ServiceError):
    """The service refused the credentials or the account (bad key, not premium, blocked)."""

    reason_code = "account"


# A caller's hook for a service's verdict on a release it added (``Debrid.acquire``).
Settled = Callable[[DebridError], Awaitable[None]]


async def hand_over(exc: BaseException, settled: Settled | None) -> None:
    """Pass a verdict to ``settled``; services call it before deleting what they added.

    ``TorrentGone`` is no verdict: the service may add the release afresh after it.
    """
    if settled is not None and isinstance(exc, DebridError) and not isinstance(exc, TorrentGone):
        await settled(exc)


# -- the protocol ----------------------------------------------------------------------


class Debrid(Protocol):
    """One debrid service: check and acquire releases, spending as few calls as it allows."""

    @property
    def name(self) -> str: ...

    @property
    def bulk_probe(self) -> bool:
        """Whether ``probe`` answers for many hashes without adding anything."""
        ...

    @property
    def paused_until(self) -> datetime | None:
        """When this service may be asked again (capped, rate limited, breaker open)."""
        ...

    async def probe(self, infohashes: Sequence[str]) -> Mapping[str, ProbeResult]:
        """Availability of many hashes in as few calls as possible ({} when unsupported)."""
        ...

    async def acquire(
        self,
        candidate: Candidate,
        want: FileWant,
        probe: ProbeResult | None = None,
        *,
        settled: Settled | None = None,
    ) -> Acquired:
        """Reuse or add the release, keep it if ready with matching files, else clean up.

        Raises ``NotCached``, ``Infringing``, ``TorrentFailed``, ``NoMatchingFiles``,
        ``ServiceError`` subclasses, or the HTTP core's ``UpstreamError`` subclasses.
        A torrent added to check the release is deleted only after ``settled`` has been
        awaited with the error, so a caller that keeps it durably leaves, at any crash,
        either the verdict or the torrent in the account for its replay to find.
        """
        ...

    async def torrent(self, torrent_id: str) -> DebridTorrent:
        """The torrent's state now."""
        ...

    async def delete(self, torrent_id: str) -> None: ...

    async def aclose(self) -> None:
        """Let background deletes finish (before the HTTP clients close)."""
        ...


# -- plumbing the clients share --------------------------------------------------------


class ServiceHealth:
    """Whether a debrid service may be asked now: its own caps, the limiter and the breaker."""

    def __init__(self, name: str, client: HttpClient, clock: Clock) -> None:
        self._name = name
        self._client = client
        self._clock = clock
        self._paused_until: datetime | None = None
        self._reason = ""

    @property
    def capped_until(self) -> datetime | None:
        until = self._paused_until
        return until if until is not None and until > self._clock.now() else None

    @property
    def reason(self) -> str:
        return self._reason if self.capped_until is not None else ""

    @property
    def paused_until(self) -> datetime | None:
        now = self._clock.now()
        moments: list[datetime] = []
        capped = self.capped_until
        if capped is not None:
            moments.append(capped)
        limiter_pause = self._client.limiter.paused_for()
        if limiter_pause > 0:
            moments.append(now + timedelta(seconds=limiter_pause))
        breaker = self._client.breaker.stats()
        if breaker.state is BreakerState.OPEN:
            moments.append(now + timedelta(seconds=breaker.retry_in_s))
        return max(moments) if moments else None

    def pause(self, until: datetime, reason: str) -> None:
        """Keep the service paused until ``until`` (never shortens a longer pause)."""
        if self._paused_until is None or until > self._paused_until:
            self._paused_until = until
            self._reason = reason
            log.warning(
                "%s paused until %s: %s",
                self._name,
                until.isoformat(),
                reason,
                extra={"action": "debrid_pause", "service": self._name, "until": until.isoformat()},
            )

    def check(self) -> None:
        """Raise ``ServiceCapped`` while a cap or account pause is in force."""
        capped = self.capped_until
        if capped is not None:
            raise ServiceCapped(self._name, None, self._reason or "paused", capped)


def parse_payload(model: type[M], response: Response, data: Any = None) -> M:
    """Validate an upstream body (or ``data`` taken from it) against ``model``."""
    try:
        return model.model_validate(response.json() if data is None else data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise UpstreamPayloadError(
            response.service,
            response.status,
            response.url,
            f"unexpected shape at {where}: {first['msg']}",
            method=response.method,
        ) from None


class Cleanup:
    """Best-effort deletes that finish even when the caller is cancelled meanwhile."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Future[Any]] = set()

    async def run(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._keep(task)
        # Shielded: a cancelled acquire must still remove what it added.
        await asyncio.shield(task)

    async def undoable(
        self, work: Coroutine[Any, Any, T], undo: Callable[[T], Coroutine[Any, Any, None]]
    ) -> T:
        """Await ``work`` (an add); if the caller is cancelled meanwhile, undo its result.

        A cancelled POST may already have reached the service: the add goes on in the
        background and whatever it created is deleted as soon as its answer arrives.
        """
        task = asyncio.ensure_future(work)
        self._keep(task)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:

            def undo_later(done: asyncio.Future[T]) -> None:
                if not done.cancelled() and done.exception() is None:
                    self._keep(asyncio.ensure_future(undo(done.result())))

            task.add_done_callback(undo_later)
            raise

    def _keep(self, task: asyncio.Future[Any]) -> None:
        """Hold a reference until it is done (the loop keeps only weak ones)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Wait for the adds and deletes still running."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def poll_until(
    clock: Clock,
    fetch: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    timeout_s: float,
    interval_s: float,
    max_interval_s: float,
) -> tuple[T, bool]:
    """Fetch until ``done`` or ``timeout_s`` of the clock passed, with doubling pauses.

    Returns the last value and whether it is done. The first fetch happens at once.
    """
    deadline = clock.monotonic() + timeout_s
    delay = interval_s
    while True:
        value = await fetch()
        if done(value):
            return value, True
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            return value, False
        await clock.sleep(min(delay, remaining))
        delay = min(delay * 2, max_interval_s)


class AccountIndex:
    """Which torrent id holds an infohash in the account: a listing plus our own adds.

    The listing (``load``) is refreshed when older than ``ttl_s`` and only on a miss in
    what this process added itself, so our own adds are never forgotten by a listing
    that raced with them. It records ownership, not availability: every use of an id
    still fetches the torrent's state afresh.
    """

    def __init__(
        self,
        clock: Clock,
        ttl_s: float,
        load: Callable[[], Awaitable[Mapping[str, str]]],
    ) -> None:
        self._clock = clock
        self._ttl_s = ttl_s
        self._load = load
        self._listed: dict[str, str] = {}
        self._listed_at: float | None = None
        self._lock = asyncio.Lock()
        self._ours: dict[str, str] = {}

    async def lookup(self, infohash: str) -> str | None:
        ours = self._ours.get(infohash)
        if ours is not None:
            return ours
        seen = self._listed_at
        if seen is None or self._clock.monotonic() - seen >= self._ttl_s:
            async with self._lock:
                if self._listed_at == seen:  # nobody listed while we waited for the lock
                    self._listed = dict(await self._load())
                    self._listed_at = self._clock.monotonic()
        return self._listed.get(infohash)

    def added(self, infohash: str, torrent_id: str) -> None:
        self._ours[infohash] = torrent_id

    def owns(self, infohash: str, torrent_id: str) -> bool:
        return self._ours.get(infohash) == torrent_id

    def forget(self, infohash: str, torrent_id: str) -> None:
        if self._ours.get(infohash) == torrent_id:
            del self._ours[infohash]
        if self._listed.get(infohash) == torrent_id:
            del self._listed[infohash]

    def forget_id(self, torrent_id: str) -> None:
        for table in (self._ours, self._listed):
            for infohash in [h for h, ident in table.items() if ident == torrent_id]:
                del table[infohash]

"""Real-Debrid: a release is cached when add -> select files -> info says ``downloaded``."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, RootModel

from riven_async.core.clock import Clock, SystemClock
from riven_async.core.http import HttpClient, Params, Response
from riven_async.core.locks import KeyedLock
from riven_async.errors import UpstreamError, UpstreamUnavailable
from riven_async.services.debrid import (
    AccountError,
    AccountIndex,
    Acquired,
    Candidate,
    Cleanup,
    DebridTorrent,
    FileWant,
    Infringing,
    NoMatchingFiles,
    NotCached,
    ProbeResult,
    ServiceCapped,
    ServiceHealth,
    Settled,
    TorrentFailed,
    TorrentFile,
    TorrentGone,
    hand_over,
    parse_payload,
    poll_until,
)
from riven_async.services.debrid.file_selection import FileClassifier

log = logging.getLogger(__name__)

NAME: Final = "realdebrid"
DOWNLOADED: Final = "downloaded"
CONVERTING: Final = "magnet_conversion"
WAITING_SELECTION: Final = "waiting_files_selection"
FAILED_STATUSES = frozenset({"magnet_error", "error", "virus", "dead"})
# Every error status comes back as a Response so its error_code decides (429 stays with
# the HTTP core, which pauses the whole service for its Retry-After).
_ERROR_STATUSES = (*(s for s in range(400, 500) if s != 429), 500, 502, 503, 504)
_ACCOUNT_CODES = frozenset({8, 9, 10, 11, 12, 13, 14, 15, 22})
_SLOT_CODES = frozenset({21, 36})  # too many active downloads, fair usage limit
_TORRENT_CODES = frozenset({2, 24, 26, 28, 29, 30})  # bad magnet, too big, not allowed ...
_INFRINGING = 35
_TRAFFIC_EXHAUSTED = 23
_UNKNOWN_RESOURCE = 7


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class _RdFile(_Model):
    id: int
    path: str
    size: int = Field(default=0, alias="bytes")
    selected: int = 0


class _RdInfo(_Model):
    id: str
    filename: str = ""
    hash: str
    status: str
    progress: float = 0.0
    files: list[_RdFile] = Field(default_factory=list)


class _RdListed(_Model):
    id: str
    hash: str
    status: str = ""


class _RdList(RootModel[list[_RdListed]]):
    pass


class _RdAdded(_Model):
    id: str


class _RdError(_Model):
    error: str = ""
    error_code: int | None = None


class _Unsuitable(Exception):
    """A torrent already in the account is ready but lacks the wanted files selected."""


class RealDebrid:
    """The Real-Debrid client (REST 1.0).

    ``instantAvailability`` is gone, so a candidate is checked by adding it: addMagnet,
    info (polled through ``magnet_conversion`` for at most ``conversion_timeout_s``),
    selectFiles (the files that serve the want), info; ``downloaded`` means cached, and
    anything else deletes what was added. A torrent already in the account (the listing,
    refreshed every ``account_ttl_s``, plus what this client added) is reused instead of
    added twice. Availability itself is never cached: every check asks RD afresh.
    """

    def __init__(
        self,
        client: HttpClient,
        *,
        clock: Clock | None = None,
        name: str = NAME,
        conversion_timeout_s: float = 10.0,
        poll_interval_s: float = 1.0,
        poll_max_interval_s: float = 4.0,
        account_ttl_s: float = 60.0,
        list_page_size: int = 5000,
        max_list_pages: int = 4,
        cap_reset_hour_utc: int = 0,
        account_pause_s: float = 900.0,
        slots_pause_s: float = 600.0,
    ) -> None:
        if conversion_timeout_s < 0 or poll_interval_s <= 0 or poll_max_interval_s <= 0:
            raise ValueError("conversion_timeout_s >= 0 and poll intervals > 0 required")
        if not 1 <= list_page_size <= 5000 or max_list_pages < 1:
            raise ValueError("list_page_size must be 1..5000 and max_list_pages >= 1")
        if not 0 <= cap_reset_hour_utc <= 23:
            raise ValueError("cap_reset_hour_utc must be 0..23")
        self._client = client
        self._clock = clock or SystemClock()
        self._name = name
        self.conversion_timeout_s = conversion_timeout_s
        self.poll_interval_s = poll_interval_s
        self.poll_max_interval_s = poll_max_interval_s
        self.account_ttl_s = account_ttl_s
        self.list_page_size = list_page_size
        self.max_list_pages = max_list_pages
        self.cap_reset_hour_utc = cap_reset_hour_utc
        self.account_pause_s = account_pause_s
        self.slots_pause_s = slots_pause_s
        self._health = ServiceHealth(name, client, self._clock)
        self._locks = KeyedLock()
        self._cleanup = Cleanup()
        self._classifier = FileClassifier()
        self._index = AccountIndex(self._clock, account_ttl_s, self._list_account)

    def __repr__(self) -> str:
        return f"<RealDebrid {self._name}>"

    @property
    def name(self) -> str:
        return self._name

    @property
    def bulk_probe(self) -> bool:
        return False

    @property
    def paused_until(self) -> datetime | None:
        return self._health.paused_until

    @property
    def capped_until(self) -> datetime | None:
        """The traffic cap (or account) pause alone, for metrics."""
        return self._health.capped_until

    async def probe(self, infohashes: Sequence[str]) -> Mapping[str, ProbeResult]:
        return {}  # RD has no availability endpoint any more: acquire() checks by adding

    async def acquire(
        self,
        candidate: Candidate,
        want: FileWant,
        probe: ProbeResult | None = None,
        *,
        settled: Settled | None = None,
    ) -> Acquired:
        self._health.check()
        infohash = candidate.infohash
        async with self._locks(infohash):
            existing = await self._index.lookup(infohash)
            if existing is not None:
                owned = self._index.owns(infohash, existing)
                try:
                    return await self._settle(
                        existing, candidate, want, owned=owned, reused=True, settled=settled
                    )
                except TorrentGone:
                    self._index.forget(infohash, existing)
                except _Unsuitable:
                    log.info(
                        "%s: %s is in the account without the files for %s; adding it again",
                        self._name,
                        infohash,
                        want.describe(),
                        extra={"action": "debrid_readd", "service": self._name},
                    )
            torrent_id = await self._add(candidate)
            return await self._settle(
                torrent_id, candidate, want, owned=True, reused=False, settled=settled
            )

    async def torrent(self, torrent_id: str) -> DebridTorrent:
        return self._record(await self._info(torrent_id, None))

    async def delete(self, torrent_id: str) -> None:
        await self._call("DELETE", f"/torrents/delete/{torrent_id}", None)
        self._index.forget_id(torrent_id)

    async def aclose(self) -> None:
        """Let deletes still in flight finish (the HTTP client is closed by its owner)."""
        await self._cleanup.aclose()

    # -- steps --------------------------------------------------------------------------

    async def _settle(
        self,
        torrent_id: str,
        candidate: Candidate,
        want: FileWant,
        *,
        owned: bool,
        reused: bool,
        settled: Settled | None,
    ) -> Acquired:
        """From info to a ready torrent; whatever fails deletes the torrent if we own it
        (after ``settled`` heard why)."""
        try:
            return await self._check(torrent_id, candidate, want, reused=reused)
        except BaseException as exc:
            try:
                await hand_over(exc, settled)
            finally:
                if owned and not isinstance(exc, TorrentGone):
                    await self._discard(torrent_id, candidate.infohash)
            raise

    async def _check(
        self, torrent_id: str, candidate: Candidate, want: FileWant, *, reused: bool
    ) -> Acquired:
        infohash = candidate.infohash
        info = await self._wait_for_files(torrent_id, infohash)
        if info.status == WAITING_SELECTION:
            torrent = self._record(info)
            selection = await self._classifier.select_async(torrent.files, want)
            if not selection.satisfies(want):
                raise NoMatchingFiles(
                    self._name,
                    infohash,
                    f"no file for {want.describe()} among {len(torrent.files)} files",
                )
            await self._select(torrent_id, [f.id for f in selection.to_select], infohash)
            info = await self._info(torrent_id, infohash)
            self._raise_if_failed(info, infohash)
            if info.status != DOWNLOADED:
                raise NotCached(self._name, infohash, f"{info.status} after selecting files")
            return Acquired(self._record(info), selection, candidate, reused)
        if info.status == DOWNLOADED:
            torrent = self._record(info)
            selection = await self._classifier.select_async(torrent.selected_files, want)
            if not selection.satisfies(want):
                raise _Unsuitable
            return Acquired(torrent, selection, candidate, reused)
        raise NotCached(self._name, infohash, f"status {info.status}")

    async def _wait_for_files(self, torrent_id: str, infohash: str) -> _RdInfo:
        info, done = await poll_until(
            self._clock,
            lambda: self._info(torrent_id, infohash),
            lambda i: i.status != CONVERTING,
            timeout_s=self.conversion_timeout_s,
            interval_s=self.poll_interval_s,
            max_interval_s=self.poll_max_interval_s,
        )
        if not done:
            raise TorrentFailed(
                self._name,
                infohash,
                f"still in {CONVERTING} after {self.conversion_timeout_s:g}s; giving up",
            )
        self._raise_if_failed(info, infohash)
        return info

    def _raise_if_failed(self, info: _RdInfo, infohash: str) -> None:
        if info.status in FAILED_STATUSES:
            raise TorrentFailed(self._name, infohash, f"status {info.status}")

    async def _add(self, candidate: Candidate) -> str:
        infohash = candidate.infohash
        return await self._cleanup.undoable(
            self._post_add(candidate), lambda ident: self._orphaned(ident, infohash)
        )

    async def _orphaned(self, torrent_id: str, infohash: str) -> None:
        self._index.forget(infohash, torrent_id)
        await self._delete_quietly(torrent_id, infohash)

    async def _post_add(self, candidate: Candidate) -> str:
        response = await self._call(
            "POST",
            "/torrents/addMagnet",
            candidate.infohash,
            data={"magnet": f"magnet:?xt=urn:btih:{candidate.infohash}"},
        )
        added = parse_payload(_RdAdded, response)
        self._index.added(candidate.infohash, added.id)
        log.debug(
            "%s: added %s as %s",
            self._name,
            candidate.infohash,
            added.id,
            extra={"action": "debrid_add", "service": self._name},
        )
        return added.id

    async def _select(self, torrent_id: str, file_ids: Sequence[int], infohash: str) -> None:
        files = ",".join(str(i) for i in sorted(set(file_ids)))
        await self._call(
            "POST", f"/torrents/selectFiles/{torrent_id}", infohash, data={"files": files}
        )

    async def _info(self, torrent_id: str, infohash: str | None) -> _RdInfo:
        response = await self._call("GET", f"/torrents/info/{torrent_id}", infohash)
        return parse_payload(_RdInfo, response)

    async def _discard(self, torrent_id: str, infohash: str) -> None:
        self._index.forget(infohash, torrent_id)
        await self._cleanup.run(self._delete_quietly(torrent_id, infohash))

    async def _delete_quietly(self, torrent_id: str, infohash: str) -> None:
        try:
            await self._call("DELETE", f"/torrents/delete/{torrent_id}", infohash)
        except TorrentGone:
            pass
        except Exception as exc:  # the check's own outcome matters more than the cleanup
            log.warning(
                "%s: could not delete %s (%s): %s",
                self._name,
                torrent_id,
                infohash,
                exc,
                extra={"action": "debrid_delete", "service": self._name},
            )
        else:
            log.debug(
                "%s: deleted %s (%s)",
                self._name,
                torrent_id,
                infohash,
                extra={"action": "debrid_delete", "service": self._name},
            )

    # -- the account listing ------------------------------------------------------------

    async def _list_account(self) -> dict[str, str]:
        """infohash -> torrent id for every torrent in the account (a downloaded copy first)."""
        listed: dict[str, tuple[str, str]] = {}
        for page in range(1, self.max_list_pages + 1):
            params: Params = {"limit": self.list_page_size, "page": page}
            response = await self._call("GET", "/torrents", None, params=params)
            rows = parse_payload(_RdList, response).root
            for row in rows:
                key = row.hash.lower()
                held = listed.get(key)
                if held is None or (held[1] != DOWNLOADED and row.status == DOWNLOADED):
                    listed[key] = (row.id, row.status)
            total = _int_header(response, "X-Total-Count", len(rows))
            if len(rows) < self.list_page_size or page * self.list_page_size >= total:
                break
        return {key: ident for key, (ident, _) in listed.items()}

    # -- HTTP and errors ----------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        infohash: str | None,
        *,
        params: Params | None = None,
        data: Mapping[str, str] | None = None,
    ) -> Response:
        response = await self._client.request(
            method, path, params=params, data=data, accept=_ERROR_STATUSES
        )
        if response.status >= 400:
            self._raise_for(response, infohash)
        return response

    def _raise_for(self, response: Response, infohash: str | None) -> None:
        status = response.status
        error = _error_body(response)
        code = error.error_code
        what = self._client.scrub(error.error or f"HTTP {status}")
        if status == 451 or code == _INFRINGING:
            raise Infringing(self._name, infohash, f"{what} (HTTP {status})")
        if code == _TRAFFIC_EXHAUSTED:
            until = self._next_reset()
            self._health.pause(until, "traffic cap reached")
            raise ServiceCapped(self._name, infohash, f"{what} (HTTP {status})", until)
        if code in _SLOT_CODES:
            until = self._clock.now() + timedelta(seconds=self.slots_pause_s)
            self._health.pause(until, what)
            raise ServiceCapped(self._name, infohash, f"{what} (HTTP {status})", until)
        if status in (401, 403) or code in _ACCOUNT_CODES:
            until = self._clock.now() + timedelta(seconds=self.account_pause_s)
            self._health.pause(until, f"account refused: {what}")
            raise AccountError(self._name, infohash, f"{what} (HTTP {status})")
        if status == 404 or code == _UNKNOWN_RESOURCE:
            raise TorrentGone(self._name, infohash, f"{what} (HTTP {status})")
        if code in _TORRENT_CODES:
            raise TorrentFailed(self._name, infohash, f"{what} (HTTP {status})")
        error_type = UpstreamUnavailable if status == 503 else UpstreamError
        raise error_type(
            self._name, status, response.url, what, method=response.method, body=response.body
        )

    def _next_reset(self) -> datetime:
        now = self._clock.now().astimezone(UTC)
        reset = now.replace(hour=self.cap_reset_hour_utc, minute=0, second=0, microsecond=0)
        return reset if reset > now else reset + timedelta(days=1)

    def _record(self, info: _RdInfo) -> DebridTorrent:
        files = tuple(TorrentFile(f.id, f.path.lstrip("/"), f.size) for f in info.files)
        return DebridTorrent(
            service=self._name,
            torrent_id=info.id,
            infohash=info.hash.lower(),
            name=info.filename,
            status=info.status,
            files=files,
            selected_file_ids=tuple(f.id for f in info.files if f.selected),
            ready=info.status == DOWNLOADED,
            progress=max(0.0, min(1.0, info.progress / 100)),
        )


def _error_body(response: Response) -> _RdError:
    try:
        return _RdError.model_validate(response.json())
    except Exception:  # HTML from a proxy, an empty 451: the status alone must do
        return _RdError()


def _int_header(response: Response, name: str, default: int) -> int:
    raw = response.headers.get(name, "")
    return int(raw) if raw.isdigit() else default

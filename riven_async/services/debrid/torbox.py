"""TorBox: one checkcached call answers for many hashes; only cached ones are ever created."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from riven_async.core.clock import Clock, SystemClock
from riven_async.core.http import HttpClient, Params, Response
from riven_async.core.locks import KeyedLock
from riven_async.errors import UpstreamError, UpstreamUnavailable
from riven_async.services.debrid import (
    AccountError,
    Acquired,
    Availability,
    Candidate,
    Cleanup,
    DebridTorrent,
    FileWant,
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
    normalize_infohash,
    parse_payload,
    poll_until,
)
from riven_async.services.debrid.file_selection import FileClassifier

log = logging.getLogger(__name__)

NAME: Final = "torbox"
MAX_HASHES_PER_CHECK = 100
_ERROR_STATUSES = (*(s for s in range(400, 500) if s != 429), 500, 502, 503, 504)
_ACCOUNT_CODES = frozenset({"BAD_TOKEN", "NO_AUTH", "AUTH_ERROR", "PLAN_RESTRICTED_FEATURE"})
_CAPPED_CODES = frozenset({"ACTIVE_LIMIT", "MONTHLY_LIMIT", "COOLDOWN_LIMIT"})
_RATE_CODES = frozenset({"TOO_MANY_REQUESTS"})
_GONE_CODES = frozenset({"ITEM_NOT_FOUND"})
_TORRENT_CODES = frozenset({"DOWNLOAD_TOO_LARGE", "INVALID_OPTION", "MISSING_REQUIRED_OPTION"})
_FAILED_STATES = ("error", "failed")


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _TbEnvelope(_Model):
    success: bool
    error: str | None = None
    detail: str = ""
    data: Any = None


class _TbCachedFile(_Model):
    name: str
    size: int = 0


class _TbCached(_Model):
    name: str = ""
    hash: str = ""
    files: list[_TbCachedFile] = Field(default_factory=list)


class _TbCreated(_Model):
    torrent_id: int
    name: str = ""
    hash: str = ""


class _TbFile(_Model):
    id: int
    name: str
    size: int = 0


class _TbTorrent(_Model):
    id: int
    hash: str = ""
    name: str = ""
    download_state: str = ""
    download_finished: bool = False
    download_present: bool = False
    progress: float = 0.0
    files: list[_TbFile] = Field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.download_finished and self.download_present

    @property
    def failed(self) -> bool:
        return self.download_state.strip().lower().startswith(_FAILED_STATES)


class TorBox:
    """The TorBox client.

    ``probe`` asks ``checkcached`` for up to 100 hashes per call (an absent hash is not
    cached) and lists the files, so a release without the wanted files is turned down
    before anything is created. ``acquire`` creates only what checkcached called cached
    (TorBox answers an existing hash with the torrent already in the account), then
    polls ``mylist?id=&bypass_cache=true`` until ``download_finished`` and
    ``download_present``, for at most ``ready_timeout_s``; a torrent that never gets
    there (checkcached answers are up to an hour old) is deleted if we created it.
    """

    def __init__(
        self,
        client: HttpClient,
        *,
        clock: Clock | None = None,
        name: str = NAME,
        ready_timeout_s: float = 10.0,
        poll_interval_s: float = 1.0,
        poll_max_interval_s: float = 4.0,
        probe_batch: int = MAX_HASHES_PER_CHECK,
        account_pause_s: float = 900.0,
        capped_pause_s: float = 600.0,
        rate_pause_s: float = 60.0,
    ) -> None:
        if ready_timeout_s < 0 or poll_interval_s <= 0 or poll_max_interval_s <= 0:
            raise ValueError("ready_timeout_s >= 0 and poll intervals > 0 required")
        if not 1 <= probe_batch <= MAX_HASHES_PER_CHECK:
            raise ValueError(f"probe_batch must be 1..{MAX_HASHES_PER_CHECK}")
        self._client = client
        self._clock = clock or SystemClock()
        self._name = name
        self.ready_timeout_s = ready_timeout_s
        self.poll_interval_s = poll_interval_s
        self.poll_max_interval_s = poll_max_interval_s
        self.probe_batch = probe_batch
        self.account_pause_s = account_pause_s
        self.capped_pause_s = capped_pause_s
        self.rate_pause_s = rate_pause_s
        self._health = ServiceHealth(name, client, self._clock)
        self._locks = KeyedLock()
        self._cleanup = Cleanup()
        self._classifier = FileClassifier()
        self._ours: dict[str, str] = {}  # infohash -> torrent id this client created

    def __repr__(self) -> str:
        return f"<TorBox {self._name}>"

    @property
    def name(self) -> str:
        return self._name

    @property
    def bulk_probe(self) -> bool:
        return True

    @property
    def paused_until(self) -> datetime | None:
        return self._health.paused_until

    @property
    def capped_until(self) -> datetime | None:
        return self._health.capped_until

    async def probe(self, infohashes: Sequence[str]) -> Mapping[str, ProbeResult]:
        self._health.check()
        wanted = list(dict.fromkeys(normalize_infohash(h) for h in infohashes))
        results: dict[str, ProbeResult] = {}
        for start in range(0, len(wanted), self.probe_batch):
            batch = wanted[start : start + self.probe_batch]
            params: Params = {"hash": ",".join(batch), "format": "object", "list_files": True}
            response, envelope = await self._call(
                "GET", "/torrents/checkcached", None, params=params
            )
            found = _cached_entries(envelope.data)
            for infohash in batch:
                entry = found.get(infohash)
                if entry is None:
                    results[infohash] = ProbeResult(infohash, Availability.NOT_CACHED)
                    continue
                cached = parse_payload(_TbCached, response, entry)
                files = tuple(TorrentFile(i, f.name, f.size) for i, f in enumerate(cached.files))
                results[infohash] = ProbeResult(infohash, Availability.CACHED, cached.name, files)
        return results

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
        if probe is None or probe.availability is Availability.UNKNOWN:
            probe = (await self.probe([infohash]))[infohash]
        if probe.availability is Availability.NOT_CACHED:
            raise NotCached(self._name, infohash, "not in checkcached")
        if probe.files:
            early = await self._classifier.select_async(probe.files, want)
            if not early.satisfies(want):
                raise NoMatchingFiles(
                    self._name,
                    infohash,
                    f"no file for {want.describe()} among {len(probe.files)} files",
                )
        async with self._locks(infohash):
            ours = self._ours.get(infohash)
            if ours is not None:
                try:
                    return await self._settle(
                        ours, candidate, want, owned=True, reused=True, settled=settled
                    )
                except TorrentGone:
                    pass
            torrent_id, existed = await self._cleanup.undoable(
                self._create(candidate), lambda made: self._orphaned(made, infohash)
            )
            return await self._settle(
                torrent_id, candidate, want, owned=not existed, reused=existed, settled=settled
            )

    async def torrent(self, torrent_id: str) -> DebridTorrent:
        return self._record(await self._mylist(torrent_id, None))

    async def delete(self, torrent_id: str) -> None:
        await self._control(torrent_id, None)
        for infohash in [h for h, ident in self._ours.items() if ident == torrent_id]:
            del self._ours[infohash]

    async def aclose(self) -> None:
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
        """Wait until ready and match files; on any failure delete the torrent if ours
        (after ``settled`` heard why)."""
        infohash = candidate.infohash
        try:
            torrent = await self._wait_ready(torrent_id, infohash)
            selection = await self._classifier.select_async(torrent.files, want)
            if not selection.satisfies(want):
                raise NoMatchingFiles(
                    self._name,
                    infohash,
                    f"no file for {want.describe()} among {len(torrent.files)} files",
                )
            return Acquired(torrent, selection, candidate, reused=reused)
        except BaseException as exc:
            if self._ours.get(infohash) == torrent_id:
                del self._ours[infohash]
            try:
                await hand_over(exc, settled)
            finally:
                if owned and not isinstance(exc, TorrentGone):
                    await self._cleanup.run(self._delete_quietly(torrent_id, infohash))
            raise

    async def _create(self, candidate: Candidate) -> tuple[str, bool]:
        """Create the torrent; whether it was in the account already."""
        infohash = candidate.infohash
        form = {"magnet": f"magnet:?xt=urn:btih:{infohash}", "allow_zip": "false"}
        response, envelope = await self._call(
            "POST", "/torrents/createtorrent", infohash, form=form
        )
        created = parse_payload(_TbCreated, response, envelope.data)
        torrent_id = str(created.torrent_id)
        # TorBox answers a hash already in the account with that torrent ("already exists").
        existed = "already" in envelope.detail.lower()
        if not existed:
            self._ours[infohash] = torrent_id
        return torrent_id, existed

    async def _wait_ready(self, torrent_id: str, infohash: str) -> DebridTorrent:
        listed, settled = await poll_until(
            self._clock,
            lambda: self._mylist(torrent_id, infohash),
            lambda t: t.done or t.failed,
            timeout_s=self.ready_timeout_s,
            interval_s=self.poll_interval_s,
            max_interval_s=self.poll_max_interval_s,
        )
        if listed.failed:
            raise TorrentFailed(self._name, infohash, f"state {listed.download_state!r}")
        if not settled:
            raise NotCached(
                self._name,
                infohash,
                f"{listed.download_state or 'not finished'} after {self.ready_timeout_s:g}s "
                "(checkcached was stale); giving up",
            )
        return self._record(listed)

    async def _mylist(self, torrent_id: str, infohash: str | None) -> _TbTorrent:
        params: Params = {"id": torrent_id, "bypass_cache": True}
        response, envelope = await self._call("GET", "/torrents/mylist", infohash, params=params)
        return parse_payload(_TbTorrent, response, envelope.data)

    async def _control(self, torrent_id: str, infohash: str | None) -> None:
        body = {"torrent_id": int(torrent_id), "operation": "delete", "all": False}
        await self._call("POST", "/torrents/controltorrent", infohash, json=body)

    async def _orphaned(self, created: tuple[str, bool], infohash: str) -> None:
        torrent_id, existed = created
        if existed:
            return  # not ours: TorBox handed back a torrent already in the account
        if self._ours.get(infohash) == torrent_id:
            del self._ours[infohash]
        await self._delete_quietly(torrent_id, infohash)

    async def _delete_quietly(self, torrent_id: str, infohash: str) -> None:
        try:
            await self._control(torrent_id, infohash)
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

    # -- HTTP and errors ----------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        infohash: str | None,
        *,
        params: Params | None = None,
        form: Mapping[str, str] | None = None,
        json: object = None,
    ) -> tuple[Response, _TbEnvelope]:
        """Send one request; return the response and its envelope, or raise the mapped error."""
        response = await self._client.request(
            method,
            path,
            params=params,
            data=form,
            json=json,
            accept=_ERROR_STATUSES,
            # controltorrent delete is safe to repeat; createtorrent is not.
            idempotent=True if json is not None else None,
        )
        envelope = self._envelope(response)
        if not envelope.success or response.status >= 400:
            self._raise_code(envelope, response, infohash)
        return response, envelope

    def _envelope(self, response: Response) -> _TbEnvelope:
        try:
            return _TbEnvelope.model_validate(response.json())
        except Exception:
            if response.status >= 400:
                error_type = UpstreamUnavailable if response.status == 503 else UpstreamError
                raise error_type(
                    self._name,
                    response.status,
                    response.url,
                    "error without a TorBox body",
                    method=response.method,
                    body=response.body,
                ) from None
            return parse_payload(_TbEnvelope, response)

    def _raise_code(self, envelope: _TbEnvelope, response: Response, infohash: str | None) -> None:
        code = envelope.error or ""
        what = self._client.scrub(f"{code or 'error'}: {envelope.detail}".rstrip(": "))
        if code in _ACCOUNT_CODES:
            until = self._clock.now() + timedelta(seconds=self.account_pause_s)
            self._health.pause(until, f"account refused: {code}")
            raise AccountError(self._name, infohash, what)
        if code in _CAPPED_CODES or code in _RATE_CODES:
            pause = self.rate_pause_s if code in _RATE_CODES else self.capped_pause_s
            until = self._clock.now() + timedelta(seconds=pause)
            self._health.pause(until, code)
            raise ServiceCapped(self._name, infohash, what, until)
        if code in _GONE_CODES:
            raise TorrentGone(self._name, infohash, what)
        if code in _TORRENT_CODES:
            raise TorrentFailed(self._name, infohash, what)
        status = response.status
        error_type = UpstreamUnavailable if status >= 500 else UpstreamError
        raise error_type(
            self._name, status, response.url, what, method=response.method, body=response.body
        )

    def _record(self, listed: _TbTorrent) -> DebridTorrent:
        files = tuple(TorrentFile(f.id, f.name.lstrip("/"), f.size) for f in listed.files)
        return DebridTorrent(
            service=self._name,
            torrent_id=str(listed.id),
            infohash=listed.hash.lower(),
            name=listed.name,
            status=listed.download_state,
            files=files,
            selected_file_ids=tuple(f.id for f in files),
            ready=listed.done,
            progress=max(0.0, min(1.0, listed.progress)),
        )


def _cached_entries(data: Any) -> dict[str, Any]:
    """checkcached's ``data`` by lowercase hash (``format=object`` or ``list``; {} for none)."""
    if isinstance(data, dict):
        return {str(k).lower(): v for k, v in data.items() if isinstance(v, dict)}
    if isinstance(data, list):
        return {
            str(v.get("hash", "")).lower(): v for v in data if isinstance(v, dict) and v.get("hash")
        }
    return {}

"""AllDebrid (v4/v4.1): upload a magnet; its ``ready`` flag says cached; delete it if not."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from riven_async.core.clock import Clock, SystemClock
from riven_async.core.http import HttpClient, Response
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
)
from riven_async.services.debrid.file_selection import FileClassifier

log = logging.getLogger(__name__)

NAME: Final = "alldebrid"
READY: Final = 4
# Statuses other than 429 come back as a Response: AllDebrid's error.code decides.
_ERROR_STATUSES = (*(s for s in range(400, 500) if s != 429), 500, 502, 503, 504)
_ACCOUNT_CODES = frozenset(
    {
        "AUTH_MISSING_APIKEY", "AUTH_BAD_APIKEY", "AUTH_BLOCKED", "AUTH_USER_BANNED",
        "AUTH_MISSING_AGENT", "AUTH_BAD_AGENT", "MUST_BE_PREMIUM", "MAGNET_MUST_BE_PREMIUM",
        "FREE_TRIAL_LIMIT_REACHED",
    }
)  # fmt: skip
_CAPPED_CODES = frozenset(
    {"MAGNET_TOO_MANY", "MAGNET_TOO_MANY_ACTIVE", "MAGNET_PROCESSING_COOLDOWN"}
)
_TORRENT_CODES = frozenset(
    {
        "MAGNET_INVALID_URI", "MAGNET_INVALID_FILE", "MAGNET_FILE_UPLOAD_FAILED",
        "MAGNET_NO_URI", "MAGNET_PROCESSING_FAILED", "MAGNET_NO_SERVER",
    }
)  # fmt: skip
_GONE_CODES = frozenset({"MAGNET_INVALID_ID"})
_RATE_CODES = frozenset({"TOO_MANY_REQUESTS"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class _AdError(_Model):
    code: str = ""
    message: str = ""


class _AdEnvelope(_Model):
    status: str
    data: dict[str, Any] | None = None
    error: _AdError | None = None


class _AdUploaded(_Model):
    id: int | None = None
    hash: str = ""
    name: str = ""
    ready: bool = False
    error: _AdError | None = None


class _AdUploads(_Model):
    magnets: list[_AdUploaded]


class _AdNode(_Model):
    name: str = Field(alias="n")
    size: int | None = Field(default=None, alias="s")
    children: list[_AdNode] | None = Field(default=None, alias="e")


class _AdStatus(_Model):
    id: int
    filename: str = ""
    hash: str = ""
    status: str = ""
    status_code: int = Field(alias="statusCode")
    files: list[_AdNode] | None = None


class _AdStatusList(_Model):
    magnets: list[_AdStatus]


class _AdStatusOne(_Model):
    magnets: _AdStatus


class _AdFilesEntry(_Model):
    id: int | str
    files: list[_AdNode] = Field(default_factory=list)
    error: _AdError | None = None


class _AdFiles(_Model):
    magnets: list[_AdFilesEntry]


class AllDebrid:
    """The AllDebrid client: upload (``ready`` = cached), files tree, status, delete.

    A candidate costs two calls: upload then files when ready, upload then delete when
    not. Magnets already in the account (a listing refreshed every ``account_ttl_s``,
    plus what this client uploaded) are reused instead of uploaded again. Errors that
    arrive as HTTP 200 with ``status: "error"`` are errors like any other.
    """

    def __init__(
        self,
        client: HttpClient,
        *,
        clock: Clock | None = None,
        name: str = NAME,
        account_ttl_s: float = 60.0,
        account_pause_s: float = 900.0,
        capped_pause_s: float = 600.0,
        rate_pause_s: float = 60.0,
    ) -> None:
        self._client = client
        self._clock = clock or SystemClock()
        self._name = name
        self.account_pause_s = account_pause_s
        self.capped_pause_s = capped_pause_s
        self.rate_pause_s = rate_pause_s
        self._health = ServiceHealth(name, client, self._clock)
        self._locks = KeyedLock()
        self._cleanup = Cleanup()
        self._classifier = FileClassifier()
        self._index = AccountIndex(self._clock, account_ttl_s, self._list_account)

    def __repr__(self) -> str:
        return f"<AllDebrid {self._name}>"

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
        return self._health.capped_until

    async def probe(self, infohashes: Sequence[str]) -> Mapping[str, ProbeResult]:
        # magnet/instant is gone; uploading many at once would start downloads of every
        # uncached one and cost a delete each, so acquire() checks one candidate at a time.
        return {}

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
                    status = await self._status(existing, infohash)
                    return await self._settle(
                        existing,
                        status.filename,
                        status.status_code,
                        candidate,
                        want,
                        owned=owned,
                        reused=True,
                        settled=settled,
                    )
                except TorrentGone:
                    self._index.forget(infohash, existing)
            uploaded = await self._cleanup.undoable(
                self._upload(candidate), lambda u: self._orphaned(str(u.id), infohash)
            )
            ident = str(uploaded.id)
            return await self._settle(
                ident,
                uploaded.name,
                READY if uploaded.ready else 0,
                candidate,
                want,
                owned=True,
                reused=False,
                settled=settled,
            )

    async def torrent(self, torrent_id: str) -> DebridTorrent:
        status = await self._status(torrent_id, None)
        files: tuple[TorrentFile, ...] = ()
        if status.status_code == READY:
            files = (
                _flatten(status.files)
                if status.files is not None
                else await self._files(torrent_id, status.hash or None)
            )
        return self._record(torrent_id, status.hash, status.filename, status, files)

    async def delete(self, torrent_id: str) -> None:
        await self._call("/v4/magnet/delete", {"id": torrent_id}, None, idempotent=True)
        self._index.forget_id(torrent_id)

    async def aclose(self) -> None:
        await self._cleanup.aclose()

    # -- steps --------------------------------------------------------------------------

    async def _settle(
        self,
        magnet_id: str,
        name: str,
        status_code: int,
        candidate: Candidate,
        want: FileWant,
        *,
        owned: bool,
        reused: bool,
        settled: Settled | None,
    ) -> Acquired:
        infohash = candidate.infohash
        try:
            if status_code > READY:
                raise TorrentFailed(self._name, infohash, f"status code {status_code}")
            if status_code != READY:
                raise NotCached(self._name, infohash, f"not ready (status code {status_code})")
            files = await self._files(magnet_id, infohash)
            selection = await self._classifier.select_async(files, want)
            if not selection.satisfies(want):
                raise NoMatchingFiles(
                    self._name, infohash, f"no file for {want.describe()} among {len(files)} files"
                )
            torrent = DebridTorrent(
                service=self._name,
                torrent_id=magnet_id,
                infohash=infohash,
                name=name,
                status="Ready",
                files=files,
                selected_file_ids=tuple(f.id for f in files),
                ready=True,
                progress=1.0,
            )
            return Acquired(torrent, selection, candidate, reused)
        except BaseException as exc:
            try:
                await hand_over(exc, settled)  # before the magnet proving the check goes
            finally:
                if owned and not isinstance(exc, TorrentGone):
                    self._index.forget(infohash, magnet_id)
                    await self._cleanup.run(self._delete_quietly(magnet_id, infohash))
            raise

    async def _upload(self, candidate: Candidate) -> _AdUploaded:
        infohash = candidate.infohash
        response, data = await self._call(
            "/v4/magnet/upload", {"magnets[]": f"magnet:?xt=urn:btih:{infohash}"}, infohash
        )
        uploads = parse_payload(_AdUploads, response, data).magnets
        if not uploads:
            raise UpstreamError(
                self._name, response.status, response.url, "upload answered no magnet"
            )
        uploaded = uploads[0]
        if uploaded.error is not None:
            self._raise_code(uploaded.error, response, infohash)
        if uploaded.id is None:
            raise UpstreamError(self._name, response.status, response.url, "upload without id")
        self._index.added(infohash, str(uploaded.id))
        return uploaded

    async def _status(self, magnet_id: str, infohash: str | None) -> _AdStatus:
        response, data = await self._call(
            "/v4.1/magnet/status", {"id": magnet_id}, infohash, idempotent=True
        )
        return parse_payload(_AdStatusOne, response, data).magnets

    async def _files(self, magnet_id: str, infohash: str | None) -> tuple[TorrentFile, ...]:
        response, data = await self._call(
            "/v4/magnet/files", {"id[]": magnet_id}, infohash, idempotent=True
        )
        entries = parse_payload(_AdFiles, response, data).magnets
        entry = next((e for e in entries if str(e.id) == magnet_id), None)
        if entry is None:
            raise TorrentGone(self._name, infohash, f"magnet {magnet_id} missing from files")
        if entry.error is not None:
            self._raise_code(entry.error, response, infohash)
        return _flatten(entry.files)

    async def _list_account(self) -> dict[str, str]:
        response, data = await self._call("/v4.1/magnet/status", {}, None, idempotent=True)
        listed: dict[str, tuple[str, int]] = {}
        for magnet in parse_payload(_AdStatusList, response, data).magnets:
            key = magnet.hash.lower()
            held = listed.get(key)
            if held is None or (held[1] != READY and magnet.status_code == READY):
                listed[key] = (str(magnet.id), magnet.status_code)
        return {key: ident for key, (ident, _) in listed.items()}

    async def _orphaned(self, magnet_id: str, infohash: str) -> None:
        self._index.forget(infohash, magnet_id)
        await self._delete_quietly(magnet_id, infohash)

    async def _delete_quietly(self, magnet_id: str, infohash: str) -> None:
        try:
            await self._call("/v4/magnet/delete", {"id": magnet_id}, infohash, idempotent=True)
        except TorrentGone:
            pass
        except Exception as exc:  # the check's own outcome matters more than the cleanup
            log.warning(
                "%s: could not delete %s (%s): %s",
                self._name,
                magnet_id,
                infohash,
                exc,
                extra={"action": "debrid_delete", "service": self._name},
            )

    # -- HTTP and errors ----------------------------------------------------------------

    async def _call(
        self,
        path: str,
        form: Mapping[str, str],
        infohash: str | None,
        *,
        idempotent: bool = False,
    ) -> tuple[Response, dict[str, Any]]:
        """POST a form; return the response and its ``data`` or raise the mapped error."""
        response = await self._client.post(
            path, data=form, accept=_ERROR_STATUSES, idempotent=idempotent
        )
        envelope = self._envelope(response)
        if envelope.status != "success" or response.status >= 400:
            self._raise_code(envelope.error or _AdError(), response, infohash)
        return response, envelope.data or {}

    def _envelope(self, response: Response) -> _AdEnvelope:
        try:
            return _AdEnvelope.model_validate(response.json())
        except Exception:
            if response.status >= 400:
                error_type = UpstreamUnavailable if response.status == 503 else UpstreamError
                raise error_type(
                    self._name,
                    response.status,
                    response.url,
                    "error without an AllDebrid body",
                    method=response.method,
                    body=response.body,
                ) from None
            return parse_payload(_AdEnvelope, response)

    def _raise_code(self, error: _AdError, response: Response, infohash: str | None) -> None:
        code = error.code
        what = self._client.scrub(f"{code or 'error'}: {error.message}".rstrip(": "))
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
        outage = status >= 500 or code == "MAINTENANCE"
        error_type = UpstreamUnavailable if outage else UpstreamError
        raise error_type(
            self._name, status, response.url, what, method=response.method, body=response.body
        )

    def _record(
        self,
        magnet_id: str,
        infohash: str,
        name: str,
        status: _AdStatus,
        files: tuple[TorrentFile, ...],
    ) -> DebridTorrent:
        ready = status.status_code == READY
        return DebridTorrent(
            service=self._name,
            torrent_id=magnet_id,
            infohash=infohash.lower(),
            name=name,
            status=status.status or str(status.status_code),
            files=files,
            selected_file_ids=tuple(f.id for f in files),
            ready=ready,
            progress=1.0 if ready else 0.0,
        )


def _flatten(nodes: Sequence[_AdNode] | None) -> tuple[TorrentFile, ...]:
    """The ``{n, s, e}`` tree as files (depth first, ids in that order), paths joined by /."""
    files: list[TorrentFile] = []

    def walk(children: Sequence[_AdNode], prefix: str) -> None:
        for node in children:
            path = f"{prefix}{node.name}"
            if node.children is not None:
                walk(node.children, path + "/")
            else:
                files.append(TorrentFile(len(files), path, node.size or 0))

    walk(nodes or (), "")
    return tuple(files)

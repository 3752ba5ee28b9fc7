"""AllDebrid v4/v4.1: magnets uploaded, polled through status codes, unpacked as file trees."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import hdrs, web
from multidict import MultiDict, MultiDictProxy

from riven_async.sim.harness import Sim
from riven_async.sim.limits import Verdict
from riven_async.sim.realdebrid import magnet_hash
from riven_async.sim.releases import Release
from riven_async.sim.responses import epoch_s, json_response
from riven_async.sim.transfers import Phase, Transfer, cancel_transfer, start_transfer
from riven_async.sim.world import SimWorld

SERVICE = "alldebrid"
STALL_LIMIT = timedelta(minutes=20)
_POST_PROCESSING = (timedelta(seconds=10), timedelta(seconds=20))  # compressing, uploading
_MESSAGES = {
    "AUTH_MISSING_APIKEY": "The auth apikey was not sent",
    "AUTH_BAD_APIKEY": "The auth apikey is invalid",
    "MAGNET_INVALID_ID": "This magnet ID does not exists or is invalid",
    "MAGNET_INVALID_URI": "This magnet is not valid",
    "MAGNET_NO_URI": "No magnet sent",
    "LINK_DOWN": "This link is not available on the file hoster website",
    "DISCONTINUED": "This endpoint is discontinued, please migrate to the latest version",
    "TOO_MANY_REQUESTS": "Too many requests",
    "GENERIC": "An orror occured",
    "MAINTENANCE": "AllDebrid is under maintenance, retry later",
}
_STATUS_TEXT = {
    0: "In Queue",
    1: "Downloading",
    2: "Compressing & moving",
    3: "Uploading",
    4: "Ready",
    7: "Torrent not downloaded in 20 min",
}


@dataclass(frozen=True, slots=True)
class AdMagnet:
    """One uploaded magnet and the transfer that fetches it."""

    id: int
    infohash: str
    release: Release | None
    uploaded_at: datetime
    transfer: Transfer | None

    @property
    def owner(self) -> str:
        return f"{SERVICE}:{self.id}"

    def status_code(self, now: datetime) -> int:
        transfer = self.transfer
        if transfer is None:
            return 0
        if transfer.done_at is None:
            return 7 if now - self.uploaded_at >= STALL_LIMIT else 1
        if transfer.cached or now >= transfer.done_at:
            return 4
        phase = transfer.phase(now)
        if phase is Phase.QUEUED:
            return 0
        download_end = transfer.done_at - sum(_POST_PROCESSING, timedelta())
        if now < download_end:
            return 1
        return 2 if now < download_end + _POST_PROCESSING[0] else 3


class AllDebridSim(Sim):
    """``https://api.alldebrid.com`` (``/v4``, ``/v4.1``): 12/s and 600/min.

    Errors come as ``{"status": "error", "error": {code, message}}`` with the HTTP status of
    ``ad_errors.json``; upload errors sit inside a success per magnet. ``errors_as_200``
    makes every error HTTP 200, as older AllDebrid did, so clients must read ``status``.
    """

    name = SERVICE
    default_limits = ("12/1s", "600/60s")

    def __init__(self, world: SimWorld, api_key: str, queue_s: float = 30.0) -> None:
        super().__init__(world, api_key)
        self.queue_s = queue_s
        self.magnets: dict[int, AdMagnet] = {}
        self.uploads_per_hash: Counter[str] = Counter()
        self.deleted: list[int] = []
        self.legacy_auth_uses = 0
        self.errors_as_200 = False
        self._next_id = 250_000_000 + world.catalog.seed % 1000 * 1000

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/v4/user", self.user)
        for method in ("GET", "POST"):
            router.add_route(method, "/v4/magnet/upload", self.upload)
            router.add_route(method, "/v4.1/magnet/status", self.status)
            router.add_route(method, "/v4/magnet/status", self.discontinued)
            router.add_route(method, "/v4/magnet/files", self.files)
            router.add_route(method, "/v4/magnet/delete", self.delete)
            router.add_route(method, "/v4/link/unlock", self.unlock)

    def error(self, status: int, code: str) -> web.Response:
        body = {"status": "error", "error": {"code": code, "message": _MESSAGES[code]}}
        return json_response(body, status=200 if self.errors_as_200 else status)

    def authenticate(self, request: web.Request) -> web.StreamResponse | None:
        header = request.headers.get(hdrs.AUTHORIZATION, "")
        token = header[7:].strip() if header.startswith("Bearer ") else ""
        legacy = request.query.get("apikey")
        if token == self.api_key:
            return None
        if legacy == self.api_key:
            self.legacy_auth_uses += 1
            return None
        return self.error(401, "AUTH_BAD_APIKEY" if token or legacy else "AUTH_MISSING_APIKEY")

    def rate_limited(self, request: web.Request, verdict: Verdict) -> web.StreamResponse:
        response = self.error(429, "TOO_MANY_REQUESTS")
        response.headers[hdrs.RETRY_AFTER] = verdict.retry_after_header
        return response

    def server_error(self, request: web.Request, status: int) -> web.StreamResponse:
        return self.error(status, "MAINTENANCE" if status == 503 else "GENERIC")

    def not_found(self, request: web.Request) -> web.StreamResponse:
        body = {"status": "error", "error": {"code": "404", "message": "Endpoint doesn't exist"}}
        return json_response(body, status=404)

    def stats(self) -> dict[str, Any]:
        return {
            "magnets": len(self.magnets),
            "uploads_per_hash": dict(self.uploads_per_hash),
            "deleted": len(self.deleted),
            "legacy_auth_uses": self.legacy_auth_uses,
        }

    async def user(self, request: web.Request) -> web.Response:
        until = epoch_s(self.world.now() + timedelta(days=180))
        return _success(
            {
                "user": {
                    "username": "simuser",
                    "email": "simuser@example.com",
                    "isPremium": True,
                    "isSubscribed": False,
                    "isTrial": False,
                    "premiumUntil": until,
                    "lang": "en",
                    "preferedDomain": "com",
                    "fidelityPoints": 150,
                    "limitedHostersQuotas": {},
                    "notifications": [],
                }
            }
        )

    async def upload(self, request: web.Request) -> web.Response:
        params = await _params(request)
        magnets = params.getall("magnets[]", []) + params.getall("magnets", [])
        if not magnets:
            return self.error(400, "MAGNET_NO_URI")
        return _success({"magnets": [self._upload_one(str(m)) for m in magnets]})

    def _upload_one(self, magnet: str) -> dict[str, Any]:
        infohash = magnet_hash(magnet)
        if infohash is None:
            code = "MAGNET_INVALID_URI"
            return {"magnet": magnet, "error": {"code": code, "message": _MESSAGES[code]}}
        now = self.world.now()
        release = self.world.catalog.release(infohash)
        self._next_id += 1
        owner = f"{SERVICE}:{self._next_id}"
        transfer = None
        if release is not None:
            indexes = list(range(len(release.files)))
            transfer = start_transfer(
                self.world, SERVICE, owner, release, indexes, now, self.queue_s
            )
        entry = AdMagnet(self._next_id, infohash, release, now, transfer)
        self.magnets[entry.id] = entry
        self.uploads_per_hash[infohash] += 1
        return {
            "magnet": magnet,
            "hash": infohash,
            "name": release.name if release else infohash,
            "filename_original": "",
            "size": release.size if release else 0,
            "ready": entry.status_code(now) == 4,
            "id": entry.id,
        }

    async def status(self, request: web.Request) -> web.Response:
        params = await _params(request)
        now = self.world.now()
        if "id" in params:
            entry = self._magnet(str(params["id"]))
            if entry is None:
                return self.error(404, "MAGNET_INVALID_ID")
            return _success({"magnets": self._status(entry, now, with_files=True)})
        wanted = str(params.get("status", ""))
        groups = {"active": {0, 1, 2, 3}, "ready": {4}, "error": {7}, "expired": set()}
        listed = [
            self._status(m, now, with_files=False)
            for m in self.magnets.values()
            if not wanted or m.status_code(now) in groups.get(wanted, set())
        ]
        return _success({"magnets": listed})

    async def discontinued(self, request: web.Request) -> web.Response:
        return self.error(400, "DISCONTINUED")

    def _status(self, entry: AdMagnet, now: datetime, with_files: bool) -> dict[str, Any]:
        code = entry.status_code(now)
        transfer, release = entry.transfer, entry.release
        size = release.size if release else 0
        downloaded = transfer.downloaded(now) if transfer else 0
        body: dict[str, Any] = {
            "id": entry.id,
            "filename": release.name if release else entry.infohash,
            "size": size,
            "hash": entry.infohash,
            "status": _STATUS_TEXT[code],
            "statusCode": code,
            "downloaded": downloaded,
            "uploaded": size if code == 4 else 0,
            "seeders": release.seeders if release and code < 4 else 0,
            "downloadSpeed": transfer.current_speed(now) if transfer and code == 1 else 0,
            "processingPerc": 0,
            "uploadSpeed": 0,
            "uploadDate": epoch_s(entry.uploaded_at),
            "completionDate": epoch_s(transfer.done_at)
            if code == 4 and transfer and transfer.done_at
            else 0,
            "type": "m",
            "notified": False,
            "version": 2,
            "nbLinks": len(release.files) if code == 4 and release else 0,
        }
        if with_files and code == 4 and release is not None:
            body["files"] = self._tree(entry, release)
        return body

    async def files(self, request: web.Request) -> web.Response:
        params = await _params(request)
        ids = params.getall("id[]", []) + params.getall("id", [])
        now = self.world.now()
        out: list[dict[str, Any]] = []
        for raw in ids:
            entry = self._magnet(str(raw))
            if entry is None:
                code = "MAGNET_INVALID_ID"
                out.append({"id": str(raw), "error": {"code": code, "message": _MESSAGES[code]}})
            elif entry.release is None or entry.status_code(now) != 4:
                out.append({"id": str(entry.id), "files": []})
            else:
                out.append({"id": str(entry.id), "files": self._tree(entry, entry.release)})
        return _success({"magnets": out})

    async def delete(self, request: web.Request) -> web.Response:
        params = await _params(request)
        entry = self._magnet(str(params.get("id", "")))
        if entry is None:
            return self.error(404, "MAGNET_INVALID_ID")
        del self.magnets[entry.id]
        self.deleted.append(entry.id)
        cancel_transfer(self.world, SERVICE, entry.owner, entry.infohash)
        return _success({"message": "Magnet was successfully deleted"})

    async def unlock(self, request: web.Request) -> web.Response:
        params = await _params(request)
        link = str(params.get("link", ""))
        code = link.rstrip("/").rsplit("/", 1)[-1]
        for entry in self.magnets.values():
            if entry.release is None:
                continue
            for index, item in enumerate(entry.release.files):
                if _link_code(entry.infohash, index) == code:
                    return _success(
                        {
                            "link": f"https://{code[:6].lower()}.debrid.it/dl/{code}/{item.name}",
                            "host": "alldebrid",
                            "filename": item.name,
                            "streaming": [],
                            "paws": False,
                            "filesize": item.size,
                            "id": code,
                            "hostDomain": "alldebrid.com",
                        }
                    )
        return self.error(200, "LINK_DOWN")

    def _magnet(self, raw: str) -> AdMagnet | None:
        return self.magnets.get(int(raw)) if raw.isdigit() else None

    def _tree(self, entry: AdMagnet, release: Release) -> list[dict[str, Any]]:
        root: dict[str, Any] = {}
        for index, item in enumerate(release.files):
            *folders, name = item.path.split("/")
            node = root
            for folder in folders:
                node = node.setdefault(folder, {})
            link = f"https://alldebrid.com/f/{_link_code(entry.infohash, index)}"
            node[name] = _Leaf({"n": name, "s": item.size, "l": link})
        return _entries(root)


@dataclass(frozen=True, slots=True)
class _Leaf:
    node: dict[str, Any]


def _entries(folder: dict[str, Any]) -> list[dict[str, Any]]:
    """``{n, s, l}`` for a file, ``{n, e: [...]}`` for a folder."""
    return [
        child.node if isinstance(child, _Leaf) else {"n": name, "e": _entries(child)}
        for name, child in folder.items()
    ]


def _link_code(infohash: str, index: int) -> str:
    return hashlib.blake2b(f"{infohash}:{index}".encode(), digest_size=5).hexdigest()


def _success(data: dict[str, Any]) -> web.Response:
    return json_response({"status": "success", "data": data})


async def _params(request: web.Request) -> MultiDictProxy[str]:
    """Query string and form body together (AllDebrid takes either)."""
    merged: MultiDict[str] = MultiDict(request.query)
    if request.method == "POST":
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, str):
                merged.add(key, value)
    return MultiDictProxy(merged)

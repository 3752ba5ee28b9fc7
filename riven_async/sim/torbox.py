"""TorBox: checkcached for many hashes at once, createtorrent, mylist, requestdl, controltorrent."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from aiohttp import hdrs, web

from riven_async.sim.harness import Sim
from riven_async.sim.limits import RateLimiter, Verdict, Window
from riven_async.sim.realdebrid import magnet_hash
from riven_async.sim.releases import Release
from riven_async.sim.responses import iso_z, json_response, query_int
from riven_async.sim.transfers import Phase, Transfer, cancel_transfer, start_transfer
from riven_async.sim.world import SimWorld

SERVICE = "torbox"
LIST_REFRESH_S = 600  # mylist data is refreshed this often unless bypass_cache=true
_DETAILS = {
    "NO_AUTH": "No authorization provided.",
    "BAD_TOKEN": "Invalid authorization token.",
    "ITEM_NOT_FOUND": "Item not found.",
    "ACTIVE_LIMIT": "You already have the maximum number of active downloads.",
    "TOO_MANY_REQUESTS": "Too many requests.",
    "DATABASE_ERROR": "Something went wrong.",
    "MISSING_REQUIRED_OPTION": "Missing required option.",
    "INVALID_OPTION": "Invalid option.",
    "DOWNLOAD_NOT_READY": "The download is not ready yet.",
}


def tb_error(status: int, code: str, detail: str | None = None) -> web.Response:
    body = {"success": False, "error": code, "detail": detail or _DETAILS[code], "data": None}
    return json_response(body, status=status)


def _ok(detail: str, data: Any) -> web.Response:
    return json_response({"success": True, "error": None, "detail": detail, "data": data})


@dataclass(frozen=True, slots=True)
class TbTorrent:
    id: int
    infohash: str
    release: Release | None
    magnet: str
    created_at: datetime
    transfer: Transfer | None

    @property
    def owner(self) -> str:
        return f"{SERVICE}:{self.id}"


class TorBoxSim(Sim):
    """``https://api.torbox.app/v1/api``: 300/min per token; 60/h for uncached creations."""

    name = SERVICE
    prefix = "/v1/api"
    default_limits = ("300/60s",)

    def __init__(
        self,
        world: SimWorld,
        api_key: str,
        queue_s: float = 20.0,
        max_active: int = 10,
        create_limits: tuple[str, ...] = ("60/1h",),
    ) -> None:
        super().__init__(world, api_key)
        self.queue_s = queue_s
        self.max_active = max_active
        self.create_limiter = RateLimiter([Window.parse(w) for w in create_limits], world.clock)
        self.torrents: dict[int, TbTorrent] = {}
        self.creates_per_hash: Counter[str] = Counter()
        self.checked_hashes = 0
        self.deleted: list[int] = []
        self._next_id = 4_800_000 + world.catalog.seed % 1000 * 100
        self._auth_id = str(uuid.UUID(int=world.catalog.seed * 7919 + 1))

    def add_routes(self, router: web.UrlDispatcher) -> None:
        p = self.prefix
        router.add_get(p + "/torrents/checkcached", self.check_cached)
        router.add_post(p + "/torrents/checkcached", self.check_cached)
        router.add_post(p + "/torrents/createtorrent", self.create)
        router.add_get(p + "/torrents/mylist", self.mylist)
        router.add_get(p + "/torrents/requestdl", self.request_download)
        router.add_post(p + "/torrents/controltorrent", self.control)
        router.add_get(p + "/user/me", self.me)

    def authenticate(self, request: web.Request) -> web.StreamResponse | None:
        header = request.headers.get(hdrs.AUTHORIZATION, "")
        token = header[7:].strip() if header.startswith("Bearer ") else None
        if request.path.endswith("/torrents/requestdl") and "token" in request.query:
            token = request.query["token"]
        if token is None:
            return tb_error(401, "NO_AUTH")
        return None if token == self.api_key else tb_error(403, "BAD_TOKEN")

    def rate_limited(self, request: web.Request, verdict: Verdict) -> web.StreamResponse:
        response = tb_error(429, "TOO_MANY_REQUESTS")
        response.headers[hdrs.RETRY_AFTER] = verdict.retry_after_header
        return response

    def server_error(self, request: web.Request, status: int) -> web.StreamResponse:
        return tb_error(status, "DATABASE_ERROR")

    def extra_violations(self) -> int:
        return self.create_limiter.violations

    def stats(self) -> dict[str, Any]:
        return {
            "torrents": len(self.torrents),
            "creates_per_hash": dict(self.creates_per_hash),
            "checked_hashes": self.checked_hashes,
            "create_limit_violations": self.create_limiter.violations,
            "deleted": len(self.deleted),
        }

    async def check_cached(self, request: web.Request) -> web.Response:
        hashes = [h for raw in request.query.getall("hash", []) for h in raw.split(",")]
        if request.method == "POST":
            try:
                body = await request.json()
            except ValueError:
                return tb_error(400, "INVALID_OPTION")
            if isinstance(body, dict) and isinstance(body.get("hashes"), list):
                hashes += [str(h) for h in body["hashes"]]
        wanted = list(dict.fromkeys(h.strip().lower() for h in hashes if h.strip()))
        if not wanted:
            return tb_error(400, "MISSING_REQUIRED_OPTION")
        self.checked_hashes += len(wanted)
        now, catalog = self.world.now(), self.world.catalog
        list_files = request.query.get("list_files", "true").lower() != "false"
        found: dict[str, dict[str, Any]] = {}
        for infohash in wanted:
            release = catalog.release(infohash)
            if release is None or not self.world.is_cached(SERVICE, infohash, now, release):
                continue
            entry: dict[str, Any] = {"name": release.name, "size": release.size, "hash": infohash}
            if list_files:
                entry["files"] = [
                    {"name": _tb_path(release, f.path), "size": f.size} for f in release.files
                ]
            found[infohash] = entry
        data: Any = list(found.values()) if request.query.get("format") == "list" else found
        return _ok("Found cached torrent(s).", data)

    async def create(self, request: web.Request) -> web.Response:
        form = await request.post()
        magnet = form.get("magnet")
        if not isinstance(magnet, str) or not magnet:
            return tb_error(400, "MISSING_REQUIRED_OPTION", "Magnet or torrent file is required.")
        infohash = magnet_hash(magnet)
        if infohash is None:
            return tb_error(400, "INVALID_OPTION", "Invalid magnet link.")
        now = self.world.now()
        existing = next((t for t in self.torrents.values() if t.infohash == infohash), None)
        if existing is not None:
            return _ok("Torrent already exists in your account.", self._created(existing))
        cached = self.world.is_cached(SERVICE, infohash, now)
        if not cached:
            verdict = self.create_limiter.admit()
            if not verdict.allowed:
                response = tb_error(
                    429, "TOO_MANY_REQUESTS", "Too many uncached downloads created, please wait."
                )
                response.headers[hdrs.RETRY_AFTER] = verdict.retry_after_header
                return response
            if self._active(now) >= self.max_active:
                return tb_error(500, "ACTIVE_LIMIT")
        release = self.world.catalog.release(infohash)
        self._next_id += 1
        owner = f"{SERVICE}:{self._next_id}"
        transfer = None
        if release is not None:
            transfer = start_transfer(
                self.world,
                SERVICE,
                owner,
                release,
                list(range(len(release.files))),
                now,
                self.queue_s,
            )
        torrent = TbTorrent(self._next_id, infohash, release, magnet, now, transfer)
        self.torrents[torrent.id] = torrent
        self.creates_per_hash[infohash] += 1
        detail = (
            "Found Cached Torrent. Using Cached Torrent."
            if cached
            else "Torrent added successfully."
        )
        return _ok(detail, self._created(torrent))

    def _created(self, torrent: TbTorrent) -> dict[str, Any]:
        name = torrent.release.name if torrent.release else torrent.infohash
        return {
            "torrent_id": torrent.id,
            "name": name,
            "hash": torrent.infohash,
            "auth_id": self._auth_id,
        }

    def _active(self, now: datetime) -> int:
        return sum(
            1
            for t in self.torrents.values()
            if t.transfer is None or t.transfer.phase(now) is not Phase.DONE
        )

    async def mylist(self, request: web.Request) -> web.Response:
        now = self.world.now()
        if request.query.get("bypass_cache", "").lower() != "true":
            origin = self.world.catalog.origin
            elapsed = (now - origin).total_seconds() // LIST_REFRESH_S * LIST_REFRESH_S
            now = max(origin + timedelta(seconds=elapsed), origin)
        raw_id = request.query.get("id")
        if raw_id is not None:
            torrent = self.torrents.get(int(raw_id)) if raw_id.isdigit() else None
            if torrent is None:
                return tb_error(404, "ITEM_NOT_FOUND")
            return _ok(
                "Torrent list retrieved successfully.",
                self._torrent(torrent, max(now, torrent.created_at)),
            )
        offset, limit = query_int(request, "offset", 0), query_int(request, "limit", 1000)
        if offset is None or limit is None:
            return tb_error(400, "INVALID_OPTION")
        listed = sorted(self.torrents.values(), key=lambda t: t.created_at, reverse=True)
        visible = [t for t in listed if t.created_at <= now][offset : offset + limit]
        return _ok("Torrent list retrieved successfully.", [self._torrent(t, now) for t in visible])

    def _torrent(self, torrent: TbTorrent, now: datetime) -> dict[str, Any]:
        release, transfer = torrent.release, torrent.transfer
        phase = transfer.phase(now) if transfer else Phase.QUEUED
        done = phase is Phase.DONE
        if transfer is not None and transfer.cached:
            state = "cached"
        elif done:
            state = "completed"
        elif transfer is not None and transfer.done_at is None and phase is Phase.DOWNLOADING:
            state = "stalled (no seeds)"
        else:
            state = "downloading" if phase is Phase.DOWNLOADING else "metaDL"
        files_known = release is not None and (done or phase is Phase.DOWNLOADING)
        speed = transfer.current_speed(now) if transfer else 0
        remaining = (transfer.size - transfer.downloaded(now)) if transfer else 0
        return {
            "id": torrent.id,
            "auth_id": self._auth_id,
            "server": 42,
            "hash": torrent.infohash,
            "name": release.name if release else torrent.infohash,
            "magnet": torrent.magnet,
            "size": release.size if release and files_known else 0,
            "active": not done,
            "created_at": iso_z(torrent.created_at),
            "updated_at": iso_z(now),
            "download_state": state,
            "seeds": release.seeders if release and not done else 0,
            "peers": release.peers - release.seeders if release and not done else 0,
            "ratio": 0,
            "progress": round(transfer.fraction(now), 4) if transfer else 0,
            "download_speed": speed,
            "upload_speed": 0,
            "eta": int(remaining / speed) if speed else 0,
            "torrent_file": False,
            "expires_at": iso_z(torrent.created_at + timedelta(days=30)),
            "download_present": done,
            "download_finished": done,
            "cached": bool(transfer and transfer.cached),
            "availability": 1 if speed else 0,
            "inactive_check": 0,
            "files": [self._file(torrent, release, i) for i in range(len(release.files))]
            if release is not None and files_known
            else [],
        }

    def _file(self, torrent: TbTorrent, release: Release, index: int) -> dict[str, Any]:
        item = release.files[index]
        name = _tb_path(release, item.path)
        return {
            "id": index,
            "md5": None,
            "hash": torrent.infohash,
            "name": name,
            "size": item.size,
            "zipped": False,
            "s3_path": f"{torrent.infohash}/{name}",
            "infected": False,
            "mimetype": "video/mp4" if item.name.endswith(".mp4") else "video/x-matroska",
            "short_name": item.name,
            "absolute_path": f"/download/{torrent.infohash}/{item.name}",
        }

    async def request_download(self, request: web.Request) -> web.StreamResponse:
        raw_id, raw_file = request.query.get("torrent_id", ""), request.query.get("file_id", "0")
        torrent = self.torrents.get(int(raw_id)) if raw_id.isdigit() else None
        release = torrent.release if torrent else None
        if (
            torrent is None
            or release is None
            or not raw_file.isdigit()
            or int(raw_file) >= len(release.files)
        ):
            return tb_error(404, "ITEM_NOT_FOUND")
        transfer = torrent.transfer
        if transfer is None or transfer.phase(self.world.now()) is not Phase.DONE:
            return tb_error(400, "DOWNLOAD_NOT_READY")
        item = release.files[int(raw_file)]
        url = (
            f"https://store-{torrent.id % 40:03d}.weur.tb-cdn.st/dl/{self._auth_id[:8]}/"
            f"{item.name}?token={uuid.uuid5(uuid.NAMESPACE_URL, torrent.infohash).hex}"
        )
        if request.query.get("redirect", "").lower() == "true":
            raise web.HTTPTemporaryRedirect(url)
        return _ok("Download link generated.", url)

    async def control(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return tb_error(400, "INVALID_OPTION", "Body must be JSON.")
        if not isinstance(body, dict) or body.get("operation") not in (
            "delete",
            "reannounce",
            "resume",
            "pause",
        ):
            return tb_error(400, "MISSING_REQUIRED_OPTION")
        operation = str(body["operation"])
        targets = list(self.torrents.values()) if body.get("all") else []
        if not targets:
            ident = body.get("torrent_id")
            torrent = self.torrents.get(ident) if isinstance(ident, int) else None
            if torrent is None:
                return tb_error(404, "ITEM_NOT_FOUND")
            targets = [torrent]
        if operation == "delete":
            for torrent in targets:
                del self.torrents[torrent.id]
                self.deleted.append(torrent.id)
                cancel_transfer(self.world, SERVICE, torrent.owner, torrent.infohash)
        past = {
            "delete": "deleted",
            "pause": "paused",
            "resume": "resumed",
            "reannounce": "reannounced",
        }[operation]
        return _ok(f"Torrent {past} successfully.", None)

    async def me(self, request: web.Request) -> web.Response:
        now = self.world.now()
        return _ok(
            "User data retrieved.",
            {
                "id": 99421,
                "auth_id": self._auth_id,
                "created_at": iso_z(now - timedelta(days=300)),
                "updated_at": iso_z(now),
                "plan": 2,
                "total_downloaded": len(self.torrents),
                "customer": "cus_SIMULATED",
                "is_subscribed": True,
                "premium_expires_at": iso_z(now + timedelta(days=180)),
                "cooldown_until": iso_z(now - timedelta(days=1)),
                "email": "simuser@example.com",
                "user_referral": str(uuid.UUID(int=0)),
                "base_email": "simuser@example.com",
                "total_bytes_downloaded": 0,
                "total_bytes_uploaded": 0,
                "torrents_downloaded": len(self.torrents),
                "web_downloads_downloaded": 0,
                "usenet_downloads_downloaded": 0,
            },
        )


def _tb_path(release: Release, path: str) -> str:
    """TorBox names files ``<torrent name>/<file>`` even for single-file torrents."""
    return path if "/" in path else f"{release.name.rsplit('.', 1)[0]}/{path}"

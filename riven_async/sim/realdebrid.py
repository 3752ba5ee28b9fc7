"""Real-Debrid REST 1.0: torrents that move through their statuses on the sims' clock."""

from __future__ import annotations

import base64
import hashlib
import random
import re
import string
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from aiohttp import hdrs, web

from riven_async.sim.harness import Sim
from riven_async.sim.limits import Verdict
from riven_async.sim.releases import Release
from riven_async.sim.responses import empty_response, iso_ms, json_response, query_int
from riven_async.sim.transfers import Phase, Transfer, cancel_transfer, start_transfer
from riven_async.sim.world import SimWorld

SERVICE = "realdebrid"
DEAD_AFTER = timedelta(days=1)  # a torrent without seeders is declared dead after this
FAILED_STATUSES = ("magnet_error", "error", "virus", "dead")
_BTIH = re.compile(r"xt=urn:btih:([0-9a-fA-F]{40}|[A-Za-z2-7]{32})")
_ERRORS = {
    1: "parameter_missing",
    2: "wrong_parameter",
    3: "unknown_method",
    7: "unknown_ressource",
    8: "bad_token",
    19: "hoster_unavailable",
    23: "traffic_exhausted",
    25: "service_unavailable",
    31: "action_already_done",
    34: "too_many_requests",
    35: "infringing_file",
    37: "disabled_endpoint",
    -1: "internal_error",
}


def rd_error(status: int, code: int, details: str | None = None) -> web.Response:
    body: dict[str, Any] = {"error": _ERRORS[code]}
    if details is not None:
        body["error_details"] = details
    body["error_code"] = code
    return json_response(body, status=status)


def magnet_hash(magnet: str) -> str | None:
    """The hex infohash of a magnet (hex or base32 ``btih``), or a bare 40-hex hash."""
    if re.fullmatch(r"[0-9a-fA-F]{40}", magnet):
        return magnet.lower()
    match = _BTIH.search(magnet)
    if match is None:
        return None
    value = match.group(1)
    return value.lower() if len(value) == 40 else base64.b32decode(value.upper()).hex()


@dataclass(frozen=True, slots=True)
class RdTorrent:
    """One torrent in the account; its status is a function of these instants and ``now``."""

    id: str
    infohash: str
    release: Release | None
    added_at: datetime
    files_known_at: datetime | None
    seeders: int
    selected: tuple[int, ...] = ()
    transfer: Transfer | None = None

    @property
    def owner(self) -> str:
        return f"{SERVICE}:{self.id}"

    def status(self, now: datetime) -> str:
        if self.files_known_at is None or now < self.files_known_at:
            return "magnet_conversion"
        transfer = self.transfer
        if transfer is None:
            return "waiting_files_selection"
        if transfer.done_at is None and now - transfer.queued_until >= DEAD_AFTER:
            return "dead"
        return _STATUS[transfer.phase(now)]

    def progress(self, now: datetime) -> int:
        return int(100 * self.transfer.fraction(now)) if self.transfer is not None else 0


_STATUS = {Phase.QUEUED: "queued", Phase.DOWNLOADING: "downloading", Phase.DONE: "downloaded"}


class RealDebridSim(Sim):
    """``https://api.real-debrid.com/rest/1.0``: 250/min, refused requests count too.

    Cached hashes are ``downloaded`` right after ``selectFiles``; others are ``queued`` for
    ``queue_s`` and then download at their own speed (seeders 0: stalled). Hashes in
    ``infringing`` (or chosen by the catalog's ``infringing_ratio``) get 451; setting
    ``traffic_exhausted`` makes ``addMagnet``, ``selectFiles`` and ``unrestrict`` answer 503.
    Torrents without seeders go ``dead`` a day after their download should have started;
    ``failing[hash] = "error"`` (or ``magnet_error``, ``virus``, ``dead``) forces a status.
    """

    name = SERVICE
    prefix = "/rest/1.0"
    default_limits = ("250/60s",)
    count_refused = True

    def __init__(
        self, world: SimWorld, api_key: str, conversion_s: float = 2.0, queue_s: float = 60.0
    ) -> None:
        super().__init__(world, api_key)
        self.conversion_s = conversion_s
        self.queue_s = queue_s
        self.torrents: dict[str, RdTorrent] = {}
        self.adds_per_hash: Counter[str] = Counter()
        self.refused_adds: Counter[str] = Counter()
        self.deleted: list[str] = []
        self.infringing: set[str] = set()
        self.failing: dict[str, str] = {}
        self.traffic_exhausted = False
        self.unrestricted: list[dict[str, Any]] = []
        self._links: dict[str, tuple[str, int]] = {}
        self._ids = random.Random(f"{world.catalog.seed}:rd-ids")

    def add_routes(self, router: web.UrlDispatcher) -> None:
        p = self.prefix
        router.add_get(p + "/user", self.user)
        router.add_get(p + "/torrents", self.list_torrents)
        router.add_get(p + "/torrents/activeCount", self.active_count)
        router.add_get(p + "/torrents/info/{id}", self.info)
        router.add_post(p + "/torrents/addMagnet", self.add_magnet)
        router.add_post(p + "/torrents/selectFiles/{id}", self.select_files)
        router.add_delete(p + "/torrents/delete/{id}", self.delete)
        router.add_get(p + "/torrents/instantAvailability/{hashes:.+}", self.instant_availability)
        router.add_post(p + "/unrestrict/link", self.unrestrict)
        router.add_get(p + "/downloads", self.downloads)

    def authenticate(self, request: web.Request) -> web.StreamResponse | None:
        header = request.headers.get(hdrs.AUTHORIZATION, "")
        token = header[7:].strip() if header.startswith("Bearer ") else ""
        if self.api_key in (token, request.query.get("auth_token")):
            return None
        return rd_error(401, 8)

    def rate_limited(self, request: web.Request, verdict: Verdict) -> web.StreamResponse:
        response = rd_error(429, 34)
        response.headers[hdrs.RETRY_AFTER] = verdict.retry_after_header
        return response

    def server_error(self, request: web.Request, status: int) -> web.StreamResponse:
        return rd_error(status, 25 if status == 503 else -1)

    def not_found(self, request: web.Request) -> web.StreamResponse:
        return rd_error(404, 3)

    def stats(self) -> dict[str, Any]:
        return {
            "torrents": len(self.torrents),
            "adds_per_hash": dict(self.adds_per_hash),
            "duplicate_adds": {h: n for h, n in self.adds_per_hash.items() if n > 1},
            "refused_adds": dict(self.refused_adds),
            "deleted": len(self.deleted),
            "unrestricted": len(self.unrestricted),
        }

    # -- account ------------------------------------------------------------------------

    async def user(self, request: web.Request) -> web.Response:
        now = self.world.now()
        return json_response(
            {
                "id": 1234567,
                "username": "simuser",
                "email": "sim*****@example.com",
                "points": 1450,
                "locale": "en",
                "avatar": "https://fcdn.real-debrid.com/images/forum/empty.png",
                "type": "premium",
                "premium": 180 * 86400,
                "expiration": iso_ms(now + timedelta(days=180)),
            }
        )

    # -- torrents -----------------------------------------------------------------------

    async def add_magnet(self, request: web.Request) -> web.Response:
        form = await request.post()
        magnet = str(form.get("magnet", ""))
        if not magnet:
            return rd_error(400, 1, "{magnet} is missing")
        infohash = magnet_hash(magnet)
        if infohash is None:
            return rd_error(400, 2)
        if self.traffic_exhausted:
            return rd_error(503, 23)
        if infohash in self.infringing or self.world.catalog.blocked(infohash):
            self.refused_adds[infohash] += 1
            return rd_error(451, 35)
        now = self.world.now()
        release = self.world.catalog.release(infohash)
        cached = self.world.is_cached(SERVICE, infohash, now)
        torrent = RdTorrent(
            id=self._new_id(),
            infohash=infohash,
            release=release,
            added_at=now,
            files_known_at=None
            if release is None
            else now + timedelta(seconds=0 if cached else self.conversion_s),
            seeders=release.seeders if release is not None else 0,
        )
        self.torrents[torrent.id] = torrent
        self.adds_per_hash[infohash] += 1
        uri = f"{request.url.origin()}{self.prefix}/torrents/info/{torrent.id}"
        return json_response({"id": torrent.id, "uri": uri}, status=201)

    async def select_files(self, request: web.Request) -> web.Response:
        torrent = self.torrents.get(request.match_info["id"])
        if torrent is None:
            return rd_error(404, 7)
        form = await request.post()
        raw = str(form.get("files", "")).strip()
        if not raw:
            return rd_error(400, 1, "{files} is missing")
        if self.traffic_exhausted:
            return rd_error(503, 23)
        now = self.world.now()
        if torrent.selected:
            return rd_error(202, 31)
        release = torrent.release
        if release is None or torrent.status(now) != "waiting_files_selection":
            return rd_error(400, 2)
        count = len(release.files)
        if raw == "all":
            chosen = tuple(range(1, count + 1))
        else:
            parts = [p.strip() for p in raw.split(",") if p.strip()]
            if not all(p.isdigit() and 1 <= int(p) <= count for p in parts):
                return rd_error(400, 2)
            chosen = tuple(sorted({int(p) for p in parts}))
        transfer = start_transfer(
            self.world, SERVICE, torrent.owner, release, [i - 1 for i in chosen], now, self.queue_s
        )
        self.torrents[torrent.id] = replace(torrent, selected=chosen, transfer=transfer)
        return empty_response(204)

    async def delete(self, request: web.Request) -> web.Response:
        torrent = self.torrents.pop(request.match_info["id"], None)
        if torrent is None:
            return rd_error(404, 7)
        self.deleted.append(torrent.id)
        cancel_transfer(self.world, SERVICE, torrent.owner, torrent.infohash)
        return empty_response(204)

    async def info(self, request: web.Request) -> web.Response:
        torrent = self.torrents.get(request.match_info["id"])
        if torrent is None:
            return rd_error(404, 7)
        return json_response(self._info(torrent, self.world.now()))

    async def list_torrents(self, request: web.Request) -> web.Response:
        now = self.world.now()
        listed = sorted(self.torrents.values(), key=lambda t: t.added_at, reverse=True)
        if request.query.get("filter") == "active":
            listed = [t for t in listed if t.status(now) != "downloaded"]
        raw_limit = query_int(request, "limit", 100)
        page, skip = query_int(request, "page", 0), query_int(request, "offset", 0)
        if raw_limit is None or page is None or skip is None:
            return rd_error(400, 2)
        limit = min(5000, raw_limit)
        offset = skip + max(0, page - 1) * limit
        items = []
        for torrent in listed[offset : offset + limit]:
            info = self._info(torrent, now)
            for key in ("original_filename", "original_bytes", "files"):
                info.pop(key)
            items.append(info)
        return json_response(items, headers={"X-Total-Count": str(len(listed))})

    async def active_count(self, request: web.Request) -> web.Response:
        now = self.world.now()
        active = sum(
            1 for t in self.torrents.values() if t.status(now) in ("queued", "downloading")
        )
        return json_response({"nb": active, "limit": 25})

    async def instant_availability(self, request: web.Request) -> web.Response:
        return rd_error(403, 37)

    def _info(self, torrent: RdTorrent, now: datetime) -> dict[str, Any]:
        forced = self.failing.get(torrent.infohash)
        status = forced if forced in FAILED_STATUSES else torrent.status(now)
        release = torrent.release
        info: dict[str, Any] = {"id": torrent.id}
        if status == "magnet_conversion" or release is None:
            info.update(
                filename=torrent.infohash,
                original_filename=torrent.infohash,
                hash=torrent.infohash,
                bytes=0,
                original_bytes=0,
            )
            files: list[dict[str, Any]] = []
        else:
            chosen = set(torrent.selected)
            files = [
                {"id": i, "path": "/" + f.path, "bytes": f.size, "selected": int(i in chosen)}
                for i, f in enumerate(release.files, start=1)
            ]
            selected_bytes = sum(f["bytes"] for f in files if f["selected"])
            info.update(
                filename=release.name,
                original_filename=release.name,
                hash=torrent.infohash,
                bytes=selected_bytes or release.size,
                original_bytes=release.size,
            )
        info.update(
            host="real-debrid.com",
            split=2000,
            progress=torrent.progress(now),
            status=status,
            added=iso_ms(torrent.added_at),
            files=files,
            links=[self._link(torrent, i) for i in torrent.selected]
            if status == "downloaded"
            else [],
        )
        transfer = torrent.transfer
        if status == "downloaded" and transfer is not None and transfer.done_at is not None:
            info["ended"] = iso_ms(transfer.done_at)
        if status == "downloading" and transfer is not None:
            info["speed"] = transfer.current_speed(now)
        if status in ("downloading", "magnet_conversion"):
            info["seeders"] = torrent.seeders
        return info

    # -- links --------------------------------------------------------------------------

    def _link(self, torrent: RdTorrent, file_id: int) -> str:
        digest = hashlib.blake2b(f"{torrent.infohash}:{file_id}".encode(), digest_size=10)
        code = base64.b32encode(digest.digest()).decode()[:13]
        self._links[code] = (torrent.id, file_id)
        return f"https://real-debrid.com/d/{code}"

    async def unrestrict(self, request: web.Request) -> web.Response:
        form = await request.post()
        link = str(form.get("link", ""))
        if not link:
            return rd_error(400, 1, "{link} is missing")
        if self.traffic_exhausted:
            return rd_error(503, 23)
        found = self._links.get(link.rstrip("/").rsplit("/", 1)[-1])
        torrent = self.torrents.get(found[0]) if found else None
        if found is None or torrent is None or torrent.release is None:
            return rd_error(503, 19)
        item = torrent.release.files[found[1] - 1]
        code = "".join(random.Random(link).choices(string.ascii_uppercase + string.digits, k=13))
        body = {
            "id": code,
            "filename": item.name,
            "mimeType": "video/mp4" if item.name.endswith(".mp4") else "video/x-matroska",
            "filesize": item.size,
            "link": link,
            "host": "real-debrid.com",
            "chunks": 32,
            "crc": 1,
            "download": f"https://{found[1] % 50 + 1}-4.download.real-debrid.com/d/"
            f"{code}/{item.name}",
            "streamable": 1,
        }
        self.unrestricted.append({**body, "generated": iso_ms(self.world.now())})
        return json_response(body)

    async def downloads(self, request: web.Request) -> web.Response:
        keys = (
            "id",
            "filename",
            "mimeType",
            "filesize",
            "link",
            "host",
            "chunks",
            "download",
            "generated",
        )
        items = [{k: entry[k] for k in keys} for entry in reversed(self.unrestricted)]
        return json_response(items, headers={"X-Total-Count": str(len(items))})

    def _new_id(self) -> str:
        while True:
            candidate = "".join(self._ids.choices(string.ascii_uppercase + string.digits, k=13))
            if candidate not in self.torrents:
                return candidate

"""Overseerr/Jellyseerr: media requests drawn from the catalog, some arriving over time."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from aiohttp import web

from riven_async.sim.harness import Sim
from riven_async.sim.responses import empty_response, iso_ms, json_response, query_int
from riven_async.sim.world import SimWorld

PENDING, APPROVED, DECLINED, FAILED = 1, 2, 3, 4
FILTERS = ("all", "approved", "available", "pending", "processing", "unavailable", "failed")
MediaKind = Literal["movie", "tv"]


@dataclass(frozen=True, slots=True)
class MediaRequest:
    """One request as Overseerr stores it; it is listed once ``created_at`` has passed."""

    id: int
    kind: MediaKind
    tmdb_id: int
    tvdb_id: int | None
    imdb_id: str | None
    status: int
    media_status: int
    seasons: tuple[int, ...]
    created_at: datetime
    updated_at: datetime
    is4k: bool = False

    @property
    def media_id(self) -> int:
        return 1000 + self.id


def _matches(request: MediaRequest, name: str) -> bool:
    if name == "all":
        return True
    if name == "approved":
        return request.status == APPROVED
    if name == "processing":
        return request.status == APPROVED and request.media_status < 5
    if name == "available":
        return request.status == APPROVED and request.media_status == 5
    if name == "pending":
        return request.status == PENDING
    if name == "unavailable":
        return request.status in (PENDING, APPROVED) and request.media_status < 5
    return request.status == FAILED


class OverseerrSim(Sim):
    """``/api/v1`` with ``X-Api-Key``; ``requests`` are generated from the catalog's seed."""

    name = "overseerr"
    prefix = "/api/v1"

    def __init__(self, world: SimWorld, api_key: str, count: int = 12) -> None:
        super().__init__(world, api_key)
        self.requests: dict[int, MediaRequest] = {}
        self.deleted: list[int] = []
        for request in _generate(world, count):
            self.requests[request.id] = request

    def add_routes(self, router: web.UrlDispatcher) -> None:
        p = self.prefix
        router.add_get(p + "/status", self.status)
        router.add_get(p + "/auth/me", self.me)
        router.add_get(p + "/request", self.list_requests)
        router.add_get(p + r"/request/{id:\d+}", self.get_request)
        router.add_delete(p + r"/request/{id:\d+}", self.delete_request)

    def authenticate(self, request: web.Request) -> web.StreamResponse | None:
        if (
            request.path == self.prefix + "/status"
            or request.headers.get("X-Api-Key") == self.api_key
        ):
            return None
        body = {"status": 403, "error": "You do not have permission to access this endpoint"}
        return json_response(body, status=403)

    def not_found(self, request: web.Request) -> web.StreamResponse:
        return json_response({"message": "Not Found", "errors": []}, status=404)

    def server_error(self, request: web.Request, status: int) -> web.StreamResponse:
        return json_response({"message": "Something went wrong.", "errors": []}, status=status)

    def stats(self) -> dict[str, Any]:
        now = self.world.now()
        return {
            "requests": len(self.requests),
            "listed": sum(1 for r in self.requests.values() if r.created_at <= now),
            "deleted": len(self.deleted),
        }

    def add_request(
        self,
        kind: MediaKind,
        tmdb_id: int,
        seasons: tuple[int, ...] = (),
        status: int = APPROVED,
        media_status: int = 3,
        at: datetime | None = None,
    ) -> MediaRequest:
        """Add a request (tests); it is listed from ``at`` (default: now)."""
        created = at or self.world.now()
        catalog = self.world.catalog
        show = catalog.show_by_tmdb(tmdb_id) if kind == "tv" else None
        movie = catalog.movie_by_tmdb(tmdb_id) if kind == "movie" else None
        request = MediaRequest(
            id=max(self.requests, default=0) + 1,
            kind=kind,
            tmdb_id=tmdb_id,
            tvdb_id=show.tvdb_id if show else None,
            imdb_id=movie.imdb_id if movie else None,
            status=status,
            media_status=media_status,
            seasons=seasons,
            created_at=created,
            updated_at=created,
        )
        self.requests[request.id] = request
        return request

    def update_request(self, ident: int, status: int, media_status: int) -> MediaRequest:
        updated = dataclasses.replace(
            self.requests[ident],
            status=status,
            media_status=media_status,
            updated_at=self.world.now(),
        )
        self.requests[ident] = updated
        return updated

    async def status(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "version": "1.33.2",
                "commitTag": "v1.33.2",
                "updateAvailable": False,
                "commitsBehind": 0,
                "restartRequired": False,
            }
        )

    async def me(self, request: web.Request) -> web.Response:
        return json_response(self._user())

    async def list_requests(self, request: web.Request) -> web.Response:
        name = request.query.get("filter", "all")
        if name not in FILTERS:
            allowed = ", ".join(FILTERS)
            message = f"must be equal to one of the allowed values: {allowed}"
            return json_response(
                {
                    "message": f"request/query/filter {message}",
                    "errors": [
                        {
                            "path": ".query.filter",
                            "message": message,
                            "errorCode": "enum.openapi.validation",
                        }
                    ],
                },
                status=400,
            )
        take, skip = query_int(request, "take", 10), query_int(request, "skip", 0)
        if take is None or skip is None:
            name = "take" if take is None else "skip"
            return json_response(
                {
                    "message": f"request/query/{name} must be integer",
                    "errors": [
                        {
                            "path": f".query.{name}",
                            "message": "must be integer",
                            "errorCode": "type.openapi.validation",
                        }
                    ],
                },
                status=400,
            )
        order = "updated_at" if request.query.get("sort") == "modified" else "created_at"
        now = self.world.now()
        listed = [r for r in self.requests.values() if r.created_at <= now and _matches(r, name)]
        listed.sort(key=lambda r: (getattr(r, order), r.id), reverse=True)
        page = listed[skip : skip + take]
        return json_response(
            {
                "pageInfo": {
                    "pages": max(1, -(-len(listed) // max(take, 1))),
                    "pageSize": take,
                    "results": len(listed),
                    "page": skip // max(take, 1) + 1,
                },
                "results": [self._request_json(r) for r in page],
            }
        )

    async def get_request(self, request: web.Request) -> web.Response:
        found = self.requests.get(int(request.match_info["id"]))
        if found is None or found.created_at > self.world.now():
            return json_response({"message": "Request not found.", "errors": []}, status=404)
        return json_response(self._request_json(found))

    async def delete_request(self, request: web.Request) -> web.Response:
        found = self.requests.pop(int(request.match_info["id"]), None)
        if found is None:
            return json_response({"message": "Request not found.", "errors": []}, status=404)
        self.deleted.append(found.id)
        return empty_response(204)

    def _user(self) -> dict[str, Any]:
        created = iso_ms(self.world.catalog.origin - timedelta(days=300))
        return {
            "permissions": 2,
            "id": 1,
            "email": "admin@example.com",
            "plexUsername": "admin",
            "username": None,
            "recoveryLinkExpirationDate": None,
            "userType": 1,
            "plexId": 1234567,
            "avatar": "https://plex.tv/users/sim/avatar?c=1",
            "movieQuotaLimit": None,
            "movieQuotaDays": None,
            "tvQuotaLimit": None,
            "tvQuotaDays": None,
            "createdAt": created,
            "updatedAt": iso_ms(self.world.catalog.origin - timedelta(days=1)),
            "requestCount": len(self.requests),
            "displayName": "admin",
        }

    def _request_json(self, request: MediaRequest) -> dict[str, Any]:
        created, updated = iso_ms(request.created_at), iso_ms(request.updated_at)
        user = self._user()
        return {
            "id": request.id,
            "status": request.status,
            "createdAt": created,
            "updatedAt": updated,
            "type": request.kind,
            "is4k": request.is4k,
            "serverId": None,
            "profileId": None,
            "rootFolder": None,
            "languageProfileId": None,
            "tags": None,
            "isAutoRequest": False,
            "media": {
                "downloadStatus": [],
                "downloadStatus4k": [],
                "id": request.media_id,
                "mediaType": request.kind,
                "tmdbId": request.tmdb_id,
                "tvdbId": request.tvdb_id,
                "imdbId": request.imdb_id,
                "status": request.media_status,
                "status4k": 1,
                "createdAt": created,
                "updatedAt": updated,
                "lastSeasonChange": created,
                "mediaAddedAt": updated if request.media_status == 5 else None,
                "serviceId": None,
                "serviceId4k": None,
                "externalServiceId": None,
                "externalServiceId4k": None,
                "externalServiceSlug": None,
                "externalServiceSlug4k": None,
                "ratingKey": None,
                "ratingKey4k": None,
            },
            "seasons": [
                {
                    "id": request.id * 100 + n,
                    "seasonNumber": n,
                    "status": request.status,
                    "createdAt": created,
                    "updatedAt": updated,
                }
                for n in request.seasons
            ],
            "modifiedBy": user if request.status != PENDING else None,
            "requestedBy": user,
            "seasonCount": len(request.seasons),
        }


def _generate(world: SimWorld, count: int) -> list[MediaRequest]:
    """``count`` requests: mostly approved and processing; a third arrive after the origin."""
    catalog = world.catalog
    rng = random.Random(f"{catalog.seed}:overseerr")
    origin = catalog.origin
    out: list[MediaRequest] = []
    for ident in range(1, count + 1):
        movie = catalog.movie_count and (not catalog.show_count or rng.random() < 0.4)
        status, media_status = rng.choices(
            ((APPROVED, 3), (APPROVED, 5), (PENDING, 2), (DECLINED, 1), (FAILED, 3)),
            (70, 10, 10, 5, 5),
        )[0]
        offset = timedelta(seconds=rng.uniform(600, 3 * 86400))
        created = origin + offset if rng.random() < 0.3 else origin - offset * 2
        if movie:
            film = catalog.movie(rng.randrange(catalog.movie_count))
            out.append(
                MediaRequest(
                    ident,
                    "movie",
                    film.tmdb_id,
                    None,
                    film.imdb_id,
                    status,
                    media_status,
                    (),
                    created,
                    created,
                )
            )
        elif catalog.show_count:
            show = catalog.show(rng.randrange(catalog.show_count))
            seasons = tuple(s.number for s in show.visible_seasons(origin) if s.number > 0)
            out.append(
                MediaRequest(
                    ident,
                    "tv",
                    show.tmdb_id,
                    show.tvdb_id,
                    None,
                    status,
                    media_status,
                    seasons or (1,),
                    created,
                    created,
                )
            )
    return out

"""TVMaze: exact air times per episode, show matching by TVDB/IMDb id, the updates feed.

TMDB gives air dates only; TVMaze gives each episode's ``airstamp`` (UTC) and the show's
network time zone. ``AirTimeRule`` turns whatever is known into one instant per episode.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError as PydanticValidationError,
)

from riven_async.core.http import HttpClient, Response
from riven_async.domain import media
from riven_async.domain.intents import ExternalIds
from riven_async.errors import UpstreamError, UpstreamPayloadError
from riven_async.services.indexers.records import (
    AirTimeSource,
    EpisodeAiring,
    MetadataNotFound,
    TvmazeShowInfo,
)

log = logging.getLogger(__name__)

SERVICE = "tvmaze"
DAY_S = 86_400.0
DEFAULT_FALLBACK_AIR_TIME = time(20, 0)
UpdateWindow = Literal["day", "week", "month"]
# The feed's windows, smallest first (TVMaze: since=day|week|month).
UPDATE_WINDOWS_S: Final[tuple[tuple[UpdateWindow, float], ...]] = (
    ("day", DAY_S),
    ("week", 7 * DAY_S),
    ("month", 30 * DAY_S),
)

# Where a country's prime time is when TVMaze cannot tell (no match, TVMaze off). For
# countries spanning zones, the zone that airs first: a check that comes early costs one
# call, one that comes late delays every episode.
COUNTRY_ZONES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "US": "America/New_York", "CA": "America/Toronto", "MX": "America/Mexico_City",
        "BR": "America/Sao_Paulo", "AR": "America/Argentina/Buenos_Aires",
        "GB": "Europe/London", "IE": "Europe/Dublin", "PT": "Europe/Lisbon",
        "ES": "Europe/Madrid", "FR": "Europe/Paris", "BE": "Europe/Brussels",
        "NL": "Europe/Amsterdam", "DE": "Europe/Berlin", "AT": "Europe/Vienna",
        "CH": "Europe/Zurich", "IT": "Europe/Rome", "DK": "Europe/Copenhagen",
        "NO": "Europe/Oslo", "SE": "Europe/Stockholm", "FI": "Europe/Helsinki",
        "PL": "Europe/Warsaw", "CZ": "Europe/Prague", "TR": "Europe/Istanbul",
        "RU": "Europe/Moscow", "IL": "Asia/Jerusalem", "ZA": "Africa/Johannesburg",
        "IN": "Asia/Kolkata", "TH": "Asia/Bangkok", "CN": "Asia/Shanghai",
        "HK": "Asia/Hong_Kong", "TW": "Asia/Taipei", "PH": "Asia/Manila",
        "KR": "Asia/Seoul", "JP": "Asia/Tokyo", "AU": "Australia/Sydney",
        "NZ": "Pacific/Auckland",
    }
)  # fmt: skip


# -- TVMaze's bodies (only the fields we read) -------------------------------------------


def _blank_is_none(value: Any) -> Any:
    return None if value == "" else value


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_Date = Annotated[date | None, BeforeValidator(_blank_is_none)]
_Time = Annotated[time | None, BeforeValidator(_blank_is_none)]
_Text = Annotated[str | None, BeforeValidator(_blank_is_none)]
_Stamp = Annotated[datetime | None, BeforeValidator(_blank_is_none), AfterValidator(_as_utc)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Country(_Model):
    code: _Text = None
    timezone: _Text = None


class _Channel(_Model):
    country: _Country | None = None


class _Schedule(_Model):
    time: _Time = None


class _Externals(_Model):
    thetvdb: int | None = None
    imdb: _Text = None


class _Episode(_Model):
    id: int | None = None
    season: int
    number: int | None = None
    airdate: _Date = None
    airtime: _Time = None
    airstamp: _Stamp = None
    runtime: int | None = None


class _Embedded(_Model):
    episodes: tuple[_Episode, ...] = ()


class _Show(_Model):
    id: int
    name: str = ""
    status: _Text = None
    schedule: _Schedule | None = None
    network: _Channel | None = None
    web_channel: _Channel | None = Field(default=None, alias="webChannel")
    externals: _Externals | None = None
    updated: int | None = None
    embedded: _Embedded | None = Field(default=None, alias="_embedded")


_UPDATES: Final = TypeAdapter(dict[int, int])
M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], response: Response) -> M:
    try:
        return model.model_validate_json(response.body)
    except PydanticValidationError as exc:
        raise UpstreamPayloadError(
            response.service, response.status, response.url, _why(model.__name__, exc)
        ) from None


def _why(what: str, exc: PydanticValidationError) -> str:
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"unexpected {what.lstrip('_')} body: {where}: {first['msg']}"


def _show_info(show: _Show) -> TvmazeShowInfo:
    channel = show.network or show.web_channel
    zone = channel.country.timezone if channel and channel.country else None
    episodes = show.embedded.episodes if show.embedded else ()
    return TvmazeShowInfo(
        tvmaze_id=media.TvmazeId(show.id),
        title=show.name,
        status=show.status,
        timezone=zone,
        schedule_time=show.schedule.time if show.schedule else None,
        tvdb_id=show.externals.thetvdb if show.externals and show.externals.thetvdb else None,
        imdb_id=show.externals.imdb if show.externals else None,
        updated=show.updated,
        airings=tuple(
            EpisodeAiring(
                season=e.season,
                number=e.number,
                air_date=e.airdate,
                air_time=e.airtime,
                air_at=e.airstamp,
                runtime_min=e.runtime,
                tvmaze_id=e.id,
            )
            # Specials have no number on TVMaze; they cannot be matched to TMDB's.
            for e in episodes
            if e.number is not None
        ),
    )


# -- the client ---------------------------------------------------------------------------


class TvmazeClient:
    """TVMaze through the project's ``HttpClient`` (no key; 20 calls per 10 s)."""

    def __init__(self, http: HttpClient) -> None:
        self._http = http
        # One lookup at a time holds the extra limiter place its redirect needs (see
        # ``_redirect_place``); two holding one each could starve each other at the limit.
        self._lookup_lock = asyncio.Lock()

    async def lookup(self, *, tvdb: int | None = None, imdb: str | None = None) -> int | None:
        """The TVMaze id of the show with this TVDB or IMDb id, or None when TVMaze has none."""
        if (tvdb is None) == (imdb is None):
            raise ValueError("give exactly one of tvdb and imdb")
        params: dict[str, str | int] = {"thetvdb": tvdb} if tvdb is not None else {}
        if imdb is not None:
            params["imdb"] = imdb
        async with self._lookup_lock, self._redirect_place():
            response = await self._http.get("/lookup/shows", params=params, accept=(404,))
        if response.status == 404:
            return None
        return _parse(_Show, response).id

    async def show(self, tvmaze_id: int, *, fresh: bool = False) -> TvmazeShowInfo:
        """The show with every episode's airing (one call: ``embed=episodes``)."""
        response = await self._http.get(
            f"/shows/{tvmaze_id}",
            params={"embed": "episodes"},
            cache_namespace="show",
            bypass_cache=fresh,
            accept=(404,),
        )
        if response.status == 404:
            raise MetadataNotFound(SERVICE, f"show {tvmaze_id}")
        return _show_info(_parse(_Show, response))

    async def find(self, ids: ExternalIds, *, fresh: bool = False) -> TvmazeShowInfo | None:
        """The show by its TVMaze id if known, else by TVDB then IMDb id; None if unmatched."""
        if ids.tvmaze is not None:
            try:
                return await self.show(ids.tvmaze, fresh=fresh)
            except MetadataNotFound:
                log.warning(
                    "tvmaze show %d is gone; matching again by tvdb/imdb id",
                    ids.tvmaze,
                    extra={"action": "tvmaze_find", "tvmaze_id": ids.tvmaze},
                )
        found: int | None = None
        if ids.tvdb is not None:
            found = await self.lookup(tvdb=ids.tvdb)
        if found is None and ids.imdb is not None:
            found = await self.lookup(imdb=ids.imdb)
        if found is None:
            log.info(
                "no tvmaze match for %s",
                ids.as_dict(),
                extra={"action": "tvmaze_find", "ids": ids.as_dict()},
            )
            return None
        return await self.show(found, fresh=fresh)

    async def updated_shows(self, since: UpdateWindow | None = "day") -> dict[int, int]:
        """TVMaze id -> last update (epoch seconds) for shows updated in the window."""
        params = {"since": since} if since is not None else None
        response = await self._http.get("/updates/shows", params=params)
        try:
            return _UPDATES.validate_json(response.body)
        except PydanticValidationError as exc:
            raise UpstreamPayloadError(
                response.service, response.status, response.url, _why("updates", exc)
            ) from None

    async def updated_since(self, moment: datetime, now: datetime) -> dict[int, int]:
        """Shows updated at or after ``moment``: the smallest feed window that covers it."""
        age_s = (now - moment).total_seconds()
        since = next((name for name, span in UPDATE_WINDOWS_S if age_s <= span), None)
        floor = moment.timestamp()
        updated = await self.updated_shows(since)
        return {ident: stamp for ident, stamp in updated.items() if stamp >= floor}

    @asynccontextmanager
    async def _redirect_place(self) -> AsyncIterator[None]:
        """Hold one more limiter place while a lookup runs.

        ``/lookup/shows`` answers with a redirect to the show, which the session follows:
        the upstream counts two requests where ``HttpClient`` admits one. The extra place
        is held until the lookup is done, so the window counts it no earlier than TVMaze.
        """
        windows = self._http.policy.windows
        if not windows or any(limit < 2 for limit, _ in windows):
            yield
            return
        limiter = self._http.limiter
        place = await limiter.acquire()
        try:
            yield
        finally:
            limiter.release(place)


# -- air times ----------------------------------------------------------------------------


def zone_named(name: str | None) -> ZoneInfo | None:
    """The zone called ``name``, or None when it is empty or unknown to tzdata."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown time zone %r", name, extra={"action": "air_time_zone", "zone": name})
        return None


@dataclass(frozen=True, slots=True)
class AirTimeRule:
    """How an episode's air time is found: TVMaze's airstamp, else its date at a local time.

    The local time is TVMaze's airtime for the episode, else the show's weekly slot, else
    ``fallback_time``; the zone is the network's (TVMaze), else the country's prime-time
    zone from ``country_zones``, else UTC.
    """

    fallback_time: time = DEFAULT_FALLBACK_AIR_TIME
    country_zones: Mapping[str, str] = field(default_factory=lambda: COUNTRY_ZONES)

    def zone(self, tvmaze: TvmazeShowInfo | None, countries: Sequence[str] = ()) -> ZoneInfo | None:
        """The show's zone: TVMaze's network zone, else its first country's prime-time zone."""
        found = zone_named(tvmaze.timezone) if tvmaze is not None else None
        if found is not None:
            return found
        for country in countries:
            found = zone_named(self.country_zones.get(country.upper()))
            if found is not None:
                return found
        return None

    def air_time(
        self,
        air_date: date | None,
        airing: EpisodeAiring | None,
        zone: ZoneInfo | None,
        slot: time | None = None,
    ) -> tuple[datetime | None, AirTimeSource | None]:
        """The episode's air instant (UTC) and how it was found; (None, None) without a date."""
        if airing is not None and airing.air_at is not None:
            return airing.air_at.astimezone(UTC), AirTimeSource.EXACT
        day = airing.air_date if airing is not None and airing.air_date else air_date
        if day is None:
            return None, None
        local = airing.air_time if airing is not None and airing.air_time else slot
        source = AirTimeSource.SCHEDULE if local is not None else AirTimeSource.FALLBACK
        if zone is None:
            return datetime.combine(day, local or self.fallback_time, UTC), AirTimeSource.UTC
        at = datetime.combine(day, local or self.fallback_time, zone)
        return at.astimezone(UTC), source


async def find_airings(
    client: TvmazeClient | None, ids: ExternalIds, *, fresh: bool = False
) -> TvmazeShowInfo | None:
    """TVMaze's view of the show, or None when TVMaze is off, has no match or fails.

    TVMaze only refines air times, so its failures are logged and never fail an index.
    """
    if client is None:
        return None
    try:
        return await client.find(ids, fresh=fresh)
    except (UpstreamError, MetadataNotFound) as exc:
        log.warning(
            "tvmaze unavailable for %s, using fallback air times: %s",
            ids.as_dict(),
            exc,
            extra={"action": "tvmaze_find", "ids": ids.as_dict()},
        )
        return None

"""Sonarr v4 webhooks: ``SeriesAdd`` requests the show; grabs, imports and deletes re-check it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter

from riven_async.domain.intents import (
    EpisodeNumber,
    ExternalIds,
    Ignored,
    Intent,
    RecheckShow,
    RemoveMedia,
    RequestMedia,
    TestEvent,
)
from riven_async.errors import PayloadError
from riven_async.web.webhooks import (
    CamelPayload,
    ExternalId,
    ImdbId,
    LooseInt,
    Parsed,
    ParseOptions,
    event_name,
    load_object,
    validate,
)

SENDER = "sonarr"
EVENTS = frozenset({
    "Test", "Grab", "Download", "Rename", "SeriesAdd", "SeriesDelete", "EpisodeFileDelete",
    "Health", "HealthRestored", "ApplicationUpdate", "ManualInteractionRequired",
})


class Series(CamelPayload):
    title: str
    tvdb_id: ExternalId
    tmdb_id: ExternalId = None
    tv_maze_id: ExternalId = None
    imdb_id: ImdbId = None
    year: LooseInt = None


class Episode(CamelPayload):
    season_number: LooseInt
    episode_number: LooseInt


class SeriesAdd(CamelPayload):
    event_type: Literal["SeriesAdd"]
    series: Series


class SeriesDelete(CamelPayload):
    event_type: Literal["SeriesDelete"]
    series: Series


class Grab(CamelPayload):
    event_type: Literal["Grab"]
    series: Series
    episodes: list[Episode] = Field(default_factory=list)


class Download(CamelPayload):
    """Both shapes: per file (``episodeFile``) and Import Complete (``episodeFiles[]``).

    Only ``episodes[]`` is read from either; the files are not ours to check.
    """

    event_type: Literal["Download"]
    series: Series
    episodes: list[Episode] = Field(default_factory=list)
    episode_files: Any = None


class EpisodeFileDelete(CamelPayload):
    event_type: Literal["EpisodeFileDelete"]
    series: Series
    episodes: list[Episode] = Field(default_factory=list)


SonarrEvent = Annotated[
    SeriesAdd | SeriesDelete | Grab | Download | EpisodeFileDelete,
    Field(discriminator="event_type"),
]
_ADAPTER: TypeAdapter[SonarrEvent] = TypeAdapter(SonarrEvent)
_HANDLED = ("SeriesAdd", "SeriesDelete", "Grab", "Download", "EpisodeFileDelete")


def decode_sonarr(body: bytes, content_type: str, options: ParseOptions) -> Parsed:
    """Decode one Sonarr delivery (any content type; Sonarr sends application/json)."""
    data, canonical = load_object(body)
    raw_event = data.get("eventType")
    if not isinstance(raw_event, str) or not raw_event:
        raise PayloadError("eventType is required", "eventType", 422)
    event = event_name(raw_event)
    if event == "Test":
        return Parsed(event, canonical, (TestEvent(SENDER),))
    if event not in _HANDLED:
        return Parsed(event, canonical, (Ignored(f"sonarr {event}: nothing to do"),))
    model = validate(_ADAPTER, data, tags=_HANDLED)
    return Parsed(event, canonical, (_intent(model, options),))


def parse_sonarr(body: bytes, content_type: str, options: ParseOptions) -> list[Intent]:
    """The intents of one Sonarr delivery; PayloadError for bad input."""
    return list(decode_sonarr(body, content_type, options).intents)


def _ids(series: Series) -> ExternalIds:
    ids = ExternalIds(
        tmdb=series.tmdb_id, tvdb=series.tvdb_id, imdb=series.imdb_id, tvmaze=series.tv_maze_id
    )
    if ids.is_empty():
        raise PayloadError("series.tvdbId is required (0 = unknown)", "series.tvdbId", 422)
    return ids


def _intent(model: SonarrEvent, options: ParseOptions) -> Intent:
    series = model.series
    ids = _ids(series)
    if isinstance(model, SeriesAdd):
        return RequestMedia(
            kind="show", ids=ids, title=series.title, year=series.year,
            seasons=None, source=SENDER,
        )
    if isinstance(model, SeriesDelete):
        if not options.follow_deletes:
            return Ignored("sonarr SeriesDelete: webhooks.follow_deletes is off")
        return RemoveMedia(
            kind="show", ids=ids, title=series.title, source=SENDER,
            reason="deleted in sonarr",
        )
    reason = f"sonarr {model.event_type}"
    if isinstance(model, Download) and model.episode_files is not None:
        reason += " (import complete)"
    episodes = sorted({
        EpisodeNumber(e.season_number, e.episode_number)
        for e in model.episodes
        if e.season_number is not None and e.episode_number is not None
    }, key=lambda e: (e.season, e.episode))
    return RecheckShow(
        ids=ids, title=series.title, reason=reason, source=SENDER, year=series.year,
        seasons=tuple(sorted({e.season for e in episodes})), episodes=tuple(episodes),
    )

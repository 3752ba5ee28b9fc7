"""Radarr webhooks: ``MovieAdded`` requests the movie; grabs and imports re-check it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from riven_async.domain.intents import (
    ExternalIds,
    Ignored,
    Intent,
    RecheckMovie,
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

SENDER = "radarr"
EVENTS = frozenset({
    "Test", "Grab", "Download", "Rename", "MovieAdded", "MovieDelete", "MovieFileDelete",
    "Health", "HealthRestored", "ApplicationUpdate", "ManualInteractionRequired",
})


class Movie(CamelPayload):
    title: str
    tmdb_id: ExternalId
    imdb_id: ImdbId = None
    year: LooseInt = None


class MovieAdded(CamelPayload):
    event_type: Literal["MovieAdded"]
    movie: Movie


class MovieDelete(CamelPayload):
    event_type: Literal["MovieDelete"]
    movie: Movie


class Grab(CamelPayload):
    event_type: Literal["Grab"]
    movie: Movie


class Download(CamelPayload):
    """Per file (``movieFile``) or a list should Radarr send one; only ``movie`` is read."""

    event_type: Literal["Download"]
    movie: Movie


RadarrEvent = Annotated[
    MovieAdded | MovieDelete | Grab | Download, Field(discriminator="event_type")
]
_ADAPTER: TypeAdapter[RadarrEvent] = TypeAdapter(RadarrEvent)
_HANDLED = ("MovieAdded", "MovieDelete", "Grab", "Download")


def decode_radarr(body: bytes, content_type: str, options: ParseOptions) -> Parsed:
    """Decode one Radarr delivery (any content type; Radarr sends application/json)."""
    data, canonical = load_object(body)
    raw_event = data.get("eventType")
    if not isinstance(raw_event, str) or not raw_event:
        raise PayloadError("eventType is required", "eventType", 422)
    event = event_name(raw_event)
    if event == "Test":
        return Parsed(event, canonical, (TestEvent(SENDER),))
    if event not in _HANDLED:
        return Parsed(event, canonical, (Ignored(f"radarr {event}: nothing to do"),))
    model = validate(_ADAPTER, data, tags=_HANDLED)
    return Parsed(event, canonical, (_intent(model, options),))


def parse_radarr(body: bytes, content_type: str, options: ParseOptions) -> list[Intent]:
    """The intents of one Radarr delivery; PayloadError for bad input."""
    return list(decode_radarr(body, content_type, options).intents)


def _intent(model: RadarrEvent, options: ParseOptions) -> Intent:
    movie = model.movie
    ids = ExternalIds(tmdb=movie.tmdb_id, imdb=movie.imdb_id)
    if ids.is_empty():
        raise PayloadError("movie.tmdbId is required", "movie.tmdbId", 422)
    if isinstance(model, MovieAdded):
        return RequestMedia(
            kind="movie", ids=ids, title=movie.title, year=movie.year, seasons=None,
            source=SENDER,
        )
    if isinstance(model, MovieDelete):
        if not options.follow_deletes:
            return Ignored("radarr MovieDelete: webhooks.follow_deletes is off")
        return RemoveMedia(
            kind="movie", ids=ids, title=movie.title, source=SENDER, reason="deleted in radarr"
        )
    return RecheckMovie(
        ids=ids, title=movie.title, year=movie.year, reason=f"radarr {model.event_type}",
        source=SENDER,
    )

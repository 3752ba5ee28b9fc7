"""Jellyfin Webhook plugin ("Generic" destination): ``ItemAdded`` for a show re-checks it.

The body is whatever the user's Handlebars template renders (or every property, with "Send
All Properties"), sent as ``text/plain`` by default, so the content type is ignored. Numbers
arrive as ints or as strings, and the plugin pre-escapes ``"`` inside values, which leaves a
literal backslash after decoding. Provider ids of a Season or Episode item are that item's
own; the show is named only by ``SeriesName``/``SeriesId``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import orjson
from pydantic import BeforeValidator, Field, TypeAdapter

from riven_async.domain.intents import (
    EpisodeNumber,
    ExternalIds,
    Ignored,
    Intent,
    RecheckShow,
    ServerRef,
)
from riven_async.errors import PayloadError
from riven_async.web.webhooks import (
    ExternalId,
    ImdbId,
    LooseInt,
    Parsed,
    ParseOptions,
    Payload,
    ServerKey,
    event_name,
    load_json,
    validate,
)

SENDER = "jellyfin"
EMPTY_EVENT = "empty"
EVENTS = frozenset({
    EMPTY_EVENT,
    "ItemAdded", "ItemDeleted", "PlaybackStart", "PlaybackProgress", "PlaybackStop",
    "UserDataSaved", "AuthenticationSuccess", "AuthenticationFailure", "SessionStart",
    "PendingRestart", "TaskCompleted", "UserCreated", "UserDeleted", "UserLockedOut",
    "UserPasswordChanged", "UserUpdated", "PluginInstalled", "PluginUninstalled",
    "PluginUpdated", "PluginInstallationCancelled", "PluginInstallationFailed",
    "PluginInstalling", "SubtitleDownloadFailure", "Generic",
})
SHOW_TYPES = ("Series", "Season", "Episode")
_BOM = b"\xef\xbb\xbf"
_MAX_EPISODE_SPAN = 50
# A placeholder that rendered nothing: `"SeasonNumber": ,` or `"X": }` (unquoted template).
_EMPTY_VALUE_RE = re.compile(rb":[ \t\r\n]*(?=[,}\]])")
_TRAILING_COMMA_RE = re.compile(rb",[ \t\r\n]*(?=[}\]])")


def _unescape(value: object) -> object:
    return value.replace('\\"', '"') if isinstance(value, str) else value


Text = Annotated[str | None, BeforeValidator(_unescape)]


class Envelope(Payload):
    notification_type: str = Field(alias="NotificationType", min_length=1)
    item_type: str | None = Field(default=None, alias="ItemType")


class _Item(Payload):
    name: Text = Field(default=None, alias="Name")
    item_id: ServerKey = Field(default=None, alias="ItemId")
    server_id: ServerKey = Field(default=None, alias="ServerId")
    year: LooseInt = Field(default=None, alias="Year")


class SeriesItem(_Item):
    item_type: Literal["Series"] = Field(alias="ItemType")
    tmdb: ExternalId = Field(default=None, alias="Provider_tmdb")
    tvdb: ExternalId = Field(default=None, alias="Provider_tvdb")
    imdb: ImdbId = Field(default=None, alias="Provider_imdb")
    tvmaze: ExternalId = Field(default=None, alias="Provider_tvmaze")


class _SeriesChild(_Item):
    series_name: Text = Field(default=None, alias="SeriesName")
    series_id: ServerKey = Field(default=None, alias="SeriesId")
    season_number: LooseInt = Field(default=None, alias="SeasonNumber")
    # "Year" of a season or episode is its own production year; the show's is this date's.
    series_premiere: str | None = Field(default=None, alias="SeriesPremiereDate")

    @property
    def series_year(self) -> int | None:
        """The show's first-air year, when the payload carries it."""
        head = (self.series_premiere or "").strip()[:4]
        return int(head) if len(head) == 4 and head.isascii() and head.isdigit() else None


class SeasonItem(_SeriesChild):
    item_type: Literal["Season"] = Field(alias="ItemType")


class EpisodeItem(_SeriesChild):
    item_type: Literal["Episode"] = Field(alias="ItemType")
    episode_number: LooseInt = Field(default=None, alias="EpisodeNumber")
    episode_number_end: LooseInt = Field(default=None, alias="EpisodeNumberEnd")


ShowItem = Annotated[SeriesItem | SeasonItem | EpisodeItem, Field(discriminator="item_type")]
_ENVELOPE: TypeAdapter[Envelope] = TypeAdapter(Envelope)
_ITEM: TypeAdapter[ShowItem] = TypeAdapter(ShowItem)


def decode_jellyfin(body: bytes, content_type: str, options: ParseOptions) -> Parsed:
    """Decode one Jellyfin delivery whatever its content type; empty bodies are ignored."""
    if not body.strip():
        reason = "jellyfin: empty body (the webhook template rendered nothing)"
        return Parsed(EMPTY_EVENT, b"", (Ignored(reason),))
    data, canonical = _load(body)
    envelope = validate(_ENVELOPE, data)
    event = event_name(envelope.notification_type)
    if event != "ItemAdded":
        return Parsed(event, canonical, (Ignored(f"jellyfin {event}: nothing to do"),))
    item_type = envelope.item_type or ""
    if item_type not in SHOW_TYPES:
        reason = f"jellyfin ItemAdded {item_type[:32] or 'without ItemType'}: not a show"
        return Parsed(event, canonical, (Ignored(reason),))
    return Parsed(event, canonical, (_recheck(validate(_ITEM, data, tags=SHOW_TYPES)),))


def parse_jellyfin(body: bytes, content_type: str, options: ParseOptions) -> list[Intent]:
    """The intents of one Jellyfin delivery; PayloadError for bad input."""
    return list(decode_jellyfin(body, content_type, options).intents)


def _load(body: bytes) -> tuple[dict[str, Any], bytes]:
    """The body as a JSON object, repairing what a template with empty placeholders renders."""
    chosen = body
    try:
        orjson.loads(body.removeprefix(_BOM))
    except orjson.JSONDecodeError as exc:
        repaired = _TRAILING_COMMA_RE.sub(b"", _EMPTY_VALUE_RE.sub(b": null", body))
        try:
            orjson.loads(repaired.removeprefix(_BOM))
        except orjson.JSONDecodeError:
            raise PayloadError(
                f"the body is not valid JSON ({exc}); check the Jellyfin webhook template",
                None, 400,
            ) from None
        chosen = repaired
    data, canonical = load_json(chosen)
    if not isinstance(data, dict):
        raise PayloadError("the body must be a JSON object", None, 422)
    return data, canonical


def _recheck(item: SeriesItem | SeasonItem | EpisodeItem) -> Intent:
    if isinstance(item, SeriesItem):
        ids = ExternalIds(tmdb=item.tmdb, tvdb=item.tvdb, imdb=item.imdb, tvmaze=item.tvmaze)
        if ids.is_empty() and item.item_id is None and not item.name:
            raise PayloadError("Provider_tvdb or ItemId is required", "Provider_tvdb", 422)
        ref = ServerRef("jellyfin", item.item_id, item.server_id) if item.item_id else None
        return RecheckShow(
            ids=ids, title=item.name, reason="jellyfin ItemAdded Series", source=SENDER,
            year=item.year, server_ref=ref,
        )
    if item.series_id is None and not item.series_name:
        raise PayloadError("SeriesId or SeriesName is required", "SeriesId", 422)
    ref = ServerRef("jellyfin", item.series_id, item.server_id) if item.series_id else None
    season = item.season_number
    episodes: tuple[EpisodeNumber, ...] = ()
    if isinstance(item, EpisodeItem) and season is not None and item.episode_number is not None:
        first = item.episode_number
        last = item.episode_number_end or first
        if not first <= last <= first + _MAX_EPISODE_SPAN:
            last = first
        episodes = tuple(EpisodeNumber(season, n) for n in range(first, last + 1))
    return RecheckShow(
        ids=ExternalIds(), title=item.series_name, reason=f"jellyfin ItemAdded {item.item_type}",
        source=SENDER, year=item.series_year, seasons=(season,) if season is not None else (),
        episodes=episodes, server_ref=ref,
    )

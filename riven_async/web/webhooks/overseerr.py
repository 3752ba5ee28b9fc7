"""Overseerr, Jellyseerr and Seerr webhooks (default template): approved requests only.

Template substitution is string replacement, so every value is a string and unknown ones
are ``""``; special objects (``{{media}}``, ``{{request}}``) become ``null`` when absent.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, TypeAdapter

from riven_async.domain.intents import ExternalIds, Ignored, Intent, RequestMedia, TestEvent
from riven_async.errors import PayloadError
from riven_async.web.webhooks import (
    ExternalId,
    ImdbId,
    Parsed,
    ParseOptions,
    Payload,
    event_name,
    load_object,
    split_title_year,
    validate,
)

SENDER = "overseerr"
APPROVED = frozenset({"MEDIA_APPROVED", "MEDIA_AUTO_APPROVED"})
# Waiting for approval; MEDIA_APPROVED follows if an admin approves.
PENDING = frozenset({"MEDIA_PENDING", "MEDIA_AUTO_REQUESTED"})
EVENTS = APPROVED | PENDING | frozenset({
    "TEST_NOTIFICATION", "MEDIA_AVAILABLE", "MEDIA_FAILED", "MEDIA_DECLINED",
    "ISSUE_CREATED", "ISSUE_COMMENT", "ISSUE_RESOLVED", "ISSUE_REOPENED",
})
# Riven answers this subject before validating anything; Riven users' scripts rely on it.
RIVEN_TEST_SUBJECT = "Test Notification"
REQUESTED_SEASONS = "Requested Seasons"
_MAX_SEASON_DIGITS = 4


class Media(Payload):
    media_type: Literal["movie", "tv"]
    tmdb_id: ExternalId = Field(default=None, alias="tmdbId")
    tvdb_id: ExternalId = Field(default=None, alias="tvdbId")
    imdb_id: ImdbId = Field(default=None, alias="imdbId")


class Request(Payload):
    request_id: str | int | None = None
    requested_by_username: str | None = Field(default=None, alias="requestedBy_username")
    requested_by_email: str | None = Field(default=None, alias="requestedBy_email")


class Extra(Payload):
    """One ``extra[]`` entry; only "Requested Seasons" is read, the others can be anything."""

    name: Any = None
    value: Any = None


class RequestEvent(Payload):
    notification_type: str
    subject: str | None = None
    media: Media
    request: Request | None = None
    extra: list[Extra] | None = None


_ADAPTER: TypeAdapter[RequestEvent] = TypeAdapter(RequestEvent)


def decode_overseerr(body: bytes, content_type: str, options: ParseOptions) -> Parsed:
    """Decode one Overseerr-family delivery."""
    data, canonical = load_object(body)
    raw_type = data.get("notification_type")
    if raw_type == "TEST_NOTIFICATION" or data.get("subject") == RIVEN_TEST_SUBJECT:
        return Parsed("TEST_NOTIFICATION", canonical, (TestEvent(SENDER),))
    if not isinstance(raw_type, str) or not raw_type:
        raise PayloadError("notification_type is required", "notification_type", 422)
    event = event_name(raw_type)
    if media_type(data) == "music":
        return Parsed(event, canonical, (Ignored("overseerr: music requests are not handled"),))
    if event in APPROVED or (event in PENDING and options.accept_pending):
        return Parsed(event, canonical, (_request(validate(_ADAPTER, data)),))
    if event in PENDING:
        return Parsed(event, canonical, (
            Ignored(f"overseerr {event}: not approved yet (webhooks.accept_pending is off)"),
        ))
    return Parsed(event, canonical, (Ignored(f"overseerr {event}: nothing to do"),))


def parse_overseerr(body: bytes, content_type: str, options: ParseOptions) -> list[Intent]:
    """The intents of one Overseerr/Jellyseerr/Seerr delivery; PayloadError for bad input."""
    return list(decode_overseerr(body, content_type, options).intents)


def media_type(data: dict[str, object]) -> object:
    """``media.media_type`` when present, without validating anything."""
    media = data.get("media")
    return media.get("media_type") if isinstance(media, dict) else None


def _request(event: RequestEvent) -> Intent:
    media = event.media
    title, year = split_title_year(event.subject)
    requester = None
    source_ref = None
    if event.request is not None:
        requester = event.request.requested_by_username or event.request.requested_by_email
        source_ref = str(event.request.request_id or "") or None
    if media.media_type == "movie":
        if media.tmdb_id is None:
            raise PayloadError("media.tmdbId is required for a movie", "media.tmdbId", 422)
        ids = ExternalIds(tmdb=media.tmdb_id, imdb=media.imdb_id)
        return RequestMedia(
            kind="movie", ids=ids, title=title, year=year, seasons=None, source=SENDER,
            requester=requester or None, source_ref=source_ref,
        )
    if media.tvdb_id is None and media.tmdb_id is None:
        raise PayloadError("media.tvdbId or media.tmdbId is required", "media.tvdbId", 422)
    ids = ExternalIds(tmdb=media.tmdb_id, tvdb=media.tvdb_id, imdb=media.imdb_id)
    return RequestMedia(
        kind="show", ids=ids, title=title, year=year, seasons=_seasons(event.extra),
        source=SENDER, requester=requester or None, source_ref=source_ref,
    )


def _seasons(extra: list[Extra] | None) -> tuple[int, ...] | None:
    """``"1, 2"`` from the "Requested Seasons" entry; None (the whole show) without one."""
    for entry in extra or ():
        if entry.name != REQUESTED_SEASONS:
            continue
        if not isinstance(entry.value, str):
            raise PayloadError(
                f"extra[{REQUESTED_SEASONS}] must be a string like '1, 2'",
                f"extra.{REQUESTED_SEASONS}", 422,
            )
        parts = [part.strip() for part in entry.value.split(",") if part.strip()]
        if not parts:
            return None
        if not all(p.isascii() and p.isdigit() and len(p) <= _MAX_SEASON_DIGITS for p in parts):
            raise PayloadError(
                f"extra[{REQUESTED_SEASONS}] must be season numbers like '1, 2'",
                f"extra.{REQUESTED_SEASONS}", 422,
            )
        return tuple(sorted({int(p) for p in parts}))
    return None

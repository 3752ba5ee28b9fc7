"""What an inbound webhook asks of the daemon, whoever sent it."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, get_args

MediaKind = Literal["movie", "show"]
ServerKind = Literal["plex", "jellyfin"]
DELIVERY_KEY_BYTES = 16


@dataclass(frozen=True, slots=True)
class ExternalIds:
    """The ids a sender gave us; ``None`` where it did not know (0 and "" never get here)."""

    tmdb: int | None = None
    tvdb: int | None = None
    imdb: str | None = None
    tvmaze: int | None = None

    def is_empty(self) -> bool:
        """True when no id at all is known."""
        return self.tmdb is None and self.tvdb is None and self.imdb is None and (
            self.tvmaze is None
        )

    def as_dict(self) -> dict[str, int | str]:
        """The known ids only, keyed ``tmdb``/``tvdb``/``imdb``/``tvmaze``."""
        pairs = (("tmdb", self.tmdb), ("tvdb", self.tvdb), ("imdb", self.imdb),
                 ("tvmaze", self.tvmaze))
        return {name: value for name, value in pairs if value is not None}


@dataclass(frozen=True, slots=True)
class EpisodeNumber:
    """A season/episode pair a sender mentioned (a hint, not a claim of availability)."""

    season: int
    episode: int


@dataclass(frozen=True, slots=True)
class ServerRef:
    """How a media server names the show when its payload carries no show ids.

    ``item_key`` is Plex's rating key or Jellyfin's series id; the show's ids are resolved
    later through that server's API (or by title), never while the webhook is answered.
    """

    server: ServerKind
    item_key: str
    server_id: str | None = None


@dataclass(frozen=True, slots=True)
class RequestMedia:
    """Someone asked for a movie or a show: make it an item (state Requested) at once."""

    kind: MediaKind
    ids: ExternalIds
    title: str | None
    year: int | None
    seasons: tuple[int, ...] | None
    source: str
    requester: str | None = None
    source_ref: str | None = None


@dataclass(frozen=True, slots=True)
class RecheckShow:
    """Something happened to a show elsewhere: look for new episodes now.

    ``seasons`` and ``episodes`` are hints from the sender; empty means "the whole show".
    """

    ids: ExternalIds
    title: str | None
    reason: str
    source: str
    year: int | None = None
    seasons: tuple[int, ...] = ()
    episodes: tuple[EpisodeNumber, ...] = ()
    server_ref: ServerRef | None = None


@dataclass(frozen=True, slots=True)
class RecheckMovie:
    """Something happened to a movie elsewhere: check it now."""

    ids: ExternalIds
    title: str | None
    year: int | None
    reason: str
    source: str


@dataclass(frozen=True, slots=True)
class RemoveMedia:
    """The sender deleted it and ``webhooks.follow_deletes`` is on: remove it here too."""

    kind: MediaKind
    ids: ExternalIds
    title: str | None
    source: str
    reason: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """Nothing to do; answered 200 so the sender keeps the hook enabled."""

    reason: str


@dataclass(frozen=True, slots=True)
class TestEvent:
    """The sender's "test" button; answered 200, nothing to do."""

    __test__ = False  # not a pytest test class, despite the name

    source: str


Intent: TypeAlias = RequestMedia | RecheckShow | RecheckMovie | RemoveMedia | Ignored | TestEvent
ACTIONABLE: tuple[type[Intent], ...] = (RequestMedia, RecheckShow, RecheckMovie, RemoveMedia)
_BY_NAME: dict[str, type[Intent]] = {cls.__name__: cls for cls in get_args(Intent)}


def is_actionable(intent: Intent) -> bool:
    """True for intents that change something (not Ignored, not TestEvent)."""
    return isinstance(intent, ACTIONABLE)


def any_actionable(intents: Iterable[Intent]) -> bool:
    """True when at least one intent changes something."""
    return any(isinstance(intent, ACTIONABLE) for intent in intents)


def delivery_key(sender: str, canonical_payload: bytes) -> str:
    """A stable id for one delivery: 32 hex digits over the sender and the canonical body.

    Senders retry with the same body, so a retry has the same key. Some senders also repeat
    identical bodies on purpose (a second Grab of one release), so stores should treat a key
    as a duplicate within a retry window, not forever.
    """
    digest = hashlib.blake2b(digest_size=DELIVERY_KEY_BYTES)
    digest.update(sender.encode("utf-8"))
    digest.update(b"\x00")
    digest.update(canonical_payload)
    return digest.hexdigest()


def intent_to_dict(intent: Intent) -> dict[str, Any]:
    """A JSON-ready dict with a ``type`` key; ``intent_from_dict`` reverses it."""
    data = dataclasses.asdict(intent)
    data["type"] = type(intent).__name__
    return data


def intent_from_dict(data: Mapping[str, Any]) -> Intent:
    """Rebuild an intent written by ``intent_to_dict``; ValueError on anything else."""
    values = dict(data)
    cls = _BY_NAME.get(str(values.pop("type", "")))
    if cls is None:
        raise ValueError(f"unknown intent type {data.get('type')!r}")
    try:
        if "ids" in values:
            values["ids"] = ExternalIds(**values["ids"])
        if values.get("seasons") is not None:
            values["seasons"] = tuple(int(s) for s in values["seasons"])
        if "episodes" in values:
            values["episodes"] = tuple(EpisodeNumber(**e) for e in values["episodes"])
        if values.get("server_ref") is not None:
            values["server_ref"] = ServerRef(**values["server_ref"])
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad fields for intent {cls.__name__}: {exc}") from None

"""Our own hook: ``{"tmdb_id"|"tvdb_id"|"imdb_id": …, "title"?: …}`` re-checks that show now.

``/webhook/show-update/batch`` takes a JSON list of the same objects.
"""

from __future__ import annotations

from pydantic import TypeAdapter

from riven_async.domain.intents import ExternalIds, Ignored, Intent, RecheckShow
from riven_async.errors import PayloadError
from riven_async.web.webhooks import (
    ExternalId,
    ImdbId,
    LooseInt,
    Parsed,
    ParseOptions,
    Payload,
    load_json,
    validate,
)

SENDER = "show_update"
EVENT = "show-update"
BATCH_EVENT = "show-update-batch"
EVENTS = frozenset({EVENT, BATCH_EVENT})
MAX_BATCH = 1000


class ShowUpdate(Payload):
    tmdb_id: ExternalId = None
    tvdb_id: ExternalId = None
    imdb_id: ImdbId = None
    tvmaze_id: ExternalId = None
    title: str | None = None
    year: LooseInt = None


_ONE: TypeAdapter[ShowUpdate] = TypeAdapter(ShowUpdate)
_MANY: TypeAdapter[list[ShowUpdate]] = TypeAdapter(list[ShowUpdate])


def decode_show_update(body: bytes, content_type: str, options: ParseOptions) -> Parsed:
    """Decode one show-update object."""
    data, canonical = load_json(body)
    if not isinstance(data, dict):
        raise PayloadError("the body must be a JSON object", None, 422)
    return Parsed(EVENT, canonical, (_recheck(validate(_ONE, data), ""),))


def decode_show_update_batch(body: bytes, content_type: str, options: ParseOptions) -> Parsed:
    """Decode a list of show-update objects (at most MAX_BATCH)."""
    data, canonical = load_json(body)
    if not isinstance(data, list):
        raise PayloadError("the body must be a JSON list of shows", None, 422)
    if len(data) > MAX_BATCH:
        raise PayloadError(f"at most {MAX_BATCH} shows per batch", None, 422)
    if not data:
        return Parsed(BATCH_EVENT, canonical, (Ignored("show-update batch: empty list"),))
    updates = validate(_MANY, data)
    intents = tuple(_recheck(update, f"[{n}].") for n, update in enumerate(updates))
    return Parsed(BATCH_EVENT, canonical, intents)


def parse_show_update(body: bytes, content_type: str, options: ParseOptions) -> list[Intent]:
    """The intent of one show-update body; PayloadError for bad input."""
    return list(decode_show_update(body, content_type, options).intents)


def parse_show_update_batch(
    body: bytes, content_type: str, options: ParseOptions
) -> list[Intent]:
    """The intents of a show-update batch; PayloadError for bad input."""
    return list(decode_show_update_batch(body, content_type, options).intents)


def _recheck(update: ShowUpdate, where: str) -> RecheckShow:
    ids = ExternalIds(
        tmdb=update.tmdb_id, tvdb=update.tvdb_id, imdb=update.imdb_id, tvmaze=update.tvmaze_id
    )
    if ids.is_empty():
        raise PayloadError(
            f"{where}tmdb_id, tvdb_id or imdb_id is required", f"{where}tmdb_id", 422
        )
    return RecheckShow(
        ids=ids, title=update.title or None, reason="show-update", source=SENDER,
        year=update.year,
    )

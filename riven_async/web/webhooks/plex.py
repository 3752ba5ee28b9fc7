"""Plex Media Server webhooks: ``library.new`` for a show, season or episode re-checks the show.

PMS posts ``multipart/form-data``: the JSON is the ``payload`` part (typed application/json,
so aiohttp's ``request.post()`` would hand it over as bytes), plus an optional ``thumb``
JPEG that is dropped unread. The show's ids are not in an episode's payload: its ``Guid[]``
are the episode's own. The show is named by its rating key and title, resolved later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import parse_qs, unquote

from aiohttp.helpers import parse_mimetype
from pydantic import Field, TypeAdapter

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
    MAX_EXTERNAL_ID,
    LooseInt,
    Parsed,
    ParseOptions,
    Payload,
    ServerKey,
    event_name,
    load_object,
    split_title_year,
    validate,
)

SENDER = "plex"
EVENTS = frozenset({
    "library.new", "library.on.deck", "media.play", "media.pause", "media.resume",
    "media.stop", "media.scrobble", "media.rate", "playback.started", "device.new",
    "admintools.common.metadata.updated", "admintools.database.backup",
    "admintools.database.corrupted", "admintools.library.scan.completed",
})
SHOW_TYPES = frozenset({"show", "season", "episode"})
PAYLOAD_PART = "payload"
# One ``; key=value`` parameter; a quoted value is consumed whole (it may hold ``;``).
_PARAM_RE = re.compile(r';\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
_QUOTED_PAIR_RE = re.compile(r"\\(.)")
_LEGACY_AGENTS = {
    "com.plexapp.agents.thetvdb": "tvdb",
    "com.plexapp.agents.themoviedb": "tmdb",
    "com.plexapp.agents.imdb": "imdb",
    "com.plexapp.agents.tvmaze": "tvmaze",
}


class Guid(Payload):
    id: str


class Server(Payload):
    uuid: ServerKey = None


class Metadata(Payload):
    type: str
    title: str | None = None
    rating_key: ServerKey = Field(default=None, alias="ratingKey")
    guid: ServerKey = None
    index: LooseInt = None
    parent_rating_key: ServerKey = Field(default=None, alias="parentRatingKey")
    parent_title: str | None = Field(default=None, alias="parentTitle")
    parent_guid: ServerKey = Field(default=None, alias="parentGuid")
    parent_index: LooseInt = Field(default=None, alias="parentIndex")
    grandparent_rating_key: ServerKey = Field(default=None, alias="grandparentRatingKey")
    grandparent_title: str | None = Field(default=None, alias="grandparentTitle")
    grandparent_guid: ServerKey = Field(default=None, alias="grandparentGuid")
    guids: list[Guid] = Field(default_factory=list, alias="Guid")


class LibraryNew(Payload):
    event: str
    server: Server | None = Field(default=None, alias="Server")
    metadata: Metadata = Field(alias="Metadata")


_ADAPTER: TypeAdapter[LibraryNew] = TypeAdapter(LibraryNew)


def decode_plex(body: bytes, content_type: str, options: ParseOptions) -> Parsed:
    """Decode one Plex delivery: multipart as PMS sends it, or the bare JSON."""
    data, canonical = load_object(payload_json(body, content_type))
    raw_event = data.get("event")
    if not isinstance(raw_event, str) or not raw_event:
        raise PayloadError("event is required", "event", 422)
    event = event_name(raw_event)
    if event != "library.new":
        return Parsed(event, canonical, (Ignored(f"plex {event}: nothing to do"),))
    model = validate(_ADAPTER, data)
    kind = model.metadata.type
    if kind not in SHOW_TYPES:
        return Parsed(event, canonical, (Ignored(f"plex library.new {kind[:32]}: not a show"),))
    return Parsed(event, canonical, (_recheck(model),))


def parse_plex(body: bytes, content_type: str, options: ParseOptions) -> list[Intent]:
    """The intents of one Plex delivery; PayloadError for bad input."""
    return list(decode_plex(body, content_type, options).intents)


def payload_json(body: bytes, content_type: str) -> bytes:
    """The JSON document inside a Plex body."""
    media_type, params = _content_type(content_type)
    if media_type == "multipart/form-data":
        boundary = params.get("boundary")
        if not boundary:
            raise PayloadError("multipart body without a boundary", "Content-Type", 400)
        return _multipart_field(body, boundary, PAYLOAD_PART)
    if media_type == "application/x-www-form-urlencoded":
        values = parse_qs(body.decode("utf-8", "replace"), max_num_fields=100)
        if PAYLOAD_PART not in values:
            raise PayloadError("the form has no 'payload' field", PAYLOAD_PART, 400)
        return values[PAYLOAD_PART][0].encode("utf-8", "surrogatepass")
    return body


def _content_type(header: str) -> tuple[str, Mapping[str, str]]:
    """The media type (lowercase) and its parameters (lowercase names, values unquoted)."""
    try:
        mime = parse_mimetype(header)
    except (ValueError, TypeError, IndexError):
        raise PayloadError("unreadable Content-Type", "Content-Type", 400) from None
    return f"{mime.type}/{mime.subtype}", mime.parameters


def _multipart_field(body: bytes, boundary: str, name: str) -> bytes:
    """The content of the form field ``name``; other parts (the thumb) are skipped."""
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    for raw in body.split(delimiter)[1:]:
        if raw.startswith(b"--"):
            break
        part = raw.removeprefix(b"\r\n").removeprefix(b"\n")
        head, content = _split_part(part)
        if _field_name(head) == name:
            return content.removesuffix(b"\n").removesuffix(b"\r")
    raise PayloadError(f"the multipart body has no '{name}' part", name, 400)


def _split_part(part: bytes) -> tuple[bytes, bytes]:
    crlf, lf = part.find(b"\r\n\r\n"), part.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf <= lf):
        return part[:crlf], part[crlf + 4:]
    if lf >= 0:
        return part[:lf], part[lf + 2:]
    return part, b""


def _field_name(head: bytes) -> str | None:
    """The ``name`` of a part from its headers (``name="payload"`` or RFC 2231 ``name*=``)."""
    for line in head.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition(":")
        if not sep or key.strip().lower() != "content-disposition":
            continue
        params = {k.lower(): v.strip() for k, v in _PARAM_RE.findall(";" + value.partition(";")[2])}
        if "name" in params:
            raw = params["name"]
            if len(raw) >= 2 and raw[0] == raw[-1] == '"':
                return _QUOTED_PAIR_RE.sub(r"\1", raw[1:-1]) or None
            return raw or None
        if "name*" in params:
            # charset'language'percent-encoded-value
            return unquote(params["name*"].split("'", 2)[-1]) or None
        return None
    return None


def guid_ids(guids: list[str]) -> ExternalIds:
    """Ids from ``imdb://tt…``/``tmdb://…``/``tvdb://…`` and legacy agent guids.

    A legacy TV agent guid (``com.plexapp.agents.thetvdb://73244/1/2?lang=en``) starts with
    the show's id even on an episode, so it identifies the show.
    """
    found: dict[str, int | str] = {}
    for guid in guids:
        scheme, sep, rest = guid.partition("://")
        if not sep:
            continue
        source = {"imdb": "imdb", "tmdb": "tmdb", "tvdb": "tvdb"}.get(scheme)
        source = source or _LEGACY_AGENTS.get(scheme)
        value = rest.split("?", 1)[0].split("/", 1)[0]
        if scheme == "com.plexapp.agents.hama" and value.startswith("tvdb-"):
            source, value = "tvdb", value.removeprefix("tvdb-")
        if source is None or source in found:
            continue
        if source == "imdb":
            if value.startswith("tt") and value[2:].isdigit() and value.isascii():
                found[source] = value
        elif value.isdigit() and value.isascii() and 0 < int(value[:10]) <= MAX_EXTERNAL_ID:
            found[source] = int(value)
    tmdb, tvdb, tvmaze = found.get("tmdb"), found.get("tvdb"), found.get("tvmaze")
    imdb = found.get("imdb")
    return ExternalIds(
        tmdb=tmdb if isinstance(tmdb, int) else None,
        tvdb=tvdb if isinstance(tvdb, int) else None,
        imdb=imdb if isinstance(imdb, str) else None,
        tvmaze=tvmaze if isinstance(tvmaze, int) else None,
    )


def _recheck(model: LibraryNew) -> Intent:
    meta = model.metadata
    server_id = model.server.uuid if model.server is not None else None
    episodes: tuple[EpisodeNumber, ...] = ()
    seasons: tuple[int, ...] = ()
    if meta.type == "show":
        key, raw_title, field = meta.rating_key, meta.title, "Metadata.ratingKey"
        ids = guid_ids([g.id for g in meta.guids] + [meta.guid or ""])
    elif meta.type == "season":
        key, raw_title = meta.parent_rating_key, meta.parent_title
        field = "Metadata.parentRatingKey"
        ids = _legacy_only([meta.parent_guid, meta.guid])
        seasons = (meta.index,) if meta.index is not None else ()
    else:
        key, raw_title = meta.grandparent_rating_key, meta.grandparent_title
        field = "Metadata.grandparentRatingKey"
        ids = _legacy_only([meta.grandparent_guid, meta.guid])
        if meta.parent_index is not None:
            seasons = (meta.parent_index,)
            if meta.index is not None:
                episodes = (EpisodeNumber(meta.parent_index, meta.index),)
    if key is None and not raw_title and ids.is_empty():
        raise PayloadError(f"{field} is required to find the show", field, 422)
    title, year = split_title_year(raw_title)
    return RecheckShow(
        ids=ids, title=title, reason=f"plex library.new {meta.type}", source=SENDER, year=year,
        seasons=seasons, episodes=episodes,
        server_ref=ServerRef("plex", key, server_id) if key is not None else None,
    )


def _legacy_only(guids: list[str | None]) -> ExternalIds:
    """Show ids from legacy agent guids only; modern ``Guid[]`` name the episode itself."""
    return guid_ids([g for g in guids if g and g.startswith("com.plexapp.agents.")])

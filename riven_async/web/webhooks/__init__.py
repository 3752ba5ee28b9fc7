"""Inbound webhooks: one module per sender, each a pure ``bytes -> intents`` parser.

The shared pieces live here: the sink a handler hands parsed deliveries to, parse options,
and the JSON/validation helpers that turn every kind of bad input into a PayloadError.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TypeVar

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from riven_async.domain.intents import Intent
from riven_async.errors import PayloadError

MAX_EXTERNAL_ID = 2_147_483_647
MAX_EVENT_CHARS = 64
_BOM = b"\xef\xbb\xbf"
_IMDB_RE = re.compile(r"^tt\d{5,12}$")
_M = TypeVar("_M")


class IntentSink(Protocol):
    """Where a parsed delivery goes before the sender gets its 2xx.

    Implementations persist the delivery (the inbox) and return only once it is durable.
    Ignored and test deliveries arrive too, so they are counted; their ``intents`` hold
    only ``Ignored`` / ``TestEvent`` (see ``domain.intents.any_actionable``).
    """

    async def accept(
        self, sender: str, event: str, delivery_key: str, payload: bytes, intents: list[Intent]
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class ParseOptions:
    """Per-request switches from ``[webhooks]``."""

    follow_deletes: bool = False
    accept_pending: bool = False


@dataclass(frozen=True, slots=True)
class Parsed:
    """One decoded delivery: the event name, the canonical JSON it came in, its intents."""

    event: str
    payload: bytes
    intents: tuple[Intent, ...]


Decoder = Callable[[bytes, str, ParseOptions], Parsed]


class Payload(BaseModel):
    """Base of every sender model: unknown fields are ignored, used fields are checked."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class CamelPayload(Payload):
    """A sender model whose keys are camelCase (Sonarr, Radarr)."""

    model_config = ConfigDict(extra="ignore", frozen=True, alias_generator=to_camel)


def load_json(body: bytes) -> tuple[Any, bytes]:
    """Parse ``body`` as JSON; return it with its canonical form (sorted keys, compact)."""
    body = body.removeprefix(_BOM)
    if not body.strip():
        raise PayloadError("the body is empty; a JSON document is needed", None, 400)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"the body is not valid JSON ({exc})", None, 400) from None
    try:
        canonical = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        raise PayloadError("the body is nested too deeply", None, 400) from None
    # PostgreSQL text and jsonb cannot hold NUL; no sender sends one.
    if b"\\u0000" in canonical:
        raise PayloadError("the body contains a NUL character", None, 400)
    return data, canonical


def load_object(body: bytes) -> tuple[dict[str, Any], bytes]:
    """``load_json`` for senders whose body must be a JSON object."""
    data, canonical = load_json(body)
    if not isinstance(data, dict):
        raise PayloadError("the body must be a JSON object", None, 422)
    return data, canonical


def validate(adapter: TypeAdapter[_M], data: Any, *, tags: Sequence[str] = ()) -> _M:
    """Validate ``data``; a failure becomes a 422 naming the first bad field.

    ``tags`` are a discriminated union's tag values, which pydantic puts first in ``loc``.
    """
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        raise payload_error(exc, tags) from None


def payload_error(exc: ValidationError, tags: Sequence[str] = ()) -> PayloadError:
    """The first error of ``exc`` as a PayloadError (never echoing the input)."""
    first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
    loc = list(first["loc"])
    if loc and isinstance(loc[0], str) and loc[0] in tags:
        loc = loc[1:]
    field = dotted(loc)
    if first["type"] == "missing":
        message = f"{field} is required"
    else:
        message = f"{field}: {first['msg'].removeprefix('Value error, ')}"
    return PayloadError(message if field else first["msg"], field or None, 422)


def dotted(loc: Sequence[int | str]) -> str:
    """``("episodes", 0, "seasonNumber")`` -> ``episodes[0].seasonNumber``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def event_name(value: object) -> str:
    """A sender's event name, bounded for logs and storage."""
    return str(value)[:MAX_EVENT_CHARS]


def split_title_year(text: str | None) -> tuple[str | None, int | None]:
    """``"Severance (2022)"`` -> ``("Severance", 2022)``; other text is returned as is."""
    if text is None:
        return None, None
    text = text.strip()
    head = text[:-6].rstrip()
    if len(text) > 7 and text[-6] == "(" and text[-1] == ")" and text[-5:-1].isdigit() and (
        text[-5:-1].isascii() and head != text[:-6]
    ):
        return head, int(text[-5:-1])
    return text or None, None


def _int_id(value: object) -> int | None:
    """An external id from an int or a digit string; ``""``, ``0`` and None mean unknown."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, str):
        text = value.strip()
        if not text.isdigit() or not text.isascii() or len(text) > 10:
            raise ValueError("must be a number")
        value = int(text)
    if not isinstance(value, int):
        raise ValueError("must be a number")
    if value < 0 or value > MAX_EXTERNAL_ID:
        raise ValueError(f"must be between 0 and {MAX_EXTERNAL_ID}")
    return value or None


def _loose_int(value: object) -> int | None:
    """A small number sent as an int or a string (templates render everything as text)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, str):
        text = value.strip()
        if not text.isdigit() or not text.isascii() or len(text) > 6:
            raise ValueError("must be a number")
        return int(text)
    if isinstance(value, int) and 0 <= value <= 999_999:
        return value
    raise ValueError("must be a number between 0 and 999999")


def _imdb_id(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _IMDB_RE.match(value.strip()):
        raise ValueError("must look like tt1234567")
    return value.strip()


def _key(value: object) -> str | None:
    """A server-side key (rating key, Guid) sent as a string or an int."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("must be a string")
    text = str(value).strip()
    if len(text) > 200:
        raise ValueError("must be at most 200 characters")
    return text or None


# Ids as Overseerr ("95396", "") or Sonarr (95396, 0) send them; 0 and "" become None.
ExternalId = Annotated[int | None, BeforeValidator(_int_id)]
LooseInt = Annotated[int | None, BeforeValidator(_loose_int)]
ImdbId = Annotated[str | None, BeforeValidator(_imdb_id)]
ServerKey = Annotated[str | None, BeforeValidator(_key)]

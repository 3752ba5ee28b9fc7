"""Small response builders shared by every sim (JSON via orjson, XML, text, time formats)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import LooseHeaders

JSON_UTF8 = "application/json; charset=utf-8"


def json_response(
    data: Any,
    status: int = 200,
    headers: LooseHeaders | None = None,
    content_type: str = "application/json",
) -> web.Response:
    """A JSON body serialised with orjson (fast enough for benchmark-sized answers)."""
    response = web.Response(body=orjson.dumps(data), status=status, headers=headers)
    response.content_type = content_type
    return response


def xml_response(text: str, status: int = 200, headers: LooseHeaders | None = None) -> web.Response:
    return web.Response(
        text=text,
        status=status,
        headers=headers,
        content_type="application/xml",
        charset="utf-8",
    )


def text_response(
    text: str,
    status: int = 200,
    headers: LooseHeaders | None = None,
    content_type: str = "text/plain",
) -> web.Response:
    return web.Response(
        text=text, status=status, headers=headers, content_type=content_type, charset="utf-8"
    )


def empty_response(status: int = 204, headers: LooseHeaders | None = None) -> web.Response:
    return web.Response(status=status, headers=headers)


def query_int(request: web.Request, name: str, default: int) -> int | None:
    """A non-negative integer query parameter, ``default`` when absent, None when invalid."""
    raw = request.query.get(name, "").strip()
    if not raw:
        return default
    return int(raw) if raw.isdigit() else None


def iso_ms(moment: datetime) -> str:
    """``2025-03-02T11:22:05.000Z``: JavaScript ``toJSON`` (Real-Debrid, Overseerr)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def iso_z(moment: datetime) -> str:
    """``2025-03-02T11:22:05Z`` (TorBox, Prowlarr)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc822(moment: datetime) -> str:
    """``Sun, 20 Jan 2008 23:12:04 +0000`` (RSS ``pubDate``)."""
    return format_datetime(moment.astimezone(UTC)).replace("-0000", "+0000")


def epoch_s(moment: datetime) -> int:
    return int(moment.timestamp())

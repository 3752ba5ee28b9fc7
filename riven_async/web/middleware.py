"""HTTP middlewares: request timing, JSON errors, API-key auth (outermost first).

``http_middlewares(route_stats)`` returns them in that order: timing sees every answer,
including 401s and rendered errors; errors turn exceptions from auth and handlers into
JSON; auth runs innermost, so only authorised requests reach a handler.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
import uuid
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler, Middleware

from riven_async import keys
from riven_async.errors import DatabaseUnavailable, PayloadError
from riven_async.logs import REDACTED
from riven_async.web import auth
from riven_async.web.route_stats import RouteStats, route_name

log = logging.getLogger(__name__)

UNAUTHORIZED = "a valid API key is required (X-Api-Key, Bearer, Basic password or ?apikey=)"
INTERNAL = "internal error; the server log has details under this error_id"
RETRY_AFTER_S = 5
CLIENT_CLOSED = 499  # nginx's code for "the client went away before the answer"
_KEPT_HEADERS = (hdrs.ALLOW, hdrs.RETRY_AFTER, hdrs.WWW_AUTHENTICATE)


def json_response(
    data: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A JSON response rendered with orjson."""
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json",
        headers=headers,
    )


def error_response(
    message: str, field: str | None, status: int, headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    """``{"error": message, "field": field}`` with ``status``."""
    return json_response({"error": message, "field": field, **extra}, status, headers)


async def read_limited_body(request: web.Request, limit: int) -> bytes:
    """The whole body, or 413 as soon as it passes ``limit`` bytes (checked while reading)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(limit)
    content = request.content
    if content.is_eof() and content.exception() is None:
        # The whole body came with the headers (a webhook's usual case): take it at once.
        whole = content.read_nowait()
        if len(whole) > limit:
            raise _too_large(limit)
        return whole
    body = bytearray()
    try:
        while chunk := await content.readany():
            body += chunk
            if len(body) > limit:
                raise _too_large(limit)
    except (web.RequestPayloadError, HttpProcessingError, ConnectionError) as exc:
        reason = f"the body could not be read ({type(exc).__name__})"
        raise PayloadError(reason, None, 400) from None
    return bytes(body)


def _too_large(limit: int) -> web.HTTPRequestEntityTooLarge:
    return web.HTTPRequestEntityTooLarge(
        max_size=limit, actual_size=limit + 1,
        text=f"the body is larger than the limit of {limit} bytes",
    )


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """401 unless the request carries ``server.api_key`` (read now: SIGHUP may swap it)."""
    server = request.app[keys.SETTINGS].current.server
    if not auth.needs_key(request.path, metrics_public=server.metrics_public):
        return await handler(request)
    api_key = server.api_key.get_secret_value()
    if auth.is_authorized(request.headers, request.query, api_key):
        return await handler(request)
    log.info("rejected %s: no valid API key", route_name(request),
             extra={"action": "auth_rejected", "route": route_name(request)})
    return error_response(
        UNAUTHORIZED, None, 401, {hdrs.WWW_AUTHENTICATE: 'Bearer realm="riven-async"'}
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error as JSON ``{"error", "field"}``; unexpected ones as a 500 with an id."""
    try:
        return await handler(request)
    except PayloadError as exc:
        return _unless_unread(request, error_response(exc.message, exc.field, exc.status))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {str(k): exc.headers[k] for k in _KEPT_HEADERS if k in exc.headers}
        response = error_response(_http_message(exc), None, exc.status, headers)
        return _unless_unread(request, response)
    except DatabaseUnavailable:
        log.warning("database unavailable while answering %s", route_name(request),
                    extra={"action": "http_error", "route": route_name(request)})
        return error_response(
            "the database is unavailable; retry later", None, 503,
            {hdrs.RETRY_AFTER: str(RETRY_AFTER_S)},
        )
    except Exception as exc:
        error_id = uuid.uuid4().hex[:12]
        route = route_name(request)
        # The traceback goes into the message, redacted here, so no record carries a secret
        # even where a handler lacks the SecretFilter (exc_info would be rendered later).
        trace = _redact(request, "".join(traceback.format_exception(exc)).rstrip())
        log.error("unhandled error %s answering %s\n%s", error_id, route, trace,
                  extra={"action": "http_error", "route": route, "error_id": error_id})
        return error_response(INTERNAL, None, 500, error_id=error_id)


def _redact(request: web.Request, text: str) -> str:
    secret_filter = request.app.get(keys.SECRET_FILTER)
    if secret_filter is not None:
        text = secret_filter.redact(text)
    api_key = request.app[keys.SETTINGS].current.server.api_key.get_secret_value()
    return text.replace(api_key, REDACTED) if api_key else text


def _unless_unread(request: web.Request, response: web.Response) -> web.Response:
    """Close the connection after an answer given before the body was read (413, broken
    encoding): the rest of that body must not be read as the next request."""
    if not request.content.is_eof():
        response.force_close()
    return response


def _http_message(exc: web.HTTPException) -> str:
    text = exc.text or ""
    # aiohttp's default text is "404: Not Found"; a custom one says more.
    if not text or text.startswith(f"{exc.status}:"):
        return exc.reason
    return text


def timing_middleware(stats: RouteStats) -> Middleware:
    """Count and time every request by route pattern; log the slow ones at WARNING."""

    @web.middleware
    async def timing(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = CLIENT_CLOSED
            raise
        finally:
            elapsed = time.perf_counter() - started
            route = route_name(request)
            stats.record(route, status, elapsed)
            slow_s = request.app[keys.SETTINGS].current.server.slow_request_s
            if elapsed >= slow_s:
                log.warning("slow request: %s took %.3f s (status %d)", route, elapsed, status,
                            extra={"action": "slow_request", "route": route,
                                   "elapsed_s": round(elapsed, 3), "status": status})

    return timing


def http_middlewares(stats: RouteStats) -> list[Middleware]:
    """The middlewares in their required order, outermost first."""
    return [timing_middleware(stats), error_middleware, auth_middleware]

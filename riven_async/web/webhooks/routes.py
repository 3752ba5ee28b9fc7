"""Every webhook route: read the body within its limit, parse, hand to the sink, answer.

The answer comes only after ``sink.accept`` returns, so a 2xx means the delivery is
stored: 202 when it asks for something, 200 "ignored" for tests and events we skip
(senders disable hooks that keep failing, so those must not be 4xx).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from riven_async import keys
from riven_async.domain.intents import Ignored, Intent, any_actionable, delivery_key
from riven_async.errors import PayloadError
from riven_async.web.middleware import json_response, read_limited_body
from riven_async.web.webhooks import (
    Decoder,
    IntentSink,
    ParseOptions,
    jellyfin,
    overseerr,
    plex,
    radarr,
    show_update,
    sonarr,
)
from riven_async.web.webhooks.stats import INVALID_EVENT, OTHER_EVENT, WebhookStats

log = logging.getLogger(__name__)

RIVEN_OVERSEERR_PATH = "/api/v1/webhook/overseerr"
OptionsProvider = Callable[[], ParseOptions]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One webhook URL: who sends to it and how its body is decoded."""

    path: str
    sender: str
    decode: Decoder
    events: frozenset[str]
    methods: tuple[str, ...] = (hdrs.METH_POST,)
    large_body: bool = False
    riven_compat: bool = False


ENDPOINTS: tuple[Endpoint, ...] = (
    # Sonarr and Radarr send PUT when the connection's Method is set to PUT.
    Endpoint("/webhook/sonarr", sonarr.SENDER, sonarr.decode_sonarr, sonarr.EVENTS,
             (hdrs.METH_POST, hdrs.METH_PUT)),
    Endpoint("/webhook/radarr", radarr.SENDER, radarr.decode_radarr, radarr.EVENTS,
             (hdrs.METH_POST, hdrs.METH_PUT)),
    Endpoint("/webhook/overseerr", overseerr.SENDER, overseerr.decode_overseerr,
             overseerr.EVENTS),
    Endpoint(RIVEN_OVERSEERR_PATH, overseerr.SENDER, overseerr.decode_overseerr,
             overseerr.EVENTS, riven_compat=True),
    Endpoint("/webhook/plex", plex.SENDER, plex.decode_plex, plex.EVENTS, large_body=True),
    Endpoint("/webhook/jellyfin", jellyfin.SENDER, jellyfin.decode_jellyfin, jellyfin.EVENTS),
    Endpoint("/webhook/show-update", show_update.SENDER, show_update.decode_show_update,
             show_update.EVENTS),
    Endpoint("/webhook/show-update/batch", show_update.SENDER,
             show_update.decode_show_update_batch, show_update.EVENTS),
)


def add_webhook_routes(
    app: web.Application,
    sink: IntentSink,
    *,
    options: OptionsProvider = ParseOptions,
    stats: WebhookStats | None = None,
    endpoints: Sequence[Endpoint] = ENDPOINTS,
) -> WebhookStats:
    """Register every webhook route on ``app``; return the counters they update.

    ``options`` is called on every request so a config reload applies at once.
    """
    stats = stats if stats is not None else WebhookStats()
    for endpoint in endpoints:
        handler = _make_handler(endpoint, sink, options, stats)
        for method in endpoint.methods:
            app.router.add_route(method, endpoint.path, handler)
    return stats


def _make_handler(
    endpoint: Endpoint, sink: IntentSink, options: OptionsProvider, stats: WebhookStats
) -> Handler:
    sender = endpoint.sender

    async def handle(request: web.Request) -> web.StreamResponse:
        server = request.app[keys.SETTINGS].current.server
        limit = server.max_plex_body_bytes if endpoint.large_body else server.max_body_bytes
        try:
            body = await read_limited_body(request, limit)
            content_type = request.headers.get(hdrs.CONTENT_TYPE, "")
            parsed = endpoint.decode(body, content_type, options())
        except (PayloadError, web.HTTPRequestEntityTooLarge) as exc:
            stats.record(sender, INVALID_EVENT, "received")
            stats.record(sender, INVALID_EVENT, "rejected")
            status = exc.status if isinstance(exc, PayloadError) else exc.status_code
            log.info("%s webhook rejected (%d): %s", sender, status, exc,
                     extra={"action": "webhook_rejected", "sender": sender, "status": status})
            if endpoint.riven_compat and isinstance(exc, PayloadError):
                # Riven's own answer carries success/message; its users' scripts read them.
                return json_response({"error": exc.message, "field": exc.field,
                                      "success": False, "message": exc.message}, status)
            raise
        label = parsed.event if parsed.event in endpoint.events else OTHER_EVENT
        stats.record(sender, label, "received")
        key = delivery_key(sender, parsed.payload)
        intents = list(parsed.intents)
        try:
            await sink.accept(sender, parsed.event, key, parsed.payload, intents)
        except Exception:
            stats.record(sender, label, "failed")
            raise
        if any_actionable(intents):
            stats.record(sender, label, "accepted")
            log.debug("%s %s accepted as %s (%d intents)", sender, label, key, len(intents),
                      extra={"action": "webhook_accepted", "sender": sender, "event": label})
            body_out: dict[str, object] = {
                "status": "accepted", "event": parsed.event, "delivery": key,
                "intents": len(intents),
            }
            status = 202
        else:
            stats.record(sender, label, "ignored")
            reason = ignored_reason(intents)
            log.debug("%s %s ignored: %s", sender, label, reason,
                      extra={"action": "webhook_ignored", "sender": sender, "event": label})
            body_out = {"status": "ignored", "reason": reason, "event": parsed.event,
                        "delivery": key}
            status = 200
        if endpoint.riven_compat:
            body_out |= {"success": True, "message": body_out.get("reason")}
        return json_response(body_out, status)

    return handle


def ignored_reason(intents: Sequence[Intent]) -> str:
    """Why nothing happens: the first Ignored reason, or that it was a test."""
    for intent in intents:
        if isinstance(intent, Ignored):
            return intent.reason
    return "test event received"


"""Requests for media: the item at once (state requested) and its first index job, atomically.

Webhooks (through the inbox worker) and ``POST /api/items`` both come here, so a request
means the same thing whoever sends it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import asyncpg

from riven_async.db.executor import Executor
from riven_async.db.repos import Repos
from riven_async.domain.intents import RequestMedia
from riven_async.domain.media import RequestOutcome
from riven_async.domain.queue import JobKind, NewJob

log = logging.getLogger(__name__)

# Two transactions requesting overlapping titles in different orders can deadlock on the
# unique indexes; PostgreSQL aborts one of them, which is simply run again.
_TRANSACTION_ATTEMPTS = 3
_RETRYABLE: tuple[type[BaseException], ...] = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)


async def request_media(
    pool: asyncpg.Pool,
    repos: Repos,
    requests: Sequence[RequestMedia],
    *,
    inbox_id: int | None = None,
    priority: int = 0,
) -> list[RequestOutcome]:
    """Find or create each requested title and queue its index job, in one transaction.

    Returns one outcome per request, in order. Any number of concurrent requests for one
    title yield one item; its index job is queued once (``index:<item>`` dedupes).
    """
    if not requests:
        return []
    for attempt in range(1, _TRANSACTION_ATTEMPTS + 1):
        try:
            async with pool.acquire() as conn, conn.transaction():
                return await request_media_on(conn, repos, requests, inbox_id=inbox_id,
                                              priority=priority)
        except _RETRYABLE as exc:
            if attempt == _TRANSACTION_ATTEMPTS:
                raise
            log.info("request transaction aborted (%s); running it again",
                     type(exc).__name__, extra={"action": "request_media"})
    raise AssertionError("unreachable")


async def request_media_on(
    conn: Executor,
    repos: Repos,
    requests: Sequence[RequestMedia],
    *,
    inbox_id: int | None = None,
    priority: int = 0,
) -> list[RequestOutcome]:
    """``request_media`` inside the caller's transaction on ``conn``."""
    [outcomes] = await request_media_groups_on(conn, repos, [(inbox_id, requests)],
                                               priority=priority)
    return outcomes


async def request_media_groups_on(
    conn: Executor,
    repos: Repos,
    groups: Sequence[tuple[int | None, Sequence[RequestMedia]]],
    *,
    priority: int = 0,
) -> list[list[RequestOutcome]]:
    """Several deliveries' requests, each recorded with its inbox id, in the caller's
    transaction: one ``request_many`` and one ``enqueue_many`` for them all."""
    flat = [(inbox_id, request) for inbox_id, requests in groups for request in requests]
    if not flat:
        return [[] for _ in groups]
    # A canonical order keeps overlapping batches taking their locks in the same order.
    order = sorted(range(len(flat)), key=lambda i: _title_key(flat[i][1]))
    outcomes_sorted = await repos.items.bound_to(conn).request_many(
        [flat[i][1] for i in order], inbox_ids=[flat[i][0] for i in order])
    outcomes: list[RequestOutcome | None] = [None] * len(flat)
    for position, index in enumerate(order):
        outcomes[index] = outcomes_sorted[position]
    await repos.jobs.bound_to(conn).enqueue_many(
        NewJob(JobKind.INDEX, item_id=item_id, priority=priority)
        for item_id in sorted({o.item_id for o in outcomes_sorted})
    )
    results: list[list[RequestOutcome]] = []
    start = 0
    for _, requests in groups:
        results.append([o for o in outcomes[start:start + len(requests)] if o is not None])
        start += len(requests)
    return results


def _title_key(request: RequestMedia) -> tuple[str, int, int, str, int]:
    ids = request.ids
    return (request.kind, ids.tmdb or -1, ids.tvdb or -1, ids.imdb or "", ids.tvmaze or -1)

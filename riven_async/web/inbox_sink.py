"""The inbox writer: concurrent webhook deliveries are committed together, then answered.

Each delivery waits on a future; one flusher task takes everything queued (up to a batch)
and writes it with one ``InboxRepo.insert_many`` statement, its own transaction, then
resolves the futures. The first delivery of an idle period is written at once; while
deliveries keep arriving during writes, the flusher lingers a moment to fill the batch.
In the daemon the writer has a connection of its own (``WriterConnection``), so a write
costs no pool acquire and no reset query on release.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from riven_async import keys
from riven_async.config import WebhooksSection
from riven_async.db.inbox import DEFAULT_RETRY_WINDOW_S, InboxRepo
from riven_async.db.lifecycle import pool_options
from riven_async.db.pool import CONNECTION_ERRORS
from riven_async.domain.intents import Intent, intent_to_dict, is_actionable
from riven_async.domain.queue import InboxDelivery
from riven_async.errors import DatabaseUnavailable
from riven_async.web.webhooks import ParseOptions
from riven_async.web.webhooks.routes import add_webhook_routes
from riven_async.web.webhooks.stats import WebhookStats

log = logging.getLogger(__name__)

MAX_BATCH = 256
LINGER_S = 0.002
# Senders give up after 10-30 s; a write that has not committed by then is answered 503
# (the sender retries; if it did commit after all, the retry is a duplicate: one effect).
WRITE_TIMEOUT_S = 5.0
DRAIN_TIMEOUT_S = 5.0

# Errors that mean "not now" rather than "this delivery is wrong": answered 503.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    *CONNECTION_ERRORS,
    asyncpg.TooManyConnectionsError,
    asyncpg.QueryCanceledError,
    asyncpg.DeadlockDetectedError,
    asyncpg.ReadOnlySQLTransactionError,
)


@dataclass(slots=True)
class InboxWriterStats:
    """What the writer did: statements, deliveries written, retries seen, 503s."""

    statements: int = 0
    deliveries: int = 0
    stored: int = 0
    duplicates: int = 0
    unavailable: int = 0
    failed: int = 0
    skipped: int = 0
    largest_batch: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters by name."""
        return {
            "statements": self.statements, "deliveries": self.deliveries,
            "stored": self.stored, "duplicates": self.duplicates,
            "unavailable": self.unavailable, "failed": self.failed, "skipped": self.skipped,
            "largest_batch": self.largest_batch,
        }


@dataclass(slots=True)
class _Waiting:
    delivery: InboxDelivery
    done: asyncio.Future[None]


class GroupCommitSink:
    """An ``IntentSink`` that returns once the delivery's inbox row is committed.

    Deliveries with nothing to do (tests, ignored events) are not stored. A retry of a
    stored delivery (same sender and delivery key) is answered like the first and has no
    second effect. While the database is unreachable, ``accept`` raises
    ``DatabaseUnavailable`` (a 503 with Retry-After); nothing answered 2xx is lost.
    """

    def __init__(
        self,
        *,
        max_batch: int = MAX_BATCH,
        linger_s: float = LINGER_S,
        write_timeout_s: float = WRITE_TIMEOUT_S,
        retry_window_s: float = DEFAULT_RETRY_WINDOW_S,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._write_timeout_s = write_timeout_s
        self._retry_window_s = retry_window_s
        self._queue: list[_Waiting] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._repo: InboxRepo | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.stats = InboxWriterStats()

    @property
    def running(self) -> bool:
        """True between ``start`` and ``close``."""
        return self._task is not None and not self._task.done() and not self._closing

    @property
    def queued(self) -> int:
        """Deliveries waiting for the next write."""
        return len(self._queue)

    async def section(self) -> Mapping[str, Any]:
        """The ``inbox_writer`` section of ``/metrics``: batches, retries, 503s."""
        return {**self.stats.as_dict(), "queued": self.queued}

    async def accept(
        self, sender: str, event: str, delivery_key: str, payload: bytes, intents: list[Intent]
    ) -> None:
        """Store the delivery; return once its row is committed."""
        actionable = [intent for intent in intents if is_actionable(intent)]
        if not actionable:
            self.stats.skipped += 1
            return
        if not self.running:
            self.stats.unavailable += 1
            raise DatabaseUnavailable("the inbox writer is not running")
        delivery = InboxDelivery(
            source=sender, event=event, delivery_key=delivery_key,
            payload_json=payload.decode("utf-8"),
            intents_json=intents_json(actionable),
        )
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(delivery, done))
        self._idle.clear()
        self._wake.set()
        await done

    def start(self, repo: InboxRepo) -> None:
        """Write through ``repo`` from now on (the flusher task starts)."""
        if self._task is not None:
            raise RuntimeError("the inbox writer is already started")
        self._repo = repo
        self._closing = False
        self._task = asyncio.create_task(self._run(), name="inbox-writer")

    async def close(self, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        """Refuse new deliveries, write those queued (within ``timeout_s``), stop."""
        self._closing = True
        task, self._task = self._task, None
        if task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        left, self._queue = self._queue, []
        _settle(left, DatabaseUnavailable("the server is stopping"))

    async def _run(self) -> None:
        busy = False
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                busy = False
            # Deliveries arrived while the last write ran: more are likely on their way.
            if busy and self._linger_s > 0 and len(self._queue) < self._max_batch:
                await asyncio.sleep(self._linger_s)
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            await self._write(batch)
            busy = bool(self._queue)

    async def _write(self, batch: list[_Waiting]) -> None:
        repo = self._repo
        assert repo is not None
        self.stats.statements += 1
        self.stats.deliveries += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        try:
            async with asyncio.timeout(self._write_timeout_s):
                accepted = await repo.insert_many([w.delivery for w in batch],
                                                  self._retry_window_s)
        except asyncio.CancelledError:
            _settle(batch, DatabaseUnavailable("the server is stopping"))
            raise
        except UNAVAILABLE_ERRORS as exc:
            self.stats.unavailable += len(batch)
            log.warning("inbox write of %d deliveries failed: %r; answering 503", len(batch),
                        exc, extra={"action": "inbox_write"})
            _settle(batch, DatabaseUnavailable(f"cannot store the delivery: {type(exc).__name__}"))
            return
        except Exception as exc:
            if len(batch) > 1:
                # One bad row must not fail the deliveries it happened to share a batch with.
                for waiting in batch:
                    await self._write([waiting])
                return
            self.stats.failed += 1
            _settle(batch, exc)
            return
        new = {(a.source, a.delivery_key) for a in accepted}
        self.stats.stored += len(new)
        self.stats.duplicates += len(_keys(batch) - new)
        _settle(batch, None)


def intents_json(intents: Sequence[Intent]) -> str:
    """``[intent_to_dict(i), ...]`` as JSON text, several times faster.

    orjson serialises the (nested, slotted) dataclasses natively; only the ``type`` key is
    spliced in front. ``dataclasses.asdict`` took a tenth of a webhook's CPU time.
    """
    parts = []
    for intent in intents:
        fields = orjson.dumps(intent)
        parts.append(b'{"type":"' + type(intent).__name__.encode() + b'",' + fields[1:]
                     if len(fields) > 2 else orjson.dumps(intent_to_dict(intent)))
    return (b"[" + b",".join(parts) + b"]").decode()


def _keys(batch: Sequence[_Waiting]) -> set[tuple[str, str]]:
    return {(w.delivery.source, w.delivery.delivery_key) for w in batch}


def _settle(batch: Sequence[_Waiting], error: BaseException | None) -> None:
    for waiting in batch:
        # A handler whose client went away cancelled its future; the row stays stored.
        if waiting.done.done():
            continue
        if error is None:
            waiting.done.set_result(None)
        else:
            waiting.done.set_exception(error)


Connect = Callable[[], Awaitable[asyncpg.Connection]]
# After these the connection's state is unknown (a cut-off statement may still run): reopen.
_CONNECTION_GONE: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, asyncio.CancelledError)
_CLOSE_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, asyncpg.PostgresError)


class WriterConnection:
    """An Executor on one connection of the writer's own, opened on first use and opened
    again after it broke or a statement was cut off (the server may still be running it)."""

    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._conn: asyncpg.Connection | None = None

    async def _run(self, method: str, query: str, *args: Any, **kwargs: Any) -> Any:
        conn = self._conn
        if conn is None or conn.is_closed():
            conn = self._conn = await self._connect()
        try:
            return await getattr(conn, method)(query, *args, **kwargs)
        except _CONNECTION_GONE:
            self._conn = None
            conn.terminate()
            raise

    # The Executor protocol mirrors asyncpg's signatures, timeout keyword included.
    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:  # noqa: ASYNC109
        result: str = await self._run("execute", query, *args, timeout=timeout)
        return result

    async def executemany(
        self, command: str, args: Iterable[Sequence[Any]], *, timeout: float | None = None  # noqa: ASYNC109
    ) -> None:
        await self._run("executemany", command, args, timeout=timeout)

    async def fetch(
        self, query: str, *args: Any, timeout: float | None = None  # noqa: ASYNC109
    ) -> list[asyncpg.Record]:
        records: list[asyncpg.Record] = await self._run("fetch", query, *args, timeout=timeout)
        return records

    async def fetchrow(
        self, query: str, *args: Any, timeout: float | None = None  # noqa: ASYNC109
    ) -> asyncpg.Record | None:
        record: asyncpg.Record | None = await self._run("fetchrow", query, *args,
                                                         timeout=timeout)
        return record

    async def fetchval(
        self, query: str, *args: Any, column: int = 0, timeout: float | None = None  # noqa: ASYNC109
    ) -> Any:
        return await self._run("fetchval", query, *args, column=column, timeout=timeout)

    async def close(self) -> None:
        """Close the connection (if open)."""
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), DRAIN_TIMEOUT_S)
            except _CLOSE_ERRORS:
                conn.terminate()


def writer_connect(dsn: str, app: web.Application) -> Connect:
    """How the writer opens its connection: the pool's timeouts, its own name."""

    async def connect() -> asyncpg.Connection:
        options = pool_options(app[keys.SETTINGS].current, dsn)
        conn: asyncpg.Connection = await asyncpg.connect(
            dsn, timeout=options.connect_timeout_s, command_timeout=options.command_timeout_s,
            server_settings={
                "application_name": "riven-async-inbox",
                "statement_timeout": str(int(options.statement_timeout_s * 1000)),
            },
        )
        return conn

    return connect


INBOX_SINK = web.AppKey("inbox_sink", GroupCommitSink)
WEBHOOK_STATS = web.AppKey("webhook_stats", WebhookStats)


def parse_options(section: WebhooksSection) -> ParseOptions:
    """The parsers' switches from ``[webhooks]``."""
    return ParseOptions(follow_deletes=section.follow_deletes,
                        accept_pending=section.accept_pending)


def setup_webhooks(app: web.Application, sink: GroupCommitSink | None = None) -> WebhookStats:
    """Every webhook route, answered after the inbox commit; the ``webhooks`` metrics."""
    sink = sink if sink is not None else GroupCommitSink()
    app[INBOX_SINK] = sink
    live = app[keys.SETTINGS]
    stats = add_webhook_routes(app, sink, options=lambda: parse_options(live.current.webhooks))
    app[WEBHOOK_STATS] = stats
    app[keys.METRICS].register("webhooks", stats.section)
    app[keys.METRICS].register("inbox_writer", sink.section)
    app.cleanup_ctx.append(_inbox_writer_ctx)
    return stats


async def _inbox_writer_ctx(app: web.Application) -> AsyncIterator[None]:
    sink = app[INBOX_SINK]
    connection = WriterConnection(writer_connect(app[keys.DSN], app))
    sink.start(InboxRepo(connection, now=app[keys.CLOCK].now))
    try:
        yield
    finally:
        await sink.close()
        await connection.close()

"""A dedicated LISTEN connection that wakes waiting loops: it reconnects, pings, never blocks.

Triggers notify on ``riven_jobs`` (payload: the job kind), ``riven_schedule`` and
``riven_inbox``. A notification only wakes a loop early; every loop also polls, so a
notification lost while the connection was down costs one poll interval at most (and
every event is set after a reconnect, in case something happened meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable

import asyncpg

from riven_async.db.pool import CONNECTION_ERRORS

log = logging.getLogger(__name__)

CHANNEL_JOBS = "riven_jobs"
CHANNEL_SCHEDULE = "riven_schedule"
CHANNEL_INBOX = "riven_inbox"
CHANNELS: tuple[str, ...] = (CHANNEL_JOBS, CHANNEL_SCHEDULE, CHANNEL_INBOX)

LISTEN_PING_S = 30.0
PING_TIMEOUT_S = 5.0
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 30.0

Connect = Callable[[], Awaitable[asyncpg.Connection]]
_LISTEN_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, asyncpg.PostgresError)
_ANY = ""  # the key of an event that any payload sets


class Listener:
    """LISTENs on its own connection and sets an ``asyncio.Event`` per channel (and key).

    Create the events with ``wake_event`` before ``run``; waiters clear their event before
    looking for work, then wait on it with a timeout (see ``wait_for_wake``).
    """

    def __init__(
        self,
        connect: Connect,
        *,
        ping_interval_s: float = LISTEN_PING_S,
        reconnect_min_s: float = RECONNECT_MIN_S,
        reconnect_max_s: float = RECONNECT_MAX_S,
    ) -> None:
        self._connect = connect
        self._ping_interval_s = ping_interval_s
        self._reconnect_min_s = reconnect_min_s
        self._reconnect_max_s = reconnect_max_s
        self._events: dict[tuple[str, str], asyncio.Event] = {}
        self.connected = asyncio.Event()
        self.connects = 0
        self.notifications = 0

    def wake_event(self, channel: str, key: str | None = None) -> asyncio.Event:
        """The event set by notifications on ``channel`` (only those with payload ``key``,
        when given: ``wake_event(CHANNEL_JOBS, "scrape")`` wakes the scrape workers)."""
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}")
        return self._events.setdefault((channel, key if key is not None else _ANY),
                                       asyncio.Event())

    def _on_notify(
        self, connection: object, pid: int, channel: str, payload: object
    ) -> None:
        self.notifications += 1
        for key in (_ANY, str(payload)):
            event = self._events.get((channel, key))
            if event is not None:
                event.set()

    def _wake_all(self) -> None:
        for event in self._events.values():
            event.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until ``stop`` is set, reconnecting with capped, jittered backoff."""
        delay_s = self._reconnect_min_s
        while not stop.is_set():
            try:
                await self._listen_once(stop)
                delay_s = self._reconnect_min_s
            except _LISTEN_ERRORS as exc:
                log.warning("LISTEN connection lost (%r); reconnecting in %.1fs", exc, delay_s,
                            extra={"action": "listen"})
            if stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay_s * random.uniform(0.8, 1.2))
            delay_s = min(self._reconnect_max_s, delay_s * 2)

    async def _listen_once(self, stop: asyncio.Event) -> None:
        conn = await self._connect()
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        try:
            for channel in CHANNELS:
                await conn.add_listener(channel, self._on_notify)
            self.connects += 1
            self.connected.set()
            # Anything may have happened while we were not listening.
            self._wake_all()
            log.info("listening on %s", ", ".join(CHANNELS), extra={"action": "listen"})
            while not stop.is_set() and not lost.is_set():
                if await _wait_any(stop, lost, self._ping_interval_s):
                    break
                async with asyncio.timeout(PING_TIMEOUT_S):
                    await conn.fetchval("SELECT 1")
            if lost.is_set() and not stop.is_set():
                raise ConnectionError("the LISTEN connection was closed")
        finally:
            self.connected.clear()
            await _close(conn)


async def _wait_any(first: asyncio.Event, second: asyncio.Event, timeout_s: float) -> bool:
    """True when either event is set within ``timeout_s``."""
    waiters = [asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())]
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return bool(done)


async def _close(conn: asyncpg.Connection) -> None:
    try:
        async with asyncio.timeout(PING_TIMEOUT_S):
            await conn.close()
    except _LISTEN_ERRORS:
        conn.terminate()


async def wait_for_wake(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until ``event`` is set or ``timeout_s`` passes (the polling fallback); clear it.

    Returns True when woken by the event. Callers look for work after either outcome.
    """
    try:
        async with asyncio.timeout(max(0.0, timeout_s)):
            await event.wait()
    except TimeoutError:
        return False
    event.clear()
    return True

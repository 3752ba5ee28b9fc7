"""sd_notify over $NOTIFY_SOCKET: READY, STOPPING, WATCHDOG (the datagram protocol itself)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket

log = logging.getLogger(__name__)


def _address() -> str | None:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return None
    # A leading "@" names a socket in the abstract namespace.
    return "\0" + path[1:] if path.startswith("@") else path


def notify(message: str) -> bool:
    """Send one notification; False when not under systemd or the send failed."""
    address = _address()
    if address is None:
        return False
    try:
        # Non-blocking: a receiver whose queue is full must never stall the event loop
        # (the notification is dropped instead; systemd drains its socket at once).
        with socket.socket(socket.AF_UNIX,
                           socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK) as sock:
            sock.connect(address)
            sock.send(message.encode())
    except BlockingIOError:
        log.debug("sd_notify %s dropped: the receiver's queue is full", message.split("=")[0],
                  extra={"action": "sd_notify"})
        return False
    except OSError as exc:
        log.warning("sd_notify %s failed: %s", message.split("=")[0], exc,
                    extra={"action": "sd_notify"})
        return False
    return True


def watchdog_interval_s() -> float | None:
    """Half of WATCHDOG_USEC when the watchdog is meant for this process, else None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None


async def watchdog_loop(interval_s: float, healthy: asyncio.Event | None = None) -> None:
    """Ping WATCHDOG=1 from the event loop itself, so a blocked loop stops the pings."""
    while True:
        if healthy is None or healthy.is_set():
            notify("WATCHDOG=1")
        await asyncio.sleep(interval_s)

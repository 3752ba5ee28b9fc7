from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from riven_async import systemd


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def test_notify_sends_the_datagram(notify_socket: socket.socket) -> None:
    assert systemd.notify("READY=1")
    assert notify_socket.recv(64) == b"READY=1"


def test_notify_without_systemd_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False


def test_watchdog_interval_is_half_of_watchdog_usec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert systemd.watchdog_interval_s() == 10.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert systemd.watchdog_interval_s() is None


async def test_watchdog_loop_pings_only_while_healthy(notify_socket: socket.socket) -> None:
    notify_socket.setblocking(False)
    healthy = asyncio.Event()
    task = asyncio.create_task(systemd.watchdog_loop(0.01, healthy))
    await asyncio.sleep(0.05)
    with pytest.raises(BlockingIOError):
        notify_socket.recv(64)
    healthy.set()
    await asyncio.sleep(0.05)
    task.cancel()
    assert notify_socket.recv(64) == b"WATCHDOG=1"


def test_notify_never_blocks_when_the_receiver_is_full(notify_socket: socket.socket) -> None:
    # Nobody reads: the receiver's queue fills up; every send after that is dropped at once
    # instead of blocking the event loop (the watchdog pings run on it).
    results = [systemd.notify("WATCHDOG=1") for _ in range(2000)]
    assert results[0] is True
    assert results[-1] is False

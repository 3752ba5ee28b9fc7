from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from riven_async.config import EX_CONFIG
from riven_async.sim.ports import free_port
from tests.e2e.daemon_process import DaemonProcess, write_config

pytestmark = pytest.mark.e2e

MakeDaemon = Callable[..., DaemonProcess]


@pytest.fixture
async def make_daemon(tmp_path: Path) -> AsyncIterator[MakeDaemon]:
    made: list[DaemonProcess] = []

    def factory(extra: str = "", env: dict[str, str] | None = None) -> DaemonProcess:
        port = free_port()
        config = write_config(tmp_path / "config.toml", port, tmp_path / "pg", extra)
        daemon = DaemonProcess(config, port, tmp_path / "daemon.log", env or {})
        made.append(daemon)
        return daemon

    yield factory
    for daemon in made:
        await daemon.stop()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "riven_async", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_run_with_a_missing_config_exits_78_naming_the_file(tmp_path: Path) -> None:
    result = run_cli("run", "--config", str(tmp_path / "missing.toml"))
    assert result.returncode == EX_CONFIG
    assert "missing.toml" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_with_an_invalid_key_exits_78_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[server]\napi_key = "k-123456"\nport = 99999\n')
    result = run_cli("run", "--config", str(config))
    assert result.returncode == EX_CONFIG
    assert "server.port" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_exits_0_or_78(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[server]\napi_key = "k-123456"\n')
    assert run_cli("check-config", "--config", str(config)).returncode == 0
    config.write_text('[server]\napi_key = "k-123456"\n[database]\npool_max = 0\n')
    result = run_cli("check-config", "--config", str(config))
    assert result.returncode == EX_CONFIG
    assert "database.pool_max" in result.stderr


def test_first_run_without_config_creates_one(tmp_path: Path) -> None:
    # The daemon would then start; check-config reads the same default path without creating.
    env_home = tmp_path / "xdg"
    result = subprocess.run(
        [sys.executable, "-c",
         "from riven_async import cli; from riven_async.config import default_config_path;"
         "cli._resolve_config(None, create=True); print(default_config_path())"],
        capture_output=True, text=True, check=True,
        env={"XDG_CONFIG_HOME": str(env_home), "PATH": "/usr/bin:/bin"},
    )
    created = Path(result.stdout.strip())
    assert created.is_file()
    assert (created.stat().st_mode & 0o777) == 0o600
    assert "created" in result.stderr


async def test_daemon_serves_health_reloads_and_drains_on_sigterm(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    notify_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    sock.setblocking(False)
    daemon = make_daemon(env={"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "200000"})
    messages: list[str] = []

    def drain() -> None:
        # systemd reads its socket as datagrams arrive; so does this test.
        while True:
            try:
                messages.append(sock.recv(64).decode())
            except BlockingIOError:
                return

    asyncio.get_running_loop().add_reader(sock.fileno(), drain)
    try:
        await daemon.start()
        await daemon.wait_healthy()
        assert "uvloop" in daemon.output()

        # SIGHUP with a broken file keeps the running config.
        good = daemon.config.read_text()
        daemon.config.write_text("[server\n")
        daemon.send(signal.SIGHUP)
        await asyncio.sleep(0.5)
        assert await daemon.health() == 200
        assert "keeping the running config" in daemon.output()
        daemon.config.write_text(good.replace('level = "INFO"', 'level = "INFO"'))
        daemon.send(signal.SIGHUP)
        await asyncio.sleep(0.5)
        assert "config reloaded" in daemon.output()

        daemon.send(signal.SIGTERM)
        assert await daemon.wait(timeout_s=15) == 0
        drain()
    finally:
        asyncio.get_running_loop().remove_reader(sock.fileno())
        sock.close()
    assert messages[0] == "READY=1"
    assert "WATCHDOG=1" in messages
    assert messages[-1] == "STOPPING=1"
    assert "embedded PostgreSQL stopped" in daemon.output()
    assert not (tmp_path / "pg" / "data" / "postmaster.pid").exists()


async def test_sigterm_during_startup_exits_cleanly(make_daemon: MakeDaemon) -> None:
    daemon = make_daemon(extra='[logging]\nlevel = "DEBUG"\n')
    await daemon.start()
    async with asyncio.timeout(20):
        while "starting with" not in daemon.output():  # noqa: ASYNC110 - polls a child's output
            await asyncio.sleep(0.02)
    daemon.send(signal.SIGTERM)
    assert await daemon.wait(timeout_s=20) == 0
    assert "listening on" not in daemon.output()

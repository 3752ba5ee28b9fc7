"""Running CLI commands in the test's event loop, with their output captured."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from riven_async.app import build_app
from riven_async.cli import execute
from riven_async.config import LiveSettings, load_settings
from riven_async.sim.ports import free_port
from tests.conftest import TEST_API_KEY


@dataclass(frozen=True, slots=True)
class Result:
    """One command's exit code and what it printed."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return orjson.loads(self.out)


RunCli = Callable[..., Awaitable[Result]]


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> RunCli:
    """``await run_cli(config_path, "items", "list")``: exit code, stdout, stderr."""

    async def run(config: Path, *argv: str) -> Result:
        capsys.readouterr()
        try:
            code = await execute(["--config", str(config), *argv])
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def write_config(path: Path, *, port: int = 0, database_url: str | None = None,
                 extra: str = "", server_extra: str = "") -> Path:
    """A small valid config: the test API key, a port, a database (URL or embedded dir)."""
    database = (f'url = "{database_url}"' if database_url is not None
                else f'data_dir = "{path.parent / "pg"}"')
    path.write_text(
        "# test config\n"
        f'[server]\nport = {port}\napi_key = "{TEST_API_KEY}"\n{server_extra}\n'
        f"[database]\n{database}\n\n"
        f'[library]\nmount_dir = "{path.parent / "mount"}"\nroot = "{path.parent / "library"}"\n'
        + extra,
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


# Upstreams on a closed loopback port: a daemon under test never leaves the machine.
OFFLINE_UPSTREAMS = (
    '\n[upstreams.tmdb]\nbase_url = "http://127.0.0.1:9/3"\n'
    '\n[upstreams.tvmaze]\nbase_url = "http://127.0.0.1:9"\n'
    '\n[upstreams.torrentio]\nenabled = false\n'
)


@pytest.fixture
def stopped_daemon_config(tmp_path: Path, db_dsn: str) -> Path:
    """A config on the test's database whose daemon is not running."""
    return write_config(tmp_path / "config.toml", port=free_port(), database_url=db_dsn,
                        extra=OFFLINE_UPSTREAMS)


@dataclass(frozen=True, slots=True)
class RunningDaemon:
    """The daemon's app serving on loopback, and its config file."""

    config: Path
    app: web.Application


AiohttpServer = Callable[..., Awaitable[TestServer]]


@pytest.fixture
async def running_daemon(
    tmp_path: Path, db_dsn: str, aiohttp_server: AiohttpServer
) -> RunningDaemon:
    """``build_app`` serving on the port its config names (the daemon, in-process)."""
    port = free_port()
    path = write_config(tmp_path / "config.toml", port=port, database_url=db_dsn,
                        extra=OFFLINE_UPSTREAMS)
    app = build_app(LiveSettings(load_settings(path), path))
    await aiohttp_server(app, port=port)
    return RunningDaemon(path, app)

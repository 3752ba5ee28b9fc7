"""Finding and talking to the running daemon: its HTTP API (with the configured key), its
pid file, and the config reload after an edit."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from riven_async.commands.base import EX_CONFIG, EX_FAILURE, EX_UNAVAILABLE, CommandError
from riven_async.config import Settings
from riven_async.core.http import ApiKeyAuth, HttpClient, Params, Response, Secret, UpstreamPolicy
from riven_async.errors import UpstreamError, UpstreamUnavailable

PROBE_TIMEOUT_S = 2.0
CALL_TIMEOUT_S = 120.0
_ANSWERED = frozenset({400, 401, 403, 404, 405, 409, 413, 422, 500, 503})
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def api_url(settings: Settings) -> str:
    """Where the daemon of these settings answers (a wildcard bind is reached on loopback)."""
    host = settings.server.host.strip()
    host = _ANY_ADDRESS.get(host, host)
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    return f"http://{host}:{settings.server.port}"


@dataclass(frozen=True, slots=True)
class PidFileState:
    """What the pid file says: the pid, and whether that process is a riven-async daemon."""

    path: Path
    pid: int | None
    alive: bool


def read_pid_file(settings: Settings) -> PidFileState | None:
    """The configured pid file's state, or None when no pid file is configured."""
    path = settings.server.pid_file
    if path is None:
        return None
    try:
        pid = int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return PidFileState(path, None, False)
    return PidFileState(path, pid, _is_daemon(pid))


def _is_daemon(pid: int) -> bool:
    # A stale pid file may name a recycled pid: only a riven-async process counts.
    try:
        command = " ".join(psutil.Process(pid).cmdline())
    except (psutil.Error, OSError):
        return False
    return "riven_async" in command or "riven-async" in command


class DaemonClient:
    """The daemon's HTTP API through the project's one HTTP client (no retries: a CLI says
    at once when the daemon is not there)."""

    def __init__(self, settings: Settings, *, timeout_s: float = CALL_TIMEOUT_S) -> None:
        self.url = api_url(settings)
        self._http = HttpClient(
            UpstreamPolicy(
                name="daemon",
                base_url=self.url,
                timeout_s=timeout_s,
                connect_timeout_s=PROBE_TIMEOUT_S,
                max_retries=0,
                breaker_failures=1_000_000,
                api_key=Secret(settings.server.api_key.get_secret_value()),
                auth=ApiKeyAuth("header", "X-Api-Key"),
                headers=(("Accept", "application/json"),),
            )
        )

    async def __aenter__(self) -> DaemonClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self._http.aclose()

    async def is_up(self) -> bool:
        """True when the daemon answers ``/health`` (503 too: it runs, its database does not)."""
        try:
            response = await self._http.get("/health", accept=(503,),
                                            timeout_s=PROBE_TIMEOUT_S)
        except UpstreamError:
            return False
        return response.status in (200, 503)

    async def get(self, path: str, params: Params | None = None) -> Any:
        """``GET path`` as JSON; an error answer becomes a CommandError."""
        return await self._call("GET", path, params=params)

    async def post(self, path: str, body: object = None) -> Any:
        """``POST path`` with a JSON body; an error answer becomes a CommandError."""
        return await self._call("POST", path, json=body)

    async def delete(self, path: str) -> Any:
        """``DELETE path``; an error answer becomes a CommandError."""
        return await self._call("DELETE", path)

    async def _call(
        self, method: str, path: str, *, params: Params | None = None, json: object = None
    ) -> Any:
        try:
            response = await self._http.request(method, path, params=params, json=json,
                                                accept=_ANSWERED, idempotent=False)
        except UpstreamUnavailable as exc:
            raise CommandError(f"the daemon at {self.url} does not answer ({exc.reason})",
                               EX_UNAVAILABLE) from None
        except UpstreamError as exc:
            raise CommandError(f"the daemon answered HTTP {exc.status} to {method} {path}",
                               EX_FAILURE) from None
        if response.status >= 400:
            raise _api_error(response, self.url)
        return response.json()


async def daemon_is_up(settings: Settings) -> bool:
    """True when the daemon these settings describe answers ``/health`` now."""
    async with DaemonClient(settings) as client:
        return await client.is_up()


def _api_error(response: Response, url: str) -> CommandError:
    try:
        body = response.json()
    except UpstreamError:
        body = {}
    message = body.get("error") if isinstance(body, Mapping) else None
    text = str(message or f"HTTP {response.status}")
    if response.status in (401, 403):
        return CommandError(
            f"the daemon at {url} refused the API key from the config file",
            EX_CONFIG,
            "server.api_key differs from the running daemon's; reload or restart it",
        )
    if response.status == 503:
        return CommandError(f"the daemon cannot do that now: {text}", EX_UNAVAILABLE)
    return CommandError(text, EX_FAILURE)


@dataclass(frozen=True, slots=True)
class Reload:
    """How the running daemon was told about an edit (or why it was not)."""

    how: str  # "api", "signal", "not running", "failed"
    detail: str
    ok: bool


async def reload_daemon(running: Settings, config_file: Path) -> Reload:
    """Ask the daemon that ``running`` describes (the settings before the edit: its port and
    key) to re-read its config: ``POST /api/reload``, else SIGHUP through the pid file."""
    async with DaemonClient(running, timeout_s=30.0) as client:
        if await client.is_up():
            try:
                answer = await client.post("/api/reload")
            except CommandError as exc:
                return Reload("failed", exc.message, False)
            return Reload("api", _reloaded_text(answer, config_file), True)
    state = read_pid_file(running)
    if state is not None and state.pid is not None and state.alive:
        try:
            os.kill(state.pid, signal.SIGHUP)
        except OSError as exc:
            return Reload("failed", f"cannot signal pid {state.pid}: {exc.strerror}", False)
        return Reload("signal", f"sent SIGHUP to the daemon (pid {state.pid})", True)
    return Reload("not running", "the daemon is not running; the change applies when it "
                  "starts", True)


def _reloaded_text(answer: Any, config_file: Path) -> str:
    if not isinstance(answer, Mapping):
        return "the daemon reloaded its config"
    daemon_path = answer.get("path")
    text = f"the daemon reloaded its config (generation {answer.get('generation')})"
    if daemon_path and os.path.realpath(daemon_path) != os.path.realpath(config_file):
        text += f"; note: it runs with {daemon_path}, not this file"
    return text

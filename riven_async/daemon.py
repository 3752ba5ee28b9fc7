"""The process: event loop, signals, systemd notifications, exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from pathlib import Path

import uvloop
from aiohttp import web

from riven_async import keys, systemd
from riven_async.app import build_app
from riven_async.config import LiveSettings
from riven_async.errors import ConfigError, RivenError
from riven_async.logs import SecretFilter

log = logging.getLogger(__name__)

EX_FORCED = 130


class Daemon:
    """Owns one run of the server: start, serve until a stop is asked, drain, exit."""

    def __init__(self, live: LiveSettings, secret_filter: SecretFilter) -> None:
        self.live = live
        self.secret_filter = secret_filter
        self.shutdown = keys.Shutdown()
        self.bound_port: int | None = None

    def _on_stop_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.shutdown.event.is_set():
            log.warning("second %s: forcing exit", name, extra={"action": "signal"})
            os._exit(EX_FORCED)
        log.info("%s received: shutting down", name, extra={"action": "signal"})
        self.shutdown.request(0, name)

    def _on_reload_signal(self) -> None:
        try:
            fresh = self.live.reload()
        except ConfigError as exc:
            log.error("config reload failed, keeping the running config: %s", exc,
                      extra={"action": "reload"})
            return
        logging.getLogger().setLevel(fresh.logging.level)
        self.secret_filter.set_secrets(fresh.secrets())
        log.info("config reloaded from %s", self.live.path, extra={"action": "reload"})

    async def serve(self) -> int:
        """Run until SIGTERM/SIGINT (exit 0) or a failed background task (exit 1)."""
        loop = asyncio.get_running_loop()
        log.info("event loop: %s.%s", type(loop).__module__, type(loop).__name__,
                 extra={"action": "startup"})
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._on_reload_signal)
        settings = self.live.current
        app = build_app(self.live, shutdown=self.shutdown, secret_filter=self.secret_filter)
        runner = web.AppRunner(
            app, shutdown_timeout=settings.server.shutdown_timeout_s, access_log=None
        )
        try:
            if not await self._start(runner):
                return self.shutdown.exit_code
            # Everything built at start-up lives as long as the process: move it out of the
            # collector's reach, so full collections (50-80 ms pauses every few seconds
            # under webhook load) only walk what is made afterwards.
            gc.collect()
            gc.freeze()
            watchdog = self._start_watchdog(runner.app[keys.LOOP_LAG].healthy)
            systemd.notify("READY=1")
            await self.shutdown.event.wait()
            systemd.notify("STOPPING=1")
            if watchdog is not None:
                watchdog.cancel()
            if self.shutdown.exit_code:
                log.error("stopping: %s", self.shutdown.reason, extra={"action": "shutdown"})
        finally:
            await runner.cleanup()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        log.info("stopped", extra={"action": "shutdown"})
        return self.shutdown.exit_code

    async def _start(self, runner: web.AppRunner) -> bool:
        """Enter every cleanup_ctx and bind; a stop signal during start-up aborts it."""
        settings = self.live.current
        setup = asyncio.create_task(runner.setup(), name="startup")
        stop = asyncio.create_task(self.shutdown.event.wait(), name="startup-stop")
        done, _ = await asyncio.wait({setup, stop}, return_when=asyncio.FIRST_COMPLETED)
        if setup not in done:
            setup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await setup
            return False
        stop.cancel()
        setup.result()
        site = web.TCPSite(runner, settings.server.host, settings.server.port,
                           shutdown_timeout=settings.server.shutdown_timeout_s)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else settings.server.port
        log.info("listening on http://%s:%s", settings.server.host, self.bound_port,
                 extra={"action": "listen"})
        _write_pid_file(settings.server.pid_file)
        return True

    def _start_watchdog(self, healthy: asyncio.Event) -> asyncio.Task[None] | None:
        interval = systemd.watchdog_interval_s()
        if interval is None:
            return None
        return asyncio.create_task(systemd.watchdog_loop(interval, healthy), name="sd-watchdog")


def _write_pid_file(path: Path | None) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{os.getpid()}\n", encoding="ascii")


def run(live: LiveSettings, secret_filter: SecretFilter) -> int:
    """Run the daemon on uvloop; return the process exit code."""
    daemon = Daemon(live, secret_filter)
    try:
        return uvloop.run(daemon.serve())
    except RivenError as exc:
        log.error("%s", exc, extra={"action": "startup"})
        return 1
    except Exception:
        log.exception("unexpected error; exiting", extra={"action": "crash"})
        return 1
    finally:
        pid_file = live.current.server.pid_file
        if pid_file is not None:
            pid_file.unlink(missing_ok=True)

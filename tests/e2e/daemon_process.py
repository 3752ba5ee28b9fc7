"""Run the real ``riven-async run`` as a subprocess for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from tests.conftest import TEST_API_KEY


def write_config(path: Path, port: int, data_dir: Path, extra: str = "") -> Path:
    """A minimal config for a daemon on ``port`` with its embedded database in ``data_dir``."""
    path.write_text(
        f'[server]\nport = {port}\napi_key = "{TEST_API_KEY}"\nshutdown_timeout_s = 3.0\n'
        f'[database]\ndata_dir = "{data_dir}"\n' + extra,
        encoding="utf-8",
    )
    return path


@dataclass
class DaemonProcess:
    """One daemon subprocess with its output captured to a file."""

    config: Path
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: asyncio.subprocess.Process | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        env = {**os.environ, **self.env}
        env.pop("JOURNAL_STREAM", None)
        with self.log_path.open("ab") as log_file:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "riven_async", "run", "--config", str(self.config),
                stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file, env=env,
            )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def health(self) -> int | None:
        try:
            async with aiohttp.ClientSession() as session, session.get(
                f"{self.base_url}/health", timeout=aiohttp.ClientTimeout(total=3)
            ) as response:
                return response.status
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def wait_healthy(self, timeout_s: float = 30.0) -> None:
        assert self.proc is not None
        async with asyncio.timeout(timeout_s):
            while await self.health() != 200:
                if self.proc.returncode is not None:
                    raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.output()}")
                await asyncio.sleep(0.1)

    def send(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, timeout_s: float = 30.0) -> int:
        assert self.proc is not None
        async with asyncio.timeout(timeout_s):
            return await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await self.wait(15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

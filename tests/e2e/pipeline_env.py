"""The real daemon as a subprocess against in-process sims on a shared fast clock.

The test process runs the simulated upstreams (so a test can inject faults and read what
each upstream saw); ``riven-async run`` runs as a child process with a config pointing at
them, on the same scaled clock, and is driven only through its HTTP endpoints.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from riven_async.core.clock import ScaledClock
from riven_async.sim.fragment import ClockSpec, config_fragment
from riven_async.sim.ports import free_port
from riven_async.sim.server import SimCluster, SimSettings, run_sims
from riven_async.sim.world import LibraryLayout
from tests.conftest import TEST_API_KEY
from tests.e2e.daemon_process import DaemonProcess

HEADERS = {"X-Api-Key": TEST_API_KEY}
# Roots in these states need nothing more from the pipeline.
SETTLED = frozenset({"completed", "ongoing"})
DEBRID = ("realdebrid", "alldebrid", "torbox")
MEDIA_SERVERS = ("plex", "jellyfin", "emby")


@dataclass
class PipelineEnv:
    """Sims, the daemon subprocess and a client for its API."""

    cluster: SimCluster
    clock: ScaledClock
    daemon: DaemonProcess
    session: aiohttp.ClientSession
    library_root: Path
    mount_dir: Path

    @property
    def base_url(self) -> str:
        return self.daemon.base_url

    async def post(self, path: str, body: Mapping[str, Any]) -> aiohttp.ClientResponse:
        async with self.session.post(self.base_url + path, data=orjson.dumps(body),
                                     headers={"Content-Type": "application/json"}) as response:
            await response.read()
            return response

    async def get_json(self, path: str) -> Any:
        async with self.session.get(self.base_url + path) as response:
            assert response.status == 200, (path, response.status, await response.text())
            return orjson.loads(await response.read())

    async def roots(self) -> list[dict[str, Any]]:
        """Every movie and show the daemon holds (every page)."""
        found: list[dict[str, Any]] = []
        for kind in ("movie", "show"):
            after: str | None = None
            while True:
                suffix = f"&after={after}" if after else ""
                page = await self.get_json(f"/api/items?kind={kind}&limit=500{suffix}")
                found += page["items"]
                after = page.get("next")
                if not after:
                    break
        return found

    async def wait_settled(self, expected: int, timeout_s: float) -> list[dict[str, Any]]:
        """Wait (real time) until ``expected`` roots exist and all are settled."""
        deadline = time.monotonic() + timeout_s
        states: dict[str, int] = {}
        while time.monotonic() < deadline:
            try:
                roots = await self.roots()
            except (aiohttp.ClientError, AssertionError):
                await asyncio.sleep(0.5)
                continue
            states = {}
            for root in roots:
                states[root["state"]] = states.get(root["state"], 0) + 1
            if len(roots) >= expected and all(r["state"] in SETTLED for r in roots):
                return roots
            if self.daemon.proc is not None and self.daemon.proc.returncode is not None:
                raise AssertionError(f"daemon exited:\n{self.daemon.output()[-4000:]}")
            await asyncio.sleep(0.5)
        raise AssertionError(f"not settled in {timeout_s}s: {states}\n"
                             f"{self.daemon.output()[-4000:]}")

    def violations(self) -> dict[str, int]:
        """Requests each sim saw over its limits (must stay 0)."""
        return {h.name: h.violations for h in self.cluster.handles() if h.violations}

    def duplicate_adds(self) -> dict[str, Any]:
        """Torrents a debrid sim was asked to add more than once."""
        found: dict[str, Any] = {}
        for name in DEBRID:
            stats = self.cluster[name].sim.stats()
            per_hash = (stats.get("adds_per_hash") or stats.get("creates_per_hash")
                        or stats.get("uploads_per_hash") or {})
            dups = {h: n for h, n in per_hash.items() if n > 1}
            if dups:
                found[name] = dups
        return found

    def links(self) -> dict[Path, Path]:
        """Every symlink under the library and where it points."""
        return {p: p.resolve() for p in self.library_root.rglob("*") if p.is_symlink()}


def daemon_config(path: Path, *, port: int, database: str, fragment: str,
                  extra: str = "") -> Path:
    """A config file: loopback server, the given [database] lines, the sims' fragment."""
    path.write_text(
        f'[server]\nport = {port}\napi_key = "{TEST_API_KEY}"\nshutdown_timeout_s = 3.0\n'
        f"[database]\n{database}\n[logging]\nlevel = \"INFO\"\n"
        "[workers]\npoll_interval_s = 2.0\nretry_base_s = 5.0\nretry_cap_s = 60.0\n"
        "lease_s = 5.0\n"
        + fragment + "\n" + extra,
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


@asynccontextmanager
async def pipeline_env(
    tmp_path: Path,
    *,
    database: str,
    speed: float = 60.0,
    shows: int = 20,
    movies: int = 40,
    seed: int = 3,
    extra_config: str = "",
    rate_limits: Mapping[str, list[str]] | None = None,
) -> AsyncIterator[PipelineEnv]:
    """Sims on a scaled clock and the daemon (started, healthy) pointed at them."""
    start = datetime.now(UTC).replace(microsecond=0)
    anchor = time.time()
    clock = ScaledClock(start, speed, anchor)
    library_root = tmp_path / "library"
    mount_dir = tmp_path / "mount"
    settings = SimSettings(
        seed=seed, shows=shows, movies=movies, mount_dir=mount_dir, mount_lag_s=30.0,
        sparse_files=False, library=LibraryLayout(root=str(library_root)),
        infringing_ratio=0.0, rate_limits=dict(rate_limits or {}),
    )
    async with run_sims(settings, clock) as cluster:
        fragment = config_fragment(cluster, ClockSpec(start, speed, anchor))
        port = free_port()
        config = daemon_config(tmp_path / "config.toml", port=port, database=database,
                               fragment=fragment, extra=extra_config)
        daemon = DaemonProcess(config, port, tmp_path / "daemon.log")
        await daemon.start()
        try:
            await daemon.wait_healthy(60.0)
            async with aiohttp.ClientSession(headers=HEADERS) as session:
                yield PipelineEnv(cluster, clock, daemon, session, library_root, mount_dir)
        finally:
            await daemon.stop()

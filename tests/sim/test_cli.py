"""``riven-async sim``: the fragment loads as daemon config and points at live, real-shaped sims."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest

from riven_async.config import load_settings, load_settings_from_dict, parse_window
from riven_async.core.clock import ScaledClock
from riven_async.sim.cli import parse_options, serve
from riven_async.sim.fragment import ClockSpec, config_fragment, config_values
from riven_async.sim.server import SimCluster
from tests.sim.simtest import START, get, post

SERVER_SECTION = '\n[server]\napi_key = "test-key-for-the-daemon"\n'


def test_options_parse_ports_limits_and_reject_nonsense(tmp_path: Path) -> None:
    options = parse_options(
        [
            "--seed",
            "9",
            "--shows",
            "3",
            "--movies",
            "4",
            "--speed",
            "120",
            "--start",
            "2026-03-01T20:00:00",
            "--port",
            "tmdb=41000",
            "--limit",
            "alldebrid=12/1s,600/60s",
            "--limit",
            "plex=none",
            "--mount-dir",
            str(tmp_path / "m"),
        ]
    )
    settings = options.settings
    assert (settings.seed, settings.shows, settings.movies, options.speed) == (9, 3, 4, 120.0)
    assert settings.ports == {"tmdb": 41000}
    assert settings.rate_limits == {"alldebrid": ["12/1s", "600/60s"], "plex": []}
    assert options.start is not None
    assert options.start.utcoffset() is not None
    defaulted = parse_options(["--shows", "1"]).settings
    assert defaulted.mount_dir is not None
    assert Path(defaulted.library.root).parent == defaulted.mount_dir.parent
    for bad in (
        ["--port", "nope=1"],
        ["--limit", "tmdb=fast"],
        ["--speed", "0"],
        ["--start", "yesterday"],
    ):
        with pytest.raises(SystemExit):
            parse_options(bad)


async def _serve_in_process(
    tmp_path: Path, *extra: str
) -> tuple[asyncio.Task[int], asyncio.Event, SimCluster, str]:
    options = parse_options(
        [
            "--shows",
            "12",
            "--movies",
            "8",
            "--speed",
            "60",
            "--quiet",
            "--mount-dir",
            str(tmp_path / "mount"),
            "--write-config",
            str(tmp_path / "sim.toml"),
            *extra,
        ]
    )
    stop = asyncio.Event()
    ready: asyncio.Future[tuple[SimCluster, str]] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(options, stop, lambda c, f: ready.set_result((c, f))))
    cluster, fragment = await asyncio.wait_for(ready, 10)
    return task, stop, cluster, fragment


async def test_written_fragment_loads_as_daemon_config_and_matches_the_sims(
    tmp_path: Path,
) -> None:
    task, stop, cluster, fragment = await _serve_in_process(tmp_path)
    try:
        written = tmp_path / "sim.toml"
        assert written.read_text() == fragment
        assert written.stat().st_mode & 0o777 == 0o600
        config = tmp_path / "config.toml"
        config.write_text(fragment + SERVER_SECTION)
        settings = load_settings(config)
        upstreams = settings.upstreams
        for name in (
            "tmdb",
            "tvmaze",
            "torrentio",
            "comet",
            "mediafusion",
            "torznab",
            "zilean",
            "realdebrid",
            "alldebrid",
            "torbox",
            "plex",
            "jellyfin",
            "emby",
            "overseerr",
        ):
            section = getattr(upstreams, name)
            handle = cluster[name]
            assert section.enabled
            assert section.base_url == handle.base_url
            assert section.api_key.get_secret_value() == handle.api_key
            assert [parse_window(w) for w in section.rate_limits] == [
                (w.limit, w.span_s) for w in handle.limiter.windows
            ]
        assert upstreams.tmdb.base_url.endswith("/3")
        assert upstreams.realdebrid.base_url.endswith("/rest/1.0")
        assert upstreams.torbox.base_url.endswith("/v1/api")
        assert upstreams.overseerr.base_url.endswith("/api/v1")
        assert settings.library.mount_dir == cluster.mount.root
        daemon_clock = ScaledClock(
            datetime.fromisoformat(settings.clock.start),
            settings.clock.speed,
            settings.clock.anchor,
        )
        drift = abs((daemon_clock.now() - cluster.clock.now()).total_seconds())
        assert drift < 0.5
        assert settings.clock.speed == 60.0
    finally:
        stop.set()
        assert await task == 0


async def test_a_plain_client_sees_real_answers_429s_and_faults(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    task, stop, _, fragment = await _serve_in_process(tmp_path)
    try:
        up = tomllib.loads(fragment)["upstreams"]
        tmdb, maze, rd = up["tmdb"], up["tvmaze"], up["realdebrid"]
        details = await get(
            http,
            f"{tmdb['base_url']}/tv/60001",
            headers={"Authorization": f"Bearer {tmdb['api_key']}"},
        )
        assert details.status == 200
        assert {"seasons", "status", "next_episode_to_air"} <= set(details.body)
        user = await get(
            http, f"{rd['base_url']}/user", headers={"Authorization": f"Bearer {rd['api_key']}"}
        )
        assert user.body["type"] == "premium"
        root = maze["base_url"]
        await http.put(f"{root}/_sim/limits", json={"rate_limits": ["1/1h"]})
        assert [(await get(http, f"{root}/shows/1")).status for _ in range(2)] == [200, 429]
        await http.put(f"{root}/_sim/limits", json={"rate_limits": []})
        await post(http, f"{root}/_sim/faults", json={"error_rate": 1.0})
        assert (await get(http, f"{root}/shows/1")).status == 500
        stats = (await get(http, f"{root}/_sim/stats")).body
        assert stats["violations"] == 1
        assert stats["faults_injected"] == {"error": 1}
    finally:
        stop.set()
        assert await task == 0


def test_the_command_runs_until_sigterm_and_exits_zero(tmp_path: Path) -> None:
    fragment, errors = tmp_path / "sim.toml", tmp_path / "stderr.txt"
    code = "import sys; from riven_async.sim.cli import main; sys.exit(main(sys.argv[1:]))"
    args = [
        sys.executable,
        "-c",
        code,
        "--shows",
        "5",
        "--movies",
        "5",
        "--quiet",
        "--mount-dir",
        str(tmp_path / "mount"),
        "--write-config",
        str(fragment),
    ]
    with (
        errors.open("wb") as stderr,
        subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=stderr) as process,
    ):
        try:
            deadline = time.monotonic() + 20
            while not fragment.exists() and time.monotonic() < deadline:
                assert process.poll() is None, errors.read_text()
                time.sleep(0.05)
            assert fragment.exists(), errors.read_text()
            base = tomllib.loads(fragment.read_text())["upstreams"]["zilean"]["base_url"]
            with urllib.request.urlopen(f"{base}/healthchecks/ping", timeout=5) as reply:
                assert reply.status == 200
                assert b"Pong!" in reply.read()
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0, errors.read_text()
        finally:
            if process.poll() is None:
                process.kill()
    assert "sims up" in errors.read_text()


async def test_config_values_build_daemon_settings_in_process(sims: SimCluster) -> None:
    values = config_values(sims, ClockSpec(START, 30.0, 1_700_000_000.0))
    settings = load_settings_from_dict({**values, "server": {"api_key": "k" * 24}})
    assert settings.upstreams.torznab.base_url == sims.torznab.base_url
    assert settings.upstreams.alldebrid.rate_limits == ["12/1s", "600/60s"]
    assert settings.clock.start == START.isoformat()
    assert tomllib.loads(config_fragment(sims))["upstreams"] == values["upstreams"]

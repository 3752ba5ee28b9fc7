"""Fixtures for the sim tests: a manual clock, a running cluster, a client, the samples."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from riven_async.core.clock import ManualClock
from riven_async.sim.server import SimCluster, SimSettings, run_sims
from tests.sim.simtest import START, xml_tree

SAMPLES_ENV = "RIVEN_UPSTREAM_SAMPLES"


def samples_dir() -> Path:
    """``$RIVEN_UPSTREAM_SAMPLES``, else ``../shared/upstream-samples`` next to the repo."""
    configured = os.environ.get(SAMPLES_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3] / "shared" / "upstream-samples"


@pytest.fixture
def sample() -> Callable[[str], Any]:
    """Load a sample by file name (JSON parsed; XML as a tree; anything else as text)."""
    directory = samples_dir()
    if not directory.is_dir():
        pytest.skip(f"upstream samples not found at {directory} (set {SAMPLES_ENV})")

    def load(name: str) -> Any:
        text = (directory / name).read_text(encoding="utf-8")
        if name.endswith(".json"):
            return json.loads(text)
        if name.endswith(".xml"):
            return xml_tree(text)
        return text

    return load


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def sim_settings(tmp_path: Path) -> SimSettings:
    return SimSettings(shows=60, movies=40, mount_dir=tmp_path / "mount", infringing_ratio=0.0)


@pytest.fixture
async def sims(sim_settings: SimSettings, clock: ManualClock) -> AsyncIterator[SimCluster]:
    async with run_sims(sim_settings, clock) as cluster:
        yield cluster


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session

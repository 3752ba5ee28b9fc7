"""A rig for the indexer tests: TMDB and TVMaze sims, the daemon's clients built from their
config, and helpers to count what each sim was asked."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from riven_async.config import load_settings_from_dict
from riven_async.core.clock import Clock
from riven_async.services.indexers.tmdb import TmdbIndexer
from riven_async.services.indexers.tvmaze import TvmazeClient
from riven_async.sim.fragment import config_values
from riven_async.sim.server import SimCluster, SimHandle, SimSettings, run_sims
from riven_async.sim.shows import Show
from riven_async.upstreams import UpstreamClients

# Functional tests must not trip the sims' limits on a frozen clock (their windows never
# slide); the limit tests run the real limits on a scaled clock instead.
ROOMY_LIMITS: Mapping[str, Sequence[str]] = {"tmdb": ["100000/1s"], "tvmaze": ["100000/10s"]}
SAMPLES_ENV = "RIVEN_UPSTREAM_SAMPLES"


@dataclass(frozen=True, slots=True)
class IndexerRig:
    """Running sims plus a TMDB indexer (with TVMaze unless disabled) on their clock."""

    sims: SimCluster
    clients: UpstreamClients
    tmdb: TmdbIndexer
    tvmaze: TvmazeClient

    def mark(self) -> tuple[int, int]:
        """Where the TMDB and TVMaze request logs are now (pass to ``tmdb_paths``...)."""
        return self.sims.tmdb.log.total, self.sims.tvmaze.log.total

    def tmdb_paths(self, mark: tuple[int, int] = (0, 0)) -> list[str]:
        return _paths(self.sims.tmdb, mark[0])

    def tvmaze_paths(self, mark: tuple[int, int] = (0, 0)) -> list[str]:
        return _paths(self.sims.tvmaze, mark[1])


def _paths(handle: SimHandle[Any], since: int) -> list[str]:
    return [r.path for r in handle.log.since(since)]


def show_ids_of(show: Show) -> dict[str, int | str]:
    return {"tmdb": show.tmdb_id, "tvdb": show.tvdb_id, "imdb": show.imdb_id}


@asynccontextmanager
async def indexer_rig(
    clock: Clock,
    tmp_path: Path,
    *,
    shows: int = 80,
    movies: int = 40,
    rate_limits: Mapping[str, Sequence[str]] = ROOMY_LIMITS,
    tvmaze: bool = True,
    **indexer_options: Any,
) -> AsyncIterator[IndexerRig]:
    """Sims on ``clock``; clients from the config fragment the sims write (as the daemon)."""
    settings = SimSettings(
        shows=shows,
        movies=movies,
        mount_dir=tmp_path / "mount",
        infringing_ratio=0.0,
        rate_limits=dict(rate_limits),
    )
    async with run_sims(settings, clock) as sims:
        upstreams = config_values(sims)["upstreams"]
        config = {"upstreams": {name: upstreams[name] for name in ("tmdb", "tvmaze")}}
        for name in upstreams.keys() - config["upstreams"].keys():
            config["upstreams"][name] = {"enabled": False}
        app_settings = load_settings_from_dict(config)
        async with UpstreamClients.from_settings(app_settings, clock=clock) as clients:
            maze = TvmazeClient(clients["tvmaze"])
            indexer = TmdbIndexer(
                clients["tmdb"], tvmaze=maze if tvmaze else None, clock=clock, **indexer_options
            )
            yield IndexerRig(sims, clients, indexer, maze)


def samples_dir() -> Path:
    """``$RIVEN_UPSTREAM_SAMPLES``, else ``../shared/upstream-samples`` next to the repo."""
    configured = os.environ.get(SAMPLES_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3] / "shared" / "upstream-samples"


def load_sample(name: str) -> Any:
    """A sample body, parsed; the test is skipped when the samples are not around."""
    path = samples_dir() / name
    if not path.is_file():
        pytest.skip(f"upstream sample {name} not found in {samples_dir()} (set {SAMPLES_ENV})")
    return json.loads(path.read_text(encoding="utf-8"))

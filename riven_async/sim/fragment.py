"""The config pointing the daemon at running sims: upstreams, library and clock sections."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from riven_async.sim.server import SimCluster

# The daemon's [upstreams.X] sections, in config.py's order; Sonarr/Radarr have none yet.
UPSTREAM_SECTIONS = (
    "tmdb", "tvmaze", "torrentio", "comet", "mediafusion", "torznab", "zilean", "realdebrid",
    "alldebrid", "torbox", "plex", "jellyfin", "emby", "overseerr",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ClockSpec:
    """``[clock]``: ``ScaledClock(start, speed, anchor)`` built from these agrees with the sims."""

    start: datetime
    speed: float
    anchor: float


def config_values(cluster: SimCluster, clock: ClockSpec | None = None) -> dict[str, Any]:
    """The sections as a dict (``load_settings_from_dict`` takes it once ``server`` is added)."""
    values: dict[str, Any] = {}
    if clock is not None:
        values["clock"] = {
            "speed": float(clock.speed),
            "start": clock.start.isoformat(),
            "anchor": float(clock.anchor),
        }
    layout = cluster.world.library
    library: dict[str, Any] = {}
    if cluster.mount.root is not None:
        library["mount_dir"] = str(cluster.mount.root)
    library.update(root=layout.root, movies_dir=layout.movies_dir, shows_dir=layout.shows_dir)
    values["library"] = library
    values["upstreams"] = {
        name: {
            "enabled": True,
            "base_url": cluster[name].base_url,
            "api_key": cluster[name].api_key,
            "rate_limits": [str(w) for w in cluster[name].limiter.windows],
        }
        for name in UPSTREAM_SECTIONS
    }
    return values


def config_fragment(cluster: SimCluster, clock: ClockSpec | None = None) -> str:
    """``config_values`` as TOML, with comments naming the catalog and the control routes."""
    catalog = cluster.catalog
    lines = [
        "# Written by `riven-async sim`: every upstream points at a loopback simulator.",
        f"# Catalog: seed {catalog.seed}, {catalog.show_count} shows, {catalog.movie_count} "
        f"movies, origin {catalog.origin.isoformat()}.",
        "# Each sim also serves /_sim/faults, /_sim/requests, /_sim/stats, /_sim/limits.",
        "",
    ]
    values = config_values(cluster, clock)
    for section in ("clock", "library"):
        if section in values:
            lines += _table(section, values[section])
    for name, table in values["upstreams"].items():
        lines += _table(f"upstreams.{name}", table)
    for name in ("sonarr", "radarr"):
        handle = cluster[name]
        lines.append(f"# {name}: base_url = {handle.base_url}  api_key = {handle.api_key}")
    return "\n".join(lines) + "\n"


def _table(name: str, table: dict[str, Any]) -> list[str]:
    return [f"[{name}]", *(f"{key} = {_toml(value)}" for key, value in table.items()), ""]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string

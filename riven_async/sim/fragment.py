"""The config fragment pointing the daemon at running sims: upstreams, library, clock."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from riven_async.sim.server import SimCluster

# The daemon's [upstreams.X] sections, in config.py's order; Sonarr/Radarr have none yet.
UPSTREAM_SECTIONS = (
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
)


@dataclass(frozen=True, slots=True)
class ClockSpec:
    """``[clock]``: ``ScaledClock(start, speed, anchor)`` built from these agrees with the sims."""

    start: datetime
    speed: float
    anchor: float


def _toml(value: str | float | bool | list[str]) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float | int):
        return repr(float(value))
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def config_fragment(cluster: SimCluster, clock: ClockSpec | None = None) -> str:
    """TOML for ``[clock]``, ``[library]`` and every ``[upstreams.X]`` the sims stand in for."""
    catalog = cluster.catalog
    lines = [
        "# Written by `riven-async sim`: every upstream points at a loopback simulator.",
        f"# Catalog: seed {catalog.seed}, {catalog.show_count} shows, {catalog.movie_count} "
        f"movies, origin {catalog.origin.isoformat()}.",
        "# Each sim also serves /_sim/faults, /_sim/requests, /_sim/stats, /_sim/limits.",
        "",
    ]
    if clock is not None:
        lines += [
            "[clock]",
            f"speed = {_toml(clock.speed)}",
            f"start = {_toml(clock.start.isoformat())}",
            f"anchor = {_toml(clock.anchor)}",
            "",
        ]
    lines += ["[library]"]
    if cluster.mount.root is not None:
        lines.append(f"mount_dir = {_toml(str(cluster.mount.root))}")
    layout = cluster.world.library
    lines += [
        f"root = {_toml(layout.root)}",
        f"movies_dir = {_toml(layout.movies_dir)}",
        f"shows_dir = {_toml(layout.shows_dir)}",
        "",
    ]
    for name in UPSTREAM_SECTIONS:
        handle = cluster[name]
        lines += [
            f"[upstreams.{name}]",
            "enabled = true",
            f"base_url = {_toml(handle.base_url)}",
            f"api_key = {_toml(handle.api_key)}",
            f"rate_limits = {_toml([str(w) for w in handle.limiter.windows])}",
            "",
        ]
    for name in ("sonarr", "radarr"):
        handle = cluster[name]
        lines.append(f"# {name}: base_url = {handle.base_url}  api_key = {handle.api_key}")
    return "\n".join(lines) + "\n"

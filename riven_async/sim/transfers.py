"""How a debrid service fetches a torrent over simulated time (shared by RD, AllDebrid, TorBox)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from riven_async.sim.releases import Release
from riven_async.sim.world import SimWorld

MIB = 1024**2


class Phase(StrEnum):
    QUEUED = "queued"
    DOWNLOADING = "downloading"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Transfer:
    """One fetch: requested at ``started_at``, downloading from ``queued_until`` to ``done_at``."""

    started_at: datetime
    queued_until: datetime
    done_at: datetime | None
    size: int
    speed: int
    cached: bool

    def phase(self, now: datetime) -> Phase:
        if self.done_at is not None and now >= self.done_at:
            return Phase.DONE
        if now < self.queued_until:
            return Phase.QUEUED
        return Phase.DOWNLOADING

    def fraction(self, now: datetime) -> float:
        """Share of the bytes fetched by ``now`` (0..1)."""
        phase = self.phase(now)
        if phase is Phase.DONE:
            return 1.0
        if phase is Phase.QUEUED or self.done_at is None:
            return 0.0
        total = (self.done_at - self.queued_until).total_seconds()
        return min(1.0, (now - self.queued_until).total_seconds() / total) if total > 0 else 1.0

    def downloaded(self, now: datetime) -> int:
        return int(self.size * self.fraction(now))

    def current_speed(self, now: datetime) -> int:
        return self.speed if self.phase(now) is Phase.DOWNLOADING else 0


def swarm_speed(release: Release) -> int:
    """Bytes per second this torrent downloads at (0 without seeders: it stalls)."""
    if release.seeders == 0:
        return 0
    return random.Random(f"speed:{release.infohash}").randint(2, 25) * MIB


def start_transfer(
    world: SimWorld,
    service: str,
    owner: str,
    release: Release,
    file_indexes: Sequence[int],
    now: datetime,
    queue_s: float,
) -> Transfer:
    """Begin fetching ``file_indexes`` of ``release``; schedule the ledger and the mount."""
    size = sum(release.files[i].size for i in file_indexes)
    cached = world.is_cached(service, release.infohash, now, release)
    if cached:
        transfer = Transfer(now, now, now, size, 0, True)
    else:
        speed = swarm_speed(release)
        begin = now + timedelta(seconds=queue_s)
        done = begin + timedelta(seconds=size / speed) if speed else None
        transfer = Transfer(now, begin, done, size, speed, False)
    if transfer.done_at is not None:
        if not cached:
            world.downloads.record(service, release.infohash, owner, transfer.done_at)
        world.mount_release(owner, release.name, release, file_indexes, transfer.done_at)
    return transfer


def cancel_transfer(world: SimWorld, service: str, owner: str, infohash: str) -> None:
    """The torrent left the account: off the mount, and uncached if it never finished."""
    world.downloads.forget(service, infohash, owner, world.now())
    world.mount.remove(owner)

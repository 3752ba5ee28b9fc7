"""Synthetic movies: release dates (premiere, theatrical, digital, physical) around the origin."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime

from riven_async.sim import names

DAY_S = 86400
MOVIE_BASE_TMDB = 500_000
IMDB_BASE = 2_000_000

# TMDB release_dates types.
PREMIERE, THEATRICAL_LIMITED, THEATRICAL, DIGITAL, PHYSICAL, TV = 1, 2, 3, 4, 5, 6


@dataclass(frozen=True, slots=True)
class Movie:
    """A synthetic movie; every date is a UTC epoch second."""

    index: int
    title: str
    genres: tuple[tuple[int, str], ...]
    runtime: int
    premiere_s: int
    theatrical_s: int
    digital_s: int
    physical_s: int
    certification: str
    collection: tuple[int, str] | None
    budget: int
    revenue: int
    popularity: float
    vote_average: float
    vote_count: int

    @property
    def tmdb_id(self) -> int:
        return MOVIE_BASE_TMDB + self.index

    @property
    def imdb_id(self) -> str:
        return f"tt{IMDB_BASE + 2 * self.index + 1:07d}"

    @property
    def year(self) -> int:
        return self.theatrical_at.year

    @property
    def theatrical_at(self) -> datetime:
        return datetime.fromtimestamp(self.theatrical_s, UTC)

    def release_dates(self) -> list[tuple[int, int, str]]:
        """``(type, epoch, note)`` in the US, in date order."""
        return [
            (PREMIERE, self.premiere_s, "Premiere"),
            (THEATRICAL, self.theatrical_s, ""),
            (DIGITAL, self.digital_s, ""),
            (PHYSICAL, self.physical_s, "4K UHD, Blu-ray, DVD"),
        ]

    def status(self, now: datetime) -> str:
        """TMDB's status at ``now``."""
        now_s = now.timestamp()
        if now_s >= self.theatrical_s:
            return "Released"
        if self.theatrical_s - now_s < 120 * DAY_S:
            return "Post Production"
        return "In Production"

    def digitally_released(self, now: datetime) -> bool:
        return now.timestamp() >= self.digital_s

    def change_epochs(self) -> tuple[int, ...]:
        return (self.premiere_s, self.theatrical_s, self.digital_s, self.physical_s)


def build_movie(seed: int, index: int, title: str, origin_s: int) -> Movie:
    """Generate movie ``index`` of the catalog seeded ``seed`` around ``origin_s``."""
    rng = random.Random(f"{seed}:movie:{index}")
    roll = rng.random()
    if roll < 0.10:
        theatrical = origin_s + rng.uniform(DAY_S, 120 * DAY_S)  # coming soon
    elif roll < 0.25:
        theatrical = origin_s - rng.uniform(0, 60 * DAY_S)  # in theatres, maybe digital soon
    else:
        theatrical = origin_s - rng.uniform(60 * DAY_S, 20 * 365 * DAY_S)
    theatrical = _midnight(theatrical)
    premiere = _midnight(theatrical - rng.uniform(7 * DAY_S, 20 * DAY_S))
    digital = _midnight(theatrical + rng.uniform(17 * DAY_S, 90 * DAY_S))
    physical = _midnight(digital + rng.uniform(14 * DAY_S, 60 * DAY_S))
    budget = rng.randrange(2, 250) * 1_000_000
    collection = None
    if rng.random() < 0.2:
        collection = (900_000 + index, f"{title} Collection")
    return Movie(
        index=index,
        title=title,
        genres=tuple(rng.sample(names.MOVIE_GENRES, rng.randint(1, 3))),
        runtime=rng.randint(82, 175),
        premiere_s=premiere,
        theatrical_s=theatrical,
        digital_s=digital,
        physical_s=physical,
        certification=rng.choice(("G", "PG", "PG-13", "PG-13", "R", "R")),
        collection=collection,
        budget=budget,
        revenue=int(budget * rng.uniform(0.2, 6)) if theatrical < origin_s else 0,
        popularity=round(rng.uniform(1, 900), 3),
        vote_average=round(rng.uniform(4.5, 8.8), 1),
        vote_count=rng.randint(0, 30000),
    )


def _midnight(epoch: float) -> int:
    return int(epoch // DAY_S * DAY_S)

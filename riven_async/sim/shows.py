"""Synthetic shows: seasons and episodes with exact air times, announcements, status over time."""

from __future__ import annotations

import random
from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from riven_async.sim import names

DAY_S = 86400
WEEK_S = 7 * DAY_S
HOUR_S = 3600
DATE_KNOWN_AHEAD_S = 60 * DAY_S  # later episodes are listed without an air date (TBA)
NAME_KNOWN_AHEAD_S = 14 * DAY_S  # later episodes are called "Episode N"

TV_BASE_TMDB = 60_000
TVDB_BASE, TVDB_STRIDE = 300_000, 7
TVMAZE_BASE = 1
IMDB_BASE = 2_000_000


class ShowKind(StrEnum):
    """How a show's life runs relative to the clock's origin."""

    ENDED = "ended"
    CANCELED = "canceled"
    RETURNING = "returning"
    IN_PRODUCTION = "in_production"
    REVIVED = "revived"


@dataclass(frozen=True, slots=True)
class SeasonPlan:
    """One season: every episode's UTC air time and when the season (or its tail) is announced."""

    number: int
    air_epochs: tuple[int, ...]
    announced_at: int
    extension_from: int = 0
    extension_at: int = 0
    break_after: int = 0

    def visible_count(self, now_s: float) -> int:
        """How many episodes are listed at ``now_s`` (0 before the season is announced)."""
        if now_s < self.announced_at:
            return 0
        if self.extension_from and now_s < self.extension_at:
            return self.extension_from - 1
        return len(self.air_epochs)


@dataclass(frozen=True, slots=True)
class Episode:
    """One listed episode as the indexers describe it at some instant."""

    show_index: int
    season: int
    number: int
    air_epoch: int
    name: str
    episode_type: str
    runtime: int
    date_known: bool
    tmdb_id: int
    tvmaze_id: int
    tvdb_id: int

    @property
    def air_at(self) -> datetime:
        return datetime.fromtimestamp(self.air_epoch, UTC)

    def aired(self, now_s: float) -> bool:
        return self.air_epoch <= now_s


@dataclass(frozen=True, slots=True)
class Show:
    """A synthetic TV show, cross-linked on TMDB, TVDB, IMDb and TVMaze."""

    index: int
    title: str
    kind: ShowKind
    network: names.Network
    genres: tuple[tuple[int, str], ...]
    runtime: int
    airtime: str
    seasons: tuple[SeasonPlan, ...]
    revival_at: int
    is_new: bool
    updated_base: int
    popularity: float
    vote_average: float
    vote_count: int
    changes: tuple[int, ...]

    @property
    def tmdb_id(self) -> int:
        return TV_BASE_TMDB + self.index

    @property
    def tvdb_id(self) -> int:
        return TVDB_BASE + self.index * TVDB_STRIDE

    @property
    def tvmaze_id(self) -> int:
        return TVMAZE_BASE + self.index

    @property
    def imdb_id(self) -> str:
        return f"tt{IMDB_BASE + 2 * self.index:07d}"

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.network.timezone)

    @property
    def year(self) -> int:
        return self.first_air_at.year

    @property
    def first_air_at(self) -> datetime:
        regular = [s for s in self.seasons if s.number > 0]
        return datetime.fromtimestamp(regular[0].air_epochs[0], UTC)

    def season(self, number: int) -> SeasonPlan | None:
        for season in self.seasons:
            if season.number == number:
                return season
        return None

    def visible_seasons(self, now: datetime) -> list[SeasonPlan]:
        now_s = now.timestamp()
        return [s for s in self.seasons if s.visible_count(now_s) > 0]

    def episodes(self, season_number: int, now: datetime) -> list[Episode]:
        """The episodes of one season listed at ``now`` (empty if it is not announced yet)."""
        season = self.season(season_number)
        if season is None:
            return []
        now_s = now.timestamp()
        count = season.visible_count(now_s)
        complete = count == len(season.air_epochs)
        return [self._episode(season, n, now_s, complete) for n in range(1, count + 1)]

    def episode(self, season_number: int, number: int, now: datetime) -> Episode | None:
        season = self.season(season_number)
        if season is None or not 1 <= number <= season.visible_count(now.timestamp()):
            return None
        now_s = now.timestamp()
        complete = season.visible_count(now_s) == len(season.air_epochs)
        return self._episode(season, number, now_s, complete)

    def all_episodes(self, now: datetime, specials: bool = False) -> list[Episode]:
        return [
            episode
            for season in self.visible_seasons(now)
            if specials or season.number > 0
            for episode in self.episodes(season.number, now)
        ]

    def last_aired(self, now: datetime) -> Episode | None:
        now_s = now.timestamp()
        aired = [e for e in self.all_episodes(now) if e.air_epoch <= now_s]
        return aired[-1] if aired else None

    def next_to_air(self, now: datetime) -> Episode | None:
        now_s = now.timestamp()
        for episode in self.all_episodes(now):
            if episode.air_epoch > now_s:
                return episode
        return None

    def status(self, now: datetime) -> str:
        """TMDB's status at ``now``."""
        now_s = now.timestamp()
        if self.kind is ShowKind.ENDED:
            return "Ended"
        if self.kind is ShowKind.CANCELED:
            return "Canceled"
        if self.kind is ShowKind.REVIVED:
            return "Returning Series" if now_s >= self.revival_at else "Ended"
        if self.kind is ShowKind.IN_PRODUCTION and now_s < self.seasons[-1].air_epochs[0]:
            return "In Production"
        return "Returning Series"

    def tvmaze_status(self, now: datetime) -> str:
        status = self.status(now)
        if status in ("Ended", "Canceled"):
            return "Ended"
        if status == "In Production":
            return "In Development" if self.is_new else "To Be Determined"
        return "Running"

    def in_production(self, now: datetime) -> bool:
        return self.status(now) in ("Returning Series", "In Production")

    def change_epochs(self) -> tuple[int, ...]:
        """Every instant the show's public data changes: announcements and air times."""
        return self.changes

    def last_change(self, now: datetime) -> int:
        """TVMaze's ``updated``: the last change at or before ``now``."""
        changes = self.change_epochs()
        i = bisect_right(changes, now.timestamp())
        return max(self.updated_base, changes[i - 1]) if i else self.updated_base

    def local_air(self, episode: Episode) -> datetime:
        """The air time on the network's wall clock."""
        return datetime.fromtimestamp(episode.air_epoch, self.timezone)

    def _episode(self, season: SeasonPlan, number: int, now_s: float, complete: bool) -> Episode:
        air = season.air_epochs[number - 1]
        if season.number == 0:
            kind = "standard"
        elif complete and number == len(season.air_epochs):
            kind = "finale"
        elif number == season.break_after:
            kind = "mid_season"
        else:
            kind = "standard"
        key = self.index * 1000 + season.number * 32 + number
        return Episode(
            show_index=self.index,
            season=season.number,
            number=number,
            air_epoch=air,
            name=_episode_name(key, season.number, number, air - now_s),
            episode_type=kind,
            runtime=self.runtime,
            date_known=air - now_s <= DATE_KNOWN_AHEAD_S,
            tmdb_id=5_000_000 + key,
            tvmaze_id=2_000_000 + key,
            tvdb_id=9_000_000 + key,
        )


def _episode_name(key: int, season: int, number: int, ahead_s: float) -> str:
    if ahead_s > NAME_KNOWN_AHEAD_S:
        return f"Episode {number}"
    if season == 1 and number == 1:
        return "Pilot"
    return names.EPISODE_WORDS[(key * 7919) % len(names.EPISODE_WORDS)]


_KIND_WEIGHTS = (
    (ShowKind.ENDED, 32),
    (ShowKind.CANCELED, 10),
    (ShowKind.RETURNING, 38),
    (ShowKind.IN_PRODUCTION, 10),
    (ShowKind.REVIVED, 10),
)
_SEASON_COUNT_WEIGHTS = (34, 24, 16, 10, 7, 5, 2, 2)
_EPISODE_COUNTS = (6, 6, 8, 8, 8, 10, 10, 10, 12, 13)


def build_show(seed: int, index: int, title: str, origin_s: int) -> Show:
    """Generate show ``index`` of the catalog seeded ``seed`` around ``origin_s``.

    The show depends on these arguments alone, so any show can be built on demand; what
    changes with time (listed seasons, status, next episode) is computed from ``now``.
    """
    rng = random.Random(f"{seed}:show:{index}")
    kind = rng.choices([k for k, _ in _KIND_WEIGHTS], [w for _, w in _KIND_WEIGHTS])[0]
    network = rng.choice(names.NETWORKS)
    plan = _Planner(rng, ZoneInfo(network.timezone), rng.choice(network.local_times), origin_s)
    seasons_n = rng.choices(range(1, 9), _SEASON_COUNT_WEIGHTS)[0]
    revival_at = 0
    is_new = False
    if kind in (ShowKind.ENDED, ShowKind.CANCELED, ShowKind.REVIVED):
        seasons_n = min(seasons_n, 2) if kind is ShowKind.CANCELED else seasons_n
        back_s = (
            rng.uniform(400 * DAY_S, 12 * 365 * DAY_S)
            if kind is ShowKind.REVIVED
            else (rng.uniform(30 * DAY_S, 12 * 365 * DAY_S))
        )
        seasons = plan.past_seasons(seasons_n, origin_s - back_s)
        if kind is ShowKind.REVIVED:
            revival_at = int(origin_s + rng.uniform(2 * HOUR_S, 10 * DAY_S))
            seasons.append(
                plan.future_season(
                    len(seasons) + 1, revival_at, revival_at + rng.uniform(3 * DAY_S, 30 * DAY_S)
                )
            )
    elif kind is ShowKind.RETURNING:
        seasons = plan.returning_seasons(seasons_n)
    else:
        is_new = rng.random() < 0.35
        seasons = (
            []
            if is_new
            else plan.past_seasons(
                max(1, seasons_n - 1), origin_s - rng.uniform(60 * DAY_S, 730 * DAY_S)
            )
        )
        announce = origin_s + (
            rng.uniform(HOUR_S, 5 * DAY_S)
            if rng.random() < 0.3
            else -rng.uniform(DAY_S, 60 * DAY_S)
        )
        premiere = max(announce, origin_s) + rng.uniform(2 * DAY_S, 45 * DAY_S)
        seasons.append(plan.future_season(len(seasons) + 1, int(announce), premiere))
    if seasons[0].air_epochs[0] < origin_s and rng.random() < 0.2:
        seasons.insert(0, plan.specials(seasons[0], rng.randint(1, 3)))
    genres = tuple(rng.sample(names.TV_GENRES, rng.randint(1, 3)))
    updated_base = int(origin_s - rng.uniform(DAY_S, 300 * DAY_S))
    return Show(
        index=index,
        title=title,
        kind=kind,
        network=network,
        genres=genres,
        runtime=rng.choice((22, 24, 30, 42, 44, 45, 50, 55, 58, 60)),
        airtime=plan.airtime,
        seasons=tuple(seasons),
        revival_at=revival_at,
        is_new=is_new,
        updated_base=updated_base,
        popularity=round(rng.uniform(1, 900), 3),
        vote_average=round(rng.uniform(5, 9.4), 1),
        vote_count=rng.randint(3, 20000),
        changes=_change_epochs(seasons, revival_at),
    )


def _change_epochs(seasons: list[SeasonPlan], revival_at: int) -> tuple[int, ...]:
    """Announcements, order extensions, revivals and airings, sorted (the change feeds)."""
    moments = {revival_at} if revival_at else set()
    for season in seasons:
        moments.add(season.announced_at)
        if season.extension_from:
            moments.add(season.extension_at)
        moments.update(season.air_epochs)
    return tuple(sorted(moments))


_UNIX_EPOCH = datetime(1970, 1, 1)
_ONE_OFFSET_SPAN = timedelta(days=120)


def _naive_epoch(local: datetime) -> int:
    return int((local - _UNIX_EPOCH).total_seconds())


class _Planner:
    """Lays seasons out on the network's weekly slot (local wall-clock time, DST-correct)."""

    def __init__(self, rng: random.Random, tz: ZoneInfo, airtime: str, origin_s: int) -> None:
        self.rng = rng
        self.tz = tz
        self.airtime = airtime
        self.origin_s = origin_s

    def _local_slot(self, around_s: float) -> datetime:
        """The weekly slot's naive local datetime on the day of ``around_s``."""
        day = datetime.fromtimestamp(around_s, self.tz).date()
        hour, minute = (int(part) for part in self.airtime.split(":"))
        return datetime(day.year, day.month, day.day, hour, minute)

    def _epochs(
        self, first_local: datetime, count: int, break_after: int, break_weeks: int
    ) -> tuple[int, ...]:
        slots = [
            first_local
            + timedelta(weeks=i + (break_weeks if break_after and i >= break_after else 0))
            for i in range(count)
        ]
        first_offset, last_offset = self._offset_s(slots[0]), self._offset_s(slots[-1])
        # Two DST changes are always more than _ONE_OFFSET_SPAN apart: equal offsets at both
        # ends of a shorter run mean one offset throughout (saves a tz lookup per episode).
        if first_offset == last_offset and slots[-1] - slots[0] < _ONE_OFFSET_SPAN:
            return tuple(_naive_epoch(slot) - first_offset for slot in slots)
        return tuple(_naive_epoch(slot) - self._offset_s(slot) for slot in slots)

    def _offset_s(self, local: datetime) -> int:
        offset = self.tz.utcoffset(local)
        return int(offset.total_seconds()) if offset is not None else 0

    def _break(self, count: int) -> tuple[int, int]:
        if count >= 10 and self.rng.random() < 0.4:
            return count // 2, self.rng.randint(3, 8)
        return 0, 0

    def past_seasons(self, count: int, last_air_s: float) -> list[SeasonPlan]:
        """``count`` seasons whose final episode airs around ``last_air_s``, built backwards."""
        seasons: list[SeasonPlan] = []
        end_local = self._local_slot(last_air_s)
        for number in range(count, 0, -1):
            episodes = self.rng.choice(_EPISODE_COUNTS)
            break_after, break_weeks = self._break(episodes)
            first = end_local - timedelta(weeks=episodes - 1 + break_weeks)
            epochs = self._epochs(first, episodes, break_after, break_weeks)
            announced = int(epochs[0] - self.rng.uniform(30 * DAY_S, 120 * DAY_S))
            seasons.append(SeasonPlan(number, epochs, announced, break_after=break_after))
            end_local = first - timedelta(weeks=self.rng.randint(12, 40))
        seasons.reverse()
        return seasons

    def future_season(self, number: int, announce_s: int, premiere_s: float) -> SeasonPlan:
        episodes = self.rng.choice(_EPISODE_COUNTS)
        first = self._local_slot(premiere_s)
        return SeasonPlan(number, self._epochs(first, episodes, 0, 0), announce_s)

    def returning_seasons(self, count: int) -> list[SeasonPlan]:
        """Past seasons plus a current one whose next episode airs soon after the origin."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.25:
            ahead = rng.uniform(5 * 60, 6 * HOUR_S)
        elif roll < 0.6:
            ahead = rng.uniform(6 * HOUR_S, 3 * DAY_S)
        else:
            ahead = rng.uniform(3 * DAY_S, 7 * DAY_S)
        next_local = datetime.fromtimestamp(self.origin_s + ahead, self.tz).replace(tzinfo=None)
        next_local = next_local.replace(second=0, microsecond=0) + timedelta(
            minutes=5 - next_local.minute % 5
        )
        self.airtime = next_local.strftime("%H:%M")
        episodes = rng.choice(_EPISODE_COUNTS)
        aired = rng.randint(0, episodes - 1)
        first = next_local - timedelta(weeks=aired)
        epochs = self._epochs(first, episodes, 0, 0)
        extension_from = extension_at = 0
        if rng.random() < 0.35 and episodes - aired >= 3:
            extension_from = rng.randint(aired + 2, episodes)
            extension_at = int(self.origin_s + rng.uniform(HOUR_S, 6 * DAY_S))
        current = SeasonPlan(
            count,
            epochs,
            int(epochs[0] - rng.uniform(20 * DAY_S, 90 * DAY_S)),
            extension_from,
            extension_at,
        )
        seasons = []
        if count > 1:
            seasons = self.past_seasons(count - 1, epochs[0] - rng.randint(16, 45) * WEEK_S)
        seasons.append(current)
        if rng.random() < 0.45:
            announce = int(self.origin_s + rng.uniform(2 * HOUR_S, 10 * DAY_S))
            premiere = max(announce + rng.uniform(3 * DAY_S, 21 * DAY_S), epochs[-1] + WEEK_S)
            seasons.append(self.future_season(count + 1, announce, premiere))
        return seasons

    def specials(self, first_season: SeasonPlan, count: int) -> SeasonPlan:
        start = first_season.air_epochs[0]
        span = max(DAY_S, min(self.origin_s, first_season.air_epochs[-1] + 400 * DAY_S) - start)
        epochs = tuple(sorted(int(start + self.rng.uniform(DAY_S, span)) for _ in range(count)))
        return SeasonPlan(0, epochs, first_season.announced_at)

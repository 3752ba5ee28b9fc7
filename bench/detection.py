"""Benchmark: how fast new episodes and seasons are detected, and what it costs in calls.

A 10,000-show library from the simulated catalog (``riven_async.sim``: the shows the TMDB
and TVMaze sims serve, with their announcements, order extensions, revivals and exact air
times) is followed for 7 simulated days under three policies:

- **riven_async**: the real rule code (``pipeline.scheduler.next_show_check``, the routine
  ``RoutineBudget``), the real season plan of the indexer (``plan_season_fetches`` over
  ``SeasonFingerprint``s, so a check costs the calls ``TmdbIndexer.show`` makes), TMDB's
  status mapping, and the change feeds as ``pipeline.detection`` reads them: TVMaze
  ``/updates/shows`` (one call, exact stamps against each show's last check) every
  ``changes_interval_s``; TMDB ``/tv/changes`` every ``tmdb_changes_interval_s``, paging
  through whole days that also list every *other* show changed on TMDB
  (``--tmdb-tv-feed-per-day``, 3,652 in upstream-samples/tmdb_tv_changes.json), minus the
  ids the last read saw and the shows checked since it (TVMaze's stamps decide those);
- **Riven**: episodes fire at 00:30 (UTC) on their air date, retried every 24 h; shows
  with a running TMDB status are re-indexed daily (details plus every season); ended shows
  are not re-indexed;
- **Sonarr**: every series refreshed every 12 h (one metadata call), RSS sync every 15 min.

That part is a discrete-event model: database and HTTP are replaced by their outcomes, and
the latencies of the parts not modelled are parameters (``--job-latency-s``, an index job
from due to committed; ``--release-latency-s``, the release loop from due to the scrape job
queued). On top of the catalog, ``--late-share`` of the episodes airing in the window are
announced only a day or an hour before they air.

The **replay** then runs the daemon's own code on a smaller library (``--replay-shows``
for ``--replay-days``): embedded PostgreSQL, the TMDB and TVMaze sims, the detection loops
(``detection.start``), the INDEX step and the stage workers, on a manual clock that jumps to
the next deadline once every loop sleeps. It prints its figures next to the model's on the
same library (same seed, no late announcements, no foreign feed entries), and the real
seconds the release and index work took after the clock reached their moment.

Figures (seconds; calls per simulated day, the initial import apart):
``detection_p50_s``/``detection_p99_s``: from an episode's air time plus the release delay
to its row existing with a scrape job queued (Riven: its first scrape attempt at or after
that moment; Sonarr: its first RSS sync after it); ``announce_to_known_p99_s``: from an
episode appearing upstream (a new season, an order extension, a revival, a late
announcement) to its row existing; ``missed``: episodes due (air time plus the delay) more
than an hour before the end and never released.

Run: ``python bench/detection.py`` (``--shows``, ``--days``, ``--runs``, ``--seed``,
``--no-replay``).
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from riven_async.config import LiveSettings, Settings, load_settings_from_dict
from riven_async.core.clock import ManualClock
from riven_async.core.locks import KeyedLock
from riven_async.core.tasks import BackgroundTasks
from riven_async.db import migrate
from riven_async.db.embedded import TEST_SERVER_SETTINGS, EmbeddedPostgres
from riven_async.db.notify import Listener
from riven_async.db.pool import PoolOptions, create_pool
from riven_async.db.repos import Repos
from riven_async.domain.intents import ExternalIds, RequestMedia
from riven_async.domain.queue import JobKind, NewJob, new_boot_id
from riven_async.pipeline import detection
from riven_async.pipeline.detection import MIN_PASS_S, ROUTINE_COST, TVMAZE_OVERLAP_S
from riven_async.pipeline.runtime import Runtime
from riven_async.pipeline.scheduler import (
    CallBudget,
    CheckPriority,
    RoutineBudget,
    SchedulePolicy,
    ShowFacts,
    next_show_check,
)
from riven_async.pipeline.steps import index as index_step
from riven_async.pipeline.worker import start_workers
from riven_async.services.indexers import status as show_statuses
from riven_async.services.indexers.records import SeasonFingerprint, SeasonSummary
from riven_async.services.indexers.tmdb import plan_season_fetches
from riven_async.sim.catalog import Catalog
from riven_async.sim.fragment import config_values
from riven_async.sim.server import SimCluster, SimSettings, run_sims
from riven_async.sim.shows import TV_BASE_TMDB, Episode, Show
from riven_async.upstreams import UpstreamClients
from riven_async.web.metrics import MetricsRegistry

DAY_S = 86_400.0
# Off the networks' :00 and :30 slots, as a daemon's loops are (the phase of the feed reads
# and the release delay never meet an air time exactly).
ORIGIN = datetime(2026, 3, 2, 12, 3, 17, tzinfo=UTC)
DATE_KNOWN_AHEAD_S = 60 * DAY_S
CHANGES_PAGE = 100
SETTLE_DAYS = 7
GRACE_S = 3600.0
RIVEN_RELEASE_AT_S = 30 * 60.0  # 00:30 on the air date
SONARR_REFRESH_S = 12 * 3600.0
SONARR_RSS_S = 15 * 60.0
Key = tuple[int, int, int]  # show index, season, episode


class SimClock:
    """The simulation's time for the budgets (they read ``monotonic``)."""

    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        raise RuntimeError("the simulation never sleeps")


# -- the world: the catalog plus late announcements ----------------------------------------


class World:
    """The catalog's shows as TMDB lists them at any instant, with late announcements."""

    def __init__(self, catalog: Catalog, start: float, end: float, late_share: float,
                 rng: random.Random) -> None:
        self.catalog = catalog
        self.shows = list(catalog.shows())
        self.start, self.end = start, end
        self.hidden: dict[Key, float] = {}
        self.airing: list[tuple[Key, float]] = []
        for show in self.shows:
            for plan in show.seasons:
                if plan.number == 0:
                    continue
                for n, epoch in enumerate(plan.air_epochs, start=1):
                    if start <= epoch < end:
                        self.airing.append(((show.index, plan.number, n), float(epoch)))
        for key, air in self.airing:
            if rng.random() < late_share and self.appears_at(key) < air - DAY_S - 60:
                self.hidden[key] = air - (3600.0 if rng.random() < 0.5 else DAY_S)
        moments: list[tuple[float, int]] = []
        for show in self.shows:
            moments += [(float(t), show.index) for t in show.change_epochs()
                        if start - 2 * DAY_S <= t <= end]
        moments += [(at, key[0]) for key, at in self.hidden.items()]
        moments.sort()
        self.changes = moments
        self.change_times = [t for t, _ in moments]
        # Every episode that appears upstream during the run, whenever it airs.
        self.appearing = [
            key for show in self.shows for plan in show.seasons if plan.number > 0
            for key in ((show.index, plan.number, n) for n in range(1, len(plan.air_epochs) + 1))
            if start < self.appears_at(key) <= end
        ]

    def appears_at(self, key: Key) -> float:
        """When an episode is first listed upstream."""
        show = self.shows[key[0]]
        plan = show.season(key[1])
        assert plan is not None
        at = float(plan.announced_at)
        if plan.extension_from and key[2] >= plan.extension_from:
            at = max(at, float(plan.extension_at))
        return max(at, self.hidden.get(key, at))

    def listed(self, show: Show, t: float) -> dict[int, list[Episode]]:
        """Regular seasons and their episodes as TMDB lists them at ``t``."""
        moment = datetime.fromtimestamp(t, UTC)
        out: dict[int, list[Episode]] = {}
        for plan in show.visible_seasons(moment):
            if plan.number == 0:
                continue
            episodes = [e for e in show.episodes(plan.number, moment)
                        if self.hidden.get((show.index, e.season, e.number), -1.0) <= t]
            if episodes:
                out[plan.number] = episodes
        return out

    def changed_between(self, lo: float, hi: float) -> dict[int, float]:
        """Shows with a change in ``[lo, hi]``, each with its last change in it."""
        i, j = bisect_left(self.change_times, lo), bisect_right(self.change_times, hi)
        found: dict[int, float] = {}
        for t, index in self.changes[i:j]:
            found[index] = t
        return found


def _local_date(show: Show, episode: Episode) -> date:
    return show.local_air(episode).date()


def _dated(episode: Episode, t: float) -> bool:
    return episode.air_epoch - t <= DATE_KNOWN_AHEAD_S


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one TMDB details call shows of a show at ``t``, and its seasons."""

    listed: dict[int, list[Episode]]
    summaries: tuple[SeasonSummary, ...]
    next_episode: Episode | None
    last_episode: Episode | None
    status: str

    @classmethod
    def of(cls, world: World, show: Show, t: float) -> Snapshot:
        listed = world.listed(show, t)
        summaries = tuple(
            SeasonSummary(n, len(eps), _local_date(show, eps[0]) if _dated(eps[0], t) else None)
            for n, eps in sorted(listed.items()))
        flat = [e for n in sorted(listed) for e in listed[n]]
        upcoming = next((e for e in flat if e.air_epoch > t), None)
        aired = [e for e in flat if e.air_epoch <= t]
        return cls(listed, summaries, upcoming, aired[-1] if aired else None,
                   show.status(datetime.fromtimestamp(t, UTC)))

    def fingerprint(self, show: Show, number: int, t: float) -> str:
        episodes = self.listed[number]
        dates = [_local_date(show, e) for e in episodes if _dated(e, t)]
        summary = next(s for s in self.summaries if s.number == number)
        return SeasonFingerprint(summary.episode_count, summary.air_date, max(dates, default=None),
                                 len(dates) < len(episodes)).encode()


# -- riven_async ---------------------------------------------------------------------------


@dataclass(slots=True)
class Tracked:
    """One show as the daemon's database holds it."""

    fingerprints: dict[int, str] = field(default_factory=dict)
    checked_at: float = 0.0
    next_at: float = math.inf
    priority: int = 0
    generation: int = 0


@dataclass(slots=True)
class Counts:
    tmdb: int = 0
    tvmaze: int = 0
    checks: int = 0
    routine_checks: int = 0
    routine_tmdb: int = 0
    routine_tvmaze: int = 0
    feed_checks: int = 0
    tmdb_feed: int = 0
    tvmaze_feed: int = 0


class RivenAsync:
    """The daemon's detection, event by event."""

    def __init__(self, world: World, policy: SchedulePolicy, args: argparse.Namespace,
                 rng: random.Random) -> None:
        self.world = world
        self.policy = policy
        self.args = args
        self.rng = rng
        self.clock = SimClock(world.start)
        self.budget = RoutineBudget(
            {"tmdb": CallBudget(args.tmdb_routine_calls_per_day, self.clock),
             "tvmaze": CallBudget(args.tvmaze_routine_calls_per_day, self.clock)},
            ROUTINE_COST)
        self.tracked = [Tracked() for _ in world.shows]
        self.known_at: dict[Key, float] = {}
        self.counts = Counts()
        self.import_calls = Counts()
        self._events: list[tuple[float, int, int, int]] = []
        self._seq = 0
        self._seen_tmdb: set[int] = set()
        self._tmdb_read = world.start
        self._tvmaze_read = world.start

    def _schedule(self, index: int, at: float, priority: int) -> None:
        state = self.tracked[index]
        state.generation += 1
        state.next_at, state.priority = at, priority
        self._seq += 1
        heapq.heappush(self._events, (at, self._seq, index, state.generation))

    def _check(self, index: int, t: float, counts: Counts, spread: bool = False,
               routine: bool = False) -> None:
        world, show, state = self.world, self.world.shows[index], self.tracked[index]
        snap = Snapshot.of(world, show, t)
        today = datetime.fromtimestamp(t, UTC).date()
        always = set()
        if snap.next_episode is not None:
            always.add(snap.next_episode.season)
        last = snap.last_episode
        if last is not None and _local_date(show, last) >= today - timedelta(days=SETTLE_DAYS):
            always.add(last.season)
        plan = plan_season_fetches(snap.summaries, state.fingerprints or None, always=always,
                                   today=today, settle_days=SETTLE_DAYS)
        fetched = [n for n in plan if n in snap.listed]
        # The first index matches the show on TVMaze (a lookup, then the show); later
        # ones ask for the show by its TVMaze id, and only when a season is read.
        tmdb_calls = 1 + len(plan)
        tvmaze_calls = (1 if state.fingerprints else 2) if plan else 0
        counts.tmdb += tmdb_calls
        counts.tvmaze += tvmaze_calls
        counts.checks += 1
        if routine:
            counts.routine_tmdb += tmdb_calls
            counts.routine_tvmaze += tvmaze_calls
        for number in fetched:
            state.fingerprints[number] = snap.fingerprint(show, number, t)
            for episode in snap.listed[number]:
                self.known_at.setdefault((index, number, episode.number), t)
        state.checked_at = t
        upcoming = snap.next_episode
        status = show_statuses.show_status(
            snap.status, next_announced=upcoming is not None,
            last_aired_at=last.air_at if last else None, now=datetime.fromtimestamp(t, UTC))
        facts = ShowFacts(
            status=status,
            next_air_at=upcoming.air_at if upcoming is not None and _dated(upcoming, t) else None,
            last_air_at=last.air_at if last else None,
        )
        check = next_show_check(facts, datetime.fromtimestamp(t, UTC), self.policy)
        at = check.at.timestamp()
        if spread and check.reason == "routine":
            # The library was indexed over the last interval, not all at this instant.
            at = t + (at - t) * self.rng.random()
        self._schedule(index, at, int(check.priority))

    def run(self, spread: bool = True) -> None:
        world, args = self.world, self.args
        for show in world.shows:
            self._check(show.index, world.start, self.import_calls, spread=spread)
        self._tmdb_read = self._tvmaze_read = world.start
        self._seen_tmdb = set(world.changed_between(_day_start(world.start), world.start))
        feed_at = world.start + args.changes_interval_s
        while True:
            next_event = self._events[0][0] if self._events else math.inf
            if min(next_event, feed_at) >= world.end:
                break
            if feed_at <= next_event:
                self.clock.t = feed_at
                self._feeds(feed_at)
                feed_at += args.changes_interval_s
                continue
            at, _, index, generation = heapq.heappop(self._events)
            state = self.tracked[index]
            if generation != state.generation:
                continue
            self.clock.t = at
            routine = state.priority == CheckPriority.ROUTINE
            if routine:
                if self.budget.allowance() < 1:
                    self._seq += 1
                    # As the check loop: wait for the budget, one pass a second at most.
                    wait_s = max(MIN_PASS_S, self.budget.seconds_until_allowed())
                    heapq.heappush(self._events, (at + wait_s, self._seq, index, generation))
                    continue
                self.budget.admit(1)
                self.counts.routine_checks += 1
            self._check(index, at + args.job_latency_s, self.counts, routine=routine)

    def _feeds(self, t: float) -> None:
        world, delay = self.world, self.policy.release_delay_s
        news: set[int] = set()
        args = self.args
        if t - self._tmdb_read >= args.tmdb_changes_interval_s - args.changes_interval_s / 2:
            since = _day_start(self._tmdb_read)
            ids = set(world.changed_between(since, t))
            # Shows checked since the last read are left to TVMaze's exact stamps (every
            # catalog show is on TVMaze): ScheduleRepo.check_changed(tmdb_checked_since=).
            news = {i for i in ids - self._seen_tmdb
                    if self.tracked[i].checked_at < self._tmdb_read}
            self._seen_tmdb, self._tmdb_read = ids, t
            # /tv/changes lists every TV change on TMDB by whole days, not only ours: each
            # read pages through the days since the last read. The movie feed is not read
            # (no movie is tracked: DetectionLoops.feed_pass asks feed_interest first).
            foreign = args.tmdb_tv_feed_per_day * (t - since) / DAY_S
            pages = max(1, math.ceil((len(ids) + foreign) / CHANGES_PAGE))
            self.counts.tmdb += pages
            self.counts.tmdb_feed += pages
        self.counts.tvmaze += 1
        self.counts.tvmaze_feed += 1
        stamps = world.changed_between(self._tvmaze_read - TVMAZE_OVERLAP_S, t)
        if args.tvmaze_blind:
            stamps = {}  # what-if: TVMaze's feed never reflects a change TMDB has
        self._tvmaze_read = t
        due = set(news)
        due.update(i for i, stamp in stamps.items() if self.tracked[i].checked_at < stamp)
        for index in sorted(due):
            state = self.tracked[index]
            if state.next_at > t + delay:
                self._schedule(index, t, int(CheckPriority.CHANGED))
                self.counts.feed_checks += 1
            elif state.priority < CheckPriority.CHANGED:
                # Due soon anyway (or due and held back by the routine budget): the time
                # stays, the priority rises, so no budget holds it (ScheduleRepo.check_changed).
                self._schedule(index, max(state.next_at, t), int(CheckPriority.CHANGED))

    def released_at(self, key: Key, air: float) -> float:
        known = self.known_at.get(key, math.inf)
        due = air + self.policy.release_delay_s
        return due + self.args.release_latency_s if known <= due else known


def _day_start(t: float) -> float:
    return t - t % DAY_S


# -- the policies compared -----------------------------------------------------------------


class Riven:
    """Daily re-index of running shows; episodes fire at 00:30 on their air date."""

    RUNNING = frozenset({"Returning Series", "In Production", "Planned", "Pilot"})

    def __init__(self, world: World, rng: random.Random) -> None:
        self.world = world
        self.phase = [rng.uniform(0, DAY_S) for _ in world.shows]
        self.tmdb = 0

    def reindex_times(self, index: int) -> Iterable[float]:
        t = self.world.start + self.phase[index]
        while t < self.world.end:
            yield t
            t += DAY_S

    def run(self) -> None:
        world = self.world
        self.running: dict[int, list[float]] = {}
        for show in world.shows:
            times = []
            for t in self.reindex_times(show.index):
                if show.status(datetime.fromtimestamp(t, UTC)) in self.RUNNING:
                    times.append(t)
                    listed = world.listed(show, t)
                    self.tmdb += 1 + len(listed)
            self.running[show.index] = times

    def known_at(self, key: Key) -> float:
        appears = self.world.appears_at(key)
        if appears <= self.world.start:
            return self.world.start
        times = self.running[key[0]]
        i = bisect_left(times, appears)
        return times[i] if i < len(times) else math.inf

    def released_at(self, key: Key, air: float, delay_s: float) -> float:
        known = self.known_at(key)
        if known == math.inf:
            return math.inf
        show = self.world.shows[key[0]]
        episode = show.episode(key[1], key[2], datetime.fromtimestamp(air, UTC))
        assert episode is not None
        day = _local_date(show, episode)
        first = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() + RIVEN_RELEASE_AT_S
        attempt = max(first, known)
        while attempt < air + delay_s:
            attempt += DAY_S
        return attempt


class Sonarr:
    """Every series refreshed every 12 h; releases picked up by the 15-minute RSS sync."""

    def __init__(self, world: World, rng: random.Random) -> None:
        self.world = world
        self.phase = [rng.uniform(0, SONARR_REFRESH_S) for _ in world.shows]

    def calls_per_day(self) -> float:
        return len(self.world.shows) * DAY_S / SONARR_REFRESH_S

    def known_at(self, key: Key) -> float:
        appears = self.world.appears_at(key)
        if appears <= self.world.start:
            return self.world.start
        first = self.world.start + self.phase[key[0]]
        steps = max(0.0, math.ceil((appears - first) / SONARR_REFRESH_S))
        return first + steps * SONARR_REFRESH_S

    def released_at(self, key: Key, air: float, delay_s: float) -> float:
        ready = max(air + delay_s, self.known_at(key))
        return math.ceil(ready / SONARR_RSS_S) * SONARR_RSS_S


# -- one run -------------------------------------------------------------------------------


def _pct(values: Sequence[float], q: float, digits: int = 1) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))],
                 digits)


def _latencies(world: World, released: Callable[[Key, float], float],
               delay_s: float) -> tuple[list[float], int]:
    detections, missed = [], 0
    for key, air in world.airing:
        due = air + delay_s
        if due > world.end - GRACE_S:
            continue
        at = released(key, air)
        if at > world.end:
            missed += 1
        else:
            detections.append(max(0.0, at - due))
    return detections, missed


def _announcements(world: World, known: Callable[[Key], float]) -> tuple[list[float], int]:
    delays, unknown = [], 0
    for key in world.appearing:
        appears = world.appears_at(key)
        if appears > world.end - GRACE_S:
            continue
        at = known(key)
        if at > world.end:
            unknown += 1
        else:
            delays.append(at - appears)
    return delays, unknown


def one_run(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    began = time.perf_counter()
    rng = random.Random(seed)
    catalog = Catalog(seed, args.shows, 0, ORIGIN)
    start = ORIGIN.timestamp()
    end = start + args.days * DAY_S
    world = World(catalog, start, end, args.late_share, rng)
    policy = SchedulePolicy(release_delay_s=args.release_delay_s)
    days = args.days
    delay = policy.release_delay_s

    ours = RivenAsync(world, policy, args, rng)
    ours.run()
    detections, missed = _latencies(world, ours.released_at, delay)
    announced, unknown = _announcements(world, lambda k: ours.known_at.get(k, math.inf))

    riven = Riven(world, rng)
    riven.run()
    r_det, r_missed = _latencies(world, lambda k, a: riven.released_at(k, a, delay), delay)
    r_ann, r_unknown = _announcements(world, riven.known_at)

    sonarr = Sonarr(world, rng)
    s_det, s_missed = _latencies(world, lambda k, a: sonarr.released_at(k, a, delay), delay)
    s_ann, s_unknown = _announcements(world, sonarr.known_at)

    kinds: dict[str, int] = {}
    for show in world.shows:
        kinds[str(show.kind)] = kinds.get(str(show.kind), 0) + 1
    ours_total = (ours.counts.tmdb + ours.counts.tvmaze) / days
    riven_total = riven.tmdb / days
    return {
        "seed": seed,
        "shows": args.shows,
        "show_kinds": kinds,
        "episodes_airing_per_day": round(len(world.airing) / days, 1),
        "late_announced_episodes": len(world.hidden),
        "riven_async": {
            "detection_p50_s": _pct(detections, 0.50),
            "detection_p99_s": _pct(detections, 0.99),
            "detection_max_s": _pct(detections, 1.0),
            "announce_to_known_p50_s": _pct(announced, 0.50),
            "announce_to_known_p99_s": _pct(announced, 0.99),
            "announced_unknown": unknown,
            "missed": missed,
            "episodes_measured": len(detections) + missed,
            "announcements_measured": len(announced) + unknown,
            "tmdb_calls_per_day": round(ours.counts.tmdb / days, 1),
            "tvmaze_calls_per_day": round(ours.counts.tvmaze / days, 1),
            "checks_per_day": round(ours.counts.checks / days, 1),
            "routine_checks_per_day": round(ours.counts.routine_checks / days, 1),
            "feed_checks_per_day": round(ours.counts.feed_checks / days, 1),
            "feed_calls_per_day": {"tmdb": round(ours.counts.tmdb_feed / days, 1),
                                   "tvmaze": round(ours.counts.tvmaze_feed / days, 1)},
            "calls_per_routine_check": {
                "tmdb": round(ours.counts.routine_tmdb / max(1, ours.counts.routine_checks), 3),
                "tvmaze": round(ours.counts.routine_tvmaze / max(1, ours.counts.routine_checks),
                                3),
            },
            "import_calls": {"tmdb": ours.import_calls.tmdb, "tvmaze": ours.import_calls.tvmaze},
        },
        "riven": {
            "detection_p50_s": _pct(r_det, 0.50),
            "detection_p99_s": _pct(r_det, 0.99),
            "announce_to_known_p99_s": _pct(r_ann, 0.99),
            "announced_unknown": r_unknown,
            "missed": r_missed,
            "tmdb_calls_per_day": round(riven.tmdb / days, 1),
            "tvmaze_calls_per_day": 0.0,
        },
        "sonarr": {
            "detection_p50_s": _pct(s_det, 0.50),
            "detection_p99_s": _pct(s_det, 0.99),
            "announce_to_known_p99_s": _pct(s_ann, 0.99),
            "announced_unknown": s_unknown,
            "missed": s_missed,
            "metadata_calls_per_day": round(sonarr.calls_per_day(), 1),
        },
        "calls_ratio_to_daily_reindex": round(ours_total / riven_total, 3) if riven_total else None,
        "wall_s": round(time.perf_counter() - began, 1),
    }


# -- the real loops at small scale: the model checked against the daemon's code ----------


@dataclass(slots=True)
class ReplayLog:
    """What the real loops did, on the simulated clock, step by step."""

    known_at: dict[Key, float] = field(default_factory=dict)
    released_at: dict[Key, float] = field(default_factory=dict)
    release_wall_s: list[float] = field(default_factory=list)
    index_wall_s: list[float] = field(default_factory=list)
    steps: int = 0
    last_item: int = 0
    last_job: int = 0


_NEW_EPISODES = """
SELECT e.id, s.tmdb_id, e.season_number, e.episode_number, e.created_at FROM items e
JOIN items s ON s.id = e.show_id WHERE e.kind = 'episode' AND e.id > $1 ORDER BY e.id"""
_NEW_SCRAPES = """
SELECT j.id, s.tmdb_id, e.season_number, e.episode_number, j.created_at FROM jobs j
JOIN items e ON e.id = j.item_id JOIN items s ON s.id = e.show_id
WHERE j.kind = 'scrape' AND j.id > $1 ORDER BY j.id"""
_BUSY = """
SELECT count(*) FROM jobs WHERE kind = 'index'
  AND (status = 'running' OR (status = 'queued' AND run_at <= $1))"""
QUIET_S = 0.02


async def _quiesce(pool: asyncpg.Pool, clock: ManualClock, listener: Listener,
                   calls: Callable[[], int]) -> None:
    """Wait until no index job is due or running and nothing moves for two probes."""
    last: tuple[object, ...] = ()
    for _ in range(3000):
        busy = await pool.fetchval(_BUSY, clock.now())
        probe = (busy, listener.notifications, calls(), clock.next_deadline())
        if busy == 0 and probe == last:
            return
        last = probe
        await asyncio.sleep(QUIET_S)
    raise RuntimeError("the loops never settled")


async def _record(pool: asyncpg.Pool, log: ReplayLog, at: float, woke_wall: float) -> None:
    for row in await pool.fetch(_NEW_EPISODES, log.last_item):
        log.last_item = row["id"]
        key = (row["tmdb_id"] - TV_BASE_TMDB, row["season_number"], row["episode_number"])
        log.known_at.setdefault(key, at)
        if log.steps:
            log.index_wall_s.append(row["created_at"].timestamp() - woke_wall)
    for row in await pool.fetch(_NEW_SCRAPES, log.last_job):
        log.last_job = row["id"]
        key = (row["tmdb_id"] - TV_BASE_TMDB, row["season_number"], row["episode_number"])
        log.released_at.setdefault(key, at)
        if log.steps:
            log.release_wall_s.append(row["created_at"].timestamp() - woke_wall)


def _replay_settings(sims: SimCluster, dsn: str, root: Path) -> Settings:
    upstreams = config_values(sims)["upstreams"]
    return load_settings_from_dict({
        "server": {"port": 0, "api_key": "bench-detection-" + "k" * 24},
        "database": {"url": dsn},
        "library": {"mount_dir": str(root / "mount"), "root": str(root / "library")},
        "upstreams": {name: (table if name in ("tmdb", "tvmaze") else {"enabled": False})
                      for name, table in upstreams.items()},
        # The workers wake on NOTIFY; a short poll would only add clock steps.
        "workers": {"poll_interval_s": 86_400.0},
    })


async def replay(args: argparse.Namespace) -> tuple[World, ReplayLog, dict[str, int], float]:
    """The daemon's loops, INDEX step and stage workers against the sims on a manual clock.

    Embedded PostgreSQL, the TMDB and TVMaze sims and the real code; only the clock is
    driven: it jumps to the next deadline once every loop sleeps and no index job is due.
    """
    temp = Path(tempfile.mkdtemp(prefix="riven-bench-detection-"))
    server = EmbeddedPostgres(temp / "pg", port=args.port, server_settings=TEST_SERVER_SETTINGS)
    began = time.perf_counter()
    await server.start()
    try:
        return await _replay_on(args, server.dsn(), temp, began)
    finally:
        await server.stop()
        shutil.rmtree(temp, ignore_errors=True)


async def _replay_on(args: argparse.Namespace, dsn: str, temp: Path,
                     began: float) -> tuple[World, ReplayLog, dict[str, int], float]:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate.apply_migrations(conn)
    finally:
        await conn.close()
    clock = ManualClock(ORIGIN)
    shows, days = args.replay_shows, args.replay_days
    sim_settings = SimSettings(seed=args.seed, shows=shows, movies=0, mount_dir=temp / "mount",
                               infringing_ratio=0.0,
                               rate_limits={"tmdb": ["100000/1s"], "tvmaze": ["100000/10s"]})
    failures: list[str] = []
    async with run_sims(sim_settings, clock) as sims, AsyncExitStack() as stack:
        settings = _replay_settings(sims, dsn, temp)
        pool = await create_pool(PoolOptions(dsn=dsn, min_size=2, max_size=8))
        stack.push_async_callback(pool.close)
        upstreams = UpstreamClients.from_settings(settings, clock=clock)
        stack.push_async_callback(upstreams.aclose)
        boot_id = new_boot_id()
        listener = Listener(lambda: asyncpg.connect(dsn))
        runtime = Runtime(live=LiveSettings(settings), clock=clock, pool=pool,
                          repos=Repos.on(pool, clock, boot_id), upstreams=upstreams,
                          locks=KeyedLock(), metrics=MetricsRegistry(), listener=listener,
                          boot_id=boot_id)
        tasks = BackgroundTasks(lambda name, exc: failures.append(f"{name}: {exc!r}"))
        stop_listening = asyncio.Event()
        tasks.start("listen", lambda: listener.run(stop_listening))
        stack.push_async_callback(tasks.stop, 5.0)
        stack.callback(stop_listening.set)
        await listener.connected.wait()
        step = await index_step.build(runtime, stack)
        await detection.start(runtime, tasks, stack)
        start_workers(runtime, {JobKind.INDEX: step}, tasks.start)

        def calls() -> int:
            return sims.tmdb.log.total + sims.tvmaze.log.total

        # The library: every show requested two days ago (not fresh), indexed at the start.
        catalog_shows = list(sims.catalog.shows())
        outcomes = await runtime.repos.items.request_many([
            RequestMedia(kind="show", ids=ExternalIds(tmdb=show.tmdb_id), title=None,
                         year=None, seasons=None, source="bench") for show in catalog_shows])
        await pool.execute("UPDATE requests SET received_at = $1",
                           ORIGIN - timedelta(days=2))
        await runtime.repos.jobs.enqueue_many(
            [NewJob(JobKind.INDEX, item_id=o.item_id) for o in outcomes])
        log = ReplayLog()
        await _quiesce(pool, clock, listener, calls)
        await _record(pool, log, clock.now().timestamp(), time.time())
        marks = (sims.tmdb.log.total, sims.tvmaze.log.total)
        end = ORIGIN.timestamp() + days * DAY_S
        while clock.now().timestamp() < end and not failures:
            deadline = clock.next_deadline()
            target = end - ORIGIN.timestamp()
            if deadline is not None:
                target = min(target, deadline)
            log.steps += 1
            woke = time.time()
            clock.set_elapsed(target)
            await _quiesce(pool, clock, listener, calls)
            await _record(pool, log, clock.now().timestamp(), woke)
        if failures:
            raise RuntimeError(f"a loop failed: {failures}")
        counted = {"tmdb": sims.tmdb.log.total - marks[0],
                   "tvmaze": sims.tvmaze.log.total - marks[1],
                   "violations": sims.tmdb.violations + sims.tvmaze.violations}
        for request in sims.tmdb.log.since(marks[0]):
            kind = ("tmdb_feed" if request.path.endswith("/changes")
                    else "tmdb_season" if "/season/" in request.path else "tmdb_details")
            counted[kind] = counted.get(kind, 0) + 1
        for request in sims.tvmaze.log.since(marks[1]):
            kind = "tvmaze_feed" if request.path.startswith("/updates") else "tvmaze_show"
            counted[kind] = counted.get(kind, 0) + 1
    catalog = Catalog(args.seed, shows, 0, ORIGIN)
    world = World(catalog, ORIGIN.timestamp(), ORIGIN.timestamp() + days * DAY_S, 0.0,
                  random.Random(args.seed))
    return world, log, counted, time.perf_counter() - began


def replay_report(args: argparse.Namespace) -> dict[str, Any]:
    """The real loops and the model on the same small library, side by side."""
    world, log, counted, wall_s = asyncio.run(replay(args))
    days = args.replay_days
    delay = args.release_delay_s
    real_det, real_missed = _latencies(world, lambda k, a: log.released_at.get(k, math.inf),
                                       delay)
    real_ann, real_unknown = _announcements(world, lambda k: log.known_at.get(k, math.inf))
    model_args = argparse.Namespace(**{**vars(args), "tmdb_tv_feed_per_day": 0.0,
                                       "job_latency_s": 0.0, "release_latency_s": 0.0})
    model = RivenAsync(world, SchedulePolicy(release_delay_s=delay), model_args,
                       random.Random(args.seed))
    model.run(spread=False)
    m_det, m_missed = _latencies(world, model.released_at, delay)
    m_ann, m_unknown = _announcements(world, lambda k: model.known_at.get(k, math.inf))
    return {
        "shows": args.replay_shows, "days": days, "clock_steps": log.steps,
        "episodes_measured": len(real_det) + real_missed,
        "announcements_measured": len(real_ann) + real_unknown,
        "real": {
            "detection_p50_s": _pct(real_det, 0.5), "detection_p99_s": _pct(real_det, 0.99),
            "announce_to_known_p99_s": _pct(real_ann, 0.99),
            "missed": real_missed, "announced_unknown": real_unknown,
            "tmdb_calls_per_day": round(counted["tmdb"] / days, 1),
            "tvmaze_calls_per_day": round(counted["tvmaze"] / days, 1),
            "limit_violations": counted["violations"],
            "calls_by_kind": {k: v for k, v in counted.items()
                              if k.startswith(("tmdb_", "tvmaze_"))},
            "release_wall_s_p50": _pct(log.release_wall_s, 0.5, 3),
            "release_wall_s_max": _pct(log.release_wall_s, 1.0, 3),
            "index_wall_s_p50": _pct(log.index_wall_s, 0.5, 3),
            "index_wall_s_max": _pct(log.index_wall_s, 1.0, 3),
        },
        "model": {
            "detection_p50_s": _pct(m_det, 0.5), "detection_p99_s": _pct(m_det, 0.99),
            "announce_to_known_p99_s": _pct(m_ann, 0.99),
            "missed": m_missed, "announced_unknown": m_unknown,
            "tmdb_calls_per_day": round(model.counts.tmdb / days, 1),
            "tvmaze_calls_per_day": round(model.counts.tvmaze / days, 1),
            "calls_by_kind": {"tmdb_feed": model.counts.tmdb_feed,
                              "tmdb_checks": model.counts.tmdb - model.counts.tmdb_feed,
                              "tvmaze_feed": model.counts.tvmaze_feed,
                              "checks": model.counts.checks},
        },
        "wall_s": round(wall_s, 1),
    }


def _median(runs: Sequence[dict[str, Any]], *path: str) -> Any:
    values = []
    for run in runs:
        value: Any = run
        for part in path:
            value = value[part]
        values.append(value)
    numbers = [v for v in values if isinstance(v, int | float)]
    if len(numbers) != len(values):
        return values[0]
    return statistics.median(numbers)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def _side_by_side(result: dict[str, Any]) -> dict[str, Any]:
    """Riven's and Sonarr's figures over ours (latency: how many times slower they are)."""
    riven, sonarr = result["riven_policy"], result["sonarr_policy"]
    ours_calls = result["tmdb_calls_per_day"] + result["tvmaze_calls_per_day"]
    side: dict[str, Any] = {}
    for name, theirs, calls in (("riven", riven, riven["tmdb_calls_per_day"]),
                                ("sonarr", sonarr, sonarr["metadata_calls_per_day"])):
        side[name] = {
            "detection_p50_x": _ratio(theirs["detection_p50_s"], result["detection_p50_s"]),
            "detection_p99_x": _ratio(theirs["detection_p99_s"], result["detection_p99_s"]),
            "announce_to_known_p99_x": _ratio(theirs["announce_to_known_p99_s"],
                                              result["announce_to_known_p99_s"]),
            "our_calls_over_theirs": _ratio(ours_calls, calls),
        }
    return side


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--shows", type=int, default=10_000)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--late-share", type=float, default=0.05)
    parser.add_argument("--release-delay-s", type=float, default=900.0)
    parser.add_argument("--changes-interval-s", type=float, default=600.0)
    parser.add_argument("--tmdb-changes-interval-s", type=float, default=3600.0)
    parser.add_argument("--job-latency-s", type=float, default=5.0)
    parser.add_argument("--release-latency-s", type=float, default=1.0)
    parser.add_argument("--tmdb-routine-calls-per-day", type=float, default=4000.0)
    parser.add_argument("--tvmaze-routine-calls-per-day", type=float, default=2000.0)
    # TMDB's /tv/changes for one day (upstream-samples/tmdb_tv_changes.json: 3,652 ids).
    parser.add_argument("--tmdb-tv-feed-per-day", type=float, default=3652.0)
    parser.add_argument("--tvmaze-blind", action="store_true",
                        help="what-if: TVMaze's feed reports no change (TMDB's alone finds them)")
    parser.add_argument("--replay-shows", type=int, default=300)
    parser.add_argument("--replay-days", type=float, default=2.0)
    parser.add_argument("--no-replay", action="store_true",
                        help="skip the real loops at small scale (no PostgreSQL, no sims)")
    parser.add_argument("--port", type=int, default=55_437, help="embedded PostgreSQL port")
    args = parser.parse_args(argv)

    runs = []
    for offset in range(args.runs):
        run = one_run(args, args.seed + offset)
        ours = run["riven_async"]
        print(f"run seed {run['seed']}: detection p99 {ours['detection_p99_s']} s, "
              f"announce p99 {ours['announce_to_known_p99_s']} s, missed {ours['missed']}, "
              f"calls/day tmdb {ours['tmdb_calls_per_day']} tvmaze {ours['tvmaze_calls_per_day']}"
              f" ({run['wall_s']} s)", file=sys.stderr)
        runs.append(run)

    def med(*path: str) -> Any:
        return _median(runs, *path)

    result: dict[str, Any] = {
        "benchmark": "detection",
        "kind": "model of the rule code on the simulated catalog (medians over runs), "
                "checked by a replay of the daemon's loops against the sims",
        "shows": args.shows,
        "days": args.days,
        "runs": len(runs),
        "cores": os.cpu_count(),
        "units": {"latency": "s (simulated)", "calls": "per simulated day",
                  "wall": "s (real)"},
        "assumed": {"job_latency_s": args.job_latency_s,
                    "release_latency_s": args.release_latency_s,
                    "release_delay_s": args.release_delay_s,
                    "changes_interval_s": args.changes_interval_s,
                    "tmdb_changes_interval_s": args.tmdb_changes_interval_s,
                    "tmdb_tv_feed_per_day": args.tmdb_tv_feed_per_day,
                    "late_share": args.late_share},
        "episodes_airing_per_day": med("episodes_airing_per_day"),
        "detection_p50_s": med("riven_async", "detection_p50_s"),
        "detection_p99_s": med("riven_async", "detection_p99_s"),
        "announce_to_known_p99_s": med("riven_async", "announce_to_known_p99_s"),
        "missed": max(r["riven_async"]["missed"] for r in runs),
        "tmdb_calls_per_day": med("riven_async", "tmdb_calls_per_day"),
        "tvmaze_calls_per_day": med("riven_async", "tvmaze_calls_per_day"),
        "calls_ratio_to_daily_reindex": med("calls_ratio_to_daily_reindex"),
        "riven_policy": {k: med("riven", k) for k in runs[0]["riven"]},
        "sonarr_policy": {k: med("sonarr", k) for k in runs[0]["sonarr"]},
        "per_run": runs,
    }
    result["side_by_side"] = _side_by_side(result)
    if not args.no_replay:
        real = replay_report(args)
        result["replay"] = real
        print(f"replay of the real loops ({real['shows']} shows, {real['days']} days, "
              f"{real['clock_steps']} clock steps, {real['wall_s']} s): real {real['real']} / "
              f"model {real['model']}", file=sys.stderr)
    targets = {
        "detection_p99_s<=120": (result["detection_p99_s"] or 0) <= 120,
        "announce_to_known_p99_s<=900": (result["announce_to_known_p99_s"] or 0) <= 900,
        "missed==0": result["missed"] == 0,
        "calls<=1/3_of_daily_reindex": (result["calls_ratio_to_daily_reindex"] or 1) <= 1 / 3,
    }
    result["targets_met"] = targets
    riven, sonarr = result["riven_policy"], result["sonarr_policy"]
    replayed = result.get("replay", {}).get("real", {})
    print(f"{args.shows} shows x {args.days:g} days, median of {len(runs)}: detection p50/p99 "
          f"{result['detection_p50_s']}/{result['detection_p99_s']} s (Riven "
          f"{riven['detection_p50_s']}/{riven['detection_p99_s']} s, Sonarr "
          f"{sonarr['detection_p50_s']}/{sonarr['detection_p99_s']} s), announce-to-known "
          f"p99 {result['announce_to_known_p99_s']} s (Riven "
          f"{riven['announce_to_known_p99_s']}, Sonarr {sonarr['announce_to_known_p99_s']}), "
          f"missed {result['missed']} (Riven {riven['missed']}), calls/day tmdb "
          f"{result['tmdb_calls_per_day']} + tvmaze {result['tvmaze_calls_per_day']} = "
          f"{result['calls_ratio_to_daily_reindex']} of Riven's daily re-index "
          f"({riven['tmdb_calls_per_day']}); replay: detection p99 "
          f"{replayed.get('detection_p99_s')} s, release work <= "
          f"{replayed.get('release_wall_s_max')} s real; targets "
          f"{'met' if all(targets.values()) else 'NOT met'}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The detection loops: due checks become index jobs, aired items become scrape jobs, and
the TMDB and TVMaze change feeds make exactly the changed titles due at once.

Each loop sleeps on the daemon's clock until its next due time or a NOTIFY, never on a
fixed tick; each survives database outages (backs off and goes on) and upstream errors.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta

from riven_async.config import DetectionSection
from riven_async.core.clock import wait_event
from riven_async.core.http import HttpClient
from riven_async.core.retry import DoublingBackoff
from riven_async.core.tasks import BackgroundTasks
from riven_async.db.notify import CHANNEL_SCHEDULE
from riven_async.db.pool import DB_PASS_ERRORS
from riven_async.db.schedule import FeedMark
from riven_async.domain.media import TmdbId
from riven_async.errors import UpstreamError
from riven_async.pipeline.runtime import Runtime
from riven_async.pipeline.scheduler import CallBudget, CheckPriority, RoutineBudget
from riven_async.pipeline.steps.index import indexer_from_settings
from riven_async.services.indexers.tmdb import TmdbIndexer
from riven_async.services.indexers.tvmaze import TvmazeClient
from riven_async.web.metrics import Section

log = logging.getLogger(__name__)

# The longest any loop sleeps without looking (a lost notification costs this at most).
MAX_SLEEP_S = 300.0
# After a pass that left due work behind (rows locked by an index in flight), look again
# this much later rather than at once.
MIN_PASS_S = 1.0
DB_BACKOFF_MIN_S = 1.0
DB_BACKOFF_MAX_S = 60.0
FEED_TMDB_TV = "tmdb_tv"
FEED_TMDB_MOVIE = "tmdb_movie"
FEED_TVMAZE = "tvmaze"
# TVMaze's feed is re-read with this overlap: its stamps are exact, so overlap costs nothing.
TVMAZE_OVERLAP_S = 600.0
TVMAZE_MAX_WINDOW_S = 30 * 86400.0
# What a routine check costs on average: TMDB's details, plus the seasons it reads (and then
# TVMaze's episodes) when the show aired lately or changed. bench/detection.py measures it
# (calls_per_routine_check: 1.35 and 0.35 on the simulated catalog).
ROUTINE_COST = {"tmdb": 1.35, "tvmaze": 0.35}


def _tmdb_feed_due(mark: FeedMark | None, now: datetime, section: DetectionSection) -> bool:
    """Whether a TMDB feed is read on this pass (half a pass early rather than a pass late)."""
    if mark is None:
        return True
    since_s = (now - mark.read_at).total_seconds()
    return since_s >= section.tmdb_changes_interval_s - section.changes_interval_s / 2


def _seconds_until(at: datetime | None, now: datetime) -> float:
    return MAX_SLEEP_S if at is None else (at - now).total_seconds()


@dataclass(slots=True)
class DetectionStats:
    """Running counts for ``/metrics``."""

    check_passes: int = 0
    checks_urgent: int = 0
    checks_routine: int = 0
    release_passes: int = 0
    released: int = 0
    feed_reads: int = 0
    feed_changed: int = 0
    feed_errors: int = 0
    feed_skips: int = 0
    db_errors: int = 0

    def section(self) -> Section:
        return {
            "check_passes": self.check_passes, "checks_urgent": self.checks_urgent,
            "checks_routine": self.checks_routine, "release_passes": self.release_passes,
            "released": self.released, "feed_reads": self.feed_reads,
            "feed_changed": self.feed_changed, "feed_errors": self.feed_errors,
            "feed_skips": self.feed_skips,
            "db_errors": self.db_errors,
        }


class DetectionLoops:
    """The three loops on one runtime; ``start`` runs them under the task monitor."""

    def __init__(self, runtime: Runtime, indexer: TmdbIndexer | None = None,
                 tvmaze: TvmazeClient | None = None) -> None:
        self._runtime = runtime
        self._indexer = indexer
        self._tvmaze = tvmaze
        self.stats = DetectionStats()
        detection = runtime.settings.detection
        clock = runtime.clock
        self.budget = RoutineBudget(
            {"tmdb": CallBudget(detection.tmdb_routine_calls_per_day, clock),
             "tvmaze": CallBudget(detection.tvmaze_routine_calls_per_day, clock)},
            ROUTINE_COST,
        )

    # -- the check loop -------------------------------------------------------------------

    async def check_loop(self) -> None:
        """Due checks become index jobs: urgent ones at once, routine ones within budget."""
        wake = self._runtime.listener.wake_event(CHANNEL_SCHEDULE)
        await self._forever("check", wake, self.check_pass)

    async def check_pass(self) -> float:
        """One pass; returns how long to sleep (unless woken)."""
        runtime = self._runtime
        section = runtime.settings.detection
        schedule = runtime.repos.schedule
        batch, fallback_s = section.batch_size, section.check_fallback_s
        self.stats.check_passes += 1
        urgent = (int(CheckPriority.FRESH), 32767)
        while True:
            taken = await schedule.enqueue_due_checks(batch, fallback_s, priorities=urgent)
            self.stats.checks_urgent += taken.checks
            if taken.checks < batch:
                break
        routine_left = True
        while (allowed := min(batch, self.budget.allowance())) > 0:
            taken = await schedule.enqueue_due_checks(
                allowed, fallback_s, priorities=(int(CheckPriority.ROUTINE),) * 2)
            self.budget.admit(taken.checks)
            self.stats.checks_routine += taken.checks
            if taken.checks < allowed:
                routine_left = False
                break
        now = runtime.clock.now()
        urgent_s = _seconds_until(await schedule.next_check_at(min_priority=urgent[0]), now)
        any_s = _seconds_until(await schedule.next_check_at(), now)
        if routine_left and any_s <= 0:
            # Routine checks are due but the budget is spent: wait for it to refill.
            any_s = max(any_s, self.budget.seconds_until_allowed())
        sleep_s = min(urgent_s, any_s, MAX_SLEEP_S)
        return sleep_s if sleep_s > 0 else MIN_PASS_S

    # -- the release loop -----------------------------------------------------------------

    async def release_loop(self) -> None:
        """Aired episodes and movies become scrape jobs at their air time plus the delay."""
        wake = self._runtime.listener.wake_event(CHANNEL_SCHEDULE, "release")
        await self._forever("release", wake, self.release_pass)

    async def release_pass(self) -> float:
        runtime = self._runtime
        section = runtime.settings.detection
        schedule = runtime.repos.schedule
        delay_s = section.release_delay_s
        self.stats.release_passes += 1
        while True:
            released = await schedule.release_due(delay_s, limit=section.batch_size)
            if released.show_ids:
                await runtime.repos.items.refresh_parent_states(released.show_ids)
            self.stats.released += len(released.item_ids)
            if not released.item_ids:
                break
            log.info("released %d aired items", len(released.item_ids),
                     extra={"action": "release_due", "count": len(released.item_ids)})
        now = runtime.clock.now()
        sleep_s = min(_seconds_until(await schedule.next_release_at(delay_s), now), MAX_SLEEP_S)
        return sleep_s if sleep_s > 0 else MIN_PASS_S

    # -- the change-feed loop -------------------------------------------------------------

    async def feed_loop(self) -> None:
        """Every ``changes_interval_s``: read the feeds, make the changed titles due now."""
        clock = self._runtime.clock
        backoff = DoublingBackoff(DB_BACKOFF_MIN_S, DB_BACKOFF_MAX_S)
        while True:
            started = clock.monotonic()
            interval_s = self._runtime.settings.detection.changes_interval_s
            try:
                await self.feed_pass()
                backoff.reset()
                wait_s = interval_s - (clock.monotonic() - started)
            except DB_PASS_ERRORS as exc:
                self.stats.db_errors += 1
                wait_s = min(interval_s, backoff.next_s())
                log.warning("change feeds: database unavailable (%r); again in %.1fs", exc,
                            wait_s, extra={"action": "change_feeds"})
            await clock.sleep(max(MIN_PASS_S, wait_s))

    async def feed_pass(self) -> int:
        """Read the feeds due since their marks; returns how many tracked titles were made due.

        TVMaze's is read on every pass, TMDB's every ``tmdb_changes_interval_s``.
        """
        runtime = self._runtime
        section = runtime.settings.detection
        schedule = runtime.repos.schedule
        now = runtime.clock.now()
        marks = await schedule.feed_marks()
        interest = await schedule.feed_interest()
        fresh: dict[str, FeedMark] = {}
        news: dict[str, frozenset[int]] = {}
        tvmaze_updated: dict[int, float] = {}
        if self._indexer is not None:
            for feed, read, tracked in (
                (FEED_TMDB_TV, self._indexer.changed_shows, interest.tmdb_shows),
                (FEED_TMDB_MOVIE, self._indexer.changed_movies, interest.tmdb_movies),
            ):
                mark = marks.get(feed)
                if not tracked:
                    # TMDB's feeds list every change on TMDB (dozens of pages a day): with
                    # nothing of that kind tracked there is nothing to intersect.
                    fresh[feed] = FeedMark(feed, now)
                    self.stats.feed_skips += 1
                    continue
                if not _tmdb_feed_due(mark, now, section):
                    continue
                result = await self._read_tmdb(feed, read, mark, now, section.changes_window_s)
                if result is not None:
                    fresh[feed], news[feed] = result
        if self._tvmaze is not None and not interest.tvmaze_shows:
            fresh[FEED_TVMAZE] = FeedMark(FEED_TVMAZE, now)
            self.stats.feed_skips += 1
        elif self._tvmaze is not None:
            updated = await self._read_tvmaze(marks.get(FEED_TVMAZE), now,
                                              section.changes_window_s)
            if updated is not None:
                tvmaze_updated = updated
                fresh[FEED_TVMAZE] = FeedMark(FEED_TVMAZE, now)
        changed = []
        if any(news.values()) or tvmaze_updated:
            changed = await schedule.check_changed(
                tmdb_shows=news.get(FEED_TMDB_TV, frozenset()),
                tmdb_movies=news.get(FEED_TMDB_MOVIE, frozenset()),
                tvmaze_updated=tvmaze_updated,
                priority=int(CheckPriority.CHANGED),
                soon_s=section.release_delay_s,
                tmdb_checked_since=self._tmdb_checked_since(marks.get(FEED_TMDB_TV), now,
                                                            section),
            )
        for mark in fresh.values():
            await schedule.save_feed_mark(mark)
        self.stats.feed_reads += 1
        self.stats.feed_changed += len(changed)
        if changed:
            log.info("change feeds: %d tracked titles changed, checking them now", len(changed),
                     extra={"action": "change_feeds", "changed": len(changed)})
        return len(changed)

    def _tmdb_checked_since(self, mark: FeedMark | None, now: datetime,
                            section: DetectionSection) -> datetime | None:
        """Since when a check makes TMDB's mention of a show redundant (None: never).

        With TVMaze's feed read, a show checked after the TV feed's previous read has seen
        every change before that check, and TVMaze's exact stamps report the ones after.
        """
        if self._tvmaze is None or mark is None:
            return None
        if (now - mark.read_at).total_seconds() > section.changes_window_s:
            return None
        return mark.read_at

    async def _read_tmdb(
        self,
        feed: str,
        read: Callable[[datetime, datetime | None], Awaitable[frozenset[TmdbId]]],
        mark: FeedMark | None,
        now: datetime,
        window_s: float,
    ) -> tuple[FeedMark, frozenset[int]] | None:
        """The feed since its mark: the new mark and the ids not seen by the last read."""
        seen: frozenset[int] = frozenset()
        start = now
        if mark is not None and (now - mark.read_at).total_seconds() <= window_s:
            start, seen = min(mark.read_at, now), mark.seen
        elif mark is not None:
            log.warning(
                "%s was last read %s, beyond the %.0f-day window: not read back; the "
                "check schedule catches up", feed, mark.read_at.isoformat(), window_s / 86400,
                extra={"action": "change_feeds", "feed": feed},
            )
        try:
            ids = frozenset(int(i) for i in await read(start, now))
        except UpstreamError as exc:
            self.stats.feed_errors += 1
            log.warning("%s unavailable, read again next time: %s", feed, exc,
                        extra={"action": "change_feeds", "feed": feed})
            return None
        return FeedMark(feed, now, ids), ids - seen

    async def _read_tvmaze(
        self, mark: FeedMark | None, now: datetime, window_s: float
    ) -> dict[int, float] | None:
        assert self._tvmaze is not None
        reach_s = min(window_s, TVMAZE_MAX_WINDOW_S)
        if mark is None or (now - mark.read_at).total_seconds() > reach_s:
            since = now - timedelta(seconds=self._runtime.settings.detection.changes_interval_s)
        else:
            since = mark.read_at - timedelta(seconds=TVMAZE_OVERLAP_S)
        try:
            updated = await self._tvmaze.updated_since(since, now)
        except UpstreamError as exc:
            self.stats.feed_errors += 1
            log.warning("tvmaze updates unavailable, read again next time: %s", exc,
                        extra={"action": "change_feeds", "feed": FEED_TVMAZE})
            return None
        return {ident: float(stamp) for ident, stamp in updated.items()}

    # -- shared ---------------------------------------------------------------------------

    async def _forever(self, name: str, wake: asyncio.Event,
                       one_pass: Callable[[], Awaitable[float]]) -> None:
        clock = self._runtime.clock
        backoff = DoublingBackoff(DB_BACKOFF_MIN_S, DB_BACKOFF_MAX_S)
        while True:
            wake.clear()
            try:
                sleep_s = await one_pass()
                backoff.reset()
            except DB_PASS_ERRORS as exc:
                self.stats.db_errors += 1
                sleep_s = backoff.next_s()
                log.warning("%s loop: database unavailable (%r); again in %.1fs", name, exc,
                            sleep_s, extra={"action": f"{name}_loop"})
            await wait_event(wake, clock, sleep_s)


def _feed_clients(runtime: Runtime) -> tuple[TmdbIndexer | None, TvmazeClient | None]:
    """The feeds' clients, or None for a feed that cannot be read (no TMDB key, TVMaze off)."""
    settings = runtime.settings
    tmdb: HttpClient | None = runtime.upstreams.get("tmdb")
    if tmdb is None or not settings.upstreams.tmdb.api_key.get_secret_value():
        return None, None
    maze_http = runtime.upstreams.get("tvmaze") if settings.indexer.tvmaze_enabled else None
    indexer = indexer_from_settings(settings.indexer, tmdb, None, runtime)
    return indexer, TvmazeClient(maze_http) if maze_http is not None else None


async def start(runtime: Runtime, tasks: BackgroundTasks, stack: AsyncExitStack) -> None:
    """Start the check, release and change-feed loops under the task monitor."""
    if not runtime.settings.detection.enabled:
        log.info("detection loops off ([detection] enabled = false)",
                 extra={"action": "detection"})
        return
    indexer, tvmaze = _feed_clients(runtime)
    loops = DetectionLoops(runtime, indexer, tvmaze)

    async def section() -> Mapping[str, object]:
        return loops.stats.section()

    runtime.metrics.register("detection_loops", section)
    tasks.start("detection-checks", loops.check_loop)
    tasks.start("detection-releases", loops.release_loop)
    if indexer is None:
        log.info("change feeds off: no TMDB key; checks follow the schedule alone",
                 extra={"action": "change_feeds"})
        return
    tasks.start("detection-feeds", loops.feed_loop)

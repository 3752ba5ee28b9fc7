"""Ask every scraper at once, each under its own timeout; merge; learn who is fast and reliable."""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from riven_async.core.clock import Clock, SystemClock
from riven_async.core.http import HttpClient
from riven_async.errors import RateLimited, UpstreamError, UpstreamUnavailable
from riven_async.services.scrapers import (
    ScrapedRelease,
    ScrapeQuery,
    Scraper,
    ScraperError,
    ScrapeResult,
    WarmUp,
    merge_releases,
)
from riven_async.services.scrapers.bencode import MAX_TORRENT_BYTES
from riven_async.services.scrapers.stremio import RATE_LIMIT_NOTICE_PAUSE_S, StremioScraper
from riven_async.services.scrapers.torznab import (
    JACKETT_FEED,
    MAX_LINK_FETCHES,
    SEARCH_LIMIT,
    TorznabScraper,
)
from riven_async.services.scrapers.zilean import ZileanScraper

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT_S = 10.0
EWMA_ALPHA = 0.2
PRIOR_LATENCY_S = 1.0
# Added to the latency in the score so that near-zero latencies do not dominate it.
LATENCY_FLOOR_S = 0.25
HEALTH_RECOVERY_S = 600.0
MAX_REASON_CHARS = 300
STREMIO_UPSTREAMS = ("torrentio", "comet", "mediafusion")


class OutcomeStatus(enum.StrEnum):
    """How one scraper's part of a fan-out ended."""

    OK = "ok"  # answered (possibly with nothing)
    SOFT_FAILURE = "soft_failure"  # answered with a notice instead of results
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    DEFERRED = "deferred"  # rate-limited or breaker open: ask again after retry_after_s
    OVER_BUDGET = "over_budget"  # not asked: the per-request budget went to faster scrapers
    UNSUPPORTED = "unsupported"  # cannot search for this query (no usable id or title)


# Outcomes that say how the upstream answers (the others are limits or choices of ours).
_SAMPLED = frozenset(
    {
        OutcomeStatus.OK,
        OutcomeStatus.SOFT_FAILURE,
        OutcomeStatus.FAILED,
        OutcomeStatus.TIMED_OUT,
    }
)
# Outcomes after which the caller should scrape with this scraper again later.
RETRY_STATUSES = frozenset(
    {
        OutcomeStatus.SOFT_FAILURE,
        OutcomeStatus.FAILED,
        OutcomeStatus.TIMED_OUT,
        OutcomeStatus.DEFERRED,
        OutcomeStatus.OVER_BUDGET,
    }
)


@dataclass(frozen=True, slots=True)
class ScraperOutcome:
    """One scraper's part of a fan-out; ``reason`` never carries a credential."""

    scraper: str
    status: OutcomeStatus
    found: int = 0
    elapsed_s: float = 0.0
    reason: str | None = None
    retry_after_s: float | None = None

    @property
    def needs_retry(self) -> bool:
        return self.status in RETRY_STATUSES


@dataclass(frozen=True, slots=True)
class FanoutResult:
    """Merged releases of one query plus how each scraper fared."""

    query: ScrapeQuery
    releases: tuple[ScrapedRelease, ...]
    outcomes: tuple[ScraperOutcome, ...]
    elapsed_s: float

    def outcome(self, scraper: str) -> ScraperOutcome | None:
        return next((o for o in self.outcomes if o.scraper == scraper), None)

    @property
    def retry(self) -> tuple[str, ...]:
        """Scrapers to ask again later (``ScrapeFanout.scrape(query, only=…)``)."""
        return tuple(o.scraper for o in self.outcomes if o.needs_retry)

    @property
    def complete(self) -> bool:
        """Every scraper that could search for this query answered."""
        return not self.retry

    def retry_after_s(self) -> float | None:
        """The earliest moment a retried scraper is expected to accept a request."""
        hints = [o.retry_after_s for o in self.outcomes if o.needs_retry and o.retry_after_s]
        return min(hints) if hints else None


@dataclass(frozen=True, slots=True)
class HealthStats:
    """One scraper's record: EWMAs of latency and success, and outcome counts."""

    scraper: str
    latency_ewma_s: float | None
    success_ewma: float | None
    samples: int
    outcomes: Mapping[str, int]
    last_failure: str | None
    score: float

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcomes"] = dict(self.outcomes)
        return data


class _Record:
    __slots__ = ("counts", "last_failure", "latency", "sampled_at", "samples", "success")

    def __init__(self) -> None:
        self.latency: float | None = None
        self.success: float | None = None
        self.samples = 0
        self.sampled_at = 0.0
        self.counts: Counter[str] = Counter()
        self.last_failure: str | None = None


class ScraperHealth:
    """EWMAs of latency and success per scraper; orders scrapers best-first for a budget.

    The score is ``success / (latency + LATENCY_FLOOR_S)``: answers per second, roughly.
    A scraper not yet heard from is assumed reliable at ``prior_latency_s``, so it gets
    asked and measured. Between samples the score drifts back toward that prior (half
    way every ``recovery_s``): a scraper that lost its place under a budget is tried
    again later instead of never. Only answers and failures move the averages; deferrals
    (rate limits, open breakers, full windows) are limits, not unreliability, and count
    only in ``outcomes``.
    """

    def __init__(
        self,
        *,
        alpha: float = EWMA_ALPHA,
        prior_latency_s: float = PRIOR_LATENCY_S,
        recovery_s: float = HEALTH_RECOVERY_S,
        clock: Clock | None = None,
    ) -> None:
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        if prior_latency_s < 0 or recovery_s <= 0:
            raise ValueError("prior_latency_s must be >= 0 and recovery_s > 0")
        self._alpha = alpha
        self._prior_latency_s = prior_latency_s
        self._recovery_s = recovery_s
        self._clock = clock or SystemClock()
        self._records: dict[str, _Record] = {}

    def record(self, outcome: ScraperOutcome) -> None:
        """Fold one outcome in."""
        entry = self._records.setdefault(outcome.scraper, _Record())
        entry.counts[outcome.status.value] += 1
        status = outcome.status
        if status not in _SAMPLED:
            return
        ok = status is OutcomeStatus.OK
        if not ok:
            entry.last_failure = f"{status.value}: {outcome.reason or ''}".rstrip(": ")
        entry.success = self._fold(entry.success, 1.0 if ok else 0.0)
        entry.latency = self._fold(entry.latency, outcome.elapsed_s)
        entry.samples += 1
        entry.sampled_at = self._clock.monotonic()

    def score(self, scraper: str) -> float:
        success, latency = 1.0, self._prior_latency_s
        entry = self._records.get(scraper)
        if entry is not None and entry.success is not None and entry.latency is not None:
            age = max(0.0, self._clock.monotonic() - entry.sampled_at)
            weight = 0.5 ** (age / self._recovery_s)
            success += (entry.success - success) * weight
            latency += (entry.latency - latency) * weight
        return success / (latency + LATENCY_FLOOR_S)

    def order(self, scrapers: Sequence[str]) -> list[str]:
        """Best score first; equal scores keep the given order."""
        return sorted(scrapers, key=lambda name: -self.score(name))

    def stats(self) -> dict[str, HealthStats]:
        return {
            name: HealthStats(
                scraper=name,
                latency_ewma_s=entry.latency,
                success_ewma=entry.success,
                samples=entry.samples,
                outcomes=dict(entry.counts),
                last_failure=entry.last_failure,
                score=self.score(name),
            )
            for name, entry in self._records.items()
        }

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """``stats()`` as JSON-ready dicts, for ``GET /metrics``."""
        return {name: s.to_dict() for name, s in self.stats().items()}

    def _fold(self, previous: float | None, sample: float) -> float:
        if previous is None:
            return sample
        return previous + self._alpha * (sample - previous)


class ScrapeFanout:
    """Every scraper in parallel for one query, each bounded by its own timeout.

    The whole call takes at most the longest timeout among the scrapers asked (they must
    honour cancellation, as the HTTP client does). A scraper whose client is paused by a
    429 or whose breaker is open is not waited on: it is reported ``DEFERRED`` with the
    wait, so the caller re-scrapes only that one later (``only=``); so is one that timed
    out while queued for a place in its own full rate windows. With a ``budget``, only
    that many scrapers are asked, best ``ScraperHealth`` score first.
    """

    def __init__(
        self,
        scrapers: Sequence[Scraper],
        *,
        timeout_s: float = SCRAPE_TIMEOUT_S,
        timeouts_s: Mapping[str, float] | None = None,
        budget: int | None = None,
        health: ScraperHealth | None = None,
    ) -> None:
        names = [s.name for s in scrapers]
        if len(set(names)) != len(names):
            raise ValueError(f"scraper names must be unique: {names}")
        unknown = set(timeouts_s or {}) - set(names)
        if unknown:
            raise ValueError(f"timeouts for unknown scrapers: {sorted(unknown)}")
        if timeout_s <= 0 or any(t <= 0 for t in (timeouts_s or {}).values()):
            raise ValueError("timeouts must be > 0")
        if budget is not None and budget < 1:
            raise ValueError("budget must be >= 1 (None: no budget)")
        self._scrapers = tuple(scrapers)
        self._timeouts = {name: (timeouts_s or {}).get(name, timeout_s) for name in names}
        self._budget = budget
        self.health = health or ScraperHealth()

    def __repr__(self) -> str:
        return f"<ScrapeFanout {', '.join(self.names) or 'no scrapers'}>"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self._scrapers)

    def timeout_for(self, scraper: str) -> float:
        return self._timeouts[scraper]

    async def start(self) -> None:
        """Run every scraper's start-up work (Torznab caps) at once; never raises."""
        async with asyncio.TaskGroup() as group:
            for scraper in self._scrapers:
                if isinstance(scraper, WarmUp):
                    group.create_task(self._start_one(scraper))

    async def scrape(
        self,
        query: ScrapeQuery,
        *,
        only: Collection[str] | None = None,
        budget: int | None = None,
    ) -> FanoutResult:
        """Scrape ``query`` with every scraper (or those named in ``only``) at once."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        chosen = [s for s in self._scrapers if only is None or s.name in only]
        outcomes: dict[str, ScraperOutcome] = {}
        askable: list[Scraper] = []
        for scraper in chosen:
            early = self._precheck(scraper, query)
            if early is None:
                askable.append(scraper)
            else:
                outcomes[scraper.name] = early
        limit = budget if budget is not None else self._budget
        if limit is not None and len(askable) > limit:
            ranked = self.health.order([s.name for s in askable])
            asked = set(ranked[:limit])
            for scraper in askable:
                if scraper.name not in asked:
                    outcomes[scraper.name] = ScraperOutcome(
                        scraper.name, OutcomeStatus.OVER_BUDGET, reason="over the budget"
                    )
            askable = [s for s in askable if s.name in asked]
        results: dict[str, ScrapeResult] = {}
        async with asyncio.TaskGroup() as group:
            for scraper in askable:
                group.create_task(self._ask(scraper, query, outcomes, results))
        ordered = tuple(outcomes[s.name] for s in chosen)
        for outcome in ordered:
            self.health.record(outcome)
        merged = merge_releases(
            r for s in chosen if s.name in results for r in results[s.name].releases
        )
        result = FanoutResult(query, merged, ordered, loop.time() - began)
        self._log(result)
        return result

    def _precheck(self, scraper: Scraper, query: ScrapeQuery) -> ScraperOutcome | None:
        if not scraper.supports(query):
            return ScraperOutcome(scraper.name, OutcomeStatus.UNSUPPORTED)
        blocked = scraper.blocked_for()
        if blocked > 0:
            return ScraperOutcome(
                scraper.name,
                OutcomeStatus.DEFERRED,
                reason="rate-limit pause or open breaker",
                retry_after_s=blocked,
            )
        return None

    async def _ask(
        self,
        scraper: Scraper,
        query: ScrapeQuery,
        outcomes: dict[str, ScraperOutcome],
        results: dict[str, ScrapeResult],
    ) -> None:
        name = scraper.name
        loop = asyncio.get_running_loop()
        began = loop.time()
        timeout = self._timeouts[name]
        try:
            async with asyncio.timeout(timeout):
                result = await scraper.scrape(query)
        except TimeoutError:
            outcomes[name] = self._timed_out(scraper, timeout, loop.time() - began)
            return
        except (UpstreamError, ScraperError) as exc:
            outcomes[name] = self._failed(scraper, exc, loop.time() - began)
            return
        except Exception as exc:  # a scraper bug must not sink the other scrapers' results
            log.exception(
                "%s: scraper crashed on %s",
                name,
                query.describe(),
                extra={"action": "scrape_crash", "scraper": name},
            )
            outcomes[name] = ScraperOutcome(
                name,
                OutcomeStatus.FAILED,
                elapsed_s=loop.time() - began,
                reason=f"crashed: {type(exc).__name__}",
            )
            return
        results[name] = result
        soft = result.soft_failure is not None
        outcomes[name] = ScraperOutcome(
            name,
            OutcomeStatus.SOFT_FAILURE if soft else OutcomeStatus.OK,
            found=len(result.releases),
            elapsed_s=loop.time() - began,
            reason=_short(result.soft_failure),
            # A notice may have paused the client (MediaFusion's rate-limit notice).
            retry_after_s=(scraper.blocked_for() or None) if soft else None,
        )

    def _timed_out(self, scraper: Scraper, timeout: float, elapsed: float) -> ScraperOutcome:
        blocked = scraper.blocked_for()
        if blocked > 0 or scraper.saturated():
            # It was waiting out a 429 pause or for a place in a full rate window: our
            # limit, not the upstream's slowness.
            return ScraperOutcome(
                scraper.name,
                OutcomeStatus.DEFERRED,
                elapsed_s=elapsed,
                reason=f"still waiting for a rate-limit slot after {timeout:g}s",
                retry_after_s=blocked or None,
            )
        return ScraperOutcome(
            scraper.name,
            OutcomeStatus.TIMED_OUT,
            elapsed_s=elapsed,
            reason=f"no answer within {timeout:g}s",
        )

    def _failed(
        self, scraper: Scraper, exc: UpstreamError | ScraperError, elapsed: float
    ) -> ScraperOutcome:
        blocked = scraper.blocked_for()
        refused = isinstance(exc, RateLimited) or (
            isinstance(exc, UpstreamUnavailable) and exc.status is None and blocked > 0
        )
        retry_after = exc.retry_after_s if isinstance(exc, UpstreamError) else None
        return ScraperOutcome(
            scraper.name,
            OutcomeStatus.DEFERRED if refused else OutcomeStatus.FAILED,
            elapsed_s=elapsed,
            reason=_short(str(exc)),
            retry_after_s=max(retry_after or 0.0, blocked) or None,
        )

    async def _start_one(self, scraper: WarmUp) -> None:
        try:
            await scraper.start()
        except Exception:  # start-up work is best effort; scrapes retry it
            log.exception(
                "scraper start-up failed",
                extra={"action": "scraper_start", "scraper": getattr(scraper, "name", "?")},
            )

    def _log(self, result: FanoutResult) -> None:
        answered = sum(1 for o in result.outcomes if o.status is OutcomeStatus.OK)
        retry = result.retry
        log.info(
            "scrape %s: %d releases, %d/%d scrapers answered in %.2fs%s",
            result.query.describe(),
            len(result.releases),
            answered,
            len(result.outcomes),
            result.elapsed_s,
            f"; retry later: {', '.join(retry)}" if retry else "",
            extra={
                "action": "scrape_fanout",
                "releases": len(result.releases),
                "retry": list(retry),
                "elapsed_s": round(result.elapsed_s, 3),
            },
        )


def _short(text: str | None) -> str | None:
    if text is None:
        return None
    one_line = " ".join(text.split())
    return one_line[:MAX_REASON_CHARS]


class ClientSource(Protocol):
    """Where HTTP clients come from, by upstream name (``UpstreamClients``, or a dict)."""

    def get(self, name: str, /) -> HttpClient | None: ...


def build_scrapers(
    clients: ClientSource,
    *,
    torznab_indexers: Sequence[str] = (),
    torznab_feed_path: str = JACKETT_FEED,
    torznab_movie_categories: Sequence[int] = (2000,),
    torznab_tv_categories: Sequence[int] = (5000,),
    torznab_search_limit: int = SEARCH_LIMIT,
    torznab_max_link_fetches: int = MAX_LINK_FETCHES,
    torznab_link_origins: Collection[str] = (),
    torznab_torrent_max_bytes: int = MAX_TORRENT_BYTES,
    stremio_notice_pause_s: float = RATE_LIMIT_NOTICE_PAUSE_S,
) -> list[Scraper]:
    """One scraper per enabled scraping upstream, in the order the fan-out merges them."""
    scrapers: list[Scraper] = []
    for name in STREMIO_UPSTREAMS:
        client = clients.get(name)
        if client is not None:
            scrapers.append(StremioScraper(client, rate_limit_pause_s=stremio_notice_pause_s))
    torznab = clients.get("torznab")
    if torznab is not None:
        scrapers.append(
            TorznabScraper(
                torznab,
                indexers=torznab_indexers,
                feed_path=torznab_feed_path,
                movie_categories=torznab_movie_categories,
                tv_categories=torznab_tv_categories,
                limit=torznab_search_limit,
                max_link_fetches=torznab_max_link_fetches,
                link_origins=torznab_link_origins,
                torrent_max_bytes=torznab_torrent_max_bytes,
            )
        )
    zilean = clients.get("zilean")
    if zilean is not None:
        scrapers.append(ZileanScraper(zilean))
    return scrapers

"""The fan-out: every scraper at once, own timeouts, merge, health, budget, deferral."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from hypothesis import given, strategies as st

from riven_async.core.clock import ManualClock
from riven_async.errors import UpstreamError
from riven_async.services.scrapers import (
    ParseError,
    ScrapedRelease,
    ScrapeQuery,
    ScrapeResult,
    infohash_from_magnet,
    merge_releases,
    normalize_infohash,
)
from riven_async.services.scrapers.fanout import (
    FanoutResult,
    OutcomeStatus,
    ScrapeFanout,
    ScraperHealth,
    ScraperOutcome,
    build_scrapers,
)
from riven_async.services.scrapers.stremio import StremioScraper
from riven_async.services.scrapers.torznab import TorznabScraper
from riven_async.services.scrapers.zilean import ZileanScraper
from riven_async.sim.limits import Window
from tests.services.scraper_fixtures import EpisodePick, SimEnv, pick_episode, sim_env

QUERY = ScrapeQuery.for_episode(1, 1, imdb_id="tt0903747", title="Breaking Bad")
H1, H2, H3 = "1" * 40, "2" * 40, "3" * 40


@pytest.fixture
async def env() -> AsyncIterator[SimEnv]:
    async with sim_env() as running:
        yield running


def _query(pick: EpisodePick) -> ScrapeQuery:
    return ScrapeQuery.for_episode(
        pick.season, pick.episode, imdb_id=pick.show.imdb_id, title=pick.show.title
    )


def _release(infohash: str, source: str, **fields: object) -> ScrapedRelease:
    return ScrapedRelease(infohash, f"Title {infohash[:4]}", source, **fields)  # type: ignore[arg-type]


@dataclass
class FakeScraper:
    """A scraper whose answer, delay, error and availability the test sets."""

    name: str
    releases: tuple[ScrapedRelease, ...] = ()
    delay_s: float = 0.0
    error: Exception | None = None
    soft_failure: str | None = None
    blocked: float = 0.0
    full: bool = False
    supported: bool = True
    calls: int = 0
    cancelled: int = 0

    def supports(self, query: ScrapeQuery) -> bool:
        return self.supported

    def blocked_for(self) -> float:
        return self.blocked

    def saturated(self) -> bool:
        return self.full

    async def scrape(self, query: ScrapeQuery) -> ScrapeResult:
        self.calls += 1
        try:
            await asyncio.sleep(self.delay_s)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if self.error is not None:
            raise self.error
        return ScrapeResult(self.releases, self.soft_failure)


def _statuses(result: FanoutResult) -> dict[str, OutcomeStatus]:
    return {o.scraper: o.status for o in result.outcomes}


# -- against the sims ---------------------------------------------------------------------


async def test_all_scrapers_in_parallel_merged_and_deduplicated(env: SimEnv) -> None:
    pick = pick_episode(env.cluster)
    fanout = ScrapeFanout(build_scrapers(env.upstream_clients()))
    assert fanout.names == ("torrentio", "comet", "mediafusion", "torznab", "zilean")
    result = await fanout.scrape(_query(pick))
    assert result.complete
    assert set(_statuses(result).values()) == {OutcomeStatus.OK}
    expected = {r.infohash for r in pick.releases}
    assert [r.infohash for r in result.releases].count(result.releases[0].infohash) == 1
    assert {r.infohash for r in result.releases} == expected
    assert all(o.found == len(expected) for o in result.outcomes)
    seeders = {r.infohash: r.seeders for r in pick.releases}
    for release in result.releases:
        assert release.sources == fanout.names  # every scraper found every release
        assert release.source == "torrentio"
        assert release.seeders == seeders[release.infohash]
        assert release.size_bytes is not None or release.file_size_bytes is not None


async def test_one_hanging_scraper_costs_only_its_own_timeout(env: SimEnv) -> None:
    pick = pick_episode(env.cluster)
    env.cluster.torrentio.faults.set(timeout_rate=1.0, hang_s=20.0)
    fanout = ScrapeFanout(
        build_scrapers(env.upstream_clients()), timeout_s=10.0, timeouts_s={"torrentio": 1.0}
    )
    began = time.perf_counter()
    result = await fanout.scrape(_query(pick))
    elapsed = time.perf_counter() - began
    # Its own timeout, not the client's 5 s nor the 20 s hang (slack for a loaded machine).
    assert 1.0 <= elapsed < 3.0
    statuses = _statuses(result)
    assert statuses.pop("torrentio") is OutcomeStatus.TIMED_OUT
    assert set(statuses.values()) == {OutcomeStatus.OK}
    assert {r.infohash for r in result.releases} == {r.infohash for r in pick.releases}
    assert all("torrentio" not in r.sources for r in result.releases)
    assert result.retry == ("torrentio",)
    torrentio = fanout.health.stats()["torrentio"]
    assert torrentio.success_ewma == 0.0
    assert torrentio.latency_ewma_s is not None
    assert torrentio.latency_ewma_s >= 1.0


async def test_a_paused_scraper_is_deferred_not_waited_on(env: SimEnv) -> None:
    pick = pick_episode(env.cluster)
    clients = env.upstream_clients()
    clients["comet"].limiter.pause(0.4)
    fanout = ScrapeFanout(build_scrapers(clients))
    result = await fanout.scrape(_query(pick))
    comet = result.outcome("comet")
    assert comet is not None
    assert comet.status is OutcomeStatus.DEFERRED
    assert comet.retry_after_s is not None
    assert 0.2 < comet.retry_after_s <= 0.4
    assert env.cluster.comet.requests == []
    assert result.retry == ("comet",)
    assert result.retry_after_s() == comet.retry_after_s
    # Once the pause is over, only the deferred scraper is asked again.
    await asyncio.sleep(comet.retry_after_s)
    env.cluster.reset()
    again = await fanout.scrape(_query(pick), only=result.retry)
    assert [o.scraper for o in again.outcomes] == ["comet"]
    assert again.complete
    assert env.cluster.torrentio.requests == []


async def test_a_429_mid_scrape_defers_that_scraper_with_its_retry_after(env: SimEnv) -> None:
    pick = pick_episode(env.cluster)
    env.cluster.zilean.limiter.set_windows([Window(1, 60.0)])
    env.allow_violations("zilean")
    clients = env.upstream_clients(zilean={"rate_limits": []})  # misconfigured: no windows
    fanout = ScrapeFanout(build_scrapers(clients))
    first = await fanout.scrape(_query(pick))
    assert first.complete
    second = await fanout.scrape(_query(pick))
    zilean = second.outcome("zilean")
    assert zilean is not None
    assert zilean.status is OutcomeStatus.DEFERRED
    assert zilean.retry_after_s is not None
    assert zilean.retry_after_s > 50.0
    assert "rate limited" in (zilean.reason or "")
    third = await fanout.scrape(_query(pick))  # paused now: not even asked
    zilean = third.outcome("zilean")
    assert zilean is not None
    assert zilean.status is OutcomeStatus.DEFERRED
    assert zilean.elapsed_s == 0.0
    assert len(env.cluster.zilean.log.matching(status=429)) == 1


async def test_full_rate_windows_defer_after_the_timeout_without_a_violation(
    env: SimEnv,
) -> None:
    pick = pick_episode(env.cluster)
    env.cluster.zilean.limiter.set_windows([Window(2, 60.0)])
    clients = env.upstream_clients(zilean={"rate_limits": ["2/60s"]})
    zilean = next(s for s in build_scrapers(clients) if s.name == "zilean")
    fanout = ScrapeFanout([zilean], timeout_s=0.5)
    for _ in range(2):
        assert (await fanout.scrape(_query(pick))).complete
    assert zilean.saturated()
    third = await fanout.scrape(_query(pick))
    outcome = third.outcome("zilean")
    assert outcome is not None
    assert outcome.status is OutcomeStatus.DEFERRED
    assert "rate-limit slot" in (outcome.reason or "")
    assert len(env.cluster.zilean.requests) == 2  # the third never left the limiter
    assert fanout.health.stats()["zilean"].success_ewma == 1.0


async def test_an_open_breaker_defers_without_a_request(env: SimEnv) -> None:
    pick = pick_episode(env.cluster)
    env.cluster.zilean.faults.set(error_rate=1.0)
    clients = env.upstream_clients(zilean={"breaker_failures": 1, "max_retries": 0})
    fanout = ScrapeFanout(build_scrapers(clients))
    failed = await fanout.scrape(_query(pick))
    outcome = failed.outcome("zilean")
    assert outcome is not None
    assert outcome.status is OutcomeStatus.FAILED
    assert "HTTP 500" in (outcome.reason or "")
    seen = len(env.cluster.zilean.requests)
    deferred = await fanout.scrape(_query(pick))
    outcome = deferred.outcome("zilean")
    assert outcome is not None
    assert outcome.status is OutcomeStatus.DEFERRED
    assert outcome.retry_after_s is not None
    assert outcome.retry_after_s > 20.0
    assert len(env.cluster.zilean.requests) == seen


async def test_a_notice_is_a_soft_failure_to_retry(env: SimEnv) -> None:
    pick = pick_episode(env.cluster)
    clients = env.upstream_clients(comet={"base_url": env.cluster.comet.base_url})
    result = await ScrapeFanout(build_scrapers(clients)).scrape(_query(pick))
    comet = result.outcome("comet")
    assert comet is not None
    assert comet.status is OutcomeStatus.SOFT_FAILURE
    assert "OBSOLETE CONFIGURATION" in (comet.reason or "")
    assert result.retry == ("comet",)
    assert result.releases


async def test_no_key_in_any_outcome(env: SimEnv) -> None:
    pick = pick_episode(env.cluster)
    rd_key = env.cluster.realdebrid.api_key
    for handle in env.cluster.handles():
        handle.faults.set(error_rate=1.0)
    clients = env.upstream_clients(
        torrentio={"base_url": f"{env.cluster.torrentio.base_url}/realdebrid={rd_key}"},
        torznab={"api_key": "not-the-right-key-123"},
    )
    result = await ScrapeFanout(build_scrapers(clients)).scrape(_query(pick))
    assert {o.status for o in result.outcomes} == {OutcomeStatus.FAILED}
    text = repr(result)
    for key in [*env.api_keys(), rd_key, "not-the-right-key-123"]:
        assert key not in text


async def test_start_fetches_torznab_caps_and_never_raises(env: SimEnv) -> None:
    scrapers = build_scrapers(env.upstream_clients(), torznab_indexers=["1337x", "eztv"])
    torznab = next(s for s in scrapers if isinstance(s, TorznabScraper))
    assert torznab.indexers == ("1337x", "eztv")
    await ScrapeFanout(scrapers).start()
    assert set(torznab.caps()) == {"1337x", "eztv"}
    env.cluster.torznab.faults.set(error_rate=1.0)
    await torznab.refresh_caps()  # fails, logged
    assert torznab.caps() == {}


async def test_build_scrapers_takes_only_enabled_upstreams(env: SimEnv) -> None:
    clients = env.upstream_clients(
        comet={"enabled": False}, mediafusion={"enabled": False}, zilean={"enabled": False}
    )
    scrapers = build_scrapers(clients)
    assert [type(s) for s in scrapers] == [StremioScraper, TorznabScraper]
    assert build_scrapers({}) == []
    assert isinstance(build_scrapers({"zilean": clients["torrentio"]})[0], ZileanScraper)


# -- fakes: ordering, budget, health, merge ------------------------------------------------


async def test_dedup_keeps_the_richest_record() -> None:
    lean = FakeScraper("lean", (_release(H1, "lean", seeders=3),))
    rich = FakeScraper(
        "rich",
        (
            _release(
                H1,
                "rich",
                seeders=40,
                size_bytes=9,
                file_name="f.mkv",
                file_idx=2,
                file_size_bytes=5,
                provider="TPB",
                cached_hint=True,
            ),
            _release(H2, "rich"),
        ),
    )
    other = FakeScraper("other", (_release(H1, "other", seeders=7, size_bytes=8),))
    result = await ScrapeFanout([lean, rich, other]).scrape(QUERY)
    first, second = result.releases
    assert first == ScrapedRelease(
        H1,
        f"Title {H1[:4]}",
        "lean",
        file_name="f.mkv",
        file_idx=2,
        size_bytes=9,
        file_size_bytes=5,
        seeders=40,
        provider="TPB",
        cached_hint=True,
        sources=("lean", "rich", "other"),
    )
    assert second.infohash == H2
    assert second.sources == ("rich",)


def test_merge_releases_is_order_stable_and_idempotent() -> None:
    releases = [_release(H2, "a"), _release(H1, "a"), _release(H2, "b", seeders=1)]
    merged = merge_releases(releases)
    assert [r.infohash for r in merged] == [H2, H1]
    assert merge_releases(merged) == merged


async def test_whole_scrape_ends_at_the_longest_timeout_and_cancels_the_slow() -> None:
    slow = FakeScraper("slow", delay_s=30.0)
    fast = FakeScraper("fast", (_release(H1, "fast"),), delay_s=0.01)
    fanout = ScrapeFanout([slow, fast], timeout_s=5.0, timeouts_s={"slow": 0.2})
    began = time.perf_counter()
    result = await fanout.scrape(QUERY)
    assert time.perf_counter() - began < 2.0
    assert _statuses(result) == {"slow": OutcomeStatus.TIMED_OUT, "fast": OutcomeStatus.OK}
    assert slow.cancelled == 1
    assert [r.infohash for r in result.releases] == [H1]


async def test_failures_and_crashes_do_not_sink_the_others() -> None:
    broken = FakeScraper("broken", error=UpstreamError("broken", 502, "http://x/", "bad gateway"))
    buggy = FakeScraper("buggy", error=KeyError("oops"))
    good = FakeScraper("good", (_release(H3, "good"),))
    result = await ScrapeFanout([broken, buggy, good]).scrape(QUERY)
    assert _statuses(result) == {
        "broken": OutcomeStatus.FAILED,
        "buggy": OutcomeStatus.FAILED,
        "good": OutcomeStatus.OK,
    }
    assert result.outcome("buggy").reason == "crashed: KeyError"  # type: ignore[union-attr]
    assert [r.infohash for r in result.releases] == [H3]


async def test_unsupported_queries_are_skipped_and_not_retried() -> None:
    blind = FakeScraper("blind", supported=False)
    result = await ScrapeFanout([blind]).scrape(QUERY)
    assert _statuses(result) == {"blind": OutcomeStatus.UNSUPPORTED}
    assert blind.calls == 0
    assert result.complete


async def test_budget_asks_the_fastest_most_reliable_first() -> None:
    slow = FakeScraper("slow", delay_s=0.15)
    flaky = FakeScraper("flaky", error=UpstreamError("flaky", 500, "http://x/"))
    fast = FakeScraper("fast", (_release(H1, "fast"),))
    blocked = FakeScraper("blocked", blocked=10.0)
    fanout = ScrapeFanout([slow, flaky, blocked, fast])
    await fanout.scrape(QUERY)  # learn: everyone asked once (no budget)
    result = await fanout.scrape(QUERY, budget=1)
    assert _statuses(result) == {
        "slow": OutcomeStatus.OVER_BUDGET,
        "flaky": OutcomeStatus.OVER_BUDGET,
        "blocked": OutcomeStatus.DEFERRED,
        "fast": OutcomeStatus.OK,
    }
    assert (slow.calls, flaky.calls, fast.calls, blocked.calls) == (1, 1, 2, 0)
    assert fanout.health.order(["slow", "flaky", "fast"]) == ["fast", "slow", "flaky"]
    two = await ScrapeFanout([slow, flaky, fast], budget=2, health=fanout.health).scrape(QUERY)
    assert set(two.retry) == {"flaky"}  # over budget again, and it failed before anyway
    assert _statuses(two)["slow"] is OutcomeStatus.OK


async def test_unknown_scrapers_get_asked_under_a_budget() -> None:
    health = ScraperHealth()
    health.record(ScraperOutcome("known_bad", OutcomeStatus.FAILED, elapsed_s=0.1))
    new = FakeScraper("new")
    known_bad = FakeScraper("known_bad")
    result = await ScrapeFanout([known_bad, new], budget=1, health=health).scrape(QUERY)
    assert _statuses(result) == {"known_bad": OutcomeStatus.OVER_BUDGET, "new": OutcomeStatus.OK}


def test_health_ewma() -> None:
    clock = ManualClock()
    health = ScraperHealth(alpha=0.5, clock=clock)
    health.record(ScraperOutcome("s", OutcomeStatus.OK, elapsed_s=1.0))
    health.record(ScraperOutcome("s", OutcomeStatus.OK, elapsed_s=3.0))
    health.record(ScraperOutcome("s", OutcomeStatus.FAILED, elapsed_s=2.0, reason="HTTP 500"))
    # Limits and choices of ours only count: they say nothing about the upstream.
    health.record(ScraperOutcome("s", OutcomeStatus.DEFERRED, elapsed_s=4.0, retry_after_s=5))
    health.record(ScraperOutcome("s", OutcomeStatus.OVER_BUDGET))
    stats = health.stats()["s"]
    assert stats.latency_ewma_s == pytest.approx(2.0)  # 1 → 2 → 2
    assert stats.success_ewma == pytest.approx(0.5)  # 1 → 1 → 0.5
    assert stats.samples == 3
    assert stats.outcomes == {"ok": 2, "failed": 1, "deferred": 1, "over_budget": 1}
    assert stats.last_failure == "failed: HTTP 500"
    assert stats.score == pytest.approx(0.5 / 2.25)
    metrics = health.to_dict()["s"]
    assert metrics["outcomes"]["ok"] == 2
    assert metrics["success_ewma"] == pytest.approx(0.5)


def test_health_drifts_back_to_the_prior_so_a_benched_scraper_is_retried() -> None:
    clock = ManualClock()
    health = ScraperHealth(recovery_s=100.0, prior_latency_s=1.0, clock=clock)
    health.record(ScraperOutcome("bad", OutcomeStatus.TIMED_OUT, elapsed_s=9.0))
    health.record(ScraperOutcome("good", OutcomeStatus.OK, elapsed_s=0.5))
    assert health.order(["bad", "good"]) == ["good", "bad"]
    assert health.score("bad") == 0.0
    clock.advance(100.0)  # half way back to the prior (success 1, latency 1 s)
    assert health.score("bad") == pytest.approx(0.5 / (5.0 + 0.25))
    clock.advance(10_000.0)
    assert health.score("bad") == pytest.approx(1 / 1.25, rel=1e-3)


async def test_a_timeout_spent_queued_for_our_own_rate_window_is_a_deferral() -> None:
    queued = FakeScraper("queued", delay_s=30.0, full=True)
    fanout = ScrapeFanout([queued], timeout_s=0.1)
    result = await fanout.scrape(QUERY)
    outcome = result.outcome("queued")
    assert outcome is not None
    assert outcome.status is OutcomeStatus.DEFERRED
    assert "rate-limit slot" in (outcome.reason or "")
    assert outcome.retry_after_s is None
    assert fanout.health.stats()["queued"].samples == 0  # not held against the upstream


async def test_cancelling_the_fanout_cancels_every_scraper() -> None:
    a, b = FakeScraper("a", delay_s=30.0), FakeScraper("b", delay_s=30.0)
    task = asyncio.create_task(ScrapeFanout([a, b], timeout_s=60.0).scrape(QUERY))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (a.cancelled, b.cancelled) == (1, 1)


def test_constructor_checks() -> None:
    a = FakeScraper("a")
    with pytest.raises(ValueError, match="unique"):
        ScrapeFanout([a, FakeScraper("a")])
    with pytest.raises(ValueError, match="unknown"):
        ScrapeFanout([a], timeouts_s={"b": 1.0})
    with pytest.raises(ValueError, match="> 0"):
        ScrapeFanout([a], timeout_s=0)
    with pytest.raises(ValueError, match="budget"):
        ScrapeFanout([a], budget=0)


# -- the records every scraper shares -----------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"kind": "show"}, "kind"),
        ({"kind": "movie", "imdb_id": "0903747"}, "imdb_id"),
        ({"kind": "movie", "season": 1}, "no season"),
        ({"kind": "episode", "season": 1}, "episode >= 1"),
        ({"kind": "episode", "episode": 1}, "season >= 0"),
        ({"kind": "season", "season": 1, "episode": 2}, "no episode"),
    ],
)
def test_scrape_query_refuses_incoherent_queries(kwargs: dict[str, object], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        ScrapeQuery(**kwargs)  # type: ignore[arg-type]


def test_scrape_query_describes_itself_for_logs() -> None:
    assert QUERY.describe() == "tt0903747 S01E01"
    assert ScrapeQuery.for_season(2, tmdb_id=1396).describe() == "tmdb:1396 S02"
    assert ScrapeQuery.for_movie(title="Heat", year=1995).describe() == "'Heat' (1995)"


def test_scraped_release_checks_its_infohash_and_sources() -> None:
    with pytest.raises(ValueError, match="40 hex"):
        ScrapedRelease("abc", "t", "s")
    with pytest.raises(ValueError, match="lower case"):
        ScrapedRelease("A" * 40, "t", "s")
    with pytest.raises(ValueError, match="start with source"):
        ScrapedRelease(H1, "t", "s", sources=("other",))
    assert ScrapedRelease(H1, "t", "s").sources == ("s",)


def test_infohash_forms() -> None:
    hex_hash = "8c3a9f0e1d2b4c5d6e7f8091a2b3c4d5e6f70812"
    base32 = base64.b32encode(bytes.fromhex(hex_hash)).decode()
    assert normalize_infohash(hex_hash.upper()) == hex_hash
    assert normalize_infohash(base32.lower()) == hex_hash
    with pytest.raises(ParseError):
        normalize_infohash("xyz")
    assert infohash_from_magnet(f"magnet:?dn=a&xt=urn:btih:{base32}") == hex_hash
    assert infohash_from_magnet("magnet:?xt=urn:btmh:1220abcd") is None
    assert infohash_from_magnet("http://example/") is None


@given(st.text(max_size=200))
def test_infohash_helpers_raise_only_parse_error(text: str) -> None:
    with contextlib.suppress(ParseError):
        normalize_infohash(text)
    infohash_from_magnet(text)
    infohash_from_magnet("magnet:?xt=" + text)

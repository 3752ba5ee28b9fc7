"""The pipeline, detection and upstreams sections of ``/metrics``, in JSON and Prometheus."""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from riven_async import keys
from riven_async.app import build_app
from riven_async.config import Settings
from riven_async.core.clock import ManualClock
from riven_async.db.stats import StatsRepo
from riven_async.domain.media import MediaKind
from riven_async.domain.queue import JobKind, NewJob
from riven_async.domain.states import ACTIVE_STATES, State
from riven_async.pipeline import stages
from riven_async.sim.fragment import config_values
from riven_async.sim.server import SimSettings, run_sims
from riven_async.sim.shows import TV_BASE_TMDB
from riven_async.web.metrics import (
    MetricsRegistry,
    Section,
    render_json,
    render_prometheus,
)
from riven_async.web.pipeline_metrics import CachedSection, register_pipeline_metrics
from tests.conftest import TEST_API_KEY
from tests.db.factories import Repos, movie, request, show_tree

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
KEY = {"X-Api-Key": TEST_API_KEY}

# -- a strict reader of the Prometheus text format (0.0.4) ---------------------------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')
_TYPE = re.compile(rf"^# TYPE ({_NAME}) (counter|gauge|histogram|summary|untyped)$")
Series = tuple[str, frozenset[tuple[str, str]]]


def parse_prometheus(text: str) -> dict[Series, float]:
    """Every sample by (name, labels); fails on any line the format does not allow, a
    sample without its TYPE line before it, or a series given twice."""
    assert text.endswith("\n")
    typed: set[str] = set()
    samples: dict[Series, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            match = _TYPE.match(line)
            if match:
                assert match.group(1) not in typed, f"TYPE twice: {line}"
                typed.add(match.group(1))
            else:
                assert line.startswith("# HELP "), line
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, label_text, value = match.groups()
        assert name in typed, f"sample before its TYPE line: {line}"
        labels: list[tuple[str, str]] = []
        rest = label_text or ""
        while rest:
            label = _LABEL.match(rest)
            assert label, f"bad labels in {line!r}"
            labels.append((label.group(1), _unescape(label.group(2))))
            rest = rest[label.end():]
        assert len({k for k, _ in labels}) == len(labels), f"label repeated: {line}"
        number = float(value)  # ValueError on anything that is not a Prometheus float
        series = (name, frozenset(labels))
        assert series not in samples, f"series twice: {line}"
        samples[series] = number
    return samples


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def sample(samples: Mapping[Series, float], name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_the_reader_rejects_what_prometheus_rejects() -> None:
    assert parse_prometheus('# TYPE a gauge\na{x="1\\"2"} 3\n') == {
        ("a", frozenset({("x", '1"2')})): 3.0
    }
    for bad in ("a 1\n", "# TYPE a gauge\na{x=1} 1\n", "# TYPE a gauge\na 1\na 2\n",
                "# TYPE a gauge\na one\n", "# TYPE 1a gauge\n1a 1\n"):
        with pytest.raises((AssertionError, ValueError)):
            parse_prometheus(bad)


# -- fixtures ------------------------------------------------------------------------------


async def _full_counts(pool: asyncpg.Pool) -> dict[tuple[str, str], int]:
    rows = await pool.fetch("SELECT kind, state, count(*) AS n FROM items GROUP BY 1, 2")
    return {(r["kind"], r["state"]): r["n"] for r in rows}


async def _seed(pool: asyncpg.Pool) -> dict[str, Any]:
    """Two shows (one indexed with 6 episodes, one only requested), two movies, jobs, an
    item an hour in ``requested``; returns what the sections must then report."""
    repos = Repos(pool)
    await repos.trees.upsert_show_trees([show_tree(101, seasons=2, episodes=3)])
    await repos.trees.upsert_movies([movie(7)])
    outcomes = await repos.items.request_many([request("show", tmdb=202),
                                               request("movie", tmdb=303)])
    waiting = outcomes[1].item_id
    await pool.execute("UPDATE items SET state_changed_at = now() - interval '1 hour' "
                       "WHERE id = $1", waiting)
    later = datetime.now(UTC) + timedelta(hours=3)
    await repos.jobs.enqueue_many([
        NewJob(JobKind.INDEX, item_id=outcomes[0].item_id),
        NewJob(JobKind.INDEX, item_id=waiting),
        NewJob(JobKind.SCRAPE, item_id=waiting, run_at=later),
    ])
    due = await pool.fetchrow(
        "SELECT count(*) FILTER (WHERE next_check_at <= now()) AS now,"
        " count(*) FILTER (WHERE next_check_at <= now() + interval '1 hour') AS hour,"
        " count(*) FILTER (WHERE next_check_at <= now() + interval '1 day') AS day FROM items")
    assert due is not None
    return {"counts": await _full_counts(pool), "due": dict(due)}


@pytest.fixture
async def client(
    db_settings: Settings, aiohttp_client: AiohttpClient, monkeypatch: pytest.MonkeyPatch
) -> TestClient[Any, Any]:
    # The endpoint is under test, not the pipeline: with the stages running, the workers
    # would index the seeded items against an unreachable TMDB and open its breaker.
    monkeypatch.setattr(stages, "step_factories", dict)
    monkeypatch.setattr(stages, "loop_starters", list)
    return await aiohttp_client(build_app(db_settings))


# -- the sections --------------------------------------------------------------------------
# Exact figures are checked on a registry over the test's own pool: inside the app, the
# pipeline's loops may claim the seeded jobs or release the seeded episodes at any moment.


async def test_sections_report_the_database_in_both_formats(db_pool: asyncpg.Pool) -> None:
    expected = await _seed(db_pool)
    registry = MetricsRegistry()
    register_pipeline_metrics(registry, db_pool, StatsRepo(db_pool))
    collected = await registry.collect()
    data = orjson.loads(render_json(collected))
    samples = parse_prometheus(render_prometheus(collected))

    pipeline = data["pipeline"]
    for kind in MediaKind:
        for state in State:
            n = expected["counts"].get((kind, state), 0)
            assert pipeline["items"][kind][state] == n
            assert sample(samples, "riven_pipeline_items", kind=kind, state=state) == n
    assert pipeline["items_total"] == sum(expected["counts"].values())
    assert set(pipeline["oldest_age_s"]) == {s.value for s in ACTIVE_STATES}
    assert 3590 <= pipeline["oldest_age_s"]["requested"] <= 3700
    assert sample(samples, "riven_pipeline_oldest_age_s", state="requested") >= 3590
    assert pipeline["oldest_age_s"]["linked"] == 0
    assert pipeline["jobs"]["index"] == {"due": 2, "scheduled": 0, "running": 0, "failed": 0}
    assert sample(samples, "riven_pipeline_jobs_due", kind="index") == 2
    assert pipeline["jobs"]["scrape"]["scheduled"] == 1
    assert sample(samples, "riven_pipeline_jobs_scheduled", kind="scrape") == 1
    assert set(pipeline["jobs"]) == {k.value for k in JobKind}

    detection = data["detection"]
    assert detection["shows"] == {"ongoing": 1, "ended": 0, "hiatus": 0, "unknown": 0,
                                  "unindexed": 1}
    assert sample(samples, "riven_detection_shows", status="unindexed") == 1
    due = expected["due"]
    assert detection["checks_due"] == {
        "now": due["now"], "next_hour": due["hour"], "next_day": due["day"]
    }
    assert detection["checks_due"]["now"] >= 2  # the show and the movie, checked in 2025
    assert sample(samples, "riven_detection_checks_due_next_day") == due["day"]
    assert detection["new_episodes_24h"] == 6
    assert sample(samples, "riven_detection_new_episodes_24h") == 6


PIPELINE_SAMPLES = ("riven_pipeline_items", "riven_pipeline_items_total",
                    "riven_pipeline_oldest_age_s", "riven_pipeline_jobs_due",
                    "riven_pipeline_jobs_scheduled", "riven_pipeline_jobs_running",
                    "riven_pipeline_jobs_failed")
DETECTION_SAMPLES = ("riven_detection_shows", "riven_detection_checks_due_now",
                     "riven_detection_checks_due_next_hour", "riven_detection_checks_due_next_day",
                     "riven_detection_new_episodes_24h")
UPSTREAM_FIGURES = ("requests_1xx", "requests_2xx", "requests_3xx", "requests_4xx",
                    "requests_5xx", "requests_error", "rate_limited", "retries", "breaker_open",
                    "breaker_opened_total", "limiter_waiters", "limiter_usage",
                    "cache_hit_rate", "cache_hits", "cache_misses", "latency_samples")


async def test_the_endpoint_serves_every_section_as_json(client: TestClient[Any, Any]) -> None:
    await _seed(client.app[keys.POOL])
    await client.post("/webhook/show-update", headers=KEY, json={"tvdb_id": 999_999})
    await client.post("/webhook/sonarr", headers=KEY, data=b"{")
    response = await client.get("/metrics", headers=KEY)
    assert response.status == 200
    data = await response.json()
    assert {"process", "event_loop", "database", "routes", "pipeline", "detection",
            "upstreams", "webhooks", "inbox_writer"} <= set(data)
    assert {"rss_bytes", "cpu_user_s", "cpu_system_s", "open_fds", "uptime_s"} <= set(
        data["process"])
    assert data["process"]["rss_bytes"] > 0
    assert {"p50_ms", "p99_ms"} <= set(data["event_loop"])
    assert {"size", "idle", "in_use", "waiting"} <= set(data["database"])
    route = data["routes"]["POST /webhook/show-update"]
    assert route["count"] == 1
    assert {"errors", "p50_ms", "p95_ms", "p99_ms"} <= set(route)
    assert data["routes"]["POST /webhook/sonarr"]["client_errors"] == 1
    webhooks = data["webhooks"]
    assert webhooks["show_update"]["show-update"]["accepted"] == 1
    assert webhooks["sonarr"]["invalid"]["rejected"] == 1
    assert set(webhooks["sonarr"]["invalid"]) == {"received", "accepted", "ignored",
                                                  "rejected", "failed"}
    pipeline = data["pipeline"]
    assert "error" not in pipeline
    assert set(pipeline["items"]) == {k.value for k in MediaKind}
    assert all(set(by_state) == {s.value for s in State}
               for by_state in pipeline["items"].values())
    assert pipeline["items_total"] >= 11
    assert set(pipeline["oldest_age_s"]) == {s.value for s in ACTIVE_STATES}
    assert set(pipeline["jobs"]) == {k.value for k in JobKind}
    detection = data["detection"]
    assert set(detection) == {"shows", "checks_due", "new_episodes_24h"}
    assert detection["new_episodes_24h"] == 6

    tmdb = data["upstreams"]["by_upstream"]["tmdb"]
    assert set(tmdb["requests"]) == {"1xx", "2xx", "3xx", "4xx", "5xx", "error"}
    assert isinstance(tmdb["rate_limited"], int)
    assert isinstance(tmdb["retries"], int)
    assert tmdb["breaker"]["state"] == "closed"
    assert tmdb["breaker_open"] is False
    assert {"waiters", "usage", "windows"} <= set(tmdb["limiter"])
    assert tmdb["cache"]["hit_rate"] == 0.0
    assert {"p50_s", "p95_s", "p99_s", "samples"} <= set(tmdb["latency"])


@pytest.mark.parametrize("how", ["query", "accept"])
async def test_the_endpoint_serves_every_section_as_prometheus_text(
    client: TestClient[Any, Any], how: str
) -> None:
    await _seed(client.app[keys.POOL])
    await client.get("/health")  # so the routes section has a route
    await client.post("/webhook/show-update", headers=KEY, json={"tvdb_id": 999_999})
    if how == "query":
        response = await client.get("/metrics?format=prometheus", headers=KEY)
    else:
        response = await client.get("/metrics", headers={**KEY, "Accept": "text/plain"})
    assert response.status == 200
    assert response.content_type == "text/plain"
    samples = parse_prometheus(await response.text())
    names = {name for name, _ in samples}
    for name in (*PIPELINE_SAMPLES, *DETECTION_SAMPLES):
        assert name in names, name
    assert sample(samples, "riven_pipeline_items", kind="movie", state="linked") == 0
    assert sample(samples, "riven_detection_shows", status="ongoing") == 1
    for figure in UPSTREAM_FIGURES:
        value = sample(samples, f"riven_upstreams_by_upstream_{figure}", upstream="tmdb")
        assert math.isfinite(value), figure
    for section in ("process", "event_loop", "database", "routes", "pipeline", "detection",
                    "upstreams", "webhooks"):
        assert any(n.startswith(f"riven_{section}_") for n in names), section
    assert sample(samples, "riven_webhooks_accepted", sender="show_update",
                  event="show-update") == 1
    assert sample(samples, "riven_database_waiting") >= 0  # the pipeline loops may wait


async def test_upstream_latency_and_limiter_usage_after_real_calls(
    aiohttp_client: AiohttpClient, make_settings: Callable[..., Settings], db_dsn: str,
    tmp_path: Path,
) -> None:
    clock = ManualClock(datetime(2026, 1, 5, tzinfo=UTC))
    sims = SimSettings(shows=2, movies=1, mount_dir=tmp_path / "mount", infringing_ratio=0.0)
    async with run_sims(sims, clock) as cluster:
        upstreams = config_values(cluster)["upstreams"]
        chosen = {name: ({"enabled": False} if name != "tmdb" else values)
                  for name, values in upstreams.items()}
        settings = make_settings(database={"url": db_dsn}, upstreams=chosen)
        client = await aiohttp_client(build_app(settings))
        tmdb = client.app[keys.UPSTREAMS]["tmdb"]
        for _ in range(3):
            await tmdb.get(f"/tv/{TV_BASE_TMDB}")
        samples = parse_prometheus(
            await (await client.get("/metrics?format=prometheus", headers=KEY)).text())
        data = await (await client.get("/metrics", headers=KEY)).json()
    up = {"upstream": "tmdb"}
    assert sample(samples, "riven_upstreams_by_upstream_requests_2xx", **up) == 3
    assert sample(samples, "riven_upstreams_by_upstream_latency_p50_s", **up) > 0
    assert sample(samples, "riven_upstreams_by_upstream_latency_p99_s", **up) > 0
    assert sample(samples, "riven_upstreams_by_upstream_limiter_usage", **up) > 0
    assert set(data["upstreams"]["by_upstream"]) == {"tmdb"}
    assert data["upstreams"]["by_upstream"]["tmdb"]["latency"]["samples"] == 3


async def test_a_slow_request_is_logged_at_warning_with_route_and_time(
    aiohttp_client: AiohttpClient, make_settings: Callable[..., Settings], db_dsn: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(database={"url": db_dsn}, server={"slow_request_s": 1e-9})
    client = await aiohttp_client(build_app(settings))
    with caplog.at_level(logging.WARNING, logger="riven_async.web.middleware"):
        assert (await client.get("/metrics", headers=KEY)).status == 200
    slow = [r for r in caplog.records if getattr(r, "action", None) == "slow_request"]
    assert slow
    assert slow[0].levelno == logging.WARNING
    assert slow[0].__dict__["route"] == "GET /metrics"
    assert slow[0].__dict__["elapsed_s"] >= 0
    assert "GET /metrics" in slow[0].getMessage()


# -- caching -------------------------------------------------------------------------------


async def test_a_scrape_storm_refreshes_each_section_once(db_pool: asyncpg.Pool) -> None:
    registry = MetricsRegistry()
    stats = StatsRepo(db_pool)
    sections = register_pipeline_metrics(registry, db_pool, stats, ttl_s=60.0)
    results = await asyncio.gather(*(registry.collect() for _ in range(50)))
    assert all(r == results[0] for r in results)
    assert "error" not in results[0]["pipeline"]
    assert [s.refreshes for s in sections] == [1, 1]


class _Counting:
    def __init__(self, fail: bool = False, delay_s: float = 0.0) -> None:
        self.calls = 0
        self.fail = fail
        self.delay_s = delay_s

    async def __call__(self) -> Section:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("database gone")
        return {"n": self.calls}


async def test_cached_section_refreshes_after_its_ttl() -> None:
    now = [0.0]
    provider = _Counting()
    section = CachedSection(provider, ttl_s=1.5, monotonic=lambda: now[0])
    assert await section() == {"n": 1}
    now[0] = 1.4
    assert await section() == {"n": 1}
    now[0] = 1.6
    assert await section() == {"n": 2}
    assert provider.calls == 2


async def test_cached_section_does_not_cache_a_failure() -> None:
    provider = _Counting(fail=True)
    section = CachedSection(provider, ttl_s=60.0)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            await section()
    assert provider.calls == 2
    provider.fail = False
    assert await section() == {"n": 3}


async def test_a_caller_that_gives_up_does_not_cancel_the_shared_refresh() -> None:
    provider = _Counting(delay_s=0.05)
    section = CachedSection(provider, ttl_s=60.0)
    impatient = asyncio.create_task(section())
    patient = asyncio.create_task(section())
    await asyncio.sleep(0.01)
    impatient.cancel()
    assert await patient == {"n": 1}
    assert await section() == {"n": 1}
    assert provider.calls == 1

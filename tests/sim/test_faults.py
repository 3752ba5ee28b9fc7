"""Each fault kind, switched on from Python and over the control endpoint, and the request log."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from riven_async.core.clock import ManualClock
from riven_async.sim.faults import FaultPlan
from riven_async.sim.server import SimCluster, SimSettings, run_sims
from tests.sim.simtest import get, pick_release, post


def _tmdb(sims: SimCluster) -> tuple[str, dict[str, str]]:
    return f"{sims.tmdb.base_url}/tv/60000", {"api_key": sims.tmdb.api_key}


async def test_latency_delays_the_answer(sims: SimCluster, http: aiohttp.ClientSession) -> None:
    url, params = _tmdb(sims)
    sims.tmdb.faults.set(latency_s=0.25)
    started = time.perf_counter()
    reply = await get(http, url, params=params)
    assert reply.status == 200
    assert time.perf_counter() - started >= 0.25
    assert sims.tmdb.faults.injected["latency"] == 1


async def test_error_rate_answers_with_the_upstreams_own_5xx_body(
    sims: SimCluster, http: aiohttp.ClientSession
) -> None:
    url, params = _tmdb(sims)
    sims.tmdb.faults.set(error_rate=1.0, error_status=503)
    reply = await get(http, url, params=params)
    assert reply.status == 503
    assert reply.body["status_code"] == 9
    sims.realdebrid.faults.set(error_rate=1.0, error_status=503)
    rd = await get(http, f"{sims.realdebrid.base_url}/user")
    assert (rd.status, rd.body) == (503, {"error": "service_unavailable", "error_code": 25})
    assert sims.tmdb.log.matching(status=503)[0].fault == "error"


async def test_timeout_hangs_until_the_client_gives_up(
    sims: SimCluster, http: aiohttp.ClientSession
) -> None:
    url, params = _tmdb(sims)
    sims.tmdb.faults.set(timeout_rate=1.0, hang_s=30)
    with pytest.raises(TimeoutError):
        await get(http, url, params=params, timeout=aiohttp.ClientTimeout(total=0.3))
    for _ in range(50):
        if sims.tmdb.log.total:
            break
        await asyncio.sleep(0.02)
    hung = sims.tmdb.requests[-1]
    assert (hung.status, hung.fault) == (None, "timeout")
    sims.tmdb.faults.clear()
    assert (await get(http, url, params=params)).status == 200


async def test_malformed_bodies_are_cut_short(
    sims: SimCluster, http: aiohttp.ClientSession
) -> None:
    url, params = _tmdb(sims)
    sims.tmdb.faults.set(malformed_rate=1.0)
    async with http.get(url, params=params) as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        text = await response.text()
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


async def test_reset_drops_the_connection(sims: SimCluster, http: aiohttp.ClientSession) -> None:
    url, params = _tmdb(sims)
    sims.tmdb.faults.set(reset_rate=1.0)
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(http, url, params=params)
    assert sims.tmdb.requests[-1].fault == "reset"
    assert sims.tmdb.requests[-1].status is None


async def test_outage_window_answers_503_on_the_sims_clock(
    sims: SimCluster, clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    url, params = _tmdb(sims)
    sims.tmdb.faults.outage(120)
    down = await get(http, url, params=params)
    assert down.status == 503
    assert down.headers["Retry-After"] == "120"
    assert down.body["status_code"] == 9
    clock.advance(119)
    assert (await get(http, url, params=params)).headers["Retry-After"] == "1"
    clock.advance(1)
    assert (await get(http, url, params=params)).status == 200


async def test_budget_and_paths_aim_faults_precisely(
    sims: SimCluster, http: aiohttp.ClientSession
) -> None:
    rd = sims.realdebrid
    auth = {"Authorization": f"Bearer {rd.api_key}"}
    rd.faults.set(error_rate=1.0, paths=(f"{rd.sim.prefix}/torrents/addMagnet",), budget=2)
    assert (await get(http, f"{rd.base_url}/user", headers=auth)).status == 200
    magnet = {"magnet": pick_release(sims, "realdebrid", cached=True).magnet}
    statuses = [
        (await post(http, f"{rd.base_url}/torrents/addMagnet", data=magnet, headers=auth)).status
        for _ in range(3)
    ]
    assert statuses == [500, 500, 201]
    assert rd.faults.plan == FaultPlan()


async def test_faults_are_set_read_and_cleared_over_the_control_endpoint(
    sims: SimCluster, clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    control = f"{sims.tvmaze.url}/_sim/faults"
    show_url = f"{sims.tvmaze.base_url}/shows/1"
    plan = await post(http, control, json={"error_rate": 1, "error_status": 502})
    assert plan.body["error_rate"] == 1.0
    assert plan.body["error_status"] == 502
    assert (await get(http, show_url)).status == 502
    assert (await get(http, control)).body["error_rate"] == 1.0
    cleared = await http.delete(control)
    assert (await cleared.json())["error_rate"] == 0.0
    assert (await get(http, show_url)).status == 200
    outage = await post(http, control, json={"outage_s": 30})
    assert len(outage.body["outages"]) == 1
    assert (await get(http, show_url)).status == 503
    clock.advance(30)
    assert (await get(http, show_url)).status == 200
    wrong = await post(http, control, json={"error_rate": 2})
    assert wrong.status == 400
    assert "between 0 and 1" in wrong.body["error"]
    unknown = await post(http, control, json={"bogus": 1})
    assert unknown.status == 400


async def test_every_request_is_recorded_and_summed_in_stats(
    sims: SimCluster, http: aiohttp.ClientSession
) -> None:
    url, params = _tmdb(sims)
    await get(http, url, params=params)
    await get(http, url, params={"api_key": "wrong"})
    sims.tmdb.faults.set(error_rate=1.0)
    await get(http, url, params=params)
    log = (await get(http, f"{sims.tmdb.url}/_sim/requests")).body
    assert log["total"] == 3
    assert [(r["method"], r["path"], r["status"], r["fault"]) for r in log["requests"]] == [
        ("GET", "/3/tv/60000", 200, None),
        ("GET", "/3/tv/60000", 401, None),
        ("GET", "/3/tv/60000", 500, "error"),
    ]
    assert log["requests"][0]["at"] == sims.clock.now().isoformat()
    later = (await get(http, f"{sims.tmdb.url}/_sim/requests", params={"since": "2"})).body
    assert [r["seq"] for r in later["requests"]] == [3]
    stats = (await get(http, f"{sims.tmdb.url}/_sim/stats")).body
    assert stats["by_status"] == {"200": 1, "401": 1, "500": 1}
    assert stats["faults_injected"] == {"error": 1}
    cleared = await http.delete(f"{sims.tmdb.url}/_sim/requests")
    assert (await cleared.json())["total"] == 0


async def test_fault_dice_are_reproducible_from_the_seed(
    clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    outcomes = []
    for _ in range(2):
        async with run_sims(SimSettings(shows=3, movies=3), clock) as sims:
            sims.tvmaze.faults.set(error_rate=0.5)
            statuses = [
                (await get(http, f"{sims.tvmaze.base_url}/shows/1")).status for _ in range(12)
            ]
            outcomes.append(statuses)
    assert outcomes[0] == outcomes[1]
    assert {200, 500} == set(outcomes[0])

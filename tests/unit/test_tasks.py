from __future__ import annotations

import asyncio

from riven_async.core.tasks import BackgroundTasks
from riven_async.keys import Shutdown


async def test_a_loop_that_dies_requests_a_failing_shutdown() -> None:
    shutdown = Shutdown()
    tasks = BackgroundTasks(lambda name, exc: shutdown.request(1, f"{name}: {exc!r}"))

    async def broken() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("boom")

    tasks.start("broken-loop", broken)
    await asyncio.wait_for(shutdown.event.wait(), 1)
    assert shutdown.exit_code == 1
    assert "broken-loop" in shutdown.reason
    await tasks.stop(1)


async def test_a_loop_that_returns_is_also_a_failure() -> None:
    failures: list[str] = []
    tasks = BackgroundTasks(lambda name, exc: failures.append(name))

    async def quits() -> None:
        return None

    tasks.start("quitter", quits)
    await asyncio.sleep(0.01)
    assert failures == ["quitter"]


async def test_stop_cancels_loops_without_reporting_failures() -> None:
    failures: list[str] = []
    tasks = BackgroundTasks(lambda name, exc: failures.append(name))
    tasks.start("forever", lambda: asyncio.sleep(3600))
    assert tasks.names == ["forever"]
    await tasks.stop(1)
    assert failures == []
    assert tasks.names == []


def test_a_failure_after_a_stop_signal_still_exits_non_zero() -> None:
    shutdown = Shutdown()
    shutdown.request(0, "SIGTERM")
    shutdown.request(1, "loop died")
    assert shutdown.exit_code == 1

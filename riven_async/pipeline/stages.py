"""Which step runs each job kind, and which background loops the pipeline runs.

The one list the composition root reads: adding a stage or a loop is one line here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

from riven_async.core.tasks import BackgroundTasks
from riven_async.domain.queue import JobKind
from riven_async.pipeline import detection, intake, link_verify, maintenance
from riven_async.pipeline.runtime import Runtime
from riven_async.pipeline.steps import download, index, link, scan, scrape
from riven_async.pipeline.steps.base import StepFactory

# A loop starter builds what it needs, starts its task(s) on ``tasks`` (watched by the
# task monitor: a crash stops the daemon with exit 1) and closes what it opened through
# ``stack``. Loops must survive database outages by themselves (catch CONNECTION_ERRORS,
# back off, go on).
LoopStarter = Callable[[Runtime, BackgroundTasks, AsyncExitStack], Awaitable[None]]


def step_factories() -> dict[JobKind, StepFactory]:
    """The step of each job kind that has one."""
    factories: dict[JobKind, StepFactory] = {}
    factories[JobKind.INDEX] = index.build
    factories[JobKind.SCRAPE] = scrape.build
    factories[JobKind.DOWNLOAD] = download.build
    factories[JobKind.LINK] = link.build
    factories[JobKind.SCAN] = scan.build
    return factories


def loop_starters() -> list[tuple[str, LoopStarter]]:
    """The pipeline's background loops, by name, in start order."""
    starters: list[tuple[str, LoopStarter]] = [
        ("inbox-intake", intake.start_intake),
        ("library-verify", link_verify.start),
        ("detection", detection.start),
        ("maintenance", maintenance.start),
    ]
    return starters

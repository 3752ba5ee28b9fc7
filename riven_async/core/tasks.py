"""Named background loops under a monitor: a loop that dies stops the daemon (non-zero)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

log = logging.getLogger(__name__)


class BackgroundTasks:
    """Start named loops, watch them, and stop them with a bounded grace period."""

    def __init__(self, on_failure: Callable[[str, BaseException], None]) -> None:
        self._on_failure = on_failure
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    @property
    def names(self) -> list[str]:
        """Names of the loops still running."""
        return [name for name, task in self._tasks.items() if not task.done()]

    def start(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        """Run ``factory()`` as the task ``name``; its unexpected end is a failure."""
        if name in self._tasks and not self._tasks[name].done():
            raise RuntimeError(f"background task {name!r} is already running")

        async def runner() -> None:
            await factory()

        task = asyncio.create_task(runner(), name=name)
        self._tasks[name] = task
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        if self._stopping or task.cancelled():
            return
        exc = task.exception()
        name = task.get_name()
        if exc is None:
            exc = RuntimeError(f"background task {name!r} returned unexpectedly")
            log.error(
                "background task %s ended unexpectedly",
                name,
                extra={"action": "task_monitor", "task": name},
            )
        else:
            log.error(
                "background task %s died: %r",
                name,
                exc,
                exc_info=exc,
                extra={"action": "task_monitor", "task": name},
            )
        self._on_failure(name, exc)

    async def stop(self, grace_s: float, names: Iterable[str] | None = None) -> None:
        """Cancel every loop (or those named) and wait up to ``grace_s`` for them to end."""
        chosen = self._tasks if names is None else {
            name: self._tasks[name] for name in names if name in self._tasks
        }
        if names is None:
            self._stopping = True
        tasks = [t for t in chosen.values() if not t.done()]
        for name in list(chosen):
            # A loop stopped on purpose is not a failure: forget it before it ends.
            task = self._tasks.pop(name)
            task.remove_done_callback(self._done)
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            for task in pending:
                log.warning(
                    "background task %s did not stop within %.1fs",
                    task.get_name(),
                    grace_s,
                    extra={"action": "task_stop"},
                )

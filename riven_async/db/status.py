"""The database part of the status document (``GET /api/status``, ``riven-async status``).

One connection, one query after the other: a status call never takes a share of the pool
that the webhooks need.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from riven_async.db.repos import Repos
from riven_async.domain.states import ACTIVE_STATES, State


async def database_status(repos: Repos) -> dict[str, Any]:
    """Items by state and kind, the oldest item of each active state, jobs per kind, the
    checks due, the inbox backlog and the database's size, on ``repos``' executor.

    Keys are the enums' values (orjson takes str keys only, not StrEnum members).
    """
    stats = repos.stats
    counts = await stats.state_counts()
    oldest = await stats.oldest_items(ACTIVE_STATES)
    jobs = await stats.job_counts()
    due = await stats.checks_due()
    next_check = await repos.schedule.next_check_at()
    inbox = await stats.inbox_counts()
    size = await stats.database_size()
    now = datetime.now(UTC)
    by_state: dict[State, int] = {}
    for per_kind in counts.values():
        for state, n in per_kind.items():
            by_state[state] = by_state.get(state, 0) + n
    return {
        "size_bytes": size,
        "items": {
            "total": sum(by_state.values()),
            "by_state": {s.value: by_state[s] for s in State if s in by_state},
            "by_kind": {kind.value: {s.value: n for s, n in per_kind.items()}
                        for kind, per_kind in counts.items()},
        },
        "oldest": {
            state.value: {"id": o.item_id, "kind": o.kind, "title": o.title, "since": o.since,
                          "age_s": round(max(0.0, (now - o.since).total_seconds()), 3)}
            for state in State if (o := oldest.get(state)) is not None
        },
        "jobs": {kind.value: {"due": c.due, "scheduled": c.scheduled, "running": c.running,
                              "failed": c.failed} for kind, c in jobs.items()},
        "checks": {"due_now": due.now, "due_next_hour": due.hour, "due_next_day": due.day,
                   "next_at": next_check},
        "inbox": {"waiting": inbox.waiting, "processing": inbox.claimed, "oldest": inbox.oldest},
    }

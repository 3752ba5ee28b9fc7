"""TMDB's show statuses mapped to ours, with the hiatus rule."""

from __future__ import annotations

from datetime import datetime

from riven_async.domain.media import ShowStatus

DAY_S = 86_400.0
# A usual break between seasons is shorter than this; longer with nothing announced is a hiatus.
DEFAULT_HIATUS_AFTER_S = 90 * DAY_S

# TMDB's TV statuses (upstreams.md §1); "Cancelled" is tolerated though TMDB spells it "Canceled".
ONGOING_TMDB_STATUSES = frozenset({"returning series", "in production", "planned", "pilot"})
ENDED_TMDB_STATUSES = frozenset({"ended", "canceled", "cancelled"})


def show_status(
    tmdb_status: str | None,
    *,
    next_announced: bool,
    last_aired_at: datetime | None,
    now: datetime,
    hiatus_after_s: float = DEFAULT_HIATUS_AFTER_S,
) -> ShowStatus:
    """Our status from TMDB's, the next episode being announced, and the last air time.

    ``Ended``/``Canceled`` map to ended, unless a next episode is announced: TMDB updates
    the status of a revived show later than its episode list, and the episode is the
    stronger evidence. The running statuses map to ongoing, or to hiatus when nothing is
    announced and the last episode aired more than ``hiatus_after_s`` before ``now``.
    Anything else (missing, unknown to us) is unknown.
    """
    if hiatus_after_s <= 0:
        raise ValueError("hiatus_after_s must be positive")
    key = (tmdb_status or "").strip().casefold()
    if key in ENDED_TMDB_STATUSES:
        return ShowStatus.ONGOING if next_announced else ShowStatus.ENDED
    if key not in ONGOING_TMDB_STATUSES:
        return ShowStatus.UNKNOWN
    if next_announced or last_aired_at is None:
        return ShowStatus.ONGOING
    if (now - last_aired_at).total_seconds() > hiatus_after_s:
        return ShowStatus.HIATUS
    return ShowStatus.ONGOING

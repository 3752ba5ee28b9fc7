"""Small text helpers shared by the commands' human output (ages, ids, labels)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 string (as the API sends) or a datetime, as an aware datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def duration(seconds: float) -> str:
    """``3d 4h``, ``2h 5m``, ``4m 10s``, ``12s``: the two largest units."""
    total = int(max(0.0, seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def age(value: Any, now: datetime | None = None) -> str:
    """How long ago ``value`` was (``"-"`` when unknown)."""
    when = parse_time(value)
    if when is None:
        return "-"
    seconds = ((now or datetime.now(UTC)) - when).total_seconds()
    return f"{duration(seconds)} ago" if seconds >= 0 else f"in {duration(-seconds)}"


def when(value: Any, now: datetime | None = None) -> str:
    """A moment as ``2026-01-05 20:00 UTC (in 3h 2m)``."""
    moment = parse_time(value)
    if moment is None:
        return "-"
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC ({age(moment, now)})"


def ids_text(ids: Mapping[str, Any] | None) -> str:
    """``tmdb 1396, tvdb 81189, imdb tt0903747``."""
    if not ids:
        return "-"
    return ", ".join(f"{name} {value}" for name, value in ids.items())


def item_label(item: Mapping[str, Any]) -> str:
    """How an item reads in a list: ``Title (2008)``, ``Season 2``, ``S02E05 Title``."""
    kind = item.get("kind")
    title = str(item.get("title") or "")
    season, episode = item.get("season_number"), item.get("episode_number")
    if kind == "episode" and season is not None and episode is not None:
        return f"S{season:02d}E{episode:02d} {title}".rstrip()
    if kind == "season" and season is not None:
        return f"Season {season}"
    year = item.get("year")
    return f"{title} ({year})" if year else title or "(untitled)"


def counts_text(counts: Mapping[str, int]) -> str:
    """``12 completed, 3 scraped`` (largest first)."""
    if not counts:
        return "none"
    ordered = sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))
    return ", ".join(f"{n:,} {name}" for name, n in ordered)


def size_text(size: int | None) -> str:
    """Bytes as ``1.2 GB``."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"

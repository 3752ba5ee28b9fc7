"""Per-sender, per-event webhook counters for ``/metrics``."""

from __future__ import annotations

from collections import Counter
from typing import Literal

from riven_async.web.metrics import Labeled, Section

Outcome = Literal["received", "accepted", "ignored", "rejected", "failed"]
OUTCOMES: tuple[Outcome, ...] = ("received", "accepted", "ignored", "rejected", "failed")
INVALID_EVENT = "invalid"
OTHER_EVENT = "other"


class WebhookStats:
    """Counts deliveries by sender, event and outcome.

    ``received`` counts every delivery; each then ends as ``accepted`` (actionable, stored),
    ``ignored`` (stored, nothing to do), ``rejected`` (4xx) or ``failed`` (the sink raised).
    Event labels must come from a bounded set: callers map unknown events to ``other``
    and unparsable bodies to ``invalid``.
    """

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str, Outcome]] = Counter()

    def record(self, sender: str, event: str, outcome: Outcome) -> None:
        """Count one outcome."""
        self._counts[(sender, event, outcome)] += 1

    def count(self, sender: str, event: str, outcome: Outcome) -> int:
        """One counter's value."""
        return self._counts[(sender, event, outcome)]

    def snapshot(self) -> Labeled:
        """``{sender: {event: {received, accepted, ignored, rejected, failed}}}``."""
        senders: dict[str, dict[str, dict[str, int]]] = {}
        for (sender, event, outcome), n in self._counts.items():
            events = senders.setdefault(sender, {})
            counts = events.setdefault(event, dict.fromkeys(OUTCOMES, 0))
            counts[outcome] = n
        return Labeled("sender", {
            sender: Labeled("event", dict(sorted(events.items())))
            for sender, events in sorted(senders.items())
        })

    async def section(self) -> Section:
        """The ``webhooks`` section of ``/metrics``."""
        return self.snapshot()

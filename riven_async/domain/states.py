"""Item states, the transitions between them, and how a show or season derives its state."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum


class State(StrEnum):
    """Where an item is in the pipeline; values equal the SQL enum ``item_state``.

    The declaration order is the SQL enum's order, so ``min(state)`` in SQL is the least
    advanced of the pipeline states (``requested`` .. ``completed``).
    """

    REQUESTED = "requested"
    INDEXED = "indexed"
    SCRAPED = "scraped"
    DOWNLOADED = "downloaded"
    LINKED = "linked"
    COMPLETED = "completed"
    PARTIALLY_COMPLETED = "partially_completed"
    ONGOING = "ongoing"
    UNRELEASED = "unreleased"
    FAILED = "failed"
    PAUSED = "paused"


# States whose items are waiting for the pipeline to act; the metrics report the oldest
# item in each, so a stalled stage is visible at once.
ACTIVE_STATES: frozenset[State] = frozenset(
    {State.REQUESTED, State.INDEXED, State.SCRAPED, State.DOWNLOADED, State.LINKED}
)
# Set on shows and seasons only, from their episodes (see ``aggregate_state``).
AGGREGATE_STATES: frozenset[State] = frozenset({State.PARTIALLY_COMPLETED, State.ONGOING})
# The forward path of a movie or an episode.
PIPELINE_ORDER: tuple[State, ...] = (
    State.REQUESTED, State.INDEXED, State.SCRAPED, State.DOWNLOADED, State.LINKED,
    State.COMPLETED,
)

_ANY_WORKING = frozenset(PIPELINE_ORDER) | {State.UNRELEASED}

# Allowed moves of a movie or an episode. Backward edges are the repairs: every release
# blacklisted (scraped -> indexed), a failed download (downloaded -> scraped), a broken
# link (linked/completed -> downloaded), an upgrade or re-scrape (completed -> indexed),
# an air date moved into the future (indexed -> unreleased).
TRANSITIONS: Mapping[State, frozenset[State]] = {
    State.REQUESTED: frozenset({State.INDEXED, State.UNRELEASED, State.FAILED, State.PAUSED}),
    State.UNRELEASED: frozenset({State.INDEXED, State.FAILED, State.PAUSED}),
    State.INDEXED: frozenset({State.SCRAPED, State.UNRELEASED, State.FAILED, State.PAUSED}),
    State.SCRAPED: frozenset({State.DOWNLOADED, State.INDEXED, State.FAILED, State.PAUSED}),
    State.DOWNLOADED: frozenset({State.LINKED, State.SCRAPED, State.FAILED, State.PAUSED}),
    State.LINKED: frozenset(
        {State.COMPLETED, State.DOWNLOADED, State.SCRAPED, State.FAILED, State.PAUSED}
    ),
    State.COMPLETED: frozenset(
        {State.INDEXED, State.SCRAPED, State.DOWNLOADED, State.LINKED, State.PAUSED}
    ),
    # Retry and resume go back to the remembered state (``resume_state``) or any working one.
    State.FAILED: _ANY_WORKING | {State.PAUSED},
    State.PAUSED: _ANY_WORKING | {State.FAILED},
    State.PARTIALLY_COMPLETED: frozenset(),
    State.ONGOING: frozenset(),
}


def can_transition(current: State, target: State) -> bool:
    """True when a movie or an episode may move from ``current`` to ``target``."""
    return target in TRANSITIONS[current]


def sources_for(target: State) -> frozenset[State]:
    """Every state from which ``target`` may be entered (the guard of a set-based update)."""
    return frozenset(state for state, targets in TRANSITIONS.items() if target in targets)


def aggregate_state(
    episode_states: Iterable[State], *, more_coming: bool, current: State
) -> State:
    """The state of a season or show from its episodes' states.

    ``more_coming`` is true when episodes are announced but not aired, or (for a show) when
    it is still running. Mirrors ``refresh_parent_states`` in ``sql/queries/items.sql``.
    """
    if current is State.PAUSED:
        return current
    states = list(episode_states)
    if not states:
        return current
    aired = [s for s in states if s is not State.UNRELEASED]
    if not aired:
        return State.UNRELEASED
    if all(s is State.COMPLETED for s in aired):
        return State.ONGOING if more_coming else State.COMPLETED
    if State.COMPLETED in aired:
        return State.PARTIALLY_COMPLETED
    working = [s for s in aired if s not in (State.FAILED, State.PAUSED)]
    if not working:
        return State.FAILED if State.FAILED in aired else State.PAUSED
    return min(working, key=_ENUM_ORDER.__getitem__)


_ENUM_ORDER: Mapping[State, int] = {state: i for i, state in enumerate(State)}

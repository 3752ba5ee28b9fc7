"""State changes: guarded transitions, fail and retry, pause and resume, parent aggregates."""

from __future__ import annotations

import asyncpg
from hypothesis import HealthCheck, given, settings, strategies as st

from riven_async.domain.media import ShowStatus
from riven_async.domain.states import (
    TRANSITIONS,
    State,
    aggregate_state,
    can_transition,
    sources_for,
)
from tests.db.factories import Repos, show_tree, truncate_all

EPISODE_STATES = [s for s in State if s not in (State.PARTIALLY_COMPLETED, State.ONGOING)]


def test_sources_are_the_inverse_of_transitions() -> None:
    for target in State:
        for source in State:
            assert (source in sources_for(target)) == can_transition(source, target)
    assert not TRANSITIONS[State.ONGOING]


def test_aggregate_rules_on_plain_cases() -> None:
    c, u, s, f = State.COMPLETED, State.UNRELEASED, State.SCRAPED, State.FAILED
    idx = State.INDEXED
    assert aggregate_state([c, c], more_coming=False, current=idx) is State.COMPLETED
    assert aggregate_state([c, u], more_coming=True, current=idx) is State.ONGOING
    assert aggregate_state([c, s], more_coming=False, current=idx) is State.PARTIALLY_COMPLETED
    assert aggregate_state([s, idx, u], more_coming=True, current=idx) is State.INDEXED
    assert aggregate_state([u, u], more_coming=True, current=idx) is State.UNRELEASED
    assert aggregate_state([f, f], more_coming=False, current=idx) is State.FAILED
    assert aggregate_state([], more_coming=False, current=idx) is State.INDEXED
    assert aggregate_state([c], more_coming=False, current=State.PAUSED) is State.PAUSED


async def _episodes(repos: Repos, show_id: int) -> list[int]:
    records = await repos.executor.fetch(
        "SELECT id FROM items WHERE show_id = $1 AND kind = 'episode'"
        " ORDER BY season_number, episode_number", show_id)
    return [r["id"] for r in records]


async def test_transitions_are_guarded_in_one_statement(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    [show] = await repos.trees.upsert_show_trees([show_tree(1, seasons=1, episodes=3)])
    episodes = await _episodes(repos, show.show_id)
    assert await repos.items.set_state_many(episodes, State.SCRAPED) == []
    assert sorted(await repos.items.set_state_many(episodes[:2], State.INDEXED)) == episodes[:2]
    assert sorted(await repos.items.set_state_many(episodes, State.SCRAPED)) == episodes[:2]
    assert await repos.items.set_state_many(episodes, State.SCRAPED) == []


async def test_failed_items_retry_where_they_failed(db_pool: asyncpg.Pool) -> None:
    repos = Repos(db_pool)
    [show] = await repos.trees.upsert_show_trees([show_tree(1, seasons=1, episodes=2)])
    first, second = await _episodes(repos, show.show_id)
    await repos.items.set_state_many([first], State.INDEXED)
    assert sorted(await repos.items.fail_many([first, second], "no releases")) == [first, second]
    item = await repos.catalog.get(first)
    assert item is not None
    assert item.state is State.FAILED
    assert item.last_error == "no releases"
    assert await repos.items.retry_many([first, second]) == {first: State.INDEXED,
                                                            second: State.UNRELEASED}
    again = await repos.catalog.get(first)
    assert again is not None
    assert again.last_error is None
    assert again.resume_state is None


async def test_pausing_a_show_pauses_its_tree_and_resume_restores_it(
    db_pool: asyncpg.Pool,
) -> None:
    repos = Repos(db_pool)
    [show] = await repos.trees.upsert_show_trees([show_tree(1, seasons=2, episodes=2)])
    episodes = await _episodes(repos, show.show_id)
    await repos.items.set_state_many(episodes[:1], State.INDEXED)
    paused = await repos.items.pause_many([show.show_id])
    assert len(paused) == 1 + 2 + 4
    assert await repos.items.pause_many([show.show_id]) == []
    resumed = await repos.items.resume_many([show.show_id])
    assert sorted(resumed) == sorted(paused)
    states = {int(i.id): i.state for i in await repos.catalog.get_many(episodes)}
    assert states[episodes[0]] is State.INDEXED
    assert {states[e] for e in episodes[1:]} == {State.UNRELEASED}


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seasons=st.lists(st.lists(st.sampled_from(EPISODE_STATES), min_size=1, max_size=5),
                     min_size=1, max_size=3),
    status=st.sampled_from(list(ShowStatus)),
    show_paused=st.booleans(),
)
async def test_parent_states_in_sql_match_the_domain_rules(
    db_pool: asyncpg.Pool, seasons: list[list[State]], status: ShowStatus, show_paused: bool
) -> None:
    await truncate_all(db_pool)
    repos = Repos(db_pool)
    tree = show_tree(1, seasons=len(seasons), episodes=max(len(s) for s in seasons),
                     status=status)
    [show] = await repos.trees.upsert_show_trees([tree])
    for number, states in enumerate(seasons, start=1):
        # Drop the episodes this example does not list, then set the listed states.
        await db_pool.execute(
            "DELETE FROM items WHERE show_id = $1 AND season_number = $2"
            " AND episode_number > $3", show.show_id, number, len(states))
        for episode, state in enumerate(states, start=1):
            await db_pool.execute(
                "UPDATE items SET state = $4 WHERE show_id = $1 AND season_number = $2"
                " AND episode_number = $3", show.show_id, number, episode, state)
    if show_paused:
        await db_pool.execute("UPDATE items SET state = 'paused' WHERE id = $1", show.show_id)
    await repos.items.refresh_parent_states([show.show_id])
    rows = await db_pool.fetch("SELECT season_number, state FROM items"
                               " WHERE (show_id = $1 AND kind = 'season') OR id = $1",
                               show.show_id)
    got = {r["season_number"]: State(r["state"]) for r in rows}
    for number, states in enumerate(seasons, start=1):
        expected = aggregate_state(states, more_coming=State.UNRELEASED in states,
                                   current=State.INDEXED)
        assert got[number] is expected, (number, states)
    every = [s for states in seasons for s in states]
    more = State.UNRELEASED in every or status in (ShowStatus.ONGOING, ShowStatus.HIATUS)
    current = State.PAUSED if show_paused else State.INDEXED
    assert got[None] is aggregate_state(every, more_coming=more, current=current)

"""The pure records the repositories take: validation and derived values."""

from __future__ import annotations

import random
from datetime import datetime

import pytest
from hypothesis import given, strategies as st

from riven_async.domain.intents import ExternalIds
from riven_async.domain.media import EpisodeRecord, SeasonRecord, ShowTree
from riven_async.domain.queue import Backoff, JobKind, NewJob
from tests.db.factories import T0, show_tree


def test_a_job_key_defaults_to_kind_and_item() -> None:
    assert NewJob(JobKind.SCRAPE, 12).key == "scrape:12"
    assert NewJob(JobKind.SCAN, dedupe_key="scan:/lib/Shows/A").key == "scan:/lib/Shows/A"
    with pytest.raises(ValueError, match="dedupe_key"):
        NewJob(JobKind.SCAN)
    with pytest.raises(ValueError, match="timezone"):
        NewJob(JobKind.SCRAPE, 1, run_at=datetime(2025, 1, 1))


@given(attempts=st.integers(0, 100), base=st.floats(0.1, 100), cap=st.floats(1, 10_000))
def test_backoff_stays_in_its_upper_half_and_under_the_cap(
    attempts: int, base: float, cap: float
) -> None:
    delay = Backoff(base, cap, random.Random(attempts)).delay_s(attempts)
    ceiling = min(cap, base * 2 ** max(0, attempts - 1))
    assert ceiling / 2 <= delay <= ceiling


def test_trees_refuse_what_the_upsert_cannot_store() -> None:
    with pytest.raises(ValueError, match="tmdb"):
        ShowTree(ExternalIds(tvdb=1), "x", T0)
    with pytest.raises(ValueError, match="twice"):
        SeasonRecord(1, "S1", (EpisodeRecord(1, "a"), EpisodeRecord(1, "b")))
    with pytest.raises(ValueError, match="twice"):
        ShowTree(ExternalIds(tmdb=1), "x", T0, seasons=(SeasonRecord(1, "a"), SeasonRecord(1, "b")))
    with pytest.raises(ValueError, match="timezone"):
        EpisodeRecord(1, "a", aired_at=datetime(2025, 1, 1))
    assert show_tree(1, seasons=3, episodes=4).episode_count == 12

"""Page cursors as text: what the API's ``next`` gives, its ``after`` reads back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, strategies as st

from riven_async.db.catalog import PageCursor

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@given(st.integers(1, 2**63 - 1),
       st.one_of(st.none(), st.integers(0, 10**17).map(lambda us: EPOCH + timedelta(
           microseconds=us))))
def test_a_cursor_reads_back_as_itself(item_id: int, changed_at: datetime | None) -> None:
    cursor = PageCursor(item_id, changed_at)
    assert PageCursor.parse(cursor.to_text()) == cursor


@pytest.mark.parametrize("text", ["", "x", "1.", ".1", "1.2.3", "-1", "1e5", "１２",
                                  f"{10**17 + 1}.5", "1" * 20])
def test_anything_else_is_not_a_cursor(text: str) -> None:
    with pytest.raises(ValueError, match="not a page cursor"):
        PageCursor.parse(text)


def test_an_id_past_bigint_is_clamped_not_an_error() -> None:
    assert PageCursor.parse("9" * 19).id == 2**63 - 1

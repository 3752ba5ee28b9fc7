"""What every repository shares: its executor, its query file, and the clock it reads."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import ClassVar, LiteralString, Self

from riven_async.db.executor import Executor
from riven_async.db.queries import QueryFile, load_queries

Now = Callable[[], datetime]


def utc_now() -> datetime:
    """Real time, timezone-aware."""
    return datetime.now(UTC)


def epoch_s(value: datetime | None) -> float | None:
    """A timestamp as epoch seconds: asyncpg encodes float8[] several times faster than
    timestamptz[], and the SQL turns it back with ``to_timestamp``."""
    return None if value is None else value.timestamp()


def ids_array(values: Sequence[int]) -> list[int]:
    """Ids as a list for a ``$n::bigint[]`` parameter."""
    return [int(v) for v in values]


class Repository:
    """Base of the per-feature repositories.

    ``now`` is the daemon's clock (scaled in the demo and the sims): every due-time
    comparison uses it, never the database's ``now()``, so scaled time works end to end.
    Bookkeeping stamps (created_at, claimed_at, heartbeats) use the server's clock.
    """

    FEATURE: ClassVar[str]

    def __init__(
        self, executor: Executor, queries: QueryFile | None = None, *, now: Now = utc_now
    ) -> None:
        self._executor = executor
        self._queries = queries if queries is not None else load_queries(self.FEATURE)
        if self._queries.feature != self.FEATURE:
            raise ValueError(f"{type(self).__name__} needs sql/queries/{self.FEATURE}.sql, "
                             f"not {self._queries.feature}.sql")
        self._now = now

    def _sql(self, name: str) -> LiteralString:
        # Called from subclasses' __init__ only, so a missing name fails at start-up.
        return self._queries.sql(name)

    @property
    def executor(self) -> Executor:
        """Where statements go: the pool, or a connection inside a transaction."""
        return self._executor

    @property
    def queries(self) -> QueryFile:
        """The loaded statements of this feature."""
        return self._queries

    def bound_to(self, executor: Executor) -> Self:
        """The same repository on another executor (a connection in a transaction)."""
        return type(self)(executor, self._queries, now=self._now)

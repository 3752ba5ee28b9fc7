"""Load named SQL statements from ``sql/queries/<feature>.sql``."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import LiteralString, cast

_NAME_RE = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)
_PARAM_RE = re.compile(r"\$(\d+)")


def sql_dir() -> Path:
    """The ``sql/`` folder: next to the package in a checkout, inside it in a wheel."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "sql", here.parent / "sql"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("sql/ directory not found next to the riven_async package")


@dataclass(frozen=True, slots=True)
class Query:
    """One named statement with its description line."""

    name: str
    sql: LiteralString
    doc: str

    @property
    def param_count(self) -> int:
        """The highest ``$n`` the statement uses."""
        return max((int(n) for n in _PARAM_RE.findall(self.sql)), default=0)


class QueryFile(Mapping[str, Query]):
    """The named statements of one feature file; a missing name fails at start-up."""

    def __init__(self, feature: str, queries: Mapping[str, Query]) -> None:
        self.feature = feature
        self._queries = dict(queries)

    def __getitem__(self, name: str) -> Query:
        try:
            return self._queries[name]
        except KeyError:
            raise KeyError(f"sql/queries/{self.feature}.sql has no query named {name!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._queries)

    def __len__(self) -> int:
        return len(self._queries)

    def sql(self, name: str) -> LiteralString:
        """The statement text of ``name``."""
        return self[name].sql


def parse_queries(feature: str, text: str) -> QueryFile:
    """Split ``-- name: x`` blocks; the first comment line after a header is its doc."""
    parts = _NAME_RE.split(text)
    queries: dict[str, Query] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"sql/queries/{feature}.sql: duplicate query name {name!r}")
        lines = body.strip().splitlines()
        doc = lines[0].removeprefix("--").strip() if lines and lines[0].startswith("--") else ""
        statement = body.strip()
        if not statement or all(line.lstrip().startswith("--") for line in lines):
            raise ValueError(f"sql/queries/{feature}.sql: query {name!r} is empty")
        # Query files are part of the package, never user input: literal by construction.
        queries[name] = Query(name, cast(LiteralString, statement), doc)
    return QueryFile(feature, queries)


def load_queries(feature: str, directory: Path | None = None) -> QueryFile:
    """Read and parse ``sql/queries/<feature>.sql``."""
    path = (directory or sql_dir() / "queries") / f"{feature}.sql"
    return parse_queries(feature, path.read_text(encoding="utf-8"))


def load_all_queries(directory: Path | None = None) -> dict[str, QueryFile]:
    """Every query file, keyed by feature name."""
    root = directory or sql_dir() / "queries"
    return {
        path.stem: parse_queries(path.stem, path.read_text(encoding="utf-8"))
        for path in sorted(root.glob("*.sql"))
    }

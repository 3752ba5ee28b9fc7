"""Every named query against the migrated schema: it prepares, its header tells the truth,
and some repository uses it."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg
import pytest

from riven_async.db.pool import init_connection
from riven_async.db.queries import Query, load_all_queries

QUERIES = load_all_queries()
ALL = [(feature, query) for feature, file in QUERIES.items() for query in file.values()]
IDS = [f"{feature}.{query.name}" for feature, query in ALL]
DB_PACKAGE = Path(__file__).resolve().parents[2] / "riven_async" / "db"
_PARAM_RE = re.compile(r"\$(\d+)")


def _body_params(query: Query) -> set[int]:
    code = "\n".join(line.split("--", 1)[0] for line in query.sql.splitlines())
    return {int(n) for n in _PARAM_RE.findall(code)}


def _header_params(query: Query) -> set[int]:
    for line in query.sql.splitlines():
        stripped = line.strip()
        if not stripped.startswith("--"):
            break
        if stripped.startswith("-- $"):
            return {int(n) for n in _PARAM_RE.findall(stripped)}
    return set()


async def test_every_query_prepares_against_the_migrated_schema(db_dsn: str) -> None:
    connection = await asyncpg.connect(db_dsn)
    await init_connection(connection)
    failures = []
    try:
        for feature, query in ALL:
            try:
                await connection.prepare(query.sql)
            except asyncpg.PostgresError as exc:
                failures.append(f"{feature}.{query.name}: {exc}")
    finally:
        await connection.close()
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(("feature", "query"), ALL, ids=IDS)
def test_header_names_every_parameter_the_body_uses(feature: str, query: Query) -> None:
    body = _body_params(query)
    header = _header_params(query)
    expected = set(range(1, max(body, default=0) + 1))
    assert body == expected, f"{feature}.{query.name}: $n in the body skip a number"
    assert max(header, default=0) == max(body, default=0), (
        f"{feature}.{query.name}: the -- $n header says {max(header, default=0)} parameters, "
        f"the body uses {max(body, default=0)}"
    )
    assert query.param_count == max(body, default=0)


@pytest.mark.parametrize(("feature", "query"), ALL, ids=IDS)
def test_every_query_has_a_description_line(feature: str, query: Query) -> None:
    assert query.doc, f"{feature}.{query.name}"
    assert not query.doc.startswith("$"), f"{feature}.{query.name}"


@pytest.mark.parametrize(("feature", "query"), ALL, ids=IDS)
def test_every_query_name_is_used_by_its_repository(feature: str, query: Query) -> None:
    module = DB_PACKAGE / f"{feature}.py"
    assert module.is_file(), f"sql/queries/{feature}.sql has no repository {module.name}"
    assert f'"{query.name}"' in module.read_text(encoding="utf-8"), (
        f"{query.name} in sql/queries/{feature}.sql is not used by riven_async/db/{feature}.py"
    )


def test_no_query_pages_with_offset() -> None:
    offenders = [i for (_, q), i in zip(ALL, IDS, strict=True)
                 if re.search(r"\bOFFSET\b", q.sql, re.IGNORECASE)]
    assert not offenders


def test_every_feature_file_has_a_repository_and_back() -> None:
    repos = {p.stem for p in DB_PACKAGE.glob("*.py")}
    assert set(QUERIES) <= repos

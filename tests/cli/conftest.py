"""Running CLI commands in the test's event loop, with their output captured."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from riven_async.cli import execute
from tests.conftest import TEST_API_KEY


@dataclass(frozen=True, slots=True)
class Result:
    """One command's exit code and what it printed."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return orjson.loads(self.out)


RunCli = Callable[..., Awaitable[Result]]


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> RunCli:
    """``await run_cli(config_path, "items", "list")``: exit code, stdout, stderr."""

    async def run(config: Path, *argv: str) -> Result:
        capsys.readouterr()
        try:
            code = await execute(["--config", str(config), *argv])
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def write_config(path: Path, *, port: int = 0, database_url: str | None = None,
                 extra: str = "") -> Path:
    """A small valid config: the test API key, a port, a database (URL or embedded dir)."""
    database = (f'url = "{database_url}"' if database_url is not None
                else f'data_dir = "{path.parent / "pg"}"')
    path.write_text(
        "# test config\n"
        f'[server]\nport = {port}\napi_key = "{TEST_API_KEY}"\n\n'
        f"[database]\n{database}\n\n"
        f'[library]\nmount_dir = "{path.parent / "mount"}"\nroot = "{path.parent / "library"}"\n'
        + extra,
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path

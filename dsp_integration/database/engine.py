"""Engine and session factory, made inside the caller's event loop and disposed by it.

No `pool_pre_ping`: it costs every checkout a round trip or three (BEGIN, a ping,
ROLLBACK) while the connection is nearly always alive. Instead a checkout looks at the
connection without asking the server (asyncpg notices a socket the server closed, as after a
PostgreSQL restart) and pings only a connection idle for `IDLE_PING_SECONDS`; a dead one is
replaced before the caller sees it. A connection that dies while in use fails that one
statement, and SQLAlchemy then invalidates every connection of the pool older than it; the
activity's retry runs on a fresh one."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import CursorResult, Executable, event, exc
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

SessionFactory = async_sessionmaker[AsyncSession]

IDLE_PING_SECONDS = 30.0
RECYCLE_SECONDS = 1800
_CHECKED_IN_AT = "dsp_checked_in_at"
_READS = "_dsp_read_engine"


def create_engine(database_url: str, *, pool_size: int = 5) -> AsyncEngine:
    engine = create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=RECYCLE_SECONDS,
    )
    event.listen(engine.sync_engine, "checkout", _check_on_checkout)
    event.listen(engine.sync_engine, "checkin", _note_checkin)
    return engine


def _note_checkin(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info[_CHECKED_IN_AT] = time.monotonic()


def _check_on_checkout(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
    """Refuse a connection the server closed (no round trip), or one idle for a while that
    does not answer a ping; the pool then connects afresh."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and driver.is_closed():
        raise exc.DisconnectionError("connection closed by the server")
    checked_in_at = record.info.get(_CHECKED_IN_AT)
    if checked_in_at is None or time.monotonic() - checked_in_at < IDLE_PING_SECONDS:
        return
    try:
        dbapi_connection.ping()
    except Exception as error:
        raise exc.DisconnectionError("idle connection did not answer a ping") from error


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False)


def autocommit_session(sessions: SessionFactory) -> AsyncSession:
    """A session for work of one statement each (a read, or a write that is one statement):
    autocommit, so no BEGIN before the
    statement and no ROLLBACK when the session ends. Statements in it do not share a
    snapshot, so a read that must be consistent is one statement (or a `begin()` session)."""
    bind = sessions.kw["bind"]
    assert isinstance(bind, AsyncEngine)
    reads = getattr(bind.sync_engine, _READS, None)
    if reads is None:
        reads = bind.execution_options(isolation_level="AUTOCOMMIT")
        setattr(bind.sync_engine, _READS, reads)
    return sessions(bind=reads)


async def execute_core(
    session: AsyncSession, statement: Executable, params: Mapping[str, Any]
) -> CursorResult[Any]:
    """Run a statement built once (of columns, not ORM objects) on the session's connection,
    past the ORM layer: rows come back as the database sent them, with no ORM result
    processing or bulk-update bookkeeping, which cost the workers more CPU than the
    statements of each entity themselves (devkit/bench/RESULTS.md, "Combined records").
    Same transaction as the session's."""
    connection = await session.connection()
    return await connection.execute(statement, params)


@asynccontextmanager
async def open_database(database_url: str, *, pool_size: int = 5) -> AsyncIterator[SessionFactory]:
    engine = create_engine(database_url, pool_size=pool_size)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()

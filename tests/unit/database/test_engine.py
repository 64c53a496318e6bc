"""The pool without pre-ping: a connection the server closed (a PostgreSQL restart, a
terminated backend) is replaced at checkout, before any statement fails on it."""

from __future__ import annotations

import asyncio

from sqlalchemy import String, func, select

from dsp_integration.database.engine import (
    autocommit_session,
    create_engine,
    create_session_factory,
)


async def test_a_connection_the_server_closed_is_replaced_at_checkout(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    sessions = create_session_factory(engine)
    try:
        async with sessions() as session:
            first = await session.scalar(select(func.pg_backend_pid()))
        other = create_engine(database_url, pool_size=1)
        try:
            async with other.connect() as connection:
                await connection.execute(select(func.pg_terminate_backend(first)))
        finally:
            await other.dispose()
        await asyncio.sleep(0.2)  # the closed socket reaches the event loop

        async with autocommit_session(sessions) as session:
            second = await session.scalar(select(func.pg_backend_pid()))
        assert second is not None and second != first
    finally:
        await engine.dispose()


async def test_an_autocommit_session_runs_each_statement_on_its_own(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    sessions = create_session_factory(engine)
    xid = select(func.pg_current_xact_id().cast(String))
    try:
        async with autocommit_session(sessions) as session:
            alone = [await session.scalar(xid), await session.scalar(xid)]
        async with sessions.begin() as session:
            together = [await session.scalar(xid), await session.scalar(xid)]
        assert alone[0] != alone[1]
        assert together[0] == together[1]
    finally:
        await engine.dispose()

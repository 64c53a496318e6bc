"""Engine and session factory, made inside the caller's event loop and disposed by it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SessionFactory = async_sessionmaker[AsyncSession]


def create_engine(database_url: str, *, pool_size: int = 5) -> AsyncEngine:
    return create_async_engine(
        database_url, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size
    )


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def open_database(database_url: str, *, pool_size: int = 5) -> AsyncIterator[SessionFactory]:
    engine = create_engine(database_url, pool_size=pool_size)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()

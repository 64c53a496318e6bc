"""One time-skipping test server for the session; each test gets a `World`: the real queue
table (emptied first) and queue activities, a fake DSP, its own task queues and running
workers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from dsp_integration.database.engine import SessionFactory
from tests.workflows.world import World, start_test_env

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under this folder `workflows` (this hook sees the whole session's
    items, hence the path test)."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.workflows)


@pytest.fixture(scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await start_test_env()
    yield environment
    await environment.shutdown()


@pytest.fixture
def client(env: WorkflowEnvironment) -> Client:
    return env.client


@pytest.fixture
async def world(client: Client, clean_database: SessionFactory) -> AsyncIterator[World]:
    """The emptied queue table and a fresh DSP; the workers run for the whole test.
    Workflows still open at the end are terminated (gates and held answers released first),
    so no timer of theirs fires in a later test."""
    async with _running(World(client, clean_database)) as world:
        yield world


@pytest.fixture
async def world_v2(client: Client, clean_database: SessionFactory) -> AsyncIterator[World]:
    """The same with a version-2 fake DSP (no idempotency; its search lags 10 s)."""
    async with _running(World(client, clean_database, api_version=2, search_lag=10)) as world:
        yield world


@asynccontextmanager
async def _running(world: World) -> AsyncIterator[World]:
    async with world.workers():
        try:
            yield world
        finally:
            world.release_all()
            await world.terminate_all()

"""One time-skipping test server for the session; each test gets a `FakeWorld` with its own
task queues and running workers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tests.workflows.fake_world import FakeWorld, start_test_env


@pytest.fixture(scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await start_test_env()
    yield environment
    await environment.shutdown()


@pytest.fixture
def client(env: WorkflowEnvironment) -> Client:
    return env.client


@pytest.fixture
async def world(client: Client) -> AsyncIterator[FakeWorld]:
    """A fresh queue table and DSP; its workers run for the whole test. Workflows still open
    at the end are terminated, so no timer of theirs fires in a later test."""
    fake = FakeWorld(client)
    async with fake.workers():
        yield fake
        await fake.terminate_all()
